"""Training a segmentation model from an augmented dataset and a split (the ``train`` stage's work).

:class:`TrainParams` is the ``train`` params group (model, loss, optimisation, device);
:func:`run_train` reads the augmented train samples and the val tiles, builds the network
(random init, optional local encoder weights or a previous porescope model to start from),
fits it with :func:`porescope.segmentation.training.fit` (deterministic, resumable), calibrates
the binary decision threshold on the val tiles and writes the best model file.

Examples
--------
>>> from porescope.config import parse_group
>>> p = parse_group(TrainParams, {"epochs": 2, "loss": {"focal": 1.0, "dice": 0.5}}, group="train")
>>> p.train_config(seed=42).epochs, p.model_config(n_classes=2)["classes"]
(2, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from porescope.config import Fail, ParamsError, to_mapping
from porescope.io.mask_encoding import annotated
from porescope.io.stacks import open_stack, table_rows
from porescope.io.tables import read_classes, read_table
from porescope.segmentation import devices, inference, losses, models, training

LOG = logging.getLogger("porescope.train")


@dataclass(frozen=True)
class TrainParams:
    """``train`` params group: segmentation-models-pytorch network, loss and optimisation."""

    arch: str = "Unet"  # any smp architecture name
    encoder: str = "tu-mobilenetv3_small_100"  # any smp / timm ("tu-...") encoder name
    encoder_depth: int = field(default=5, metadata={"ge": 1})
    decoder_channels: tuple[int, ...] | None = (64, 32, 16, 16, 8)
    full_res_channels: int = field(default=0, metadata={"ge": 0})  # 0 = off; models.FullResolutionSkip
    encoder_weights: str | None = None  # local encoder state dict
    init_from: str | None = None  # a previous porescope model file to start from
    task: Literal["auto", "binary", "multiclass"] = "auto"
    loss: str | dict[str, float] = "bce+dice"
    class_weights: tuple[float, ...] | None = None
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.5
    tversky_beta: float = 0.5
    epochs: int = field(default=6, metadata={"ge": 1})
    batch_size: int = field(default=16, metadata={"ge": 1})
    lr: float = field(default=0.003, metadata={"gt": 0})
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = field(default=0.0, metadata={"ge": 0})
    momentum: float = field(default=0.9, metadata={"ge": 0})
    scheduler: Literal["none", "step", "plateau", "cosine"] = "cosine"
    step_size: int = field(default=10, metadata={"ge": 1})
    gamma: float = field(default=0.5, metadata={"gt": 0})
    plateau_patience: int = field(default=3, metadata={"ge": 0})
    min_lr: float = field(default=0.0, metadata={"ge": 0})
    early_stopping: int = field(default=0, metadata={"ge": 0})  # 0 = off
    calibrate_threshold: bool = True
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True
    threads: int = field(default=0, metadata={"ge": 0})  # 0 = one per available core (max 8)

    def check(self, fail: Fail) -> None:
        try:
            losses.parse_loss_spec(self.loss)
        except ValueError as exc:
            raise fail("loss", str(exc)) from None

    def model_config(self, n_classes: int) -> dict[str, Any]:
        """The model config for a dataset of ``n_classes`` classes (1 output channel for binary)."""
        if self.task == "binary" and n_classes != 2:
            raise ParamsError(f"train.task=binary needs 2 classes in the dataset, it has {n_classes}")
        out_channels = 1 if (n_classes == 2 and self.task != "multiclass") else n_classes
        return models.model_config(self.arch, self.encoder, out_channels, encoder_depth=self.encoder_depth,
                                   decoder_channels=self.decoder_channels,
                                   full_res_channels=self.full_res_channels)

    def train_config(self, seed: int) -> training.TrainConfig:
        """The optimisation settings of :func:`porescope.segmentation.training.fit`."""
        keys = training.TrainConfig.__dataclass_fields__
        return training.TrainConfig(**{k: getattr(self, k) for k in keys if k != "seed"}, seed=seed)


@dataclass
class TrainRun:
    """What :func:`run_train` did: the fit result and what was written to the model file."""

    result: training.TrainResult
    model_config: dict[str, Any]
    class_names: dict[Any, str]
    meta: dict[str, Any]
    device: torch.device
    threads: int
    train_samples: int
    val_tiles: int

    def metrics(self) -> dict[str, Any]:
        """The training summary: best epoch, epochs run, val scores, threshold, data sizes."""
        r = self.result
        return {"best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "stopped_early": r.stopped_early,
                "val_iou": r.best_scores.get("val_iou"), "val_dice": r.best_scores.get("val_dice"),
                "threshold": self.meta["threshold"], "train_samples": self.train_samples,
                "val_tiles": self.val_tiles}


def load_data(augmented: Path, ingested: Path, split: Path) -> tuple[training.SegmentationData,
                                                                     training.SegmentationData]:
    """The augmented train samples (``images.npy`` / ``masks.npy``, the rows of ``samples.csv``)
    and the val tiles of the split (their rows of the ingest stacks ``tiles/images.npy`` /
    ``masks.npy``, in the split manifest's order): images and class-id masks."""
    n = len(read_table(augmented / "samples.csv"))
    # read whole into memory: every sample is used every epoch
    train = training.SegmentationData(np.array(open_stack(augmented / "images.npy", n_rows=n)),
                                      np.array(open_stack(augmented / "masks.npy", n_rows=n)))
    tiles = read_table(split / "tiles.csv")
    val_ids = tiles.loc[tiles["split"] == "val", "tile_id"].tolist()
    if not val_ids:
        raise ParamsError(f"{split / 'tiles.csv'}: the val split is empty; raise split.val_fraction")
    ingested_ids = read_table(ingested / "tiles.csv", ("tile_id",), unique="tile_id")["tile_id"]
    rows = table_rows(ingested_ids, val_ids, ingested / "tiles.csv")
    # the ingest stacks are memory-mapped: only the val rows are read
    val = training.SegmentationData(*(open_stack(ingested / "tiles" / f"{kind}.npy", n_rows=len(ingested_ids))[rows]
                                      for kind in ("images", "masks")))
    return train, val


def fingerprint(params: Mapping, config: dict[str, Any], *arrays: np.ndarray) -> str:
    """Hash of params, model config, training code and data: a resume file is used only when it matches."""
    digest = hashlib.sha256(json.dumps({"params": params, "model": config}, sort_keys=True).encode())
    for module in (training, losses, models):
        digest.update(Path(module.__file__).read_bytes())
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()


def annotated_area_threshold(proba: np.ndarray, masks: np.ndarray) -> float:
    """:func:`~porescope.segmentation.inference.area_matching_threshold` of foreground
    probabilities ``proba`` against the class-id ``masks`` (same shape), on the annotated pixels
    only: not-annotated pixels (``IGNORE_ID``) neither add true area nor compete for it.

    Examples
    --------
    >>> proba = np.array([0.9, 0.3, 0.6, 0.99, 0.99])
    >>> masks = np.array([1, 0, 1, 255, 255], np.uint8)
    >>> round(annotated_area_threshold(proba, masks), 6)  # 2 true px: 0.9 and 0.6 lie above
    0.3
    """
    keep = annotated(masks)
    if keep.all():
        return inference.area_matching_threshold(proba, masks > 0)
    return inference.area_matching_threshold(proba[keep], masks[keep] > 0)


def calibrated_threshold(params: TrainParams, model: torch.nn.Module, best_state: dict[str, torch.Tensor],
                         val: training.SegmentationData, config: dict[str, Any], device: torch.device,
                         batch_size: int) -> float:
    """Decision threshold of a binary model: area-matched on the val tiles, or 0.5 when off."""
    if config["classes"] != 1 or not params.calibrate_threshold:
        return 0.5
    model.load_state_dict(best_state)
    proba = training.tile_probabilities(model, val.images, batch_size=batch_size, device=device)
    threshold = annotated_area_threshold(proba[:, 0], val.masks)
    LOG.info("area-matched decision threshold on the val tiles: %.4f", threshold)
    return round(threshold, 6)


def object_ecd_percentiles(masks: np.ndarray) -> list[float] | None:
    """5th, 50th and 95th percentile of the ECD (px) of the objects in ``masks`` that do not
    touch a tile edge: the pore sizes a model has seen, for the measure stage's size guard
    (:mod:`porescope.measure.quality`). ``None`` when no object is whole.

    Examples
    --------
    >>> m = np.zeros((1, 64, 64), np.uint8)
    >>> m[0, 10:20, 10:20] = 1          # a 10 x 10 square: ECD 11.28 px
    >>> m[0, 40:44, 40:44] = 1          # 4 x 4: ECD 4.51 px
    >>> object_ecd_percentiles(m)
    [4.85, 7.9, 10.95]
    """
    import cv2

    ecd = []
    for mask in masks:
        objects = (mask > 0) & annotated(mask)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(objects.astype(np.uint8), connectivity=8)
        h, w = mask.shape
        x, y, bw, bh, area = (stats[1:, k] for k in range(5))
        whole = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
        ecd.extend(np.sqrt(4.0 * area[whole] / np.pi).tolist())
    if not ecd:
        return None
    return [round(float(v), 2) for v in np.percentile(ecd, [5, 50, 95])]


def run_train(params: TrainParams, seed: int, *, augmented: str | os.PathLike, ingested: str | os.PathLike,
              split: str | os.PathLike, model_path: str | os.PathLike, resume: str | os.PathLike,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None,
              onnx_path: str | os.PathLike | None = None) -> TrainRun:
    """Train on ``augmented`` (validating on the split's val tiles) and write the best model file.

    With ``onnx_path``, the best network is also exported there as ONNX (dynamic batch and image
    size; :func:`porescope.segmentation.onnx_runtime.export_onnx`) for ONNX Runtime inference.

    ``resume`` is the resume checkpoint (written after every epoch, continued from when its
    fingerprint matches); ``on_epoch(epoch, row)`` gets every epoch's history row. The caller
    removes ``resume`` once it has recorded the run.
    """
    augmented, ingested, split = Path(augmented), Path(ingested), Path(split)
    class_names = read_classes(ingested)
    config = params.model_config(len(class_names))
    cfg = params.train_config(seed)
    train_data, val_data = load_data(augmented, ingested, split)
    LOG.info("train: %d samples, val: %d tiles, model %s", len(train_data), len(val_data), config)

    device = devices.select_device(params.device)
    threads = devices.configure_cpu_threads(params.threads)
    torch.manual_seed(cfg.seed)
    model = models.build_model(config)
    if params.encoder_weights:
        models.load_encoder_weights(model, params.encoder_weights)
    if params.init_from:
        report = models.init_from_model(model, params.init_from)
        LOG.info("initialised %d tensors from %s (%d skipped)", len(report["copied"]), params.init_from,
                 len(report["skipped"]))
    loss_fn = losses.build_loss(params.loss, config["classes"], params.class_weights, focal_gamma=params.focal_gamma,
                                tversky_alpha=params.tversky_alpha, tversky_beta=params.tversky_beta)
    result = training.fit(model, loss_fn, train_data, val_data, cfg, n_classes=config["classes"], device=device,
                          amp=params.amp, resume_path=resume,
                          fingerprint=fingerprint({**to_mapping(params), "seed": seed}, config, train_data.images,
                                                  train_data.masks, val_data.images, val_data.masks),
                          on_epoch=on_epoch)
    if result.resumed_from_epoch:
        LOG.info("resumed after epoch %d from %s", result.resumed_from_epoch, resume)
    threshold = calibrated_threshold(params, model, result.best_state, val_data, config, device, cfg.batch_size)
    meta = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "threshold": threshold,
            **result.best_scores, "object_ecd_px": object_ecd_percentiles(val_data.masks)}
    models.save_model_file(model_path, result.best_state, config, {str(k): v for k, v in class_names.items()}, meta)
    if onnx_path is not None:
        from porescope.segmentation.onnx_runtime import export_onnx

        model.load_state_dict(result.best_state)
        export_onnx(model, onnx_path)
    return TrainRun(result, config, class_names, meta, device, threads, len(train_data), len(val_data))
