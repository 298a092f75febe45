"""Measured against true: tidy comparison rows and their error statistics.

:func:`compare_with_reference` turns the analysis of one mask and a reference (from
:mod:`porescope.analysis.truth`) into one row per counting estimator (porosity error in
percentage points, count error in %); :func:`summarise_errors` reduces a table of such rows to
error statistics per mask, estimator and porosity band (:func:`band_names`).

Examples
--------
>>> import pandas as pd
>>> band_names([0.2, 0.4])
['<=20%', '20-40%', '>40%']
>>> table = pd.DataFrame({"mask": ["predicted"] * 2, "estimator": ["split_labels"] * 2,
...                       "porosity_true": [0.1, 0.3], "porosity_error_pp": [0.5, -1.0],
...                       "count_true": [10.0, 20.0], "count_measured": [11.0, 18.0],
...                       "count_error_pct": [10.0, -10.0]})
>>> s = summarise_errors(table, bands=[0.2])["predicted"]["split_labels"]
>>> s["all"]["count_mae_pct"], s["all"]["count_pooled_pct"], s["<=20%"]["n_images"]
(10.0, -3.3333, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis.membrane import ESTIMATORS, ImageAnalysis
from porescope.measure.counting import boolean_model_count

__all__ = ["compare_with_reference", "boolean_known_area_row", "band_names", "summarise_errors"]


def _row(analysis: ImageAnalysis, reference: Mapping[str, Any], *, mask: str, estimator: str,
         convention_of: str, count_measured: float, density_measured_cm2: float,
         extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """One comparison row; ``convention_of``: the estimator whose reference count applies."""
    s = analysis.summary
    true = float(reference["count"][convention_of])
    return {
        "image_id": analysis.image_id, "mask": mask, "estimator": estimator,
        "reference": reference["reference"], "porosity_true": reference["porosity"],
        "porosity_measured": s["porosity"],
        "porosity_error_pp": 100.0 * (s["porosity"] - reference["porosity"]),
        "count_true": true, "count_convention": reference["convention"][convention_of],
        "count_measured": count_measured,
        "count_error_pct": 100.0 * (count_measured - true) / true if true > 0 else math.nan,
        "density_true_cm2": reference["density_cm2"][convention_of],
        "density_measured_cm2": density_measured_cm2,
        **dict(extra or {}),
    }


def compare_with_reference(analysis: ImageAnalysis, reference: Mapping[str, Any], *,
                           mask: str, extra: Mapping[str, Any] | None = None
                           ) -> list[dict[str, Any]]:
    """Tidy rows, one per estimator: measured porosity and count against the reference.

    Parameters
    ----------
    analysis : ImageAnalysis
        :func:`porescope.analysis.membrane.analyse_mask` of one mask.
    reference : mapping
        :func:`porescope.analysis.truth.synthetic_reference` or
        :func:`~porescope.analysis.truth.mask_reference`.
    mask : str
        Label of the analysed mask, e.g. ``"ground truth"`` / ``"predicted"``.
    extra : mapping, optional
        Columns appended to every row.

    Returns
    -------
    list of dict
        Columns: ``image_id``, ``mask``, ``estimator``, ``reference``, ``porosity_true``,
        ``porosity_measured`` (fractions), ``porosity_error_pp`` (measured - true, percentage
        points), ``count_true``, ``count_convention``, ``count_measured``, ``count_error_pct``
        (100 (measured - true) / true; NaN when the true count is 0), ``density_true_cm2``,
        ``density_measured_cm2`` (per cm^2), then ``extra``.
    """
    s = analysis.summary
    return [_row(analysis, reference, mask=mask, estimator=est, convention_of=est,
                 count_measured=float(s[f"count_{est}"]),
                 density_measured_cm2=s[f"density_cm2_{est}"], extra=extra)
            for est in ESTIMATORS]


def boolean_known_area_row(analysis: ImageAnalysis, reference: Mapping[str, Any], *, mask: str,
                           mean_area_px: float, extra: Mapping[str, Any] | None = None
                           ) -> dict[str, Any]:
    """A :func:`compare_with_reference` row for the Boolean model with a *known* ``E[A]``
    (``mean_area_px``, px; estimator ``boolean_model_known_area``): separates the error of the
    model from that of estimating ``E[A]`` from the single pores."""
    s = analysis.summary
    res = boolean_model_count(min(s["porosity"], 1 - 1e-12), s["analysed_px"], mean_area_px)
    area_cm2 = s["analysed_area_cm2"]
    return _row(analysis, reference, mask=mask, estimator="boolean_model_known_area",
                convention_of="boolean_model", count_measured=res["count"],
                density_measured_cm2=res["count"] / area_cm2 if area_cm2 == area_cm2 else math.nan,
                extra=extra)


def band_names(edges: Sequence[float]) -> list[str]:
    """Labels of the porosity bands cut at ``edges`` (fractions): ``["<=20%", ">20%"]``."""
    names, lo = [], None
    for e in edges:
        names.append(f"<={100 * e:g}%" if lo is None else f"{100 * lo:g}-{100 * e:g}%")
        lo = e
    names.append(f">{100 * edges[-1]:g}%" if edges else "all")
    return names


def summarise_errors(table: pd.DataFrame, *, bands: Sequence[float] = (0.20,)) -> dict[str, Any]:
    """Error statistics of a :func:`compare_with_reference` table, per mask, estimator and band.

    Bands are porosity intervals of the *true* porosity cut at ``bands`` (fractions), plus
    ``"all"``. For each ``mask -> estimator -> band``: ``n_images``, porosity error in
    percentage points (``porosity_mae_pp``, ``porosity_max_abs_pp``, ``porosity_bias_pp``) and
    count error in % (``count_mae_pct``, ``count_max_abs_pct``, ``count_bias_pct`` (mean signed),
    ``count_pooled_pct`` = 100 (sum measured / sum true - 1)). NaN-free JSON-able floats
    (``None`` where undefined).
    """
    edges = sorted(float(b) for b in bands)
    names = band_names(edges)
    t = table.copy()
    t["band"] = pd.cut(t["porosity_true"], [-np.inf, *edges, np.inf], labels=names, right=True)
    out: dict[str, Any] = {}

    def stats(g: pd.DataFrame) -> dict[str, Any]:
        pe = g["porosity_error_pp"].to_numpy(float)
        ce = g["count_error_pct"].to_numpy(float)
        ce = ce[np.isfinite(ce)]
        tot = g["count_true"].sum()

        def f(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 4)

        return {"n_images": int(len(g)),
                "porosity_mae_pp": f(np.abs(pe).mean()) if pe.size else None,
                "porosity_max_abs_pp": f(np.abs(pe).max()) if pe.size else None,
                "porosity_bias_pp": f(pe.mean()) if pe.size else None,
                "count_mae_pct": f(np.abs(ce).mean()) if ce.size else None,
                "count_max_abs_pct": f(np.abs(ce).max()) if ce.size else None,
                "count_bias_pct": f(ce.mean()) if ce.size else None,
                "count_pooled_pct": f(100.0 * (g["count_measured"].sum() / tot - 1.0))
                if tot > 0 else None}

    for m, gm in t.groupby("mask", sort=False):
        out[m] = {}
        for est, ge in gm.groupby("estimator", sort=False):
            per = {"all": stats(ge)}
            for name in names:
                gb = ge[ge["band"] == name]
                if len(gb):
                    per[name] = stats(gb)
            out[m][est] = per
    return out
