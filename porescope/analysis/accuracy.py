"""How accurate the measurements of predicted masks are, on images with a reference.

For every image, the predicted class-id mask and the ground-truth mask are analysed the same
way (:func:`porescope.analysis.membrane.analyse_mask`; spatial statistics on the prediction
only) and compared with a reference (:func:`assess_predictions`):

* with the exact truth of a synthetic dataset (``truth.csv`` / ``pores.csv``, see
  :func:`porescope.analysis.truth.synthetic_reference`), both masks are compared with it - the
  ground-truth mask gives the error of the measurement alone;
* otherwise the reference is the ground-truth mask analysed the same way
  (:func:`porescope.analysis.truth.mask_reference`).

The result holds the tidy comparison, one wide row per image (:func:`per_image_row`), the
per-image summaries and object tables of the predictions, the figures as PNG bytes and the
error metrics (:func:`accuracy_metrics`).

Examples
--------
>>> import numpy as np
>>> gt = np.zeros((64, 64), np.uint8)
>>> for r, c in ((10, 10), (10, 40), (40, 10), (40, 40)):
...     gt[r:r + 12, c:c + 12] = 1
>>> pred = gt.copy()
>>> pred[40:52, 40:52] = 0                     # one pore missed
>>> res = assess_predictions([("a", pred, gt, None)], AnalyzeParams.from_mapping(
...     {"spatial": {"n_sim": 0}}), seed=0, figures=False)
>>> res.reference, res.metrics["estimators"]["split_labels"]["pred"]["count_mae_pct"]
('ground-truth mask', 25.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis.comparison import compare_with_reference, summarise_errors
from porescope.analysis.figures import (
    count_error_figure,
    distribution_figures,
    figure_png,
    porosity_scatter_figure,
)
from porescope.analysis.membrane import ESTIMATORS, analyse_mask, image_rng
from porescope.analysis.params import AnalyzeParams
from porescope.analysis.truth import mask_reference, synthetic_reference
from porescope.io.tables import PipelineDataError, read_png

__all__ = ["BANDS", "PredictionAccuracy", "read_mask_pair", "per_image_row", "accuracy_metrics",
           "assess_predictions"]

#: Porosity band edges of the metrics (fractions).
BANDS: tuple[float, ...] = (0.20,)


@dataclass
class PredictionAccuracy:
    """What :func:`assess_predictions` returns.

    reference: ``"synthetic truth"`` or ``"ground-truth mask"``. comparison: the tidy
    :func:`~porescope.analysis.comparison.compare_with_reference` rows (image, mask,
    estimator). per_image: one :func:`per_image_row` per image. summaries: the predictions'
    :func:`~porescope.analysis.membrane.analyse_mask` summaries, one row per image. objects:
    every object of every predicted mask. figures: ``{file name: PNG bytes}``. metrics:
    :func:`accuracy_metrics`.
    """

    reference: str
    comparison: pd.DataFrame
    per_image: pd.DataFrame
    summaries: pd.DataFrame
    objects: pd.DataFrame
    figures: dict[str, bytes]
    metrics: dict[str, Any]


def read_mask_pair(pred_path: str | Path, gt_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The predicted and ground-truth class-id masks (2-D uint8 PNGs of the same size).

    Raises
    ------
    porescope.io.tables.PipelineDataError
        A file is missing, not a 2-D uint8 mask, or the sizes differ (the message names it).
    """
    pred_path, gt_path = Path(pred_path), Path(gt_path)
    pred = read_png(pred_path)
    gt = read_png(gt_path)
    for path, arr in ((pred_path, pred), (gt_path, gt)):
        if arr.ndim != 2 or arr.dtype != np.uint8:
            raise PipelineDataError(f"{path}: expected a 2-D uint8 class-id mask, got shape "
                                    f"{arr.shape}, dtype {arr.dtype}")
    if pred.shape != gt.shape:
        raise PipelineDataError(f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but "
                                f"the ground-truth mask {gt_path} is {gt.shape[1]}x{gt.shape[0]} "
                                "(width x height); rerun evaluate")
    return pred, gt


def per_image_row(image_id: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One wide row from the tidy comparison rows of one image: porosity (true, on the
    ground-truth mask, predicted) and, per estimator, the counts (true, ground-truth mask,
    predicted), their errors (%) and the predicted density (per cm^2)."""
    t = pd.DataFrame(rows)
    pred = t[t["mask"] == "predicted"].set_index("estimator")
    gt = t[t["mask"] == "ground truth"].set_index("estimator")
    first = pred.iloc[0]
    synthetic = first["reference"] == "synthetic truth"
    out: dict[str, Any] = {
        "image_id": image_id, "reference": first["reference"],
        "porosity_true": first["porosity_true"] if synthetic else math.nan,
        "porosity_gt_mask": gt.iloc[0]["porosity_measured"] if len(gt) else first["porosity_true"],
        "porosity_pred": first["porosity_measured"],
        "porosity_error_pred_pp": first["porosity_error_pp"],
    }
    for est in ESTIMATORS:
        out[f"count_true_{est}"] = pred.loc[est, "count_true"]
        out[f"count_gt_mask_{est}"] = (gt.loc[est, "count_measured"] if len(gt)
                                       else pred.loc[est, "count_true"])
        out[f"count_pred_{est}"] = pred.loc[est, "count_measured"]
        out[f"count_error_gt_mask_{est}_pct"] = gt.loc[est, "count_error_pct"] if len(gt) else 0.0
        out[f"count_error_pred_{est}_pct"] = pred.loc[est, "count_error_pct"]
        out[f"density_pred_{est}_cm2"] = pred.loc[est, "density_measured_cm2"]
    return out


def accuracy_metrics(comparison: pd.DataFrame, reference: str, *,
                     bands: Sequence[float] = BANDS) -> dict[str, Any]:
    """Error metrics per estimator and mask (``pred``, ``gt_mask``), overall and per porosity
    band (:func:`~porescope.analysis.comparison.summarise_errors`), and the porosity errors
    (pp) per mask."""
    errors = summarise_errors(comparison, bands=bands)
    out: dict[str, Any] = {"reference": reference,
                           "n_images": int(comparison["image_id"].nunique()), "estimators": {}}
    for est in ESTIMATORS:
        per_est: dict[str, Any] = {}
        for mask, by_est in errors.items():
            key = "pred" if mask == "predicted" else "gt_mask"
            stats = by_est[est]
            per_est[key] = {
                "porosity_mae_pp": stats["all"]["porosity_mae_pp"],
                "count_mae_pct": stats["all"]["count_mae_pct"],
                "count_bias_pct": stats["all"]["count_bias_pct"],
                "count_pooled_pct": stats["all"]["count_pooled_pct"],
                "bands": {b: s for b, s in stats.items() if b != "all"},
            }
        out["estimators"][est] = per_est
    pe = comparison.drop_duplicates(["image_id", "mask"])
    out["porosity"] = {("pred" if m == "predicted" else "gt_mask"): {
        "mae_pp": round(float(np.abs(g["porosity_error_pp"]).mean()), 4),
        "max_abs_pp": round(float(np.abs(g["porosity_error_pp"]).max()), 4),
        "bias_pp": round(float(g["porosity_error_pp"].mean()), 4)} for m, g in pe.groupby("mask")}
    return out


def assess_predictions(images: Iterable[tuple[str, np.ndarray, np.ndarray, float | None]],
                       params: AnalyzeParams, seed: int, *,
                       class_names: Mapping[Any, str] | None = None,
                       truth: pd.DataFrame | None = None, pores: pd.DataFrame | None = None,
                       truth_source: str = "truth.csv", figures: bool = True
                       ) -> PredictionAccuracy:
    """Analyse predicted and ground-truth masks and compare them with the reference.

    Parameters
    ----------
    images : iterable of ``(image_id, predicted mask, ground-truth mask, pixel size nm)``
        Class-id masks of the same shape (rows, cols); pixel size ``None`` when unknown.
    params : AnalyzeParams
    seed : int
        Seed of the per-image generators (:func:`~porescope.analysis.membrane.image_rng`,
        purposes ``"analyze"`` / ``"gt"``).
    class_names : mapping, optional
        ``{class id: name}`` of the masks.
    truth, pores : DataFrame, optional
        :func:`porescope.analysis.truth.read_synthetic_truth` of the dataset; with them the
        reference is the exact synthetic truth (rows above a data bar are analysed).
    truth_source : str
        Name of the truth file in messages.
    figures : bool
        False skips the figures (``figures`` is then empty).

    Returns
    -------
    PredictionAccuracy

    Raises
    ------
    porescope.io.tables.PipelineDataError
        An image has no row in ``truth``.
    """
    pore_groups = dict(tuple(pores.groupby("image_id"))) if pores is not None else {}
    comparison: list[dict[str, Any]] = []
    summaries, objects, spatial, pixel_sizes = [], {}, {}, {}
    for sid, pred, gt, px in images:
        bar = 0
        ref_truth = None
        if truth is not None:
            if sid not in truth.index:
                raise PipelineDataError(f"{truth_source}: no row for test image '{sid}'; "
                                        "is --truth the dataset that was ingested?")
            t = truth.loc[sid]
            bar = max(0, pred.shape[0] - int(t["analysed_height"]))
            ref_truth = synthetic_reference(t, pore_groups.get(sid, pores.iloc[:0]),
                                            include_edges=params.include_edges,
                                            image_height=pred.shape[0])
        a_pred = analyse_mask(pred, pixel_size_nm=px, params=params,
                              rng=image_rng(seed, sid, "analyze"), image_id=sid,
                              bar_rows=bar, class_names=class_names)
        a_gt = analyse_mask(gt, pixel_size_nm=px, params=params, rng=image_rng(seed, sid, "gt"),
                            image_id=sid, bar_rows=bar, class_names=class_names, spatial=False)
        if ref_truth is not None:
            comparison += compare_with_reference(a_gt, ref_truth, mask="ground truth")
            comparison += compare_with_reference(a_pred, ref_truth, mask="predicted")
        else:
            comparison += compare_with_reference(a_pred, mask_reference(a_gt), mask="predicted")
        summaries.append(a_pred.summary)
        objects[sid] = a_pred.objects
        spatial[sid] = a_pred.spatial
        pixel_sizes[sid] = px

    comp = pd.DataFrame(comparison)
    reference = str(comp["reference"].iloc[0])
    per_image = pd.DataFrame([per_image_row(sid, [r for r in comparison if r["image_id"] == sid])
                              for sid in objects])
    figs: dict[str, bytes] = {}
    if figures:
        figs = distribution_figures(objects, spatial, pixel_sizes=pixel_sizes,
                                    length_unit=params.length_unit)
        figs["porosity_scatter.png"] = figure_png(porosity_scatter_figure(
            comp, title=f"Test images: porosity measured vs {reference}"))
        figs["count_error.png"] = figure_png(count_error_figure(
            comp, title=f"Test images: count error per estimator (reference: {reference})"))
    return PredictionAccuracy(
        reference=reference, comparison=comp, per_image=per_image,
        summaries=pd.DataFrame(summaries),
        objects=pd.concat(list(objects.values()), ignore_index=True), figures=figs,
        metrics=accuracy_metrics(comp, reference))
