"""A deterministic, resumable training loop for segmentation models.

Determinism: the batch order of epoch ``e`` is a permutation drawn from
``numpy.random.default_rng([seed, e])`` (not from a global stream), the torch RNG state is saved
with every checkpoint and ``torch.use_deterministic_algorithms`` is on. Together with the model,
optimiser and scheduler states this makes a run that was killed after epoch ``k`` and resumed
produce the same weights, bit for bit on CPU, as a run that was never interrupted.

Resume file: after every finished epoch the complete state is written atomically to
``resume_path``; it carries a ``fingerprint`` (a hash of params and data) and is only resumed
from when the fingerprint matches, so a changed configuration never continues a stale run.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from porescope.io.atomic import write_bytes
from porescope.segmentation.inference import normalise
from porescope.evaluation.metrics import pixel_counts, scores_from_counts

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "plateau", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the ``train`` params group, minus model and loss)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    scheduler: str = "none"
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.5  # step / plateau: decay factor
    plateau_patience: int = 3
    min_lr: float = 0.0  # cosine / plateau floor
    early_stopping: int = 0  # epochs without val-IoU gain before stopping; 0 = never
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"train.scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"train.epochs, train.batch_size and train.lr must be positive: {self}")


@dataclass
class SegmentationData:
    """Images ``(N, H, W)`` uint8 and masks ``(N, H, W)`` uint8 class ids, all the same size."""

    images: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        if self.images.shape != self.masks.shape or self.images.ndim != 3:
            raise ValueError(f"images {self.images.shape} and masks {self.masks.shape} must both be (N, H, W)")

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class TrainResult:
    """What :func:`fit` returns; ``best_state`` is a detached copy, not a live reference."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_scores: dict[str, float]
    history: list[dict[str, float]]
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int
    seconds: float = 0.0  # wall time of the epochs run in this call
    samples_per_s: float = 0.0  # training throughput of this call (excluding validation)


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.gamma,
                                                          patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.min_lr)
    return None


def _to_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(normalise(images)[:, None]).to(device)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a function of (seed, epoch) only, so resuming is exact."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train_step(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, x: torch.Tensor, y: torch.Tensor, *, amp: bool) -> torch.Tensor:
    """One optimisation step on the batch ``(x, y)`` (float16 autocast when ``amp``); the loss."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, enabled=amp):
        loss = loss_fn(model(x).float(), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def tile_probabilities(model: nn.Module, images: np.ndarray, *, batch_size: int, device: torch.device,
                       amp: bool = False) -> np.ndarray:
    """Class probabilities ``(N, C, H, W)`` float32 of same-sized tiles (sigmoid for C = 1)."""
    model.eval()
    chunks = []
    with torch.inference_mode(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        for start in range(0, len(images), batch_size):
            logits = model(_to_batch(images[start:start + batch_size], device)).float()
            probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)
            chunks.append(probs.cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)


def validation_scores(model: nn.Module, loss_fn: nn.Module, data: SegmentationData, *, batch_size: int,
                      n_classes: int, device: torch.device, amp: bool = False) -> dict[str, float]:
    """Validation loss and pooled (dataset-wise) foreground IoU / Dice over all tiles.

    For multi-class models IoU and Dice are the mean over the non-background classes.
    """
    model.eval()
    total, count = 0.0, 0
    preds = np.empty(data.masks.shape, dtype=np.uint8)
    with torch.inference_mode(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            logits = model(_to_batch(data.images[sl], device)).float()
            target = torch.from_numpy(data.masks[sl].astype(np.int64)).to(device)
            total += float(loss_fn(logits, target)) * len(target)
            count += len(target)
            pred = (logits[:, 0] > 0) if logits.shape[1] == 1 else logits.argmax(1)
            preds[sl] = pred.to(torch.uint8).cpu().numpy()
    classes = [1] if n_classes == 1 else list(range(1, n_classes))
    counts = pixel_counts(data.masks, preds, classes)  # pooled over all tiles
    scores = scores_from_counts(counts["tp"], counts["fp"], counts["fn"])
    return {"loss": total / max(count, 1), "iou": float(scores["iou"].mean()),
            "dice": float(scores["dice"].mean())}


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def _save_resume(path: Path, state: Mapping[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    write_bytes(path, buf.getvalue())


def load_resume(path: str | os.PathLike | None, fingerprint: str) -> dict[str, Any] | None:
    """The saved state at ``path`` if it exists and was made with ``fingerprint``; else None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file is simply not resumed from
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        return None
    return state


def fit(model: nn.Module, loss_fn: nn.Module, train: SegmentationData, val: SegmentationData,
        cfg: TrainConfig, *, n_classes: int, device: torch.device | str = "cpu", amp: bool = True,
        resume_path: str | os.PathLike | None = None, fingerprint: str = "",
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        progress: bool = True) -> TrainResult:
    """Train ``model`` and keep the weights with the best validation IoU.

    ``on_epoch(epoch, row)`` is called after each epoch (also, in order, for the epochs replayed
    from a resume file) with the history row: train_loss, val_loss, val_iou, val_dice, lr.
    ``amp`` applies only on CUDA (float16 autocast with gradient scaling).
    """
    device = torch.device(device)
    use_amp = bool(amp and device.type == "cuda")
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    model.to(device)
    loss_fn.to(device)
    optimizer = _make_optimizer(model, cfg)
    scheduler = _make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    resume_path = Path(resume_path) if resume_path is not None else None

    history: list[dict[str, float]] = []
    best_state, best_epoch, best_iou, bad_epochs, start_epoch = _state_copy(model), -1, -math.inf, 0, 0
    saved = load_resume(resume_path, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"])
        history = list(saved["history"])
        best_state, best_epoch, best_iou = saved["best_state"], saved["best_epoch"], saved["best_iou"]
        bad_epochs, start_epoch = saved["bad_epochs"], saved["epoch"] + 1
    if on_epoch is not None:
        for row in history:
            on_epoch(int(row["epoch"]), row)

    t0 = time.perf_counter()
    train_seconds, samples = 0.0, 0
    stopped_early = bool(history and cfg.early_stopping and bad_epochs >= cfg.early_stopping)
    n = len(train)
    drop_last = n > cfg.batch_size  # a batch of one breaks BatchNorm statistics
    n_batches = n // cfg.batch_size if drop_last else 1
    for epoch in range(start_epoch, cfg.epochs):
        if stopped_early:
            break
        model.train()
        order = epoch_order(n, cfg.seed, epoch)
        running = 0.0
        t_epoch = time.perf_counter()
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress)
        for b in bar:
            idx = np.sort(order[b * cfg.batch_size:(b + 1) * cfg.batch_size]) if drop_last else order
            x = _to_batch(train.images[idx], device)
            y = torch.from_numpy(train.masks[idx].astype(np.int64)).to(device)
            loss = train_step(model, loss_fn, optimizer, scaler, x, y, amp=use_amp)
            running += loss.item()
            bar.set_postfix(loss=f"{running / (b + 1):.4f}")
        train_seconds += time.perf_counter() - t_epoch
        samples += n_batches * cfg.batch_size if drop_last else n
        lr = float(optimizer.param_groups[0]["lr"])
        scores = validation_scores(model, loss_fn, val, batch_size=cfg.batch_size, n_classes=n_classes,
                                   device=device, amp=use_amp)
        row = {"epoch": epoch, "train_loss": running / n_batches, "val_loss": scores["loss"],
               "val_iou": scores["iou"], "val_dice": scores["dice"], "lr": lr}
        history.append(row)
        if scores["iou"] > best_iou:
            best_iou, best_epoch, bad_epochs = scores["iou"], epoch, 0
            best_state = _state_copy(model)
        else:
            bad_epochs += 1
        if scheduler is not None:
            scheduler.step(scores["iou"]) if cfg.scheduler == "plateau" else scheduler.step()
        stopped_early = bool(cfg.early_stopping and bad_epochs >= cfg.early_stopping)
        if resume_path is not None:
            _save_resume(resume_path, {
                "fingerprint": fingerprint, "epoch": epoch, "model": _state_copy(model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(), "history": history,
                "best_state": best_state, "best_epoch": best_epoch, "best_iou": best_iou,
                "bad_epochs": bad_epochs})
        if on_epoch is not None:
            on_epoch(epoch, row)
    best_row = next((r for r in history if r["epoch"] == best_epoch), {})
    return TrainResult(best_state=best_state, best_epoch=best_epoch,
                       best_scores={k: float(v) for k, v in best_row.items() if k.startswith("val_")},
                       history=history, epochs_run=len(history), stopped_early=stopped_early,
                       resumed_from_epoch=start_epoch, seconds=time.perf_counter() - t0,
                       samples_per_s=samples / train_seconds if train_seconds else 0.0)

