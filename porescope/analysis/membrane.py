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

Comparing with a known truth (the synthetic membranes)
------------------------------------------------------
The generator's ``n_true`` counts the pores whose *centre* lies in the analysed region; the
guard-frame count counts the pores whose pixels do not touch the exclusion edges (bottom and
right by default). Both have the same expectation (``lambda * A``) but differ image by image by
the pores near the frame. So each estimator is compared with the truth *in its own convention*
(:func:`synthetic_reference`): the frame-counting estimators (``median_area``,
``split_labels``) with the exact number of true pores that the guard-frame rule keeps,
computed from the pore list (:func:`pore_edge_contacts`: which image edges each pore's pixels
touch), and the Boolean model (a density over the whole window, no frame) with ``n_true``.
Densities per cm^2 follow from the same counts and the analysed area.

Everything random (the Monte-Carlo simulations) comes from an explicit generator; use
:func:`image_rng` for a generator that depends only on the seed and the image id, so results do
not depend on the order in which images are processed.
"""

from __future__ import annotations

import dataclasses
import io
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from porescope.config import ParamsError
from porescope.analysis import plots as dplots
from porescope.measure.counting import boolean_model_count, count_pores
from porescope.segmentation.instances import (
    border_classes,
    instances_from_three_class,
    split_touching,
)
from porescope.measure.morphometry import (
    EDGES,
    guard_frame_counted,
    image_summary,
    label_mask,
    measure_objects,
)
from porescope.measure.spatial import (
    Window,
    biovoxxel_test,
    clark_evans,
    default_radii,
    nearest_neighbour_distances,
    spatial_summary,
)

__all__ = [
    "ESTIMATORS",
    "CountingParams",
    "SplitParams",
    "SpatialParams",
    "AnalysisParams",
    "ImageAnalysis",
    "border_classes",
    "image_rng",
    "analyse_mask",
    "pore_edge_contacts",
    "synthetic_reference",
    "mask_reference",
    "compare_with_reference",
    "boolean_known_area_row",
    "band_names",
    "summarise_errors",
    "figure_png",
    "distribution_figures",
    "outline_overlay",
    "porosity_scatter_figure",
    "porosity_error_figure",
    "count_error_figure",
]

#: The three counting estimators, in the order of :func:`porescope.measure.counting.count_pores`.
ESTIMATORS: tuple[str, ...] = ("median_area", "split_labels", "boolean_model")


# --------------------------------------------------------------------------------------------
# parameters (params.yaml group ``analyze``)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountingParams:
    """Counting estimators (see :mod:`porescope.measure.counting`).

    small_factor, large_factor: the median-area rule's artefact / multi-pore thresholds.
    mean_pore_area_px: known ``E[A]`` of one pore in px for the Boolean model (e.g. from the
        nominal pore diameter); ``None`` = estimate it from the isolated single pores.
    single_pore_min_solidity, single_pore_area_band: that estimate's rule.
    split_min_area_px: split objects smaller than this are not counted.
    """

    small_factor: float = 0.5
    large_factor: float = 1.5
    mean_pore_area_px: float | None = None
    single_pore_min_solidity: float = 0.9
    single_pore_area_band: tuple[float, float] = (0.6, 1.4)
    split_min_area_px: int = 1


@dataclass(frozen=True)
class SplitParams:
    """Watershed split of touching pores (:func:`porescope.segmentation.instances.split_touching`)."""

    method: str = "h_maxima"
    h: float = 2.0
    min_distance: int = 5


@dataclass(frozen=True)
class SpatialParams:
    """Spatial statistics (:mod:`porescope.measure.spatial`).

    n_sim: Monte-Carlo CSR simulations (0 = skip the Monte-Carlo and Ripley tests);
    n_radii: radii of Ripley's L, up to min(5 CSR mean NNDs, a quarter of the short side).
    """

    alpha: float = 0.05
    n_sim: int = 99
    nnd_edge_correction: str = "donnelly"
    k_edge_correction: str = "translation"
    n_radii: int = 50


@dataclass(frozen=True)
class AnalysisParams:
    """The ``analyze`` params group (also used by ``validate`` and ``measure``).

    connectivity: 8 (ImageJ) or 4; length_unit: ``um`` or ``nm`` for physical columns;
    include_edges: guard-frame inclusion edges; objects: what the per-object table and the size
    statistics describe, ``pores`` (split, default) or ``regions`` (connected components);
    min_region_area_px: debris filter - foreground regions smaller than this that do not touch
    the edge of the analysed region are removed before anything is measured (porosity
    included), like the size filter of ImageJ's Analyze Particles; pores cut by the frame are
    never removed (their visible part may be small). 0 or 1 = keep everything.
    """

    connectivity: int = 8
    length_unit: str = "um"
    include_edges: tuple[str, ...] = ("top", "left")
    objects: str = "pores"
    min_region_area_px: int = 0
    counting: CountingParams = field(default_factory=CountingParams)
    split: SplitParams = field(default_factory=SplitParams)
    spatial: SpatialParams = field(default_factory=SpatialParams)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, source: str = "params.yaml",
                     group: str = "analyze") -> "AnalysisParams":
        """Parse and check a params group; missing keys take the defaults above.

        A ``seed`` key (added by :func:`porescope.config.load_params`) is ignored. Raises
        :class:`porescope.config.ParamsError` naming ``<group>.<key>`` for an unknown key or a bad
        value.
        """
        raw = dict(raw or {})
        raw.pop("seed", None)
        return _parse_params(raw, source, group)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-able), e.g. to record with the results."""
        out = dataclasses.asdict(self)
        out["include_edges"] = list(self.include_edges)
        out["counting"]["single_pore_area_band"] = list(self.counting.single_pore_area_band)
        return out


def _is_num(x: Any) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _parse_params(raw: dict[str, Any], source: str, group: str) -> AnalysisParams:
    def err(key: str, why: str, value: Any) -> ParamsError:
        return ParamsError(f"{source}: {group}.{key}: {why} (got {value!r})")

    def check_keys(mapping: Any, cls: type, prefix: str, nested: Sequence[str] = ()) -> dict:
        if not isinstance(mapping, Mapping):
            raise err(prefix.rstrip("."), "expected a mapping", mapping)
        known = [f.name for f in dataclasses.fields(cls)]
        for key in mapping:
            if key not in known:
                raise ParamsError(f"{source}: {group}.{prefix}{key}: unknown parameter "
                                  f"(known: {', '.join(known)})")
        return {k: v for k, v in mapping.items() if k not in nested}

    top = check_keys(raw, AnalysisParams, "", nested=("counting", "split", "spatial"))
    d = AnalysisParams()
    conn = top.get("connectivity", d.connectivity)
    if conn not in (4, 8) or not _is_int(conn):
        raise err("connectivity", "must be 4 or 8", conn)
    unit = top.get("length_unit", d.length_unit)
    if unit not in ("um", "nm"):
        raise err("length_unit", "must be 'um' or 'nm'", unit)
    edges = top.get("include_edges", list(d.include_edges))
    if (not isinstance(edges, (list, tuple)) or any(e not in EDGES for e in edges)
            or len(set(edges)) != len(edges)):
        raise err("include_edges", f"must be a list of distinct edges from {list(EDGES)}", edges)
    objects = top.get("objects", d.objects)
    if objects not in ("pores", "regions"):
        raise err("objects", "must be 'pores' (split pores) or 'regions' (connected regions)",
                  objects)

    min_region = top.get("min_region_area_px", d.min_region_area_px)
    if not (_is_int(min_region) and min_region >= 0):
        raise err("min_region_area_px", "must be an integer >= 0 (px)", min_region)

    c = check_keys(raw.get("counting", {}), CountingParams, "counting.")
    dc = CountingParams()
    small = c.get("small_factor", dc.small_factor)
    if not (_is_num(small) and 0 <= small < 1):
        raise err("counting.small_factor", "must be a number in [0, 1)", small)
    large = c.get("large_factor", dc.large_factor)
    if not (_is_num(large) and large >= 1):
        raise err("counting.large_factor", "must be a number >= 1", large)
    ea = c.get("mean_pore_area_px", dc.mean_pore_area_px)
    if ea is not None and not (_is_num(ea) and ea > 0):
        raise err("counting.mean_pore_area_px", "must be null (estimate) or a number > 0 px", ea)
    sol = c.get("single_pore_min_solidity", dc.single_pore_min_solidity)
    if not (_is_num(sol) and 0 < sol <= 1):
        raise err("counting.single_pore_min_solidity", "must be a number in (0, 1]", sol)
    band = c.get("single_pore_area_band", list(dc.single_pore_area_band))
    if not (isinstance(band, (list, tuple)) and len(band) == 2 and all(_is_num(b) for b in band)
            and 0 <= band[0] < 1 < band[1]):
        raise err("counting.single_pore_area_band", "must be [lo, hi] with 0 <= lo < 1 < hi", band)
    min_area = c.get("split_min_area_px", dc.split_min_area_px)
    if not (_is_int(min_area) and min_area >= 1):
        raise err("counting.split_min_area_px", "must be an integer >= 1", min_area)

    s = check_keys(raw.get("split", {}), SplitParams, "split.")
    ds = SplitParams()
    method = s.get("method", ds.method)
    if method not in ("h_maxima", "peak_local_max"):
        raise err("split.method", "must be 'h_maxima' or 'peak_local_max'", method)
    h = s.get("h", ds.h)
    if not (_is_num(h) and h > 0):
        raise err("split.h", "must be a number > 0 px", h)
    md = s.get("min_distance", ds.min_distance)
    if not (_is_int(md) and md >= 1):
        raise err("split.min_distance", "must be an integer >= 1 px", md)

    sp = check_keys(raw.get("spatial", {}), SpatialParams, "spatial.")
    dsp = SpatialParams()
    alpha = sp.get("alpha", dsp.alpha)
    if not (_is_num(alpha) and 0 < alpha < 1):
        raise err("spatial.alpha", "must be a number in (0, 1)", alpha)
    n_sim = sp.get("n_sim", dsp.n_sim)
    if not (_is_int(n_sim) and 0 <= n_sim <= 100_000):
        raise err("spatial.n_sim", "must be an integer in [0, 100000] (0 = no Monte-Carlo test)",
                  n_sim)
    nnd_corr = sp.get("nnd_edge_correction", dsp.nnd_edge_correction)
    if nnd_corr not in ("donnelly", "none"):
        raise err("spatial.nnd_edge_correction", "must be 'donnelly' or 'none'", nnd_corr)
    k_corr = sp.get("k_edge_correction", dsp.k_edge_correction)
    if k_corr not in ("translation", "none"):
        raise err("spatial.k_edge_correction", "must be 'translation' or 'none'", k_corr)
    n_r = sp.get("n_radii", dsp.n_radii)
    if not (_is_int(n_r) and 2 <= n_r <= 10_000):
        raise err("spatial.n_radii", "must be an integer in [2, 10000]", n_r)

    return AnalysisParams(
        connectivity=int(conn), length_unit=str(unit), include_edges=tuple(edges),
        objects=str(objects), min_region_area_px=int(min_region),
        counting=CountingParams(float(small), float(large), None if ea is None else float(ea),
                                float(sol), (float(band[0]), float(band[1])), int(min_area)),
        split=SplitParams(str(method), float(h), int(md)),
        spatial=SpatialParams(float(alpha), int(n_sim), str(nnd_corr), str(k_corr), int(n_r)))


# --------------------------------------------------------------------------------------------
# the analysis of one mask
# --------------------------------------------------------------------------------------------

@dataclass
class ImageAnalysis:
    """Everything measured on one mask.

    image_id: the image's id. objects: per-object table (``image_id``, the
    :func:`~porescope.measure.morphometry.measure_objects` columns, ``region``, ``region_pores``,
    ``counted``). summary: one flat dict (see :func:`analyse_mask`). counts: the
    :func:`~porescope.measure.counting.count_pores` table with ``image_id`` (``detail`` kept as a dict).
    spatial: :func:`~porescope.measure.spatial.spatial_summary` of the pore centroids (``None`` with
    fewer than 3 pores). labels: int32 pore labels (0 = background). regions: int32 region labels.
    """

    image_id: str
    objects: pd.DataFrame
    summary: dict[str, Any]
    counts: pd.DataFrame
    spatial: dict[str, Any] | None
    labels: np.ndarray
    regions: np.ndarray


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


def analyse_mask(mask: np.ndarray, *, pixel_size_nm: float | None, params: AnalysisParams,
                 rng: np.random.Generator, image_id: str, bar_rows: int = 0, margin: int = 0,
                 class_names: Mapping[Any, str] | None = None,
                 spatial: bool = True) -> ImageAnalysis:
    """Measure one class-id mask: objects, porosity, the three counts, densities, spatial tests.

    Parameters
    ----------
    mask : (rows, cols) integer class ids (0 = background, any other class = pore), e.g. the
        output of :func:`porescope.segmentation.inference.predict_mask`; a bool mask is accepted.
    pixel_size_nm : nm per pixel, or ``None`` / NaN when unknown (then only pixel units and
        densities per px^2; the per-cm^2 columns are NaN).
    params : :class:`AnalysisParams`.
    rng : generator for the Monte-Carlo CSR simulations (see :func:`image_rng`).
    image_id : the image's id (first column of the tables; used in messages).
    bar_rows : height of an SEM data bar at the bottom (excluded from the analysed region).
    margin : pixels excluded at every edge of the (bar-less) image, e.g. a white frame drawn
        around an exported micrograph; the analysed region is then the rectangle
        ``[margin, h - bar_rows - margin) x [margin, w - margin)`` and objects reaching its edge
        count as touching the border. Coordinates stay those of the whole image.
    class_names : ``{class id: name}``; a class named ``*border*`` / ``*boundary*`` switches the
        pore split to :func:`~porescope.segmentation.instances.instances_from_three_class`.
    spatial : False skips the spatial statistics (faster; the spatial fields are NaN / "n/a").

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
    """
    if not isinstance(params, AnalysisParams):
        raise TypeError(f"params: expected AnalysisParams, got {type(params).__name__}")
    mask = _check_mask(mask, image_id)
    px = _pixel_size(pixel_size_nm, image_id)
    h, w = mask.shape
    if not (_is_int(bar_rows) and 0 <= bar_rows < h):
        raise ValueError(f"{image_id}: bar_rows must be an integer in [0, {h}), got {bar_rows!r}")
    ha = h - bar_rows
    if not (_is_int(margin) and margin >= 0 and 2 * margin < min(ha, w)):
        raise ValueError(f"{image_id}: margin must be an integer >= 0 leaving part of the "
                         f"{w}x{ha} analysed image, got {margin!r}")
    region = None
    if margin:
        region = np.zeros((h, w), bool)
        region[margin:ha - margin, margin:w - margin] = True
    unit = params.length_unit
    edges = params.include_edges
    cp = params.counting

    fg = mask != 0
    if bar_rows:
        fg[h - bar_rows:] = False
    if region is not None:
        fg &= region
    if params.min_region_area_px > 1:
        fg = _drop_debris(fg, params.min_region_area_px, params.connectivity,
                          (margin, ha - margin, margin, w - margin))
    regions = label_mask(fg, params.connectivity)
    region_table = measure_objects(regions, pixel_size=px, bar_rows=bar_rows, region=region,
                                   length_unit=unit)

    border, interior = border_classes(class_names)
    if border:
        cm = np.zeros(mask.shape, np.uint8)
        cm[fg & np.isin(mask, interior)] = 1
        cm[fg & np.isin(mask, border)] = 2
        labels = instances_from_three_class(cm, 1, 2, connectivity=params.connectivity)
        split_method = "border_class"
    else:
        sp = params.split
        labels = split_touching(fg, method=sp.method, h=sp.h, min_distance=sp.min_distance,
                                connectivity=params.connectivity)
        split_method = (f"watershed h_maxima h={sp.h:g}" if sp.method == "h_maxima"
                        else f"watershed peak_local_max min_distance={sp.min_distance}")
    pore_table = measure_objects(labels, pixel_size=px, bar_rows=bar_rows, region=region,
                                 length_unit=unit)

    counts = count_pores(fg, split_labels=labels, table=region_table, bar_rows=bar_rows,
                         region=region,
                         include_edges=edges, small_factor=cp.small_factor,
                         large_factor=cp.large_factor, mean_area=cp.mean_pore_area_px,
                         min_solidity=cp.single_pore_min_solidity,
                         area_band=cp.single_pore_area_band, min_area=cp.split_min_area_px,
                         pixel_size=px)
    counts.insert(0, "image_id", image_id)

    # per-object table with the region bookkeeping and the guard-frame flag
    region_lut = _region_of(labels, regions)
    pores_per_region = np.bincount(region_lut[1:], minlength=int(regions.max(initial=0)) + 1)
    if params.objects == "pores":
        table = pore_table.copy()
        reg = region_lut[table["label"].to_numpy()]
    else:
        table = region_table.copy()
        reg = table["label"].to_numpy()
    table["region"] = reg.astype(np.int64)
    table["region_pores"] = pores_per_region[reg].astype(np.int64)
    table["counted"] = guard_frame_counted(table, edges)
    table.insert(0, "image_id", image_id)

    base = image_summary(fg, table, bar_rows=bar_rows, region=region, pixel_size=px,
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
                         spatial=sp_result, labels=labels, regions=regions)


# --------------------------------------------------------------------------------------------
# references (truth) and errors
# --------------------------------------------------------------------------------------------

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


def compare_with_reference(analysis: ImageAnalysis, reference: Mapping[str, Any], *,
                           mask: str, extra: Mapping[str, Any] | None = None
                           ) -> list[dict[str, Any]]:
    """Tidy rows, one per estimator: measured porosity and count against the reference.

    Columns: ``image_id``, ``mask`` (the label given, e.g. ``"ground truth"`` / ``"predicted"``),
    ``estimator``, ``reference``, ``porosity_true``, ``porosity_measured``,
    ``porosity_error_pp`` (measured - true, percentage points), ``count_true``,
    ``count_convention``, ``count_measured``, ``count_error_pct`` (100 (measured - true) / true;
    NaN when the true count is 0), ``density_true_cm2``, ``density_measured_cm2``, then ``extra``.
    """
    s = analysis.summary
    rows = []
    for est in ESTIMATORS:
        true = float(reference["count"][est])
        meas = float(s[f"count_{est}"])
        rows.append({
            "image_id": analysis.image_id, "mask": mask, "estimator": est,
            "reference": reference["reference"], "porosity_true": reference["porosity"],
            "porosity_measured": s["porosity"],
            "porosity_error_pp": 100.0 * (s["porosity"] - reference["porosity"]),
            "count_true": true, "count_convention": reference["convention"][est],
            "count_measured": meas,
            "count_error_pct": 100.0 * (meas - true) / true if true > 0 else math.nan,
            "density_true_cm2": reference["density_cm2"][est],
            "density_measured_cm2": s[f"density_cm2_{est}"],
            **dict(extra or {}),
        })
    return rows


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


def boolean_known_area_row(analysis: ImageAnalysis, reference: Mapping[str, Any], *, mask: str,
                           mean_area_px: float, extra: Mapping[str, Any] | None = None
                           ) -> dict[str, Any]:
    """A :func:`compare_with_reference` row for the Boolean model with a *known* ``E[A]``
    (estimator ``boolean_model_known_area``): separates the error of the model from that of
    estimating ``E[A]`` from the single pores."""
    s = analysis.summary
    res = boolean_model_count(min(s["porosity"], 1 - 1e-12), s["analysed_px"], mean_area_px)
    true = float(reference["count"]["boolean_model"])
    area_cm2 = s["analysed_area_cm2"]
    return {"image_id": analysis.image_id, "mask": mask, "estimator": "boolean_model_known_area",
            "reference": reference["reference"], "porosity_true": reference["porosity"],
            "porosity_measured": s["porosity"],
            "porosity_error_pp": 100.0 * (s["porosity"] - reference["porosity"]),
            "count_true": true, "count_convention": reference["convention"]["boolean_model"],
            "count_measured": res["count"],
            "count_error_pct": 100.0 * (res["count"] - true) / true if true > 0 else math.nan,
            "density_true_cm2": reference["density_cm2"]["boolean_model"],
            "density_measured_cm2": res["count"] / area_cm2 if area_cm2 == area_cm2 else math.nan,
            **dict(extra or {})}


# --------------------------------------------------------------------------------------------
# figures (matplotlib without pyplot; callers write the bytes atomically)
# --------------------------------------------------------------------------------------------

def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes with fixed metadata (identical bytes on reruns)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def distribution_figures(tables: Mapping[str, pd.DataFrame],
                         spatial: Mapping[str, dict[str, Any] | None] | None = None, *,
                         pixel_sizes: Mapping[str, float | None] | None = None,
                         length_unit: str = "um", max_panels: int = 8) -> dict[str, bytes]:
    """The size / shape / spatial figures of a set of images, as ``{file name: PNG bytes}``.

    ``area_histogram.png``, ``ecd_histogram.png``, ``area_violin.png``, ``ecd_violin.png``,
    ``feret_angle_kde.png``, ``correlation.png`` (:mod:`porescope.analysis.plots`; with
    more than ``max_panels`` images the tables are pooled into one ``all images`` panel) and
    ``ripley_<image_id>.png`` for every image with a Monte-Carlo envelope. Physical units where
    every table has them. Empty input -> empty dict.
    """
    tables = {k: v for k, v in tables.items()}
    if not tables:
        return {}
    if len(tables) > max_panels:
        tables = {"all images": pd.concat(list(tables.values()), ignore_index=True)}
    out: dict[str, bytes] = {}
    for col in ("Area", "ECD"):
        out[f"{col.lower()}_histogram.png"] = figure_png(dplots.size_histograms(tables, column=col))
        out[f"{col.lower()}_violin.png"] = figure_png(dplots.size_violins(tables, column=col))
    out["feret_angle_kde.png"] = figure_png(dplots.feret_angle_kde(tables))
    corr_tables = tables if len(tables) <= 4 else {
        "all images": pd.concat(list(tables.values()), ignore_index=True)}
    out["correlation.png"] = figure_png(dplots.correlation_matrices(corr_tables))
    for image_id, sp in (spatial or {}).items():
        if sp is None or sp.get("monte_carlo") is None:
            continue
        px = (pixel_sizes or {}).get(image_id)
        px = px if px is not None and px == px else None
        fig = dplots.ripley_plot(sp["monte_carlo"], title=f"{image_id}: Ripley's L(r) - r",
                                 pixel_size=px, length_unit=length_unit)
        out[f"ripley_{image_id}.png"] = figure_png(fig)
    return out


def outline_overlay(grey: np.ndarray, labels: np.ndarray, *, colour: tuple[int, int, int] = (0, 0, 255),
                    bar_rows: int = 0) -> np.ndarray:
    """BGR uint8 image: the grey micrograph with every object's boundary (inner, 1 px) drawn
    in ``colour`` (BGR); boundaries between touching pores are drawn too."""
    import cv2
    from skimage.segmentation import find_boundaries

    if grey.shape != labels.shape:
        raise ValueError(f"outline_overlay: image {grey.shape} and labels {labels.shape} differ")
    out = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)
    edge = find_boundaries(labels, mode="inner") & (labels != 0)
    out[edge] = colour
    if bar_rows:
        out[grey.shape[0] - bar_rows:] //= 2
    return out


_MASK_STYLE = {"ground truth": ("o", "C0"), "predicted": ("s", "C3")}


def porosity_scatter_figure(table: pd.DataFrame, *, title: str = "Porosity: measured vs true"
                            ) -> Figure:
    """Measured against true porosity (%), one marker per image and mask (identity line)."""
    t = table.drop_duplicates(["image_id", "mask"])
    fig = Figure(figsize=(5.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    top = 100 * max(float(t["porosity_true"].max()), float(t["porosity_measured"].max()), 0.01)
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.6", linewidth=0.8, label="identity")
    for k, (m, g) in enumerate(t.groupby("mask", sort=False)):
        marker, colour = _MASK_STYLE.get(m, ("^", f"C{k + 4}"))
        mae = float(np.abs(g["porosity_error_pp"]).mean())
        ax.scatter(100 * g["porosity_true"], 100 * g["porosity_measured"], marker=marker,
                   color=colour, s=22, label=f"{m} mask (MAE {mae:.2f} pp)", alpha=0.85)
    ax.set_xlabel("true porosity (%)")
    ax.set_ylabel("measured porosity (%)")
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(0, top * 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def porosity_error_figure(table: pd.DataFrame, *, title: str = "Porosity error",
                          target_pp: float | None = None) -> Figure:
    """Porosity error (measured - true, pp) against true porosity (%), one series per mask;
    ``target_pp`` draws the tolerated band."""
    t = table.drop_duplicates(["image_id", "mask"])
    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.add_subplot()
    top = 100 * float(t["porosity_true"].max()) * 1.05 + 0.5
    if target_pp is not None:
        ax.fill_between([0, top], -target_pp, target_pp, color="0.9", zorder=0,
                        label=f"target +-{target_pp:g} pp")
    ax.axhline(0, color="0.5", linewidth=0.7)
    for k, (m, g) in enumerate(t.groupby("mask", sort=False)):
        marker, colour = _MASK_STYLE.get(m, ("^", f"C{k + 4}"))
        g = g.sort_values("porosity_true")
        ax.plot(100 * g["porosity_true"], g["porosity_error_pp"], marker=marker, color=colour,
                ms=4, linewidth=1, label=f"{m} mask")
    ax.set_xlim(0, top)
    ax.set_xlabel("true porosity (%)")
    ax.set_ylabel("porosity error (percentage points)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def count_error_figure(table: pd.DataFrame, *, title: str = "Count error per estimator",
                       targets: Sequence[tuple[float, float]] = ()) -> Figure:
    """Count error (%) against true porosity (%), one panel per mask, one colour per estimator.

    ``targets``: optional ``(porosity upper bound, tolerated |error| %)`` steps drawn as a
    shaded band.
    """
    masks = list(dict.fromkeys(table["mask"]))
    fig = Figure(figsize=(5.2 * len(masks), 4.0), layout="constrained")
    ests = list(dict.fromkeys(table["estimator"]))
    top = 100 * float(table["porosity_true"].max()) * 1.05 + 0.5
    for k, m in enumerate(masks):
        ax = fig.add_subplot(1, len(masks), k + 1)
        g = table[table["mask"] == m]
        lo = 0.0
        for upper, tol in targets:
            ax.fill_between([100 * lo, min(100 * upper, top)], -tol, tol, color="0.9", zorder=0)
            lo = upper
        ax.axhline(0, color="0.5", linewidth=0.7)
        for j, est in enumerate(ests):
            ge = g[g["estimator"] == est].sort_values("porosity_true")
            if ge.empty:
                continue
            ax.plot(100 * ge["porosity_true"], ge["count_error_pct"], marker="o", ms=3.5,
                    linewidth=1, color=f"C{j}", label=est)
        ax.set_xlim(0, top)
        ax.set_xlabel("true porosity (%)")
        ax.set_ylabel("count error (%)")
        ax.set_title(f"{m} mask", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
