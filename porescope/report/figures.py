"""The report's figures as PNG bytes: size from the header, downscaling, matplotlib rendering.

Determinism: figures are rendered with fixed PNG metadata (:func:`figure_png`) and downscaled
with OpenCV's ``INTER_AREA`` (:func:`fit_png`), so the same input gives the same bytes.

Examples
--------
>>> import cv2, numpy as np
>>> ok, buf = cv2.imencode(".png", np.zeros((50, 200), np.uint8))
>>> png_size(buf.tobytes())
(200, 50)
>>> png_size(fit_png(buf.tobytes(), 100))
(100, 25)
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from porescope.report.formatting import finite_or_none

__all__ = ["png_size", "fit_png", "figure_png", "training_curves_figure"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG header; ``ValueError`` when ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != _PNG_MAGIC or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file (bad signature or header)")
    return struct.unpack(">II", data[16:24])


def fit_png(data: bytes, max_width: int) -> bytes:
    """The PNG unchanged when at most ``max_width`` px wide, else downscaled to that width
    (aspect kept, ``cv2.INTER_AREA``, alpha kept) and re-encoded (same input -> same bytes)."""
    import cv2

    w, h = png_size(data)
    if w <= max_width:
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("PNG could not be decoded")
    size = (int(max_width), max(1, round(h * max_width / w)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", small, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG could not be re-encoded")
    return buf.tobytes()


def figure_png(fig: MplFigure, dpi: int = 100) -> bytes:
    """Render a matplotlib Figure to PNG bytes with fixed metadata (identical on reruns)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def training_curves_figure(curves: Mapping[str, pd.DataFrame], best_step: Any = None) -> MplFigure:
    """Per-epoch training curves (DVCLive series ``{name: DataFrame with step, name}``).

    Panels: losses (names containing ``loss``), validation scores (the rest), learning rate
    (``lr``); ``best_step`` (the kept epoch) is marked by a dotted line.
    """
    groups: dict[str, list[str]] = {"loss": [], "score": [], "lr": []}
    for name in sorted(curves):
        groups["lr" if name == "lr" else "loss" if "loss" in name else "score"].append(name)
    panels = [(k, v) for k, v in groups.items() if v]
    titles = {"loss": "loss", "score": "validation score", "lr": "learning rate"}
    fig = MplFigure(figsize=(3.6 * max(1, len(panels)), 2.8), layout="constrained")
    best = finite_or_none(best_step)
    for k, (kind, names) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for name in names:
            t = curves[name]
            ax.plot(t["step"].to_numpy(float), t[name].to_numpy(float), marker="o", ms=3,
                    linewidth=1.2, label=name)
        if best is not None:
            ax.axvline(best, color="0.5", linestyle=":", linewidth=1, label="kept epoch")
        ax.set_xlabel("epoch (DVCLive step)")
        ax.set_title(titles[kind], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig
