"""Validation on truth: how accurate are porosity and pore counts on fresh synthetic membranes?

:func:`validate_on_truth` generates a dedicated synthetic validation set (:class:`ValidateParams`,
the ``validate`` params group: number and size of the images, porosity and diameter ranges;
every other generator setting - tilt, appearance, mask convention, pixel size - from the
``synthesize`` group so the images look like the training data), drawn with the seed
``seed + seed_offset`` so that its pores, appearance and noise are independent of the training
images (:func:`validation_specs`).

Each image is analysed with :func:`porescope.analysis.membrane.analyse_mask` on its exact
ground-truth mask (the error of the *measurement* alone) and, with a model, on the mask the
model predicts from the rendered micrograph (segmentation + measurement). Porosity is compared
with the exact porosity; each count estimator with the exact count in its own convention
(:func:`porescope.analysis.truth.synthetic_reference`). The Boolean model is also reported
with the *known* single-pore area ``E[A]`` (``boolean_model_known_area``), which isolates the
error of the model itself from that of estimating ``E[A]``.

A porosity error is an area error, and on a membrane almost all of it lies along the pore
edges: :func:`edge_shift` converts it into the mean displacement of the pore edges, px (the
porosity error times the analysed area over the true edge length, :func:`pore_edge_length_px`),
and the porosity tolerance into the edge accuracy it asks for.

The accuracy targets (:func:`accuracy_targets`): porosity |error| <= ``porosity_abs_pp`` for
every image, and for each porosity band of ``count_abs_pct`` the best of the three practical
estimators (lowest mean |count error|) with every image's |count error| within the band's
tolerance.

Examples
--------
>>> p = ValidateParams.from_mapping({"n_images": 3, "targets": {"porosity_abs_pp": 1.0}})
>>> p.n_images, p.targets.porosity_abs_pp, p.targets.count_abs_pct
(3, 1.0, ((0.2, 2.0), (0.4, 5.0)))
>>> ValidateParams.from_mapping({"enabeld": False})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
porescope.config.ParamsError: params.yaml: validate.enabeld: unknown parameter; did you mean 'validate.enabled'? ...
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from porescope.analysis.comparison import (
    band_names,
    boolean_known_area_row,
    compare_with_reference,
    summarise_errors,
)
from porescope.analysis.figures import (
    count_error_figure,
    figure_png,
    porosity_error_figure,
    porosity_scatter_figure,
)
from porescope.analysis.membrane import ESTIMATORS, analyse_mask, image_rng
from porescope.analysis.params import AnalyzeParams
from porescope.analysis.truth import synthetic_reference
from porescope.measure.pale_regions import drop_pale_regions
from porescope.config import Fail, ParamsError, parse_group
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import artefacts_off

__all__ = ["TargetsParams", "ValidateParams", "PRACTICAL", "KNOWN_AREA", "MASKS",
           "validation_specs", "validation_table", "accuracy_targets", "share_over",
           "segmentation_effect", "pore_edge_length_px", "edge_shift", "skipped_metrics",
           "ValidationResult", "validate_on_truth"]

LOG = logging.getLogger("porescope.validate")

#: Estimators usable without knowing ``E[A]`` (candidates for the targets).
PRACTICAL = ESTIMATORS
#: The Boolean model with the known ``E[A]``.
KNOWN_AREA = "boolean_model_known_area"
#: Mask labels of the table -> keys of the metrics.
MASKS = {"ground truth": "ground_truth", "predicted": "predicted"}


@dataclass(frozen=True)
class TargetsParams:
    """Accuracy targets, group ``validate.targets``.

    porosity_abs_pp: tolerated |porosity error| of every image (percentage points).
    count_abs_pct: ``(porosity upper bound, tolerated |count error| %)`` steps with increasing
        bounds in (0, 1); the last step's bound closes the open top band.
    """

    porosity_abs_pp: float = field(default=0.5, metadata={"gt": 0})
    count_abs_pct: tuple[tuple[float, float], ...] = ((0.20, 2.0), (0.40, 5.0))

    def check(self, fail: Fail) -> None:
        steps = self.count_abs_pct
        if (not steps or any(not (0 < b < 1 and tol > 0) for b, tol in steps)
                or any(a[0] >= b[0] for a, b in zip(steps, steps[1:]))):
            raise fail("count_abs_pct", "must be a list of [porosity upper bound, tolerated "
                       "|error| %] with increasing bounds in (0, 1)")


@dataclass(frozen=True)
class ValidateParams:
    """The ``validate`` params group.

    enabled: false = the stage writes no numbers, only ``{"skipped": true}`` (e.g. a dataset
    that is not a membrane). n_images, height, width (px): the validation set.
    porosity_min, porosity_max (fractions), diameter_min_px, diameter_max_px: its ranges.
    seed_offset: the set is drawn with ``seed + seed_offset``. artefacts: false = the
    ``synthesize.artefacts`` (fringes, overlays, JPEG, down-sampling ...) are left out, so the
    targets keep measuring the estimators on clean membranes; true = drawn with them.
    targets: :class:`TargetsParams`.
    tile, overlap (px), batch_size, tta, device (``auto``, ``cpu``, ``cuda``, ``cuda:<n>``),
    threads (CPU threads, 0 = all): the model's inference.
    """

    enabled: bool = True
    n_images: int = field(default=48, metadata={"ge": 1, "le": 10_000})
    height: int = field(default=512, metadata={"ge": 32, "le": 16384})
    width: int = field(default=512, metadata={"ge": 32, "le": 16384})
    porosity_min: float = field(default=0.02, metadata={"ge": 0.0, "lt": 0.95})
    porosity_max: float = field(default=0.40, metadata={"ge": 0.0, "lt": 0.95})
    diameter_min_px: float = field(default=15.0, metadata={"ge": 1.0})
    diameter_max_px: float = field(default=40.0, metadata={"ge": 1.0})
    seed_offset: int = field(default=1_000_003, metadata={"ge": 1, "le": 2 ** 31})
    artefacts: bool = False
    targets: TargetsParams = field(default_factory=TargetsParams)
    tile: int = field(default=256, metadata={"ge": 32, "le": 8192})
    overlap: int = field(default=64, metadata={"ge": 0, "le": 4096})
    batch_size: int = field(default=4, metadata={"ge": 1, "le": 4096})
    tta: bool = False
    device: str = "auto"
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    threads: int = field(default=0, metadata={"ge": 0, "le": 256})

    def check(self, fail: Fail) -> None:
        if 2 * self.overlap > self.tile:
            raise fail("overlap", f"must be at most tile / 2 = {self.tile // 2}")
        if self.porosity_max < self.porosity_min:
            raise fail("porosity_max", "must be >= porosity_min")
        side = min(self.height, self.width)
        for key in ("diameter_min_px", "diameter_max_px"):
            if getattr(self, key) > side:
                raise fail(key, f"must be a number in [1, {side}]")
        if self.diameter_max_px < self.diameter_min_px:
            raise fail("diameter_max_px", "must be >= diameter_min_px")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise fail("device", "must be auto, cpu, cuda or cuda:<n>")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *,
                     source: str = "params.yaml") -> "ValidateParams":
        """:func:`porescope.config.parse_group` of this class (a ``seed`` key is ignored)."""
        return parse_group(cls, raw, group="validate", source=source)


def validation_specs(params: ValidateParams, synth: Mapping[str, Any], seed: int
                     ) -> list[syn.MembraneSpec]:
    """Specs of the validation images: the ``synthesize`` settings ``synth`` with the
    ``validate`` sizes, porosity and diameter ranges (without the artefacts unless
    ``params.artefacts``), drawn with ``seed + seed_offset``."""
    merged = {**syn.DEFAULT_PARAMS, **{k: v for k, v in synth.items() if k != "seed"}}
    if not params.artefacts:
        merged["artefacts"] = artefacts_off()
    for key in ("n_images", "height", "width", "porosity_min", "porosity_max",
                "diameter_min_px", "diameter_max_px"):
        merged[key] = getattr(params, key)
    merged["databar_height_px"] = min(int(merged["databar_height_px"]), int(merged["height"]) - 8)
    try:
        return syn.dataset_specs(merged, seed + params.seed_offset)
    except (KeyError, ValueError) as exc:
        raise ParamsError(f"validate/synthesize params: {exc}") from None


_ROUND = (("porosity_true", 6), ("porosity_measured", 6), ("porosity_error_pp", 4),
          ("count_measured", 2), ("count_error_pct", 3), ("density_true_cm2", 0),
          ("density_measured_cm2", 0), ("mean_diameter_px", 3), ("porosity_target", 4),
          ("edge_px_per_pp", 5), ("edge_shift_px", 4))
_COLUMNS = ["image_id", "porosity_target", "mean_diameter_px", "mask", "estimator",
            "porosity_true", "porosity_measured", "porosity_error_pp", "count_true",
            "count_convention", "count_measured", "count_error_pct", "density_true_cm2",
            "density_measured_cm2", "edge_px_per_pp", "edge_shift_px"]


def validation_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy validation table from comparison rows: sorted by mask (ground truth first),
    estimator, true porosity and image; fixed columns, rounded (stable CSV bytes)."""
    table = pd.DataFrame(rows)
    order = {e: i for i, e in enumerate((*ESTIMATORS, KNOWN_AREA))}
    table = table.assign(_m=table["mask"].map({"ground truth": 0, "predicted": 1}),
                         _e=table["estimator"].map(order)) \
        .sort_values(["_m", "_e", "porosity_true", "image_id"]).drop(columns=["_m", "_e"])
    out = table[_COLUMNS].reset_index(drop=True).copy()
    for col, nd in _ROUND:
        if col in out.columns:
            out[col] = out[col].astype(float).round(nd)
    return out


def share_over(abs_errors: pd.Series, tolerance: float) -> float:
    """Fraction of the images whose |error| exceeds ``tolerance`` (0 for none), 4 decimals.

    >>> share_over(pd.Series([0.1, 0.7, np.inf]), 0.5)  # inf: an image without an estimate
    0.6667
    """
    return round(float((abs_errors > tolerance).mean()), 4) if len(abs_errors) else 0.0


def accuracy_targets(errors: Mapping[str, Any], table: pd.DataFrame, targets: TargetsParams
                     ) -> dict[str, Any]:
    """Are the accuracy targets met, per mask? (every image within the tolerance)

    Parameters
    ----------
    errors : mapping
        :func:`~porescope.analysis.comparison.summarise_errors` of ``table`` with the band
        edges of ``targets.count_abs_pct`` (all bounds but the last).
    table : DataFrame
        The comparison table (``mask``, ``estimator``, ``image_id``, ``porosity_true``,
        ``porosity_error_pp``, ``count_true``).
    targets : TargetsParams

    Returns
    -------
    dict
        Per mask key (:data:`MASKS`): ``porosity_max_abs_pp``, ``porosity_met``,
        ``porosity_share_over`` (fraction of the images beyond the tolerance), ``count`` (per
        band: ``tolerance_pct``, ``best_estimator``, ``best_mae_pct``, ``best_max_abs_pct``,
        ``best_pooled_pct``, ``met`` (every image within the tolerance), ``met_pooled``,
        ``share_over`` (the best estimator's images beyond it), ``n_images``, ``n_true_pores``,
        ``estimators_meeting``) and ``all_met``.
    """
    out: dict[str, Any] = {}
    steps = targets.count_abs_pct
    names = band_names([s[0] for s in steps[:-1]])
    for mask, key in MASKS.items():
        if mask not in errors:
            continue
        t = table[(table["mask"] == mask)].copy()
        t["band"] = pd.cut(t["porosity_true"], [-np.inf, *[s[0] for s in steps[:-1]], np.inf],
                           labels=names, right=True)
        per_image = t.drop_duplicates("image_id")["porosity_error_pp"].abs()
        por = per_image.max()
        res: dict[str, Any] = {"porosity_max_abs_pp": round(float(por), 4),
                               "porosity_met": bool(por <= targets.porosity_abs_pp),
                               "porosity_share_over": share_over(per_image, targets.porosity_abs_pp),
                               "count": {}}
        for name, (upper, tol) in zip(names, steps):
            cand = {e: errors[mask][e].get(name) for e in PRACTICAL}
            cand = {e: s for e, s in cand.items() if s and s["count_mae_pct"] is not None}
            if not cand:
                continue
            best = min(cand, key=lambda e: (cand[e]["count_mae_pct"], e))
            s = cand[best]
            pooled = s["count_pooled_pct"]
            rows = t[(t["estimator"] == best) & (t["band"] == name)]
            res["count"][name] = {
                "tolerance_pct": tol, "best_estimator": best,
                "best_mae_pct": s["count_mae_pct"], "best_max_abs_pct": s["count_max_abs_pct"],
                "best_pooled_pct": pooled,
                "met": bool(s["count_max_abs_pct"] <= tol),
                "met_pooled": bool(pooled is not None and abs(pooled) <= tol),
                "share_over": share_over(rows["count_error_pct"].abs().dropna(), tol),
                "n_images": s["n_images"],
                "n_true_pores": int(rows["count_true"].sum()),
                "estimators_meeting": sorted(e for e, v in cand.items()
                                             if v["count_max_abs_pct"] <= tol),
            }
        res["all_met"] = bool(res["porosity_met"] and res["count"]
                              and all(v["met"] for v in res["count"].values()))
        out[key] = res
    return out


def segmentation_effect(table: pd.DataFrame, targets: TargetsParams) -> dict[str, Any]:
    """The count error the segmentation adds: each estimator on the predicted mask against the
    same estimator on the exact mask of the same image, per porosity band of ``targets``.

    On the exact masks an estimator already errs by its own sampling error (``E[A]`` from a few
    dozen pores, the pattern in a finite window); this difference is what a better model could
    remove. Per estimator (:data:`PRACTICAL`) and band: ``n_images``, ``mae_pct``,
    ``max_abs_pct``, ``tolerance_pct`` (the band's count target) and ``share_over`` (images
    beyond it, counting images whose predicted mask gives no estimate, ``n_undefined``). Empty
    without predicted masks.

    Examples
    --------
    >>> rows = [{"image_id": i, "mask": m, "estimator": "boolean_model", "porosity_true": p,
    ...          "count_measured": c} for i, p, m, c in [("a", 0.1, "ground truth", 100),
    ...          ("a", 0.1, "predicted", 103), ("b", 0.3, "ground truth", 50), ("b", 0.3, "predicted", 49)]]
    >>> eff = segmentation_effect(pd.DataFrame(rows), TargetsParams())["boolean_model"]
    >>> eff["<=20%"]["max_abs_pct"], eff["<=20%"]["share_over"], eff[">20%"]["max_abs_pct"]
    (3.0, 1.0, 2.0)
    """
    steps = targets.count_abs_pct
    edges = [s[0] for s in steps[:-1]]
    names = band_names(edges)
    out: dict[str, Any] = {}
    for est in PRACTICAL:
        t = table[table["estimator"] == est]
        wide = t.pivot(index="image_id", columns="mask", values="count_measured")
        if not {"ground truth", "predicted"} <= set(wide.columns):
            continue
        por = t.drop_duplicates("image_id").set_index("image_id")["porosity_true"].reindex(wide.index)
        ok = wide["ground truth"] > 0
        err = (100.0 * (wide["predicted"] / wide["ground truth"] - 1.0))[ok].abs()
        band = pd.cut(por[ok], [-np.inf, *edges, np.inf], labels=names, right=True)
        out[est] = {}
        for name, (_, tol) in zip(names, steps):
            e = err[band == name]
            if not len(e):
                continue
            # no estimate on the predicted mask (e.g. no single pore for E[A]): counted, and
            # beyond the tolerance, never left out silently
            d = e.dropna()
            out[est][name] = {"n_images": int(len(e)), "n_undefined": int(e.isna().sum()),
                              "mae_pct": round(float(d.mean()), 4) if len(d) else None,
                              "max_abs_pct": round(float(d.max()), 4) if len(d) else None,
                              "tolerance_pct": tol,
                              "share_over": share_over(e.fillna(np.inf), tol)}
    return out


def pore_edge_length_px(mask: np.ndarray) -> float:
    """Length of the pore edges in a binary mask, px (Cauchy-Crofton, 4 directions).

    The edges of objects cut by the window's border are counted only where they lie inside
    the window: the border itself is not a pore edge.

    Parameters
    ----------
    mask : (rows, cols) array
        Pores nonzero.

    Returns
    -------
    float
        Edge length, px.

    Examples
    --------
    >>> yy, xx = np.mgrid[:200, :200]
    >>> disc = (yy - 100) ** 2 + (xx - 100) ** 2 < 40 ** 2
    >>> round(pore_edge_length_px(disc), 1), round(2 * np.pi * 40, 1)   # a disc of radius 40 px
    (249.6, 251.3)
    >>> round(pore_edge_length_px(disc[:, :101]), 1)   # cut through its centre: half of it
    125.2
    """
    m = np.asarray(mask) != 0
    # transitions between neighbours inside the window along 0, 90, 45 and 135 degrees
    # (skimage's perimeter_crofton pads with background, which counts the border as edge)
    axis = np.count_nonzero(m[:, 1:] != m[:, :-1]) + np.count_nonzero(m[1:] != m[:-1])
    diag = np.count_nonzero(m[1:, 1:] != m[:-1, :-1]) + np.count_nonzero(m[1:, :-1] != m[:-1, 1:])
    # Crofton: L = 1/2 sum over directions (pi/4 each) of crossings x line spacing (1, 1/sqrt 2)
    return float(np.pi / 8.0 * (axis + diag / np.sqrt(2.0)))


def edge_shift(table: pd.DataFrame, targets: TargetsParams) -> dict[str, Any]:
    """The porosity error on the predicted masks as a shift of the pore edges, per band.

    ``edge_shift_px`` of an image (a :func:`validation_table` column) is its porosity error
    times the analysed area over the true edge length: the mean distance, px, by which the
    predicted edges lie outside (+) or inside (-) the true ones. ``edge_px_per_pp`` (the shift
    that moves the porosity by 1 pp) turns the porosity tolerance into the edge accuracy it
    asks of that image: fine at high porosity and small pores, loose at low porosity.

    Returns
    -------
    dict
        Per band of ``targets.count_abs_pct`` and ``all``: ``n_images`` (those with pores:
        an image without any has no edge and is left out), ``bias_px`` (mean
        signed shift), ``mae_px``, ``max_abs_px``, ``tolerance_median_px`` and
        ``tolerance_min_px`` (``porosity_abs_pp`` as a shift, median and strictest image), and
        ``share_over`` (images whose shift exceeds their own tolerance, i.e. whose porosity
        error exceeds ``porosity_abs_pp``) and ``share_over_bias_removed`` (the same after
        subtracting the band's bias, as a recalibrated threshold might: what is left is the
        image-to-image spread of the edges). Empty without predicted masks.

    Examples
    --------
    >>> rows = [{"image_id": i, "mask": "predicted", "estimator": "boolean_model",
    ...          "porosity_true": p, "edge_shift_px": s, "edge_px_per_pp": k}
    ...         for i, p, s, k in [("a", 0.1, -0.4, 0.6), ("b", 0.3, -0.1, 0.2)]]
    >>> e = edge_shift(pd.DataFrame(rows), TargetsParams())
    >>> e["all"]["bias_px"], e[">20%"]["tolerance_min_px"], e[">20%"]["share_over"]
    (-0.25, 0.1, 0.0)
    >>> # a is beyond its 0.3 px; without the bias a is within and b (+0.15 > 0.1 px) beyond
    >>> e["all"]["share_over"], e["all"]["share_over_bias_removed"]
    (0.5, 0.5)
    """
    t = table[table["mask"] == "predicted"].drop_duplicates("image_id")
    t = t[t["edge_px_per_pp"].notna()]          # images without pores have no edges
    if t.empty:
        return {}
    edges = [s[0] for s in targets.count_abs_pct[:-1]]
    names = band_names(edges)
    band = pd.cut(t["porosity_true"], [-np.inf, *edges, np.inf], labels=names, right=True)
    out: dict[str, Any] = {}
    for name in [*names, "all"]:
        g = t if name == "all" else t[band == name]
        if g.empty:
            continue
        shift = g["edge_shift_px"].astype(float)
        tol = targets.porosity_abs_pp * g["edge_px_per_pp"].astype(float)
        out[name] = {"n_images": int(len(g)), "bias_px": round(float(shift.mean()), 4),
                     "mae_px": round(float(shift.abs().mean()), 4),
                     "max_abs_px": round(float(shift.abs().max()), 4),
                     "tolerance_median_px": round(float(tol.median()), 4),
                     "tolerance_min_px": round(float(tol.min()), 4),
                     "share_over": round(float((shift.abs() > tol).mean()), 4),
                     "share_over_bias_removed": round(float(((shift - shift.mean()).abs() > tol).mean()), 4)}
    return out


def skipped_metrics(reason: str) -> dict[str, Any]:
    """The metrics of a validation that did not run: ``{"skipped": True, "reason": reason}``."""
    return {"skipped": True, "reason": reason}


@dataclass
class ValidationResult:
    """What :func:`validate_on_truth` returns: ``table`` (:func:`validation_table`),
    ``metrics`` (errors per mask, estimator and band, and the targets) and ``figures``
    (``{file name: PNG bytes}``)."""

    table: pd.DataFrame
    metrics: dict[str, Any]
    figures: dict[str, bytes]


def _predictor(model_path: Path, params: ValidateParams):
    """``(predict(image) -> class ids, class names)`` of a model file."""
    from porescope.segmentation.devices import configure_cpu_threads, select_device
    from porescope.segmentation.inference import predict_mask
    from porescope.segmentation.models import decision_threshold, load_model

    device = select_device(params.device)
    configure_cpu_threads(params.threads)
    model, payload = load_model(model_path, device)

    def predict(image: np.ndarray) -> np.ndarray:
        return predict_mask(model, image, tile=params.tile, overlap=params.overlap,
                            batch_size=params.batch_size, tta=params.tta, device=device,
                            amp=device.type == "cuda", threshold=decision_threshold(payload),
                            backend=params.backend)
    return predict, payload["class_names"]


def validate_on_truth(params: ValidateParams, synth: Mapping[str, Any], analysis: AnalyzeParams,
                      seed: int, *, model_path: str | Path | None = None,
                      min_region_contrast: float | None = None) -> ValidationResult:
    """Generate the validation set, analyse its masks and compare them with the exact truth.

    Parameters
    ----------
    params : ValidateParams
    synth : mapping
        The ``synthesize`` params group (generator settings; ``mask``: ``opening`` or
        ``core``, the mask convention of the truth).
    analysis : AnalyzeParams
        The measurement (spatial statistics are not run).
    seed : int
        The shared seed.
    model_path : path, optional
        Trained model file; without it only the ground-truth masks are analysed.
    min_region_contrast : float, optional
        Remove the pale predicted regions first, as ``measure.min_region_contrast`` does
        (:func:`porescope.measure.pale_regions.drop_pale_regions`); None = keep them all.

    Returns
    -------
    ValidationResult

    Raises
    ------
    porescope.config.ParamsError
        The generator rejects the merged settings.
    porescope.segmentation.models.ModelFileError
        ``model_path`` is not a porescope model.
    """
    specs = validation_specs(params, synth, seed)
    convention = synth.get("mask", "opening")
    binary_names = {"0": "background", "1": "pore"}          # the synthetic truth masks
    predict, model_names = None, binary_names
    if model_path is not None:
        predict, model_names = _predictor(Path(model_path), params)
    else:
        LOG.info("no model: validating the measurement on the ground-truth masks only")

    rows: list[dict[str, Any]] = []
    vseed = seed + params.seed_offset
    for k, spec in enumerate(tqdm(specs, desc="validate", unit="image")):
        iid = f"val_{k:03d}"
        res = syn.synthesize_image(spec, syn.image_rng(vseed, k))
        truth = dict(res.truth)
        if convention == "core":
            truth["porosity"] = truth["porosity_core"]
        gt = (res.mask_core if convention == "core" else res.mask_opening).astype(np.uint8)
        ref = synthetic_reference(truth, res.pores, include_edges=analysis.include_edges)
        ha = int(truth["analysed_height"])
        edge = pore_edge_length_px(gt[:ha])
        # an image without pores has no edge to shift: its edge figures are undefined
        edge_px_per_pp = gt[:ha].size / edge / 100.0 if edge > 0 else float("nan")
        extra = {"porosity_target": spec.porosity, "mean_diameter_px": spec.mean_diameter_px,
                 "edge_px_per_pp": edge_px_per_pp}
        masks = {"ground truth": gt}
        if predict is not None:
            masks["predicted"] = predict(res.image)
            if min_region_contrast is not None:
                masks["predicted"] = drop_pale_regions(res.image, masks["predicted"],
                                                       min_region_contrast)[0]
        for label, mask in masks.items():
            a = analyse_mask(mask, pixel_size_nm=spec.pixel_size_nm, params=analysis,
                             rng=image_rng(seed, iid, label), image_id=iid,
                             bar_rows=spec.databar_height_px,
                             class_names=model_names if label == "predicted" else binary_names,
                             spatial=False)
            rows += compare_with_reference(a, ref, mask=label, extra=extra)
            rows.append(boolean_known_area_row(a, ref, mask=label,
                                               mean_area_px=truth["expected_area_px"],
                                               extra=extra))
    for r in rows:
        r["edge_shift_px"] = r["porosity_error_pp"] * r["edge_px_per_pp"]
    table = validation_table(rows)

    targets = params.targets
    errors = summarise_errors(table, bands=[s[0] for s in targets.count_abs_pct[:-1]])
    metrics: dict[str, Any] = {
        "n_images": len(specs), "mask_convention": convention,
        "model": str(model_path) if model_path is not None else None,
        "errors": {MASKS[m]: v for m, v in errors.items()},
        "targets": {"porosity_abs_pp": targets.porosity_abs_pp,
                    "count_abs_pct": [list(s) for s in targets.count_abs_pct],
                    **accuracy_targets(errors, table, targets)},
        "segmentation_effect": segmentation_effect(table, targets),
        "edge_shift_px": edge_shift(table, targets),
    }
    figures = {
        "count_error.png": count_error_figure(
            table, title="Validation on truth: count error per estimator",
            targets=list(targets.count_abs_pct)),
        "porosity_error.png": porosity_error_figure(
            table, title="Validation on truth: porosity error", target_pp=targets.porosity_abs_pp),
        "porosity_scatter.png": porosity_scatter_figure(
            table, title="Validation on truth: porosity measured vs true"),
    }
    return ValidationResult(table=table, metrics=metrics,
                            figures={name: figure_png(fig) for name, fig in figures.items()})
