"""DVC stage ``analyze``: measure the test-image predictions and check them against the truth.

    python -m stages.analyze --params params.yaml --predictions data/predictions \\
        --ingested data/ingested --split data/split --truth <ingest.source> \\
        --metrics metrics/analyze.json --plots plots/analyze --tables data/analysis

For every test image (``split == test`` in ``<split>/sources.csv``) the predicted class ids
``<predictions>/<source_id>.png`` (written by ``evaluate``) and the ground-truth class ids
``<ingested>/masks/<source_id>.png`` are analysed the same way
(:func:`porescope.analysis.membrane.analyse_mask`, params group ``analyze``): porosity, the
three pore-count estimators, densities, ImageJ-style per-object measurements and spatial
statistics (these on the prediction only).

Reference. When ``<truth>/truth.csv`` exists (the synthetic dataset) the measurements are
compared with the exact truth of the generator: porosity with ``truth.porosity``, the
frame-counting estimators (``median_area``, ``split_labels``) with the exact number of true
pores kept by the guard-frame rule (from ``pores.csv``), the Boolean model with ``n_true``
(pores whose centre lies in the image) - each estimator against the truth in its own counting
convention, see :mod:`porescope.analysis.membrane`. Otherwise the reference is the
ground-truth mask analysed the same way (logged, and recorded as ``reference`` in every output).

Outputs (each written atomically; same inputs -> same bytes):

* ``<metrics>``: per estimator and mask (``predicted``, and ``ground truth`` when the truth is
  synthetic): mean absolute porosity error (pp), mean absolute and mean signed count error (%),
  also per porosity band; number of images; the reference used.
* ``<plots>/summary.csv``: one row per image: porosity (true, on the ground-truth mask, on the
  prediction), counts per estimator (true, GT mask, predicted) and their errors.
* ``<plots>/*.png``: Area / ECD histograms and violins, Feret-angle KDE, correlation matrices,
  Ripley's L per image, measured vs true porosity, count error per estimator vs porosity.
* ``<tables>/objects.csv``: every object of every predicted test mask (ImageJ columns, with
  ``image_id``); ``<tables>/summary.csv``: the per-image summary of the predictions;
  ``<tables>/comparison.csv``: the tidy comparison (one row per image, mask and estimator).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.analysis import membrane as ma
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json
from porescope.io.tables import (
    PipelineDataError,
    read_classes,
    read_png,
    read_table,
)

LOG = logging.getLogger("porescope.analyze")
GROUP = "analyze"
#: porosity band edges of the metrics (fractions)
BANDS = (0.20,)


def _pixel_size(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _read_truth(truth_dir: Path | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    if truth_dir is None:
        return None, None
    path = truth_dir / "truth.csv"
    if not path.is_file():
        return None, None
    truth = read_table(path)
    pores_path = truth_dir / "pores.csv"
    pores = read_table(pores_path)
    for name, table, need in (("truth.csv", truth, ("image_id", "porosity", "n_true", "width",
                                                    "analysed_height")),
                              ("pores.csv", pores, ("image_id", "x", "y", "major", "minor",
                                                    "angle_deg", "n_pixels"))):
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise PipelineDataError(f"{truth_dir / name}: missing column(s) {missing}; expected "
                                    "the output of the synthesize stage")
    return truth.set_index("image_id", drop=False), pores


def _test_sources(split: Path) -> pd.DataFrame:
    path = split / "sources.csv"
    sources = read_table(path)
    for col in ("source_id", "split"):
        if col not in sources.columns:
            raise PipelineDataError(f"{path}: missing column '{col}'; rerun the split stage")
    test = sources[sources["split"] == "test"].sort_values("source_id")
    if test.empty:
        raise ParamsError(f"{path}: the test split is empty; raise split.test_fraction")
    return test


def _read_pair(predictions: Path, ingested: Path, source_id: str) -> tuple[np.ndarray, np.ndarray]:
    pred_path = predictions / f"{source_id}.png"
    gt_path = ingested / "masks" / f"{source_id}.png"
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


def _summary_row(image_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One wide row of plots/analyze/summary.csv from the tidy comparison rows of an image."""
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
    for est in ma.ESTIMATORS:
        out[f"count_true_{est}"] = pred.loc[est, "count_true"]
        out[f"count_gt_mask_{est}"] = (gt.loc[est, "count_measured"] if len(gt)
                                       else pred.loc[est, "count_true"])
        out[f"count_pred_{est}"] = pred.loc[est, "count_measured"]
        out[f"count_error_gt_mask_{est}_pct"] = gt.loc[est, "count_error_pct"] if len(gt) else 0.0
        out[f"count_error_pred_{est}_pct"] = pred.loc[est, "count_error_pct"]
        out[f"density_pred_{est}_cm2"] = pred.loc[est, "density_measured_cm2"]
    return out


def _metrics(comparison: pd.DataFrame, reference: str) -> dict[str, Any]:
    """metrics/analyze.json: per estimator, per mask, overall and per porosity band."""
    errors = ma.summarise_errors(comparison, bands=BANDS)
    out: dict[str, Any] = {"reference": reference,
                           "n_images": int(comparison["image_id"].nunique()), "estimators": {}}
    for est in ma.ESTIMATORS:
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


def run(params: ma.AnalysisParams, seed: int, *, predictions: Path, ingested: Path, split: Path,
        truth_dir: Path | None, metrics: Path, plots: Path, tables: Path) -> dict[str, Any]:
    """Analyse every test image and write all outputs; returns the metrics dict."""
    test = _test_sources(split)
    class_names = read_classes(ingested)
    truth, pores = _read_truth(truth_dir)
    if truth is None:
        LOG.info("no %s: comparing the predictions with the ground-truth masks analysed the same "
                 "way (reference = ground-truth mask)", (truth_dir or Path("<none>")) / "truth.csv")
    else:
        LOG.info("reference: exact synthetic truth from %s", truth_dir / "truth.csv")
    pore_groups = dict(tuple(pores.groupby("image_id"))) if pores is not None else {}

    comparison: list[dict[str, Any]] = []
    summaries, objects, spatial, pixel_sizes = [], {}, {}, {}
    for row in tqdm(list(test.itertuples(index=False)), desc="analyze", unit="image"):
        sid = str(row.source_id)
        pred, gt = _read_pair(predictions, ingested, sid)
        px = _pixel_size(getattr(row, "pixel_size_nm", None))
        bar = 0
        ref_truth = None
        if truth is not None:
            if sid not in truth.index:
                raise PipelineDataError(f"{truth_dir / 'truth.csv'}: no row for test image '{sid}'; "
                                        "is --truth the dataset that was ingested?")
            t = truth.loc[sid]
            bar = max(0, pred.shape[0] - int(t["analysed_height"]))
            ref_truth = ma.synthetic_reference(t, pore_groups.get(sid, pores.iloc[:0]),
                                               include_edges=params.include_edges,
                                               image_height=pred.shape[0])
        a_pred = ma.analyse_mask(pred, pixel_size_nm=px, params=params,
                                 rng=ma.image_rng(seed, sid, "analyze"), image_id=sid,
                                 bar_rows=bar, class_names=class_names)
        a_gt = ma.analyse_mask(gt, pixel_size_nm=px, params=params, rng=ma.image_rng(seed, sid, "gt"),
                               image_id=sid, bar_rows=bar, class_names=class_names, spatial=False)
        if ref_truth is not None:
            comparison += ma.compare_with_reference(a_gt, ref_truth, mask="ground truth")
            comparison += ma.compare_with_reference(a_pred, ref_truth, mask="predicted")
        else:
            comparison += ma.compare_with_reference(a_pred, ma.mask_reference(a_gt), mask="predicted")
        summaries.append(a_pred.summary)
        objects[sid] = a_pred.objects
        spatial[sid] = a_pred.spatial
        pixel_sizes[sid] = px

    comp = pd.DataFrame(comparison)
    reference = str(comp["reference"].iloc[0])
    per_image = pd.DataFrame([_summary_row(sid, [r for r in comparison if r["image_id"] == sid])
                              for sid in objects])
    summary_table = pd.DataFrame(summaries)
    object_table = pd.concat(list(objects.values()), ignore_index=True)
    figures = ma.distribution_figures(objects, spatial, pixel_sizes=pixel_sizes,
                                      length_unit=params.length_unit)
    figures["porosity_scatter.png"] = ma.figure_png(ma.porosity_scatter_figure(
        comp, title=f"Test images: porosity measured vs {reference}"))
    figures["count_error.png"] = ma.figure_png(ma.count_error_figure(
        comp, title=f"Test images: count error per estimator (reference: {reference})"))
    out = _metrics(comp, reference)

    with output_dir(tables) as tmp:
        write_csv(tmp / "objects.csv", object_table)
        write_csv(tmp / "summary.csv", summary_table)
        write_csv(tmp / "comparison.csv", comp)
    with output_dir(plots) as tmp:
        write_csv(tmp / "summary.csv", per_image)
        for name, data in sorted(figures.items()):
            write_bytes(tmp / name, data)
    write_json(metrics, out)
    for est in ma.ESTIMATORS:
        s = out["estimators"][est]["pred"]
        LOG.info("%-14s predicted: porosity MAE %.3f pp, count MAE %.2f %% (bias %+.2f %%)", est,
                 s["porosity_mae_pp"] or math.nan, s["count_mae_pct"] or math.nan,
                 s["count_bias_pct"] or math.nan)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, type=Path,
                        help="folder of predicted class-id PNGs (evaluate's output)")
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--truth", type=Path, default=None,
                        help="the ingest source; its truth.csv / pores.csv are used when present")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path)
    parser.add_argument("--tables", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = ma.AnalysisParams.from_mapping(raw, source=str(args.params), group=GROUP)
    run(params, raw["seed"], predictions=args.predictions, ingested=args.ingested,
        split=args.split, truth_dir=args.truth, metrics=args.metrics, plots=args.plots,
        tables=args.tables)
    return 0


if __name__ == "__main__":
    run_stage("analyze", main)
