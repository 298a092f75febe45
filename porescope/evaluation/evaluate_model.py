"""Scoring a model on the whole test images of a split (the ``evaluate`` stage's work).

:func:`run_evaluate` segments every test image with sliding-window inference and scores it
against its mask: pixel scores (Dice, IoU, precision, recall) per image and class, with mean /
median / min / max over images and the pooled score; object scores (match by IoU at
0.50:0.05:0.95, AP, mAP); a boxplot, overlays and a gallery of the worst images. The
predictions of the test images are written for the measurement of the test set.

Examples
--------
>>> from porescope.config import parse_group
>>> p = parse_group(EvaluateParams, {"tile": 128, "objects": {"method": "watershed"}}, group="evaluate")
>>> p.tile, p.objects.method, p.objects.h
(128, 'watershed', 2.0)
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from porescope.config import Fail, ParamsError
from porescope.evaluation import figures as seg_figures
from porescope.evaluation import metrics as seg_metrics
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json, write_png
from porescope.io.mask_encoding import IGNORE_ID, annotated
from porescope.io.tables import read_png, read_table
from porescope.segmentation.inference import predict_mask
from porescope.segmentation.instances import border_classes, separate_objects
from porescope.segmentation.models import load_model

LOG = logging.getLogger("porescope.evaluate")


@dataclass(frozen=True)
class ObjectsParams:
    """``evaluate.objects``: how objects are separated in truth and prediction before matching.

    ``auto``: ``three_class`` (interior / border classes, paper 003) if the model has a border
    class, else ``watershed``. Other keys as :func:`porescope.segmentation.instances.separate_objects`.
    ``seed_h`` (px, ``three_class`` only, ``None`` = off) splits the *predicted* interiors at
    necks before they seed the objects, for a model whose border lines break where objects
    touch. ``truth_seed_h`` (px, ``three_class`` only, ``None`` = off, the default) does the same
    to the *annotated* interiors: for annotations whose touching objects share no separating
    line (Au tetrahedra: red touches red where two particles meet), so that each annotated
    particle, not each cluster, is a true object. It depends on the annotation only, never on
    the prediction; by default the true objects are the annotated classes' components.
    """

    method: Literal["auto", "components", "watershed", "three_class"] = "auto"
    h: float = field(default=2.0, metadata={"gt": 0})
    min_distance: int = field(default=5, metadata={"ge": 1})
    split_method: Literal["h_maxima", "peak_local_max"] = "h_maxima"
    connectivity: Literal[4, 8] = 8
    interior: int = field(default=1, metadata={"ge": 1})
    border: int = field(default=2, metadata={"ge": 1})
    seed_h: float | None = field(default=None, metadata={"gt": 0})
    truth_seed_h: float | None = field(default=None, metadata={"gt": 0})


@dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``: sliding-window inference on whole test images and the figures."""

    tile: int = field(default=256, metadata={"ge": 1})  # px
    overlap: int = field(default=64, metadata={"ge": 0})  # px
    batch_size: int = field(default=4, metadata={"ge": 1})
    tta: bool = False  # average over flips
    device: str = "auto"
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    threads: int = field(default=0, metadata={"ge": 0})
    objects: ObjectsParams = field(default_factory=ObjectsParams)
    n_worst: int = field(default=4, metadata={"ge": 0})
    overlay_transparency: float = field(default=0.8, metadata={"ge": 0, "le": 1})

    def check(self, fail: Fail) -> None:
        if self.overlap >= self.tile:
            raise fail("overlap", f"must be smaller than evaluate.tile ({self.tile})")


def resolve_objects(objects: ObjectsParams, class_names: dict[str, str]) -> ObjectsParams:
    """``method: auto`` resolved: a model with a border class separates objects by its
    interior/border classes (paper 003), any other by the distance watershed.

    Raises :class:`~porescope.config.ParamsError` when ``seed_h`` or ``truth_seed_h`` is set but
    the method is not ``three_class``: they cut interiors, which only that method has, and a
    setting that silently does nothing would mislead whoever compares the scores.

    Examples
    --------
    >>> resolve_objects(ObjectsParams(), {"0": "background", "1": "pore"}).method
    'watershed'
    >>> resolve_objects(ObjectsParams(seed_h=2.0), {"0": "background", "1": "pore"})
    Traceback (most recent call last):
    ...
    porescope.config.ParamsError: evaluate.objects.seed_h = 2: cuts interiors, which only the three_class method has; this model's classes ['background', 'pore'] resolve to 'watershed'. Set it to null, or train three-class targets (ingest.target: three_class).
    """
    resolved = objects
    if objects.method == "auto":
        border, interior = border_classes(class_names)
        resolved = (dataclasses.replace(objects, method="three_class", interior=interior[0], border=border[0])
                    if border and interior else dataclasses.replace(objects, method="watershed"))
    if resolved.method != "three_class":
        for key in ("seed_h", "truth_seed_h"):
            if getattr(resolved, key) is not None:
                names = [class_names[k] for k in sorted(class_names, key=int)]
                raise ParamsError(
                    f"evaluate.objects.{key} = {getattr(resolved, key):g}: cuts interiors, which only the "
                    f"three_class method has; this model's classes {names} resolve to {resolved.method!r}. "
                    "Set it to null, or train three-class targets (ingest.target: three_class).")
    return resolved


def object_labels(truth: np.ndarray, pred: np.ndarray, objects_kw: dict[str, Any]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted object labels of one image, separated by ``objects_kw``
    (:func:`~porescope.segmentation.instances.separate_objects`; ``seed_h`` cuts the predicted
    interiors at necks, ``truth_seed_h`` the annotated ones). With not-annotated pixels
    (``IGNORE_ID``) in ``truth``, the truth is separated on its annotated part and
    :func:`~porescope.evaluation.metrics.drop_unannotated_objects` removes the objects lying
    mostly in the not-annotated region from both.
    """
    objects_kw = dict(objects_kw)
    truth_h = objects_kw.pop("truth_seed_h", None)
    truth_kw = {**objects_kw, "seed_h": truth_h}
    hidden = ~annotated(truth)
    if not hidden.any():
        return separate_objects(truth, **truth_kw), separate_objects(pred, **objects_kw)
    truth = np.where(hidden, 0, truth).astype(truth.dtype)
    return seg_metrics.drop_unannotated_objects(separate_objects(truth, **truth_kw),
                                                separate_objects(pred, **objects_kw), hidden)


def summarise(pixel: pd.DataFrame, objects: pd.DataFrame, names: dict[int, str]) -> dict[str, Any]:
    """The metrics summary: pixel summaries per class (by name) and the object scores."""
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


def per_dataset_scores(pixel: pd.DataFrame, objects: pd.DataFrame, dataset_of: dict[str, str],
                       names: dict[int, str]) -> pd.DataFrame:
    """Scores per dataset (``ingest.sources``) and class: ``dataset, class_name, n_images,
    dice_mean, dice_pooled, iou_mean, iou_pooled, map, ap@0.5`` (mean over the dataset's images
    and pooled over them, as in the whole summary).

    Examples
    --------
    >>> t = np.zeros((8, 8), np.uint8); t[2:5, 2:5] = 1
    >>> pixel = seg_metrics.pixel_scores_table([("a__1", t, t), ("b__1", t, 0 * t)])
    >>> objects = seg_metrics.object_scores_table([("a__1", t, t), ("b__1", t, 0 * t)])
    >>> per_dataset_scores(pixel, objects, {"a__1": "a", "b__1": "b"}, {1: "pore"})[["dataset", "dice_mean", "map"]]
      dataset  dice_mean  map
    0       a        1.0  1.0
    1       b        0.0  0.0
    """
    rows = []
    pixel_ds = pixel["image_id"].map(dataset_of)
    object_ds = objects["image_id"].map(dataset_of)
    for dataset in sorted(set(pixel_ds.dropna())):
        part = pixel[pixel_ds == dataset]
        maps = seg_metrics.summarise_map(objects[object_ds == dataset])
        at = seg_metrics.summarise_object_scores(objects[object_ds == dataset]).set_index("threshold")
        summary = seg_metrics.summarise_pixel_scores(part).set_index(["class", "metric"])
        for cls in sorted(part["class"].unique()):
            rows.append({"dataset": dataset, "class_name": names.get(int(cls), str(cls)),
                         "n_images": int(part.loc[part["class"] == cls, "image_id"].nunique()),
                         **{f"{m}_{k}": round(float(summary.loc[(cls, m), k]), 6)
                            for m in ("dice", "iou") for k in ("mean", "pooled")},
                         "map": round(maps["mean"], 6), "ap@0.5": round(float(at.loc[0.5, "ap"]), 6)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Scores:
    """What :func:`score_predictions` measured: ``pixel`` (one row per image and class, class 0 =
    all foreground classes merged when there are several), ``objects`` (one row per image and IoU
    threshold), ``summary`` (the metrics JSON) and ``names`` (class id -> name)."""

    pixel: pd.DataFrame
    objects: pd.DataFrame
    summary: dict[str, Any]
    names: dict[int, str]


def score_predictions(items: list[tuple[str, np.ndarray, np.ndarray]], class_names: dict[str, str],
                      objects: ObjectsParams) -> Scores:
    """Pixel and object scores of predicted class maps against their truth.

    Parameters
    ----------
    items : list of (str, numpy.ndarray, numpy.ndarray)
        ``(image id, truth, prediction)``: class-id maps of one shape per image; truth pixels
        ``IGNORE_ID`` (not annotated) are skipped by every score.
    class_names : dict
        ``{"0": "background", "1": ...}`` as in a model file.
    objects : ObjectsParams
        How objects are separated (``method: auto`` resolved by :func:`resolve_objects`).

    Returns
    -------
    Scores

    Saved predictions can be scored again with other object params (e.g. each ``seed_h`` of a
    sweep) without running the network again.

    Examples
    --------
    >>> t = np.zeros((32, 32), np.uint8); t[4:12, 4:12] = 1; t[20:28, 20:28] = 1
    >>> p = t.copy(); p[20:28, 20:28] = 0
    >>> s = score_predictions([("a", t, p)], {"0": "background", "1": "pore"}, ObjectsParams())
    >>> s.summary["pore"]["dice"]["mean"], s.summary["objects"]["recall@0.5"]
    (0.666667, 0.5)
    """
    classes = sorted(int(k) for k in class_names if int(k) > 0)
    names = {c: class_names[str(c)] for c in classes}
    objects_kw = dataclasses.asdict(resolve_objects(objects, class_names))
    pixel = seg_metrics.pixel_scores_table(items, classes)  # skips IGNORE_ID
    if len(classes) > 1:  # also score "any object" (all foreground classes merged)
        merged = [(i, np.where(annotated(t), t > 0, IGNORE_ID).astype(np.uint8), (q > 0).astype(np.uint8))
                  for i, t, q in items]
        pixel = pd.concat([pixel, seg_metrics.pixel_scores_table(merged, [1]).assign(**{"class": 0})])
        names[0] = "foreground"
    table = seg_metrics.object_scores_table([(i, *object_labels(t, q, objects_kw)) for i, t, q in items])
    return Scores(pixel, table, summarise(pixel, table, names), names)


def run_evaluate(params: EvaluateParams, *, model: str | os.PathLike, ingested: str | os.PathLike,
                 split: str | os.PathLike, predictions: str | os.PathLike, metrics: str | os.PathLike,
                 plots: str | os.PathLike) -> dict[str, Any]:
    """Evaluate the model file ``model`` on the test sources of ``split``; returns the summary.

    Writes the predicted masks to ``predictions/<source_id>.png`` (atomically, as one folder), the
    summary JSON to ``metrics`` and, under ``plots``: ``per_image.csv``, ``objects.csv``,
    ``objects_per_image.csv``, ``boxplot.png``, ``overlays/<source_id>.png`` and ``worst.png``.
    """
    ingested, split, plots = Path(ingested), Path(split), Path(plots)
    loaded = load_model(model, params.device, threads=params.threads)
    device, class_names = loaded.device, loaded.class_names
    classes = sorted(int(k) for k in class_names if int(k) > 0)
    sources = read_table(split / "sources.csv")
    test_ids = sources.loc[sources["split"] == "test", "source_id"].tolist()
    if not test_ids:
        raise ParamsError(f"{split / 'sources.csv'}: the test split is empty; raise split.test_fraction")
    resolve_objects(params.objects, class_names)  # bad object params fail before any inference

    items, panels = [], {}
    with output_dir(predictions) as pred_dir:
        for source_id in tqdm(test_ids, desc="evaluate", unit="image"):
            image = read_png(ingested / "images" / f"{source_id}.png")
            truth = read_png(ingested / "masks" / f"{source_id}.png")
            pred = predict_mask(loaded.model, image, device=device, amp=device.type == "cuda",
                                threshold=loaded.threshold, tile=params.tile, overlap=params.overlap,
                                batch_size=params.batch_size, tta=params.tta, backend=params.backend)
            write_png(pred_dir / f"{source_id}.png", pred)
            items.append((source_id, truth, pred))
            truth = np.where(annotated(truth), truth, 0).astype(truth.dtype)  # overlay: no ignore
            panels[source_id] = np.hstack([seg_figures.border_overlay(image, truth, pred),
                                           seg_figures.filled_overlay(image, pred, params.overlay_transparency)])
    scored = score_predictions(items, class_names, params.objects)
    pixel, objects, summary, names = scored.pixel, scored.objects, scored.summary, scored.names
    ingest_sources = read_table(ingested / "sources.csv") if (ingested / "sources.csv").is_file() else pd.DataFrame()
    by_dataset = None  # several datasets (ingest.sources): a table per dataset too
    if "dataset" in ingest_sources.columns and ingest_sources["dataset"].nunique() > 1:
        dataset_of = dict(zip(ingest_sources["source_id"].astype(str), ingest_sources["dataset"].astype(str)))
        by_dataset = per_dataset_scores(pixel, objects, dataset_of, names)
        summary["datasets"] = {d: {r["class_name"]: {k: r[k] for k in by_dataset.columns[2:]}
                                   for r in part.to_dict("records")}
                               for d, part in by_dataset.groupby("dataset", sort=True)}
    LOG.info("test images: %d; %s", summary["n_images"],
             ", ".join(f"{n}: Dice {summary[n]['dice']['mean']:.4f}" for n in names.values()))

    per_image = pixel.assign(class_name=pixel["class"].map(names))
    write_csv(plots / "per_image.csv", per_image[["image_id", "class_name", "dice", "iou", "precision", "recall",
                                                  "tp", "fp", "fn"]].round(6))
    write_csv(plots / "objects.csv", seg_metrics.summarise_object_scores(objects).round(6))
    write_csv(plots / "objects_per_image.csv", objects.round(6))
    if by_dataset is not None:
        write_csv(plots / "per_dataset.csv", by_dataset)
    first = per_image[per_image["class"] == (0 if len(classes) > 1 else classes[0])]
    write_bytes(plots / "boxplot.png", seg_figures.figure_png(seg_figures.score_boxplot(first)))
    for source_id, panel in panels.items():
        write_png(plots / "overlays" / f"{source_id}.png", panel)
    worst = first.sort_values(["dice", "image_id"]).head(params.n_worst)
    gallery = [(f"{r.image_id}: Dice {r.dice:.3f}", panels[r.image_id]) for r in worst.itertuples()]
    write_bytes(plots / "worst.png", seg_figures.figure_png(seg_figures.gallery(
        gallery, title="Worst test images (left: truth yellow, prediction red; right: prediction filled)")))
    write_json(metrics, summary)
    return summary
