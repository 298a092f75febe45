"""Figures for segmentation results: overlays, score boxplots, a gallery of the worst images.

Overlays follow the reference papers: ground-truth borders in yellow and predicted borders in
red on the grey micrograph (paper 002), and a filled overlay with the prediction at 80 %
transparency (paper 004). Images are returned as ``uint8`` BGR arrays (OpenCV order) or as
matplotlib Figures; callers write them with :mod:`porescope.io.atomic`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

YELLOW = (0, 255, 255)  # BGR
RED = (0, 0, 255)
#: colours (BGR) for filled class overlays: class 1 red, 2 cyan, 3 green, ...
CLASS_COLOURS = [(0, 0, 0), (0, 0, 255), (255, 255, 0), (0, 200, 0), (255, 0, 255), (0, 165, 255)]


def _borders(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask > 0`` that have a 4-neighbour outside it (a 1-px inner border)."""
    fg = (mask > 0).astype(np.uint8)
    return (fg - cv2.erode(fg, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0


def border_overlay(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """Grey image with truth borders in yellow and prediction borders in red (BGR uint8)."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if truth is not None:
        out[_borders(truth)] = YELLOW
    out[_borders(pred)] = RED
    return out


def filled_overlay(image: np.ndarray, classes: np.ndarray, transparency: float = 0.8) -> np.ndarray:
    """Class colours blended over the grey image; ``transparency`` 0.8 = 20 % colour (BGR uint8)."""
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR).astype(np.float32)
    palette = np.array(CLASS_COLOURS * (1 + int(classes.max(initial=0)) // len(CLASS_COLOURS)), np.float32)
    colour = palette[classes]
    alpha = np.where(classes[..., None] > 0, 1.0 - transparency, 0.0).astype(np.float32)
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def score_boxplot(table: pd.DataFrame, columns: Sequence[str] = ("dice", "iou", "precision", "recall"),
                  title: str = "Per-image scores on the test split") -> plt.Figure:
    """Boxplot of per-image scores with the individual images as points (paper 002's figure)."""
    cols = [c for c in columns if c in table]
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2, 4), dpi=110)
    data = [table[c].to_numpy(dtype=float) for c in cols]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(cols) + 1), [c.capitalize() for c in cols])
    rng = np.random.default_rng(0)  # fixed jitter so the figure is reproducible
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.6, color="tab:blue")
    ax.set_ylim(max(0.0, min((v.min() for v in data if v.size), default=0.0) - 0.05), 1.005)
    ax.set_ylabel("score")
    ax.set_title(f"{title} (n = {len(table)})")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def gallery(panels: Sequence[tuple[str, np.ndarray]], columns: int = 2, title: str = "") -> plt.Figure:
    """A grid of labelled BGR panels (e.g. the worst images' overlays)."""
    rows = max(1, -(-len(panels) // columns))
    aspect = max((p.shape[1] / p.shape[0] for _, p in panels), default=1.0)  # width / height
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * aspect * columns, 4.2 * rows + 0.6), dpi=100,
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (label, panel) in zip(axes.ravel(), panels):
        ax.imshow(cv2.cvtColor(panel, cv2.COLOR_BGR2RGB), interpolation="nearest")
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig: plt.Figure) -> bytes:
    """Render a Figure to PNG bytes (fixed metadata so reruns give identical files) and close it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curve_plot(frame: pd.DataFrame, x: str, ys: Mapping[str, str], xlabel: str, ylabel: str,
               title: str) -> plt.Figure:
    """Simple line plot of ``frame[x]`` against columns ``ys`` (column -> legend label)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for col, label in ys.items():
        ax.plot(frame[x], frame[col], marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
