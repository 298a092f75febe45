"""Figures of the membrane analysis, as matplotlib Figures or PNG bytes (no pyplot).

:func:`distribution_figures` renders the size / shape / spatial plots of
:mod:`porescope.analysis.plots` for a set of images; :func:`porosity_scatter_figure`,
:func:`porosity_error_figure` and :func:`count_error_figure` draw a comparison table of
:func:`porescope.analysis.comparison.compare_with_reference`; :func:`outline_overlay` draws the
measured objects on the micrograph. :func:`figure_png` renders with fixed metadata, so the same
figure gives the same bytes on every run; callers write the bytes.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"image_id": ["a", "b"], "mask": ["predicted"] * 2,
...                       "porosity_true": [0.10, 0.30], "porosity_measured": [0.11, 0.29],
...                       "porosity_error_pp": [1.0, -1.0]})
>>> figure_png(porosity_scatter_figure(table))[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from porescope.analysis import plots as dplots

__all__ = ["figure_png", "distribution_figures", "outline_overlay", "OutlineCanvas",
           "OUTLINE_PALETTE", "porosity_scatter_figure",
           "porosity_error_figure", "count_error_figure"]


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes with fixed metadata (identical bytes on reruns)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def distribution_figures(tables: Mapping[str, pd.DataFrame],
                         spatial: Mapping[str, dict[str, Any] | None] | None = None, *,
                         pixel_sizes: Mapping[str, float | None] | None = None,
                         length_unit: str = "um", max_panels: int = 8) -> dict[str, bytes]:
    """The size / shape / spatial figures of a set of images, as ``{file name: PNG bytes}``.

    ``area_histogram.png``, ``ecd_histogram.png``, ``area_violin.png``, ``ecd_violin.png``,
    ``feret_angle_kde.png``, ``correlation.png`` (:mod:`porescope.analysis.plots`; with
    more than ``max_panels`` images the tables are pooled into one ``all images`` panel) and
    ``ripley_<image_id>.png`` for every image with a Monte-Carlo envelope. Physical units where
    every table has them. Empty input -> empty dict.
    """
    tables = {k: v for k, v in tables.items()}
    if not tables:
        return {}
    if len(tables) > max_panels:
        tables = {"all images": pd.concat(list(tables.values()), ignore_index=True)}
    out: dict[str, bytes] = {}
    for col in ("Area", "ECD"):
        out[f"{col.lower()}_histogram.png"] = figure_png(dplots.size_histograms(tables, column=col))
        out[f"{col.lower()}_violin.png"] = figure_png(dplots.size_violins(tables, column=col))
    out["feret_angle_kde.png"] = figure_png(dplots.feret_angle_kde(tables))
    corr_tables = tables if len(tables) <= 4 else {
        "all images": pd.concat(list(tables.values()), ignore_index=True)}
    out["correlation.png"] = figure_png(dplots.correlation_matrices(corr_tables))
    for image_id, sp in (spatial or {}).items():
        if sp is None or sp.get("monte_carlo") is None:
            continue
        px = (pixel_sizes or {}).get(image_id)
        px = px if px is not None and px == px else None
        fig = dplots.ripley_plot(sp["monte_carlo"], title=f"{image_id}: Ripley's L(r) - r",
                                 pixel_size=px, length_unit=length_unit)
        out[f"ripley_{image_id}.png"] = figure_png(fig)
    return out


_OVERLAY_BLOCK_ROWS = 512


def _inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another label (``find_boundaries``, inner)."""
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, mode="inner") & (labels != 0)


def outline_overlay(grey: np.ndarray, labels: np.ndarray, *, colour: tuple[int, int, int] = (0, 0, 255),
                    bar_rows: int = 0) -> np.ndarray:
    """BGR uint8 image: the grey micrograph with every object's boundary (inner, 1 px) drawn
    in ``colour`` (BGR); boundaries between touching pores are drawn too."""
    import cv2

    if grey.shape != labels.shape:
        raise ValueError(f"outline_overlay: image {grey.shape} and labels {labels.shape} differ")
    out = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)
    # in blocks of rows with a one-row halo (a boundary pixel depends on its 4-neighbours only):
    # the same pixels as on the whole image, without several int32 copies of a big one
    rows = grey.shape[0]
    for r in range(0, rows, _OVERLAY_BLOCK_ROWS):
        r0, r1 = max(0, r - 1), min(rows, r + _OVERLAY_BLOCK_ROWS + 1)
        edge = _inner_boundaries(labels[r0:r1])
        keep = edge[r - r0:r - r0 + min(_OVERLAY_BLOCK_ROWS, rows - r)]
        out[r:r + keep.shape[0]][keep] = colour
    if bar_rows:
        out[grey.shape[0] - bar_rows:] //= 2
    return out


#: palette of :class:`OutlineCanvas`: grey 0..254, then the outline colour (red)
OUTLINE_PALETTE: tuple[tuple[int, int, int], ...] = (*((i, i, i) for i in range(255)), (255, 0, 0))


class OutlineCanvas:
    """:func:`outline_overlay` drawn band by band, for micrographs analysed in bands whose
    labels are never whole: the outline pixels are kept as bits (1/8 byte per pixel) and
    painted into the grey image at the end, as palette indices (1 byte per pixel instead of the
    3 of a BGR overlay).

    :meth:`add` takes the labels of a band of rows (numbered within the band; objects never
    touch another band's objects, so rows outside the band count as background there).
    :meth:`paint` turns a grey image into indices of :data:`OUTLINE_PALETTE`: the grey value
    (255 shown as 254) and 255 on the outlines, which look like the BGR overlay's red ones.

    Examples
    --------
    >>> labels = np.zeros((6, 8), np.int32)
    >>> labels[1:5, 1:4], labels[1:5, 4:7] = 1, 2
    >>> grey = np.full((6, 8), 100, np.uint8)
    >>> canvas = OutlineCanvas(grey.shape)
    >>> canvas.add(0, labels)
    >>> bgr = outline_overlay(grey, labels)
    >>> index = canvas.paint(grey.copy())
    >>> bool(np.array_equal(index == 255, bgr[..., 2] == 255))
    True
    """

    def __init__(self, shape: tuple[int, int]):
        self.shape = (int(shape[0]), int(shape[1]))
        self.bits = np.zeros((self.shape[0], (self.shape[1] + 7) // 8), np.uint8)

    def add(self, r0: int, labels: np.ndarray) -> None:
        """Mark the outlines of the objects of rows ``r0 .. r0 + len(labels)``."""
        r1 = r0 + labels.shape[0]
        top, bottom = int(r0 > 0), int(r1 < self.shape[0])
        sub = np.pad(labels, ((top, bottom), (0, 0))) if top or bottom else labels
        edge = _inner_boundaries(sub)[top:top + labels.shape[0]]
        self.bits[r0:r1] |= np.packbits(edge, axis=1)

    def paint(self, grey: np.ndarray) -> np.ndarray:
        """``grey`` (uint8, this canvas's shape) overwritten with the palette indices."""
        if grey.shape != self.shape or grey.dtype != np.uint8:
            raise ValueError(f"OutlineCanvas.paint: expected uint8 {self.shape}, got "
                             f"{grey.dtype} {grey.shape}")
        np.minimum(grey, 254, out=grey)
        for r in range(0, self.shape[0], _OVERLAY_BLOCK_ROWS):
            block = np.unpackbits(self.bits[r:r + _OVERLAY_BLOCK_ROWS], axis=1,
                                  count=self.shape[1]).view(bool)
            grey[r:r + block.shape[0]][block] = 255
        return grey


_MASK_STYLE = {"ground truth": ("o", "C0"), "predicted": ("s", "C3")}


def porosity_scatter_figure(table: pd.DataFrame, *, title: str = "Porosity: measured vs true"
                            ) -> Figure:
    """Measured against true porosity (%), one marker per image and mask (identity line)."""
    t = table.drop_duplicates(["image_id", "mask"])
    fig = Figure(figsize=(5.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    top = 100 * max(float(t["porosity_true"].max()), float(t["porosity_measured"].max()), 0.01)
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.6", linewidth=0.8, label="identity")
    for k, (m, g) in enumerate(t.groupby("mask", sort=False)):
        marker, colour = _MASK_STYLE.get(m, ("^", f"C{k + 4}"))
        mae = float(np.abs(g["porosity_error_pp"]).mean())
        ax.scatter(100 * g["porosity_true"], 100 * g["porosity_measured"], marker=marker,
                   color=colour, s=22, label=f"{m} mask (MAE {mae:.2f} pp)", alpha=0.85)
    ax.set_xlabel("true porosity (%)")
    ax.set_ylabel("measured porosity (%)")
    ax.set_xlim(0, top * 1.05)
    ax.set_ylim(0, top * 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def porosity_error_figure(table: pd.DataFrame, *, title: str = "Porosity error",
                          target_pp: float | None = None) -> Figure:
    """Porosity error (measured - true, pp) against true porosity (%), one series per mask;
    ``target_pp`` draws the tolerated band."""
    t = table.drop_duplicates(["image_id", "mask"])
    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.add_subplot()
    top = 100 * float(t["porosity_true"].max()) * 1.05 + 0.5
    if target_pp is not None:
        ax.fill_between([0, top], -target_pp, target_pp, color="0.9", zorder=0,
                        label=f"target +-{target_pp:g} pp")
    ax.axhline(0, color="0.5", linewidth=0.7)
    for k, (m, g) in enumerate(t.groupby("mask", sort=False)):
        marker, colour = _MASK_STYLE.get(m, ("^", f"C{k + 4}"))
        g = g.sort_values("porosity_true")
        ax.plot(100 * g["porosity_true"], g["porosity_error_pp"], marker=marker, color=colour,
                ms=4, linewidth=1, label=f"{m} mask")
    ax.set_xlim(0, top)
    ax.set_xlabel("true porosity (%)")
    ax.set_ylabel("porosity error (percentage points)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def count_error_figure(table: pd.DataFrame, *, title: str = "Count error per estimator",
                       targets: Sequence[tuple[float, float]] = ()) -> Figure:
    """Count error (%) against true porosity (%), one panel per mask, one colour per estimator.

    ``targets``: optional ``(porosity upper bound, tolerated |error| %)`` steps drawn as a
    shaded band.
    """
    masks = list(dict.fromkeys(table["mask"]))
    fig = Figure(figsize=(5.2 * len(masks), 4.0), layout="constrained")
    ests = list(dict.fromkeys(table["estimator"]))
    top = 100 * float(table["porosity_true"].max()) * 1.05 + 0.5
    for k, m in enumerate(masks):
        ax = fig.add_subplot(1, len(masks), k + 1)
        g = table[table["mask"] == m]
        lo = 0.0
        for upper, tol in targets:
            ax.fill_between([100 * lo, min(100 * upper, top)], -tol, tol, color="0.9", zorder=0)
            lo = upper
        ax.axhline(0, color="0.5", linewidth=0.7)
        for j, est in enumerate(ests):
            ge = g[g["estimator"] == est].sort_values("porosity_true")
            if ge.empty:
                continue
            ax.plot(100 * ge["porosity_true"], ge["count_error_pct"], marker="o", ms=3.5,
                    linewidth=1, color=f"C{j}", label=est)
        ax.set_xlim(0, top)
        ax.set_xlabel("true porosity (%)")
        ax.set_ylabel("count error (%)")
        ax.set_title(f"{m} mask", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
