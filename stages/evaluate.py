"""DVC stage ``evaluate``: segment every whole test image and score it against its mask.

Pixel scores (Dice, IoU, precision, recall) per image and class, with mean / median / min / max
over images and the pooled score; object scores (match by IoU at 0.50:0.05:0.95, AP, mAP);
boxplot, overlays and a gallery of the worst images. Predictions of the test images are written
for ``analyze``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import LOG, ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.evaluation import figures as seg_figures
from porescope.evaluation import metrics as seg_metrics
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json, write_png
from porescope.segmentation.devices import configure_cpu_threads, select_device
from porescope.segmentation.inference import predict_mask
from porescope.segmentation.instances import border_classes, separate_objects
from porescope.segmentation.models import decision_threshold, load_model
from porescope.io.tables import read_png, read_table


def _foreground_classes(class_names: dict[str, str]) -> list[int]:
    return sorted(int(k) for k in class_names if int(k) > 0)


def _objects_params(kw: dict[str, Any], class_names: dict[str, str]) -> dict[str, Any]:
    """``evaluate.objects`` with ``method: auto`` resolved: a model with a border class separates
    objects by its interior/border classes (paper 003), any other by the distance watershed."""
    if kw.get("method", "auto") != "auto":
        return kw
    border, interior = border_classes(class_names)
    if border and interior:
        return {**kw, "method": "three_class", "interior": interior[0], "border": border[0]}
    return {**kw, "method": "watershed"}


def _summary(pixel: pd.DataFrame, objects: pd.DataFrame, names: dict[int, str]) -> dict[str, Any]:
    """metrics/evaluate.json: pixel summaries per class (by name) and the object scores."""
    out: dict[str, Any] = {"n_images": int(pixel["image_id"].nunique())}
    summary = seg_metrics.summarise_pixel_scores(pixel)
    for (cls, metric), row in summary.set_index(["class", "metric"]).iterrows():
        stats = {k: round(float(row[k]), 6) for k in ("mean", "median", "min", "max", "pooled")}
        out.setdefault(names.get(int(cls), str(cls)), {})[metric] = stats
    per_threshold = seg_metrics.summarise_object_scores(objects)
    maps = seg_metrics.summarise_map(objects)
    at = per_threshold.set_index("threshold")
    out["objects"] = {
        "map": round(maps["mean"], 6), "map_pooled": round(maps["pooled"], 6),
        "map_min": round(maps["min"], 6),
        **{f"{m}@0.5": round(float(at.loc[0.5, m]), 6) for m in ("precision", "recall", "f1", "ap")},
        **{f"{m}@0.75": round(float(at.loc[0.75, m]), 6) for m in ("precision", "recall", "f1", "ap")},
        "n_true": int(objects.loc[objects["threshold"] == 0.5, "n_true"].sum()),
        "n_pred": int(objects.loc[objects["threshold"] == 0.5, "n_pred"].sum()),
    }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path, help="folder for test-image predictions")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path, help="folder for tables and figures")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params(args.params, "evaluate")
    transparency = float(p.get("overlay_transparency", 0.8))
    if not 0 <= transparency <= 1:
        raise ParamsError(f"evaluate.overlay_transparency must be in [0, 1], got {transparency}")

    device = select_device(p.get("device", "auto"))
    configure_cpu_threads(int(p.get("threads", 0)))
    model, payload = load_model(args.model, device)
    class_names = payload["class_names"]
    threshold = decision_threshold(payload)
    classes = _foreground_classes(class_names)
    names = {c: class_names[str(c)] for c in classes}
    sources = read_table(args.split / "sources.csv")
    test_ids = sources.loc[sources["split"] == "test", "source_id"].tolist()
    if not test_ids:
        raise ParamsError(f"{args.split / 'sources.csv'}: the test split is empty; raise split.test_fraction")
    infer = {k: p[k] for k in ("tile", "overlap", "batch_size", "tta") if k in p}
    objects_kw = _objects_params(dict(p.get("objects", {})), class_names)

    pixel_items, object_items, panels = [], [], {}
    with output_dir(args.predictions) as pred_dir:
        for source_id in tqdm(test_ids, desc="evaluate", unit="image"):
            image = read_png(args.ingested / "images" / f"{source_id}.png")
            truth = read_png(args.ingested / "masks" / f"{source_id}.png")
            pred = predict_mask(model, image, device=device, amp=device.type == "cuda", threshold=threshold, **infer)
            write_png(pred_dir / f"{source_id}.png", pred)
            pixel_items.append((source_id, truth, pred))
            object_items.append((source_id, separate_objects(truth, **objects_kw),
                                 separate_objects(pred, **objects_kw)))
            panels[source_id] = np.hstack([seg_figures.border_overlay(image, truth, pred),
                                           seg_figures.filled_overlay(image, pred, transparency)])
    pixel = seg_metrics.pixel_scores_table(pixel_items, classes)
    if len(classes) > 1:  # also score "any object" (all foreground classes merged)
        merged = [(i, (t > 0).astype(np.uint8), (q > 0).astype(np.uint8)) for i, t, q in pixel_items]
        pixel = pd.concat([pixel, seg_metrics.pixel_scores_table(merged, [1]).assign(**{"class": 0})])
        names[0] = "foreground"
    objects = seg_metrics.object_scores_table(object_items)
    summary = _summary(pixel, objects, names)
    LOG.info("test images: %d; %s", summary["n_images"],
             ", ".join(f"{n}: Dice {summary[n]['dice']['mean']:.4f}" for n in names.values()))

    plots = args.plots
    per_image = pixel.assign(class_name=pixel["class"].map(names))
    write_csv(plots / "per_image.csv", per_image[["image_id", "class_name", "dice", "iou", "precision", "recall",
                                                  "tp", "fp", "fn"]].round(6))
    write_csv(plots / "objects.csv", seg_metrics.summarise_object_scores(objects).round(6))
    write_csv(plots / "objects_per_image.csv", objects.round(6))
    first = per_image[per_image["class"] == (0 if len(classes) > 1 else classes[0])]
    write_bytes(plots / "boxplot.png", seg_figures.figure_png(seg_figures.score_boxplot(first)))
    for source_id, panel in panels.items():
        write_png(plots / "overlays" / f"{source_id}.png", panel)
    worst = first.sort_values(["dice", "image_id"]).head(int(p.get("n_worst", 4)))
    gallery = [(f"{r.image_id}: Dice {r.dice:.3f}", panels[r.image_id]) for r in worst.itertuples()]
    write_bytes(plots / "worst.png", seg_figures.figure_png(seg_figures.gallery(
        gallery, title="Worst test images (left: truth yellow, prediction red; right: prediction filled)")))
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run_stage("evaluate", main)
