"""Per-image membrane analysis shared by the ``analyze``, ``validate`` and ``measure`` stages.

One call, :func:`analyse_mask`, turns a predicted (or ground-truth) class-id mask into every
number a membrane certificate needs, using the project's core modules:

1. **Foreground** = every non-zero class (a model with a border class draws the border on the
   pores, so it is pore too); rows of an SEM data bar (``bar_rows``) are outside the analysed
   region and never foreground.
2. **Regions** = 8-connected components of the foreground
   (:func:`porescope.measure.morphometry.label_mask`); overlapping pores merge into one region.
3. **Pores** = the regions split into single pores: a distance-transform watershed
   (:func:`porescope.segmentation.instances.split_touching`), or, when the model has a border class (a
   class whose name contains ``"border"`` or ``"boundary"``), the interior seeds grown over the
   border (:func:`porescope.segmentation.instances.instances_from_three_class`).
4. **Per-object table** (:func:`porescope.measure.morphometry.measure_objects`, ImageJ names and
   definitions) of the pores (default) or of the regions (``objects: regions``, what Fiji's
   *Analyze Particles* gives without a watershed), with ``image_id`` first, ``region`` (the
   region the object lies in), ``region_pores`` (pores in that region) and ``counted`` (the
   guard-frame rule: kept for the density count).
5. **Counts**, the three estimators of :func:`porescope.measure.counting.count_pores` side by side:
   ``median_area`` (paper 000's rule on the regions), ``split_labels`` (the pores of step 3) and
   ``boolean_model`` (``lambda = -ln(1 - phi) / E[A]``, ``E[A]`` given or estimated from the
   isolated single pores). Frame counts use the guard-frame rule; densities per px^2 and, with
   the pixel size, per cm^2.
6. **Spatial statistics** on the pore centroids (one point per pore, not per merged region) in
   the analysed window: Clark-Evans (Donnelly edge correction), the BioVoxxel test, the
   Monte-Carlo CSR test of the mean NND and Ripley's ``L(r) - r`` with its envelope
   (:func:`porescope.measure.spatial.spatial_summary`).

Everything random (the Monte-Carlo simulations) comes from an explicit generator; use
:func:`image_rng` for a generator that depends only on the seed and the image id, so results do
not depend on the order in which images are processed.

The parameters are :class:`porescope.analysis.params.AnalyzeParams`; comparison with a known
truth is in :mod:`porescope.analysis.truth` and :mod:`porescope.analysis.comparison`, figures
in :mod:`porescope.analysis.figures`.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((60, 80), np.uint8)
>>> mask[10:20, 10:20] = 1
>>> mask[30:40, 50:60] = 1
>>> a = analyse_mask(mask, params=AnalyzeParams.from_mapping({"spatial": {"n_sim": 0}}))
>>> a.summary["porosity"], a.summary["count_split_labels"], len(a.objects)
(0.041666666666666664, 2.0, 2)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis.params import AnalysisParams, AnalyzeParams, SpatialParams
from porescope.measure.counting import count_pores_from_tables
from porescope.measure.morphometry import (
    guard_frame_counted,
    label_mask,
    measure_objects,
    summary_from_table,
)
from porescope.measure.region_bands import owned_bands
from porescope.measure.spatial import (
    Window,
    biovoxxel_test,
    clark_evans,
    default_radii,
    nearest_neighbour_distances,
    spatial_summary,
)
from porescope.segmentation.instances import (
    first_pixels,
    border_classes,
    instances_from_three_class,
    split_touching,
)

__all__ = [
    "ESTIMATORS",
    "DEFAULT_SEED",
    "ImageAnalysis",
    "image_rng",
    "analyse_mask",
    "border_classes",
    "AnalyzeParams",
    "AnalysisParams",
]

#: The three counting estimators, in the order of :func:`porescope.measure.counting.count_pores`.
ESTIMATORS: tuple[str, ...] = ("median_area", "split_labels", "boolean_model")

#: Seed of the generator :func:`analyse_mask` uses when none is given.
DEFAULT_SEED = 0


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass
class ImageAnalysis:
    """Everything measured on one mask.

    image_id: the image's id. objects: per-object table (``image_id``, the
    :func:`~porescope.measure.morphometry.measure_objects` columns, ``region``, ``region_pores``,
    ``counted``). summary: one flat dict (see :func:`analyse_mask`). counts: the
    :func:`~porescope.measure.counting.count_pores` table with ``image_id`` (``detail`` kept as a dict).
    spatial: :func:`~porescope.measure.spatial.spatial_summary` of the pore centroids (``None`` with
    fewer than 3 pores). labels: int32 pore labels (0 = background; None once a folder run has
    encoded its outputs).
    """

    image_id: str
    objects: pd.DataFrame
    summary: dict[str, Any]
    counts: pd.DataFrame
    spatial: dict[str, Any] | None
    labels: np.ndarray | None


def image_rng(seed: int, image_id: str, purpose: str = "") -> np.random.Generator:
    """Generator for one image: ``SeedSequence([seed, crc32(purpose + ':' + image_id)])``.

    Depends only on the seed and the image id (and an optional purpose such as ``"pred"``), so
    results are the same whatever order or process the images are analysed in.
    """
    key = zlib.crc32(f"{purpose}:{image_id}".encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def _check_mask(mask: Any, image_id: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"{image_id}: mask must be a non-empty 2-D (rows, cols) array of class "
                         f"ids, got shape {mask.shape}")
    if mask.dtype == bool:
        return mask.view(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise TypeError(f"{image_id}: mask must hold integer class ids, got dtype {mask.dtype}")
    return mask


def _pixel_size(value: Any, image_id: str) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{image_id}: pixel_size_nm must be a number or None, got {value!r}") from None
    if not math.isfinite(v):
        return None
    if v <= 0:
        raise ValueError(f"{image_id}: pixel_size_nm must be > 0 nm per pixel, got {v}")
    return v


def _region_of(labels: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Region label of every object label 0..max (each object lies inside one region)."""
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int64)
    fg = labels != 0
    lut[labels[fg]] = regions[fg]
    return lut


def _spatial(points: np.ndarray, window: Window, rng: np.random.Generator,
             p: SpatialParams) -> dict[str, Any] | None:
    if points.shape[0] < 3:
        return None
    n = points.shape[0]
    if p.n_sim > 0:
        r = default_radii(n, window, p.n_radii)
        return spatial_summary(points, window, rng, n_sim=p.n_sim, alpha=p.alpha, r=r,
                               edge_correction=p.nnd_edge_correction,
                               k_correction=p.k_edge_correction)
    d = nearest_neighbour_distances(points)
    return {"n": n, "window": window, "area": window.area, "intensity": n / window.area,
            "nnd_mean": float(d.mean()), "nnd_median": float(np.median(d)),
            "nnd_sd": float(d.std(ddof=1)), "nnd": d,
            "clark_evans": clark_evans(window=window, nnd=d, edge_correction=p.nnd_edge_correction,
                                       alpha=p.alpha),
            "biovoxxel": biovoxxel_test(nnd=d, area=window.area, alpha=p.alpha),
            "monte_carlo": None, "verdict": None}


def _spatial_fields(sp: dict[str, Any] | None) -> dict[str, Any]:
    nan = math.nan
    out = {"spatial_n": 0, "nnd_mean_px": nan, "nnd_median_px": nan, "ce_R": nan, "ce_z": nan,
           "ce_p": nan, "ce_verdict": "n/a", "bv_t": nan, "bv_verdict": "n/a",
           "mc_nnd_p": nan, "mc_verdict": "n/a", "ripley_p": nan, "ripley_verdict": "n/a"}
    if sp is None:
        return out
    ce, bv, mc = sp["clark_evans"], sp["biovoxxel"], sp["monte_carlo"]
    out.update(spatial_n=int(sp["n"]), nnd_mean_px=sp["nnd_mean"], nnd_median_px=sp["nnd_median"],
               ce_R=ce["R"], ce_z=ce["z"], ce_p=ce["p_value"], ce_verdict=ce["verdict"],
               bv_t=bv["t"], bv_verdict=bv["verdict"])
    if mc is not None:
        out.update(mc_nnd_p=mc["mean_nnd_p_value"], mc_verdict=mc["verdict"],
                   ripley_p=mc["L_p_value"], ripley_verdict=mc["L_verdict"])
    return out


def _drop_debris(fg: np.ndarray, min_area: int, connectivity: int,
                 window: tuple[int, int, int, int]) -> np.ndarray:
    """``fg`` without the regions smaller than ``min_area`` px that stay inside ``window``
    (row0, row1, col0, col1; half-open): frame-cut regions are kept whatever their size."""
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=connectivity)
    r0, r1, c0, c1 = window
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    inside = (x > c0) & (y > r0) & (x + bw < c1) & (y + bh < r1)
    drop = (area < min_area) & inside
    drop[0] = False  # the background component
    return fg & ~drop[lab]


@dataclass
class _PixelParts:
    """What :func:`analyse_mask` measures on the pixels; the rest is computed from tables."""

    region_table: pd.DataFrame
    pore_table: pd.DataFrame
    region_lut: np.ndarray      # pore label -> region label (index 0 unused)
    foreground_px: int
    split_method: str
    labels: np.ndarray | None


def _split(fg: np.ndarray, mask: np.ndarray, params: AnalyzeParams,
           class_names: Mapping[Any, str] | None, order: bool = False
           ) -> np.ndarray | tuple[np.ndarray, int, np.ndarray]:
    """Pore labels of ``fg`` (border-class seeds or the watershed split); with ``order`` also
    their numbering: how many grew from a seed or marker, and each one's seed / marker first
    pixel."""
    border, interior = border_classes(class_names)
    if border:
        cm = np.zeros(mask.shape, np.uint8)
        cm[fg & np.isin(mask, interior)] = 1
        cm[fg & np.isin(mask, border)] = 2
        return instances_from_three_class(cm, 1, 2, connectivity=params.connectivity,
                                          seed_h=params.split.seed_h, return_order=order)
    sp = params.split
    return split_touching(fg, method=sp.method, h=sp.h, min_distance=sp.min_distance,
                          connectivity=params.connectivity, return_order=order)


def _pixels_whole(mask: np.ndarray, window: tuple[int, int, int, int], bar_rows: int,
                  px: float | None, params: AnalyzeParams,
                  class_names: Mapping[Any, str] | None) -> _PixelParts:
    h, w = mask.shape
    margin = window[0]
    region = None
    if margin:
        region = np.zeros((h, w), bool)
        region[window[0]:window[1], window[2]:window[3]] = True
    unit = params.length_unit
    fg = mask != 0
    if bar_rows:
        fg[h - bar_rows:] = False
    if region is not None:
        fg &= region
    if params.min_region_area_px > 1:
        fg = _drop_debris(fg, params.min_region_area_px, params.connectivity, window)
    regions = label_mask(fg, params.connectivity)
    region_table = measure_objects(regions, pixel_size=px, bar_rows=bar_rows, region=region,
                                   length_unit=unit)
    del regions     # labelled again below: never two int32 images beside the split's work
    labels = _split(fg, mask, params, class_names)
    split_method = _split_name(params, class_names)
    pore_table = measure_objects(labels, pixel_size=px, bar_rows=bar_rows, region=region,
                                 length_unit=unit)
    regions = label_mask(fg, params.connectivity)
    region_lut = _region_of(labels, regions)
    del regions
    return _PixelParts(region_table, pore_table, region_lut, int(np.count_nonzero(fg)),
                       split_method, labels)


def _pixels_in_bands(mask: np.ndarray, window: tuple[int, int, int, int], px: float | None,
                     params: AnalyzeParams, class_names: Mapping[Any, str] | None,
                     band_pixels: int, on_labels: Callable[[int, np.ndarray], None] | None
                     ) -> _PixelParts:
    """:func:`_pixels_whole` band by band (see ``band_pixels`` of :func:`analyse_mask`).

    Band ``k`` owns the regions whose top row lies in its ``band_pixels / width`` rows (an
    even number, so that OpenCV's 2 x 2-block numbering of the regions runs band after band)
    and is analysed on the rows that hold those regions whole, every other region blanked,
    with blank rows added at the cuts - inside the analysed region when the neighbouring image
    row is - so that no object seems to touch a cut. Pores are then numbered as the whole
    image numbers them, by their markers' first pixels.
    """
    h, w = mask.shape
    wr0, wr1, wc0, wc1 = window
    full_window = window == (0, h, 0, w)
    unit = params.length_unit

    def fg_rows(a: int, b: int) -> np.ndarray:
        fg = mask[a:b] != 0
        fg[: max(0, wr0 - a)] = False
        fg[max(0, wr1 - a):] = False
        fg[:, :wc0] = False
        fg[:, wc1:] = False
        return fg

    bands = []
    # the rows outside the analysed region hold no object
    for r0, _, r1, owned in owned_bands(fg_rows, wr0, wr1, w, band_pixels):
        # blank rows above, so many that the crop starts on an even image row: OpenCV labels
        # 8-connected regions in 2 x 2 blocks, so the numbering follows the row pairs
        pt, pb = (0 if r0 == 0 else 2 - r0 % 2), int(r1 < h)
        n = r1 - r0
        off = r0 - pt
        fg = np.zeros((pt + n + pb, w), bool)
        fg[pt:pt + n] = owned
        del owned
        if params.min_region_area_px > 1:
            fg = _drop_debris(fg, params.min_region_area_px, params.connectivity,
                              (wr0 - off, wr1 - off, wc0, wc1))
        region = None
        if not full_window:
            rows = np.arange(off, off + fg.shape[0])
            region = np.zeros(fg.shape, bool)
            region[(rows >= wr0) & (rows < wr1), wc0:wc1] = True
        sub = np.zeros(fg.shape, mask.dtype)
        sub[pt:pt + n] = mask[r0:r1]
        regions = label_mask(fg, params.connectivity)
        region_table = measure_objects(regions, pixel_size=px, region=region, length_unit=unit,
                                       row_offset=off)
        labels, n_marked, firsts = _split(fg, sub, params, class_names, order=True)
        pore_table = measure_objects(labels, pixel_size=px, region=region, length_unit=unit,
                                     row_offset=off)
        lut = _region_of(labels, regions)
        del sub
        if on_labels is not None:
            on_labels(r0, labels[pt:pt + n])
        local = pore_table["label"].to_numpy()
        # 4-connected regions are numbered in raster order of their first pixel (8-connected
        # ones by OpenCV's blocks, which band order follows)
        region_first = (first_pixels(regions) + off * w if params.connectivity == 4
                        else np.zeros(len(region_table), np.int64))
        bands.append((region_table, pore_table, lut[local], local > n_marked,
                      firsts[local - 1] + off * w, int(np.count_nonzero(fg)), region_first))
        del labels, fg, region, regions

    # regions: band order is their numbering; pores: grown from a marker first, each group by
    # its marker's (or its own) first pixel, as split_touching numbers the whole image
    r_before = 0
    for region_table, pore_table, lut, *_ in bands:
        pore_table["region"] = lut + r_before
        region_table["label"] = region_table["label"] + r_before
        r_before += len(region_table)
    regions_all = pd.concat([b[0] for b in bands], ignore_index=True)
    pores = pd.concat([b[1] for b in bands], ignore_index=True)
    _, _, _, unreached, first, n_fg, region_first = (list(x) for x in zip(*bands))
    del bands           # the band tables: one copy of a big table at a time
    if params.connectivity == 4:
        rank = np.argsort(np.concatenate(region_first), kind="stable")
        regions_all = regions_all.iloc[rank].reset_index(drop=True)
        renumber = np.zeros(len(rank) + 1, np.int64)
        renumber[regions_all["label"].to_numpy()] = np.arange(1, len(rank) + 1)
        regions_all["label"] = renumber[regions_all["label"].to_numpy()]
        pores["region"] = renumber[pores["region"].to_numpy()]
    order = np.lexsort((np.concatenate(first), np.concatenate(unreached)))
    if (np.diff(order) < 0).any():
        pores = pores.iloc[order].reset_index(drop=True)
    pores["label"] = np.arange(1, len(pores) + 1, dtype=np.int64)
    region_lut = np.zeros(len(pores) + 1, np.int64)
    region_lut[1:] = pores.pop("region").to_numpy()
    return _PixelParts(regions_all, pores, region_lut, sum(n_fg),
                       _split_name(params, class_names), None)

def _split_name(params: AnalyzeParams, class_names: Mapping[Any, str] | None) -> str:
    border, _ = border_classes(class_names)
    if border:
        seed_h = params.split.seed_h
        return "border_class" if seed_h is None else f"border_class seed_h={seed_h:g}"
    sp = params.split
    return (f"watershed h_maxima h={sp.h:g}" if sp.method == "h_maxima"
            else f"watershed peak_local_max min_distance={sp.min_distance}")


def analyse_mask(mask: np.ndarray, *, pixel_size_nm: float | None = None,
                 params: AnalyzeParams | None = None, rng: np.random.Generator | None = None,
                 image_id: str = "image", bar_rows: int = 0, margin: int = 0,
                 class_names: Mapping[Any, str] | None = None,
                 spatial: bool = True, band_pixels: int | None = None,
                 on_labels: Callable[[int, np.ndarray], None] | None = None) -> ImageAnalysis:
    """Measure one class-id mask: objects, porosity, the three counts, densities, spatial tests.

    Parameters
    ----------
    mask : (rows, cols) integer class ids (0 = background, any other class = pore), e.g. the
        output of :func:`porescope.segmentation.inference.predict_mask`; a bool mask is accepted.
    pixel_size_nm : nm per pixel, or ``None`` / NaN when unknown (then only pixel units and
        densities per px^2; the per-cm^2 columns are NaN).
    params : :class:`~porescope.analysis.params.AnalyzeParams`; ``None`` = the defaults.
    rng : generator for the Monte-Carlo CSR simulations; ``None`` =
        ``image_rng(DEFAULT_SEED, image_id)`` (same results on every call).
    image_id : the image's id (first column of the tables; used in messages).
    bar_rows : height of an SEM data bar at the bottom (excluded from the analysed region).
    margin : pixels excluded at every edge of the (bar-less) image, e.g. a white frame drawn
        around an exported micrograph; the analysed region is then the rectangle
        ``[margin, h - bar_rows - margin) x [margin, w - margin)`` and objects reaching its edge
        count as touching the border. Coordinates stay those of the whole image.
    class_names : ``{class id: name}``; a class named ``*border*`` / ``*boundary*`` switches the
        pore split to :func:`~porescope.segmentation.instances.instances_from_three_class`.
    spatial : False skips the spatial statistics (faster; the spatial fields are NaN / "n/a").
    band_pixels : memory bound for big masks. A mask of more pixels is analysed in horizontal
        bands, each holding whole the regions whose top row lies in its ``band_pixels / width``
        rows (every other region blanked), so that no image-sized integer array is made: the
        working memory is ~100 B per band pixel besides the mask. The regions, porosity and
        every region-based number equal the whole-image analysis exactly. Pores too, with one
        exception: the watershed breaks ties between two touching pores (pixels at equal
        distance from both) by the order of its queue, which depends on the other pores in the
        image, so a few such pixels can change sides (tests: no change on dense synthetic
        membranes; 6 of 128 pores by 1-3 px on a noisy prediction with ``split.h`` 0.5). Pores
        are numbered as the whole image numbers them; ``labels`` is then ``None``.
        ``None``: never.
    on_labels : called with ``(first row, pore labels of those rows)`` for the whole image, or
        for each band in turn (labels numbered within the band, 0 = background), e.g. to
        measure pixel statistics per object or draw outlines without keeping the labels.

    Returns
    -------
    :class:`ImageAnalysis`. ``summary`` keys: ``image_id``, ``height``, ``width``, ``bar_rows``,
    ``margin``, ``analysed_px``, ``pixel_size_nm``, ``length_unit``, ``objects``, ``split_method``,
    ``porosity`` (fraction), ``foreground_px``, ``n_regions``, ``n_pores``, ``n_objects`` /
    ``n_border`` (table rows, touching the border), ``count_<estimator>``,
    ``density_px2_<estimator>``, ``density_cm2_<estimator>`` for the three :data:`ESTIMATORS`,
    ``mean_pore_area_px`` (E[A] of the Boolean model) and ``mean_pore_area_source``,
    ``median_region_area_px``, ``analysed_area_cm2``, mean / median / sd of Area and ECD over the
    table's objects not touching the border in px (``area_px_*``, ``ecd_px_*``) and in physical
    units (``area_<u>2_*``, ``ecd_<u>_*``; NaN without the pixel size), and the spatial fields
    ``spatial_n``, ``nnd_mean_px``, ``nnd_median_px``, ``ce_R``, ``ce_z``, ``ce_p``,
    ``ce_verdict``, ``bv_t``, ``bv_verdict``, ``mc_nnd_p``, ``mc_verdict``, ``ripley_p``,
    ``ripley_verdict`` (verdicts ``random`` / ``clustering`` / ``self-avoiding``, ``n/a`` with
    fewer than 3 pores).

    Examples
    --------
    The same numbers whole or in bands of about 400 pixels:

    >>> yy, xx = np.mgrid[:90, :60]
    >>> mask = np.zeros((90, 60), np.uint8)
    >>> for cy, cx in [(10, 10), (12, 24), (40, 30), (70, 15), (75, 45)]:
    ...     mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 1
    >>> p = AnalyzeParams.from_mapping({"spatial": {"n_sim": 0}})
    >>> whole, banded = analyse_mask(mask, params=p), analyse_mask(mask, params=p, band_pixels=400)
    >>> whole.summary["count_split_labels"], banded.summary["count_split_labels"]
    (5.0, 5.0)
    >>> bool(np.allclose(whole.objects["Y"], banded.objects["Y"])), banded.labels is None
    (True, True)
    """
    if params is None:
        params = AnalyzeParams()
    if not isinstance(params, AnalyzeParams):
        raise TypeError(f"params: expected AnalyzeParams, got {type(params).__name__}")
    if rng is None:
        rng = image_rng(DEFAULT_SEED, image_id)
    mask = _check_mask(mask, image_id)
    px = _pixel_size(pixel_size_nm, image_id)
    h, w = mask.shape
    if not (_is_int(bar_rows) and 0 <= bar_rows < h):
        raise ValueError(f"{image_id}: bar_rows must be an integer in [0, {h}), got {bar_rows!r}")
    ha = h - bar_rows
    if not (_is_int(margin) and margin >= 0 and 2 * margin < min(ha, w)):
        raise ValueError(f"{image_id}: margin must be an integer >= 0 leaving part of the "
                         f"{w}x{ha} analysed image, got {margin!r}")
    unit = params.length_unit
    edges = params.include_edges
    cp = params.counting
    window = (margin, ha - margin, margin, w - margin)
    if band_pixels is not None and h * w > band_pixels:
        parts = _pixels_in_bands(mask, window, px, params, class_names, int(band_pixels), on_labels)
    else:
        parts = _pixels_whole(mask, window, bar_rows, px, params, class_names)
        if on_labels is not None:
            on_labels(0, parts.labels)
    region_table, pore_table = parts.region_table, parts.pore_table
    analysed_px = (window[1] - window[0]) * (window[3] - window[2])
    counts = count_pores_from_tables(
        analysed_px, parts.foreground_px, region_table, pore_table, include_edges=edges,
        small_factor=cp.small_factor, large_factor=cp.large_factor,
        mean_area=cp.mean_pore_area_px, min_solidity=cp.single_pore_min_solidity,
        area_band=cp.single_pore_area_band, min_area=cp.split_min_area_px, pixel_size=px,
        min_area_at_edges=cp.split_min_area_at_edges, split_max_pores=cp.split_max_pores)
    counts.insert(0, "image_id", image_id)
    split_method = parts.split_method

    # per-object table with the region bookkeeping and the guard-frame flag
    region_lut = parts.region_lut
    pores_per_region = np.bincount(region_lut[1:], minlength=len(region_table) + 1)
    # the tables are this call's own: columns are added in place (no copy of a big table)
    if params.objects == "pores":
        table = pore_table
        reg = region_lut[table["label"].to_numpy()]
    else:
        table = region_table
        reg = table["label"].to_numpy()
    table["region"] = reg.astype(np.int64)
    table["region_pores"] = pores_per_region[reg].astype(np.int64)
    table["counted"] = guard_frame_counted(table, edges)
    table.insert(0, "image_id", image_id)

    base = summary_from_table(table, analysed_px, parts.foreground_px, pixel_size=px,
                              include_edges=edges, length_unit=unit)
    by_est = counts.set_index("estimator")
    bm = by_est.loc["boolean_model", "detail"]
    med = by_est.loc["median_area", "detail"]
    summary: dict[str, Any] = {
        "image_id": image_id, "height": h, "width": w, "bar_rows": int(bar_rows),
        "margin": int(margin),
        "analysed_px": base["analysed_px"], "pixel_size_nm": px if px is not None else math.nan,
        "length_unit": unit, "objects": params.objects, "split_method": split_method,
        "porosity": base["porosity"], "foreground_px": base["foreground_px"],
        "n_regions": int(len(region_table)), "n_pores": int(len(pore_table)),
        "n_objects": base["n_objects"], "n_border": base["n_border"],
    }
    for est in ESTIMATORS:
        row = by_est.loc[est]
        summary[f"count_{est}"] = float(row["count"])
        summary[f"density_px2_{est}"] = float(row["density_per_px2"])
        summary[f"density_cm2_{est}"] = float(row["density_per_cm2"])
    summary.update({
        "mean_pore_area_px": float(bm.get("mean_area", math.nan)),
        "mean_pore_area_source": bm.get("mean_area_source", ""),
        "n_single_pores": int(bm.get("n_used", 0)) if "n_used" in bm else math.nan,
        "median_region_area_px": float(med.get("median_area", math.nan)),
        "analysed_area_cm2": base["analysed_area_cm2"],
    })
    for key in ("area_px", "ecd_px", f"area_{unit}2", f"ecd_{unit}"):
        for stat in ("mean", "median", "sd"):
            summary[f"{key}_{stat}"] = base.get(f"{key}_{stat}", math.nan)

    sp_result = None
    if spatial:
        window = Window(margin - 0.5, margin - 0.5, w - margin - 0.5, ha - margin - 0.5)
        points = pore_table[["X", "Y"]].to_numpy(float)
        sp_result = _spatial(points, window, rng, params.spatial)
    summary.update(_spatial_fields(sp_result))
    return ImageAnalysis(image_id=image_id, objects=table, summary=summary, counts=counts,
                         spatial=sp_result, labels=parts.labels)

