"""Counting overlapping pores: three estimators reported side by side (METHODS.md section 5).

Track-etched pores are placed as a Poisson process, so at high density many of them overlap and
merge into one connected region. Three ways to count them:

(a) **median-area rule** (paper 000): the median region area is taken as one pore; regions
    smaller than ``small_factor`` x median are artefacts and dropped; regions larger than
    ``large_factor`` x median hold ``ceil(area / median)`` pores; the others count 1.
(b) **split labels**: count the objects of a label image in which touching pores were already
    split (``porescope.segmentation.instances.split_touching`` - distance-transform watershed - or the
    predicted border class); this module only counts them.
(c) **Boolean-model inversion**: for a Boolean model (Poisson centres, intensity ``lambda``,
    i.i.d. grains of mean area ``E[A]``) the covered fraction is ``phi = 1 - exp(-lambda E[A])``,
    so ``lambda = -ln(1 - phi) / E[A]``. ``E[A]`` is the mean area of *one* pore: given
    (e.g. the truth, or the nominal pore size) or estimated from the isolated single pores by
    :func:`single_pore_mean_area`.

The guard-frame rule (:func:`porescope.measure.morphometry.guard_frame_counted`) is applied to (a)
and (b): a region touching an exclusion edge is not counted (with all the pores it holds); one
touching only inclusion edges is. The median of (a) is taken over complete regions (not
touching any edge), since cut regions are smaller. Estimator (c) is a density (per analysed
pixel) from the porosity of the whole analysed region and needs no frame rule; its count is
``lambda * analysed area``, comparable to the frame counts of (a) and (b).

Units: areas in pixels, densities per pixel^2, and per cm^2 when the pixel size (nm per pixel)
is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from porescope.measure.morphometry import (
    analysed_region_mask,
    guard_frame_counted,
    label_mask,
    measure_objects,
)

__all__ = [
    "median_area_count",
    "median_area_count_table",
    "split_count",
    "split_count_table",
    "split_pores_per_object",
    "single_pore_mean_area",
    "boolean_model_count",
    "count_pores",
    "count_pores_from_tables",
]


def _check_factors(small_factor: float, large_factor: float) -> None:
    if not (0.0 <= small_factor < 1.0):
        raise ValueError(f"small_factor: expected 0 <= small_factor < 1, got {small_factor!r}")
    if not (large_factor >= 1.0):
        raise ValueError(f"large_factor: expected >= 1, got {large_factor!r}")


def median_area_count(areas: Sequence[float] | np.ndarray, *, small_factor: float = 0.5,
                      large_factor: float = 1.5,
                      reference_areas: Sequence[float] | np.ndarray | None = None
                      ) -> dict[str, Any]:
    """Paper 000's rule on a list of region areas (pixels).

    Parameters
    ----------
    areas : areas of the regions to count.
    small_factor : regions with ``area < small_factor * median`` are artefacts (dropped).
    large_factor : regions with ``area > large_factor * median`` count ``ceil(area/median)``.
    reference_areas : areas whose median defines one pore (default: ``areas``).

    Returns
    -------
    dict: ``count``, ``median_area``, ``n_regions``, ``n_artefacts``, ``n_single`` (regions
    counted as one pore), ``n_multi`` (regions counted as several), ``pores_in_multi``.
    """
    _check_factors(small_factor, large_factor)
    a = np.asarray(areas, dtype=float).ravel()
    ref = a if reference_areas is None else np.asarray(reference_areas, dtype=float).ravel()
    if np.any(a < 0) or np.any(ref < 0) or not (np.isfinite(a).all() and np.isfinite(ref).all()):
        raise ValueError("areas: expected finite, non-negative region areas")
    out: dict[str, Any] = {"count": 0, "median_area": math.nan, "n_regions": int(a.size),
                           "n_artefacts": 0, "n_single": 0, "n_multi": 0, "pores_in_multi": 0}
    if ref.size == 0 or a.size == 0:
        return out
    med = float(np.median(ref))
    if med <= 0:
        raise ValueError("areas: the median region area is 0")
    artefact = a < small_factor * med
    multi = a > large_factor * med
    single = ~artefact & ~multi
    per_region = np.where(multi, np.ceil(a / med), np.where(single, 1.0, 0.0))
    out.update(count=int(per_region.sum()), median_area=med, n_artefacts=int(artefact.sum()),
               n_single=int(single.sum()), n_multi=int(multi.sum()),
               pores_in_multi=int(per_region[multi].sum()))
    return out


def median_area_count_table(table: pd.DataFrame, *, include_edges: Iterable[str] = ("top", "left"),
                            small_factor: float = 0.5, large_factor: float = 1.5
                            ) -> dict[str, Any]:
    """:func:`median_area_count` on a :func:`measure_objects` table of the *unsplit* regions:
    the regions counted under the guard-frame rule, the median over complete regions."""
    counted = guard_frame_counted(table, include_edges)
    complete = ~table["touches_border"].to_numpy(bool)
    areas = table["Area"].to_numpy(float)
    ref = areas[complete] if complete.any() else areas[counted]
    return median_area_count(areas[counted], small_factor=small_factor,
                             large_factor=large_factor, reference_areas=ref)


def split_count(split_labels: np.ndarray, *, bar_rows: int = 0, region: np.ndarray | None = None,
                include_edges: Iterable[str] = ("top", "left"), min_area: int = 1,
                min_area_at_edges: bool = True, mean_area: float | None = None,
                max_pores: int | None = 1) -> dict[str, Any]:
    """Count the objects of a label image whose touching pores are already split.

    Objects smaller than ``min_area`` pixels are ignored (with ``min_area_at_edges=False``
    only those not touching the analysed region's edge); the guard-frame rule applies; with
    ``max_pores`` other than 1 an object counts for several pores by its area
    (:func:`split_count_table`). Returns ``count``, ``n_objects`` (all labels in the analysed
    region), ``n_small``.
    """
    if min_area < 1:
        raise ValueError(f"min_area: expected >= 1, got {min_area!r}")
    table = measure_objects(split_labels, bar_rows=bar_rows, region=region,
                            shape_descriptors=False)
    return split_count_table(table, include_edges=include_edges, min_area=min_area,
                             min_area_at_edges=min_area_at_edges, mean_area=mean_area,
                             max_pores=max_pores)


def split_count_table(table: pd.DataFrame, *, include_edges: Iterable[str] = ("top", "left"),
                      min_area: int = 1, min_area_at_edges: bool = True,
                      mean_area: float | None = None, max_pores: int | None = 1
                      ) -> dict[str, Any]:
    """:func:`split_count` from the :func:`measure_objects` table of the split labels.

    Parameters
    ----------
    table : the split objects (``Area`` in px, ``touches_*`` columns).
    include_edges : guard-frame inclusion edges.
    min_area : objects smaller than this (px) are debris, not counted.
    min_area_at_edges : False: an object touching the analysed region's edge is counted
        whatever its area (a pore cut by an inclusion edge is counted by the guard frame however
        little of it lies inside, as the debris filter ``min_region_area_px`` keeps it).
    mean_area : ``E[A]``, the mean area of one pore (px), for ``max_pores``.
    max_pores : pores one object may stand for. 1: each object is one pore. Otherwise an object
        counts ``round(Area / mean_area)`` pores, at least 1 and at most ``max_pores``
        (``None``: no bound): overlapping pores whose union has no neck (no distance-transform
        saddle for the watershed) stay one object, but their area says how many they are.
        Without a finite ``mean_area`` every object counts one.

    Returns
    -------
    dict: ``count``, ``n_objects``, ``n_small`` (objects below ``min_area``), and with
    ``max_pores`` other than 1 ``n_multi`` (counted objects standing for 2+ pores) and
    ``pores_in_multi``.

    Examples
    --------
    >>> t = pd.DataFrame({"Area": [100, 160, 310, 12], "touches_top": [0, 0, 0, 1],
    ...                   "touches_bottom": 0, "touches_left": 0, "touches_right": 0})
    >>> t["touches_border"] = t["touches_top"] > 0
    >>> split_count_table(t, min_area=20)["count"]
    3
    >>> split_count_table(t, min_area=20, min_area_at_edges=False)["count"]
    4
    >>> split_count_table(t, min_area=20, mean_area=100.0, max_pores=None)["count"]
    6
    >>> split_count_table(t, min_area=20, mean_area=100.0, max_pores=2)["count"]
    5
    """
    per = split_pores_per_object(table, include_edges=include_edges, min_area=min_area,
                                 min_area_at_edges=min_area_at_edges, mean_area=mean_area,
                                 max_pores=max_pores)
    small = table["Area"].to_numpy() < min_area
    if not min_area_at_edges:
        small &= ~table["touches_border"].to_numpy(bool)
    out: dict[str, Any] = {"count": int(per.sum()), "n_objects": int(len(table)),
                           "n_small": int(small.sum())}
    if max_pores != 1:
        multi = per > 1
        out.update(n_multi=int(multi.sum()), pores_in_multi=int(per[multi].sum()))
    return out


def split_pores_per_object(table: pd.DataFrame, *, include_edges: Iterable[str] = ("top", "left"),
                           min_area: int = 1, min_area_at_edges: bool = True,
                           mean_area: float | None = None, max_pores: int | None = 1
                           ) -> np.ndarray:
    """How many pores each split object counts for in :func:`split_count_table` (same
    arguments): 0 (not counted: guard frame or below ``min_area``), 1, or with ``max_pores``
    other than 1 up to ``max_pores``. int64 array, one per row of ``table``.

    Examples
    --------
    >>> t = pd.DataFrame({"Area": [100, 160, 310, 12], "touches_top": [0, 0, 0, 1],
    ...                   "touches_bottom": [0, 0, 1, 0], "touches_left": 0, "touches_right": 0})
    >>> t["touches_border"] = (t["touches_top"] + t["touches_bottom"]) > 0
    >>> split_pores_per_object(t, min_area=20, mean_area=100.0, max_pores=None).tolist()
    [1, 2, 0, 0]
    """
    if min_area < 1:
        raise ValueError(f"min_area: expected >= 1, got {min_area!r}")
    if max_pores is not None and max_pores < 1:
        raise ValueError(f"max_pores: expected >= 1 or None, got {max_pores!r}")
    area = table["Area"].to_numpy(float)
    big = area >= min_area
    if not min_area_at_edges:
        big |= table["touches_border"].to_numpy(bool)
    per = np.ones(len(table), np.int64)
    if max_pores != 1 and mean_area is not None and math.isfinite(mean_area) and mean_area > 0:
        top = np.inf if max_pores is None else max_pores
        per = np.clip(np.round(area / mean_area), 1, top).astype(np.int64)
    return np.where(guard_frame_counted(table, include_edges) & big, per, 0)


def single_pore_mean_area(table: pd.DataFrame, *, min_solidity: float = 0.9,
                          area_band: tuple[float, float] = (0.6, 1.4)) -> dict[str, Any]:
    """Estimate ``E[A]``, the mean area of one pore, from the isolated single pores.

    Rule: among the complete regions (not touching the border), the *convex* ones
    (``Solidity >= min_solidity``; merged pairs and chains are concave) are candidates; their
    median area ``m`` is the provisional single-pore area; the candidates with area in
    ``[area_band[0] * m, area_band[1] * m]`` are taken as single pores and ``E[A]`` is their
    mean area.

    Bias (measured on rasterised Boolean discs, radius 10 px with 10 % CV, 1024^2 windows,
    6 seeds per porosity, against the realised mean pore area): mean ratio 0.99 (phi 0.05),
    0.99 (0.2), 1.00 (0.4), single windows within +-3 % (``tests/test_counting.py`` checks
    +-5 %). Two effects pull in opposite directions: isolated pores are preferentially the
    smaller ones (a large pore is more likely to be hit), and near-coincident pairs are convex
    and fall into the band. The first grows with the size spread and with density; prefer a
    known ``E[A]`` (nominal pore size, or a low-density image of the same membrane) for broad
    size distributions or porosity above ~0.4. Digital discs below ~15 px across can have
    solidity below 0.9 (the hull runs over pixel corners), so lower ``min_solidity`` for very
    small pores.

    Returns ``mean_area`` (NaN when no single pore is found), ``n_used``, ``n_candidates``,
    ``median_candidates``.
    """
    if not (0.0 < min_solidity <= 1.0):
        raise ValueError(f"min_solidity: expected in (0, 1], got {min_solidity!r}")
    lo, hi = area_band
    if not (0.0 <= lo < 1.0 < hi):
        raise ValueError(f"area_band: expected (lo, hi) with 0 <= lo < 1 < hi, got {area_band!r}")
    need = {"Area", "Solidity", "touches_border"}
    if not need <= set(table.columns):
        raise ValueError(f"table: needs columns {sorted(need)} (measure_objects with shape "
                         "descriptors)")
    complete = ~table["touches_border"].to_numpy(bool)
    solidity = table["Solidity"].to_numpy(float)
    if complete.any() and np.isnan(solidity[complete]).all():
        raise ValueError("table: Solidity is NaN; measure with shape_descriptors=True")
    cand = complete & (solidity >= min_solidity)
    areas = table["Area"].to_numpy(float)
    out: dict[str, Any] = {"mean_area": math.nan, "n_used": 0,
                           "n_candidates": int(cand.sum()), "median_candidates": math.nan}
    if not cand.any():
        return out
    m = float(np.median(areas[cand]))
    used = cand & (areas >= lo * m) & (areas <= hi * m)
    out.update(mean_area=float(areas[used].mean()) if used.any() else math.nan,
               n_used=int(used.sum()), median_candidates=m)
    return out


def boolean_model_count(porosity: float, analysed_px: float, mean_area: float) -> dict[str, Any]:
    """Boolean-model inversion: ``lambda = -ln(1 - phi) / E[A]`` and ``count = lambda * area``.

    Parameters
    ----------
    porosity : covered fraction ``phi`` of the analysed region, ``0 <= phi < 1``.
    analysed_px : analysed area in pixels.
    mean_area : ``E[A]``, mean area of one pore in pixels.
    """
    phi = float(porosity)
    if not (0.0 <= phi < 1.0):
        raise ValueError(f"porosity: expected 0 <= phi < 1 for the Boolean inversion, got {phi!r}")
    if not (analysed_px > 0):
        raise ValueError(f"analysed_px: expected > 0, got {analysed_px!r}")
    if not (mean_area > 0 and math.isfinite(mean_area)):
        raise ValueError(f"mean_area: expected a finite E[A] > 0 pixels, got {mean_area!r}")
    lam = -math.log1p(-phi) / mean_area
    return {"count": lam * analysed_px, "density_per_px2": lam, "mean_area": float(mean_area),
            "porosity": phi}


def count_pores(mask: np.ndarray, *, split_labels: np.ndarray | None = None,
                table: pd.DataFrame | None = None, bar_rows: int = 0,
                region: np.ndarray | None = None, include_edges: Iterable[str] = ("top", "left"),
                small_factor: float = 0.5, large_factor: float = 1.5,
                mean_area: float | None = None, min_solidity: float = 0.9,
                area_band: tuple[float, float] = (0.6, 1.4), min_area: int = 1,
                pixel_size: float | None = None, min_area_at_edges: bool = True,
                split_max_pores: int | None = 1) -> pd.DataFrame:
    """All three estimators for one image, one row each (tidy table).

    Parameters
    ----------
    mask : (rows, cols) foreground mask (non-zero = pore).
    split_labels : label image with touching pores split (estimator b); row omitted if None.
    table : :func:`measure_objects` table of ``label_mask(mask)`` with the same region (with
        shape descriptors); computed when omitted.
    mean_area : known ``E[A]`` in pixels for (c); estimated by :func:`single_pore_mean_area`
        (``min_solidity``, ``area_band``) when None.
    pixel_size : nm per pixel, for ``density_per_cm2``.
    min_area_at_edges, split_max_pores : estimator (b)'s ``min_area_at_edges`` and
        ``max_pores`` (:func:`split_count_table`; ``E[A]`` as for (c)).

    Returns
    -------
    DataFrame with columns ``estimator`` (``median_area`` / ``split_labels`` / ``boolean_model``),
    ``count``, ``density_per_px2``, ``density_per_cm2``, ``analysed_px``, ``detail`` (a dict of
    the estimator's own numbers).
    """
    analysed = analysed_region_mask(mask.shape, bar_rows=bar_rows, region=region)
    analysed_px = int(analysed.sum())
    foreground_px = int(np.count_nonzero((mask != 0) & analysed))
    if table is None:
        table = measure_objects(label_mask(mask), bar_rows=bar_rows, region=region)
    split_table = None
    if split_labels is not None:
        if split_labels.shape != mask.shape:
            raise ValueError(f"split_labels: shape {split_labels.shape} differs from the mask "
                             f"shape {mask.shape}")
        split_table = measure_objects(split_labels, bar_rows=bar_rows, region=region,
                                      shape_descriptors=False)
    return count_pores_from_tables(analysed_px, foreground_px, table, split_table,
                                   include_edges=include_edges, small_factor=small_factor,
                                   large_factor=large_factor, mean_area=mean_area,
                                   min_solidity=min_solidity, area_band=area_band,
                                   min_area=min_area, pixel_size=pixel_size,
                                   min_area_at_edges=min_area_at_edges,
                                   split_max_pores=split_max_pores)


def count_pores_from_tables(analysed_px: int, foreground_px: int, table: pd.DataFrame,
                            split_table: pd.DataFrame | None = None, *,
                            include_edges: Iterable[str] = ("top", "left"),
                            small_factor: float = 0.5, large_factor: float = 1.5,
                            mean_area: float | None = None, min_solidity: float = 0.9,
                            area_band: tuple[float, float] = (0.6, 1.4), min_area: int = 1,
                            pixel_size: float | None = None, min_area_at_edges: bool = True,
                            split_max_pores: int | None = 1) -> pd.DataFrame:
    """:func:`count_pores` from what it measures on the image: the analysed and foreground pixel
    counts, the :func:`measure_objects` table of the regions (with shape descriptors) and,
    for estimator (b), that of the split labels (``None``: row omitted). Images measured in
    parts add up these numbers and concatenate the tables."""
    if not analysed_px > 0:
        raise ValueError(f"analysed_px: expected > 0, got {analysed_px!r}")
    porosity = float(foreground_px) / analysed_px
    px_cm2 = None
    if pixel_size is not None and math.isfinite(float(pixel_size)):
        if pixel_size <= 0:
            raise ValueError(f"pixel_size: expected > 0 nm per pixel, got {pixel_size!r}")
        px_cm2 = (float(pixel_size) * 1e-7) ** 2
    rows = []

    def add(name: str, count: float, detail: dict[str, Any]) -> None:
        dens = count / analysed_px
        rows.append({"estimator": name, "count": count, "density_per_px2": dens,
                     "density_per_cm2": dens / px_cm2 if px_cm2 else math.nan,
                     "analysed_px": analysed_px, "detail": detail})

    med = median_area_count_table(table, include_edges=include_edges,
                                  small_factor=small_factor, large_factor=large_factor)
    add("median_area", med["count"], med)
    # E[A] first: the Boolean model needs it, and so does a split count by area
    if mean_area is None:
        est = single_pore_mean_area(table, min_solidity=min_solidity, area_band=area_band)
        ea, source = est["mean_area"], "single_pores"
    else:
        est, ea, source = {}, float(mean_area), "given"
    if split_table is not None:
        sp = split_count_table(split_table, include_edges=include_edges, min_area=min_area,
                               min_area_at_edges=min_area_at_edges, mean_area=ea,
                               max_pores=split_max_pores)
        add("split_labels", sp["count"], sp)
    if math.isfinite(ea) and porosity < 1.0:
        bm = boolean_model_count(porosity, analysed_px, ea)
        add("boolean_model", bm["count"], {**bm, "mean_area_source": source, **est})
    else:
        add("boolean_model", math.nan, {"porosity": porosity, "mean_area": ea,
                                        "mean_area_source": source, **est})
    return pd.DataFrame(rows)
