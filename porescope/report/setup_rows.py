"""The rows of the report's first section: the model card's fields and the key parameters.

Examples
--------
>>> param_rows({"train": {"lr": 0.003, "tta": False, "epochs": 6}}, "train", ("epochs", "lr", "tta"))
[('`train.epochs`', '6'), ('`train.lr`', '0.003'), ('`train.tta`', 'false')]
>>> card_rows({"model": {"name": "unet"}, "n": [1, 2]})
[('`model.name`', 'unet'), ('`n`', '[1, 2]')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from porescope.report.formatting import format_number, format_plain, lookup

__all__ = ["param_rows", "card_rows"]


def param_rows(p: Mapping[str, Any], group: str, keys: Sequence[str]) -> list[tuple[str, str]]:
    """``(`group.key`, value)`` rows of the ``keys`` present in params group ``group`` of ``p``."""
    g = p.get(group)
    if not isinstance(g, Mapping):
        return []
    return [(f"`{group}.{k}`", format_plain(g[k])) for k in keys if k in g]


def _flatten(d: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``(`dotted.key`, value)`` rows, nested mappings flattened one level, long values cut."""
    out = []
    for k in d:
        v = d[k]
        if isinstance(v, Mapping) and depth < 1:
            out += _flatten(v, f"{prefix}{k}.", depth + 1)
        else:
            text = format_plain(v)
            out.append((f"`{prefix}{k}`", text if len(text) <= 160 else text[:157] + "..."))
    return out


def card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of a model card: the identity fields of a porescope card
    (``format: porescope-model-card/...``, :mod:`porescope.provenance.model_card`), else every field
    (nested mappings flattened one level)."""
    if not str(card.get("format", "")).startswith("porescope-model-card"):
        return _flatten(card)

    def row(label: str, *keys: str) -> list[tuple[str, str]]:
        v = lookup(card, *keys)
        return [] if v is None else [(label, format_plain(v))]

    rows = row("card format", "format") + row("model file", "model", "file")
    cfg = lookup(card, "model", "config")
    if isinstance(cfg, Mapping):
        rows += [(f"model {k}", format_plain(v)) for k, v in cfg.items()]
    rows += row("classes", "model", "class_names")
    rows += row("epochs run", "training", "epochs_run") + row("best epoch (0-based)", "training", "best_epoch")
    for k, v in (lookup(card, "training", "validation") or {}).items():
        rows.append((f"validation {k}", format_number(v)))
    aug = lookup(card, "data", "augmented") or {}
    if aug:
        rows.append(("training dataset", f"{aug.get('name')} ({aug.get('n_samples')} samples from "
                                         f"{aug.get('n_source_tiles')} tiles)"))
        rows += row("training dataset SHA-256 digest", "data", "augmented", "files_digest")
    for split, info in (lookup(card, "data", "splits") or {}).items():
        if isinstance(info, Mapping):
            rows.append((f"{split} split", f"{info.get('n_sources')} source images, {info.get('n_tiles')} tiles"))
            rows.append((f"{split} sources SHA-256 digest", format_plain(info.get("sources_digest"))))
    rows += row("git commit", "git", "commit")
    dirty = lookup(card, "git", "dirty")
    if isinstance(dirty, list):
        rows.append(("modified tracked files", ", ".join(map(str, dirty)) if dirty else "none"))
    rows += row("device", "device")
    for lib in ("torch", "segmentation-models-pytorch", "timm"):
        rows += row(lib, "libraries", lib)
    rows += row("rebuild expectation", "rebuild_expectation")
    warnings = card.get("warnings")
    if isinstance(warnings, list):
        rows.append(("warnings", "; ".join(map(str, warnings)) if warnings else "none"))
    return [(k, v if len(v) <= 300 else v[:297] + "...") for k, v in rows]
