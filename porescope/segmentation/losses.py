"""Training losses: weighted sums of smp's BCE / CE / Dice / Focal / Jaccard / Tversky.

A loss is specified as a string (``"dice"``, ``"bce+dice"``) or a mapping of term -> weight
(``{"focal": 1.0, "dice": 1.0}``, paper 003). Class weights (one per class, e.g. paper 003's
background 0.2 / interior 0.2 / border 0.8) scale each class's contribution to every term that
supports them. Binary models take one logit channel and targets in {0, 1}; multi-class models
take ``C`` logit channels and integer targets.

Not-annotated pixels (target :data:`~porescope.io.mask_encoding.IGNORE_ID`, partial annotations)
are skipped as nnU-Net's ignore label is: when a batch holds any, every term is computed on the
annotated pixels only, gathered into one flat sample, so the loss equals the loss of a batch made
of those pixels alone (means and Dice/Jaccard/Tversky sums run over annotated pixels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from porescope.io.mask_encoding import IGNORE_ID
from porescope.segmentation.torch_compat import import_smp

LOSS_TERMS = ("bce", "ce", "dice", "focal", "jaccard", "tversky")


def parse_loss_spec(spec: str | Mapping[str, float]) -> dict[str, float]:
    """Normalise a loss spec to ``{term: weight}``; raises ``ValueError`` naming a bad term."""
    if isinstance(spec, str):
        terms = {t.strip().lower(): 1.0 for t in spec.split("+") if t.strip()}
    elif isinstance(spec, Mapping):
        terms = {str(k).lower(): float(v) for k, v in spec.items()}
    else:
        raise ValueError(f"loss must be a string like 'bce+dice' or a mapping, got {spec!r}")
    unknown = sorted(set(terms) - set(LOSS_TERMS))
    if unknown or not terms:
        raise ValueError(f"unknown loss term(s) {unknown or spec!r}; choose from {', '.join(LOSS_TERMS)}")
    if any(w < 0 for w in terms.values()) or not any(w > 0 for w in terms.values()):
        raise ValueError(f"loss weights must be >= 0 with at least one > 0, got {terms}")
    return terms


class _WeightedCrossEntropy(nn.Module):
    """Pixel-wise (binary) cross-entropy with optional per-class weights."""

    def __init__(self, n_classes: int, class_weights: torch.Tensor | None):
        super().__init__()
        self.n_classes = n_classes
        self.register_buffer("weights", class_weights if class_weights is not None else torch.ones(max(n_classes, 2)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.n_classes == 1:
            pixel_w = self.weights[target.long()]  # weight of each pixel's true class
            return F.binary_cross_entropy_with_logits(logits[:, 0], target.float(), weight=pixel_w)
        return F.cross_entropy(logits, target.long(), weight=self.weights)


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; ``forward(logits, target)`` with target ``(N, H, W)`` ints."""

    def __init__(self, terms: Mapping[str, float], n_classes: int,
                 class_weights: Sequence[float] | None = None, *, focal_gamma: float = 2.0,
                 tversky_alpha: float = 0.5, tversky_beta: float = 0.5):
        super().__init__()
        smp = import_smp()
        mode = smp.losses.BINARY_MODE if n_classes == 1 else smp.losses.MULTICLASS_MODE
        n_weights = 2 if n_classes == 1 else n_classes
        if class_weights is not None and len(class_weights) != n_weights:
            raise ValueError(f"class_weights needs {n_weights} values (one per class), got {list(class_weights)}")
        weights = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights is not None else None
        # smp's region losses take class weights only in multi-class mode.
        cw = list(class_weights) if (class_weights is not None and n_classes > 1) else None
        builders = {
            "bce": lambda: _WeightedCrossEntropy(n_classes, weights),
            "ce": lambda: _WeightedCrossEntropy(n_classes, weights),
            "dice": lambda: smp.losses.DiceLoss(mode, class_weights=cw),
            "focal": lambda: smp.losses.FocalLoss(mode, gamma=focal_gamma, class_weights=cw),
            "jaccard": lambda: smp.losses.JaccardLoss(mode, class_weights=cw),
            "tversky": lambda: smp.losses.TverskyLoss(mode, alpha=tversky_alpha, beta=tversky_beta,
                                                      class_weights=cw),
        }
        self.weights = {name: float(w) for name, w in terms.items() if w > 0}
        self.terms = nn.ModuleDict({name: builders[name]() for name in self.weights})
        self.binary = n_classes == 1

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        hidden = target == IGNORE_ID
        if bool(hidden.any()):
            keep = ~hidden
            if not bool(keep.any()):
                return logits.sum() * 0.0  # nothing annotated: no signal, but a graph
            # annotated pixels as one (1, C, 1, M) sample: every term sees only them
            logits = logits.permute(0, 2, 3, 1)[keep].T[None, :, None, :]
            target = target[keep][None, None, :]
        total = logits.new_zeros(())
        for name, term in self.terms.items():
            if name in ("bce", "ce"):
                value = term(logits, target)
            elif self.binary:
                value = term(logits, target.unsqueeze(1).float())
            else:
                value = term(logits, target.long())
            total = total + self.weights[name] * value
        return total


def build_loss(spec: str | Mapping[str, float], n_classes: int, class_weights: Sequence[float] | None = None,
               **options: Any) -> CombinedLoss:
    """Build the loss named by ``spec`` for a model with ``n_classes`` output channels."""
    return CombinedLoss(parse_loss_spec(spec), n_classes, class_weights, **options)
