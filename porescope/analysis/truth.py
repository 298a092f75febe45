"""The exact truth of a synthetic membrane, in each counting estimator's own convention.

The generator's ``n_true`` counts the pores whose *centre* lies in the analysed region; the
guard-frame count counts the pores whose pixels do not touch the exclusion edges (bottom and
right by default). Both have the same expectation (``lambda * A``) but differ image by image by
the pores near the frame. So each estimator is compared with the truth *in its own convention*
(:func:`synthetic_reference`): the frame-counting estimators (``median_area``,
``split_labels``) with the exact number of true pores that the guard-frame rule keeps,
computed from the pore list (:func:`pore_edge_contacts`: which image edges each pore's pixels
touch), and the Boolean model (a density over the whole window, no frame) with ``n_true``.
Densities per cm^2 follow from the same counts and the analysed area. Without a synthetic
truth, :func:`mask_reference` makes a reference of a ground-truth mask analysed the same way.

Examples
--------
>>> import pandas as pd
>>> pores = pd.DataFrame({"x": [1.0, 50.0], "y": [30.0, 30.0], "major": [6.0, 6.0],
...                       "minor": [6.0, 6.0], "angle_deg": [0.0, 0.0], "n_pixels": [21, 29]})
>>> pore_edge_contacts(pores, 60, 60)["touches_left"].tolist()
[True, False]
>>> truth = {"porosity": 0.02, "n_true": 2, "width": 60, "analysed_height": 60}
>>> ref = synthetic_reference(truth, pores, include_edges=("top", "left"))
>>> ref["count"]
{'median_area': 2.0, 'split_labels': 2.0, 'boolean_model': 2.0}
>>> synthetic_reference(truth, pores, include_edges=("top",))["count"]["split_labels"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis.membrane import ESTIMATORS, ImageAnalysis
from porescope.io.tables import PipelineDataError, read_table
from porescope.measure.morphometry import EDGES

__all__ = ["read_synthetic_truth", "pore_edge_contacts", "synthetic_reference", "mask_reference"]


def read_synthetic_truth(folder: str | Path | None
                         ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The ``truth.csv`` (indexed by ``image_id``) and ``pores.csv`` of a synthetic dataset
    folder (the ``synthesize`` output), or ``(None, None)`` when it has no ``truth.csv``.

    Raises
    ------
    porescope.io.tables.PipelineDataError
        A file misses a column the comparison needs (the message names the file).
    """
    if folder is None:
        return None, None
    folder = Path(folder)
    path = folder / "truth.csv"
    if not path.is_file():
        return None, None
    truth = read_table(path)
    pores = read_table(folder / "pores.csv")
    for name, table, need in (("truth.csv", truth, ("image_id", "porosity", "n_true", "width",
                                                    "analysed_height")),
                              ("pores.csv", pores, ("image_id", "x", "y", "major", "minor",
                                                    "angle_deg", "n_pixels"))):
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise PipelineDataError(f"{folder / name}: missing column(s) {missing}; expected "
                                    "the output of the synthesize stage")
    return truth.set_index("image_id", drop=False), pores


def _chord_hits(centre_fixed: np.ndarray, centre_free: np.ndarray, quad_fixed: np.ndarray,
                cross: np.ndarray, quad_free: np.ndarray, line: float, lo: int, hi: int) -> np.ndarray:
    """Whether each ellipse ``Qf*df^2 + 2*C*df*dg + Qg*dg^2 <= 1`` crosses the pixel-centre line
    ``f = line`` at an integer ``g`` in ``[lo, hi]`` (``f``, ``g`` = the fixed / free axis)."""
    d = line - centre_fixed
    disc = (cross * d) ** 2 - quad_free * (quad_fixed * d * d - 1.0)
    ok = disc >= 0
    root = np.sqrt(np.where(ok, disc, 0.0))
    g0 = centre_free + (-cross * d - root) / quad_free
    g1 = centre_free + (-cross * d + root) / quad_free
    first = np.maximum(np.ceil(g0), lo)
    last = np.minimum(np.floor(g1), hi)
    return ok & (first <= last)


def pore_edge_contacts(pores: pd.DataFrame, height: int, width: int) -> pd.DataFrame:
    """Which edges of the analysed region each synthetic pore's own pixels touch (exact).

    A pixel belongs to a pore when its centre is inside the pore's ellipse (the mask rule of
    :mod:`porescope.synthetic.membranes`); a pore touches the right edge when one of its pixels lies in
    the last column ``width - 1`` (row in ``[0, height - 1]``), and so on - the definition of
    ``touches_*`` in :func:`~porescope.measure.morphometry.measure_objects`. Computed per pore from the
    chord of the ellipse along each edge's pixel-centre line (vectorised, no rasterising).

    Parameters
    ----------
    pores : table with ``x, y, major, minor, angle_deg`` (px, deg; see
        :func:`porescope.synthetic.membranes.sample_pores`).
    height, width : size of the analysed region (rows above a data bar, columns).

    Returns
    -------
    DataFrame with bool columns ``touches_top``, ``touches_bottom``, ``touches_left``,
    ``touches_right``, in the row order of ``pores``.
    """
    need = {"x", "y", "major", "minor", "angle_deg"}
    missing = sorted(need - set(pores.columns))
    if missing:
        raise ValueError(f"pores: missing column(s) {missing}")
    x = pores["x"].to_numpy(float)
    y = pores["y"].to_numpy(float)
    a2 = (pores["major"].to_numpy(float) / 2.0) ** 2
    b2 = (pores["minor"].to_numpy(float) / 2.0) ** 2
    th = np.radians(pores["angle_deg"].to_numpy(float))
    c, s = np.cos(th), np.sin(th)
    # inside iff P dx^2 + 2 R dx dy + S dy^2 <= 1 (u = dx c - dy s along the major axis)
    p = c * c / a2 + s * s / b2
    q = s * s / a2 + c * c / b2
    r = c * s * (1.0 / b2 - 1.0 / a2)
    hmax, wmax = height - 1, width - 1
    return pd.DataFrame({
        "touches_top": _chord_hits(y, x, q, r, p, 0.0, 0, wmax),
        "touches_bottom": _chord_hits(y, x, q, r, p, float(hmax), 0, wmax),
        "touches_left": _chord_hits(x, y, p, r, q, 0.0, 0, hmax),
        "touches_right": _chord_hits(x, y, p, r, q, float(wmax), 0, hmax),
    }, index=pores.index)


def _reference(kind: str, porosity: float, counts: Mapping[str, float],
               conventions: Mapping[str, str], analysed_px: int,
               pixel_size_nm: float | None) -> dict[str, Any]:
    area_cm2 = (analysed_px * (pixel_size_nm * 1e-7) ** 2 if pixel_size_nm else math.nan)
    return {"reference": kind, "porosity": float(porosity),
            "count": {k: float(v) for k, v in counts.items()}, "convention": dict(conventions),
            "density_cm2": {k: float(v) / area_cm2 if math.isfinite(area_cm2) else math.nan
                            for k, v in counts.items()},
            "analysed_px": int(analysed_px)}


def synthetic_reference(truth: Mapping[str, Any], pores: pd.DataFrame, *,
                        include_edges: Iterable[str] = ("top", "left"),
                        image_height: int | None = None) -> dict[str, Any]:
    """The exact truth of one synthetic image, per estimator in the estimator's own convention.

    Parameters
    ----------
    truth : the image's row of ``truth.csv`` (``porosity``, ``n_true``, ``width``,
        ``analysed_height``, ``pixel_size_nm``, ``expected_area_px``).
    pores : the image's rows of ``pores.csv`` (``x, y, major, minor, angle_deg, n_pixels``).
    include_edges : guard-frame inclusion edges of the analysis.
    image_height : rows of the image as analysed, if it was cropped (analysed rows =
        ``min(analysed_height, image_height)``); the counts assume the crop removed only
        data-bar rows.

    Returns
    -------
    dict: ``reference`` ("synthetic truth"), ``porosity``, ``count`` and ``convention`` per
    estimator (``median_area`` and ``split_labels``: the true pores with pixels in the region
    that the guard-frame rule keeps - none of their pixels on an exclusion edge; ``boolean_model``:
    ``n_true``, pores whose centre is in the region), ``density_cm2`` per estimator,
    ``analysed_px``, and ``n_true``, ``n_guard``, ``expected_area_px``.
    """
    ha = int(truth["analysed_height"])
    if image_height is not None:
        ha = min(ha, int(image_height))
    w = int(truth["width"])
    contacts = pore_edge_contacts(pores, ha, w)
    visible = pores["n_pixels"].to_numpy() > 0
    drop = np.zeros(len(pores), bool)
    for e in EDGES:
        if e not in tuple(include_edges):
            drop |= contacts[f"touches_{e}"].to_numpy()
    n_guard = int(np.count_nonzero(visible & ~drop))
    n_true = int(truth["n_true"])
    px = truth.get("pixel_size_nm")
    px = float(px) if px is not None and np.isfinite(float(px)) else None
    ref = _reference("synthetic truth", float(truth["porosity"]),
                     {"median_area": n_guard, "split_labels": n_guard, "boolean_model": n_true},
                     {"median_area": "guard frame", "split_labels": "guard frame",
                      "boolean_model": "centres inside"}, ha * w, px)
    ref.update(n_true=n_true, n_guard=n_guard,
               expected_area_px=float(truth.get("expected_area_px", math.nan)))
    return ref


def mask_reference(analysis: ImageAnalysis) -> dict[str, Any]:
    """A reference made from the analysis of a ground-truth mask (each estimator vs itself)."""
    s = analysis.summary
    px = s["pixel_size_nm"]
    return _reference("ground-truth mask", s["porosity"],
                      {e: s[f"count_{e}"] for e in ESTIMATORS},
                      {e: f"{e} on the ground-truth mask" for e in ESTIMATORS},
                      s["analysed_px"], px if px == px else None)

