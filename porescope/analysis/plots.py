"""Figures of size, shape and spatial distributions (matplotlib, no pyplot; callers save).

Every function takes per-object tables from :func:`porescope.measure.morphometry.measure_objects`
(one table, or a mapping ``image name -> table``) and returns a ``matplotlib.figure.Figure``
built without pyplot (no global state, no display; ``fig.savefig`` renders with Agg). Sizes are
shown in physical units when every table has the physical column (e.g. ``Area_um2``), else in
pixels. Objects touching the border are left out of size/shape figures by default (they are
cut); pass ``exclude_border=False`` to keep them.

* :func:`size_histograms` - histogram per image and pooled (Area or ECD).
* :func:`size_violins` - violins per image and pooled (paper 001 Fig. 34).
* :func:`feret_angle_kde` - circular KDE of FeretAngle on [0, 180) deg (paper 001 Fig. 35).
* :func:`correlation_matrices` - correlation of Area, Solidity, Circ., Compactness, Round,
  FeretAngle per image (paper 001 Fig. 36).
* :func:`ripley_plot` - ``L(r) - r`` with the Monte-Carlo CSR envelope
  (:func:`porescope.measure.spatial.csr_envelope`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

__all__ = [
    "circular_kde",
    "size_histograms",
    "size_violins",
    "feret_angle_kde",
    "correlation_matrices",
    "ripley_plot",
    "SHAPE_COLUMNS",
]

SHAPE_COLUMNS: tuple[str, ...] = ("Area", "Solidity", "Circ.", "Compactness", "Round", "FeretAngle")
_UNITS = ("um", "nm")
_UNIT_TEXT = {"um": "\u00b5m", "nm": "nm"}


def _as_mapping(tables: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(tables, pd.DataFrame):
        return {"image": tables}
    if not isinstance(tables, Mapping) or not tables:
        raise TypeError("tables: expected a DataFrame or a non-empty mapping name -> DataFrame")
    for name, t in tables.items():
        if not isinstance(t, pd.DataFrame):
            raise TypeError(f"tables[{name!r}]: expected a DataFrame, got {type(t).__name__}")
    return dict(tables)


def _select(table: pd.DataFrame, exclude_border: bool) -> pd.DataFrame:
    if exclude_border and "touches_border" in table.columns:
        return table[~table["touches_border"].to_numpy(bool)]
    return table


def _size_column(tables: Mapping[str, pd.DataFrame], base: str) -> tuple[str, str]:
    """(column, axis label with unit) for ``base`` in {"Area", "ECD"}."""
    if base not in ("Area", "ECD"):
        raise ValueError(f"column: expected 'Area' or 'ECD', got {base!r}")
    for unit in _UNITS:
        col = f"{base}_{unit}2" if base == "Area" else f"{base}_{unit}"
        if all(col in t.columns for t in tables.values()):
            txt = _UNIT_TEXT[unit] + ("\u00b2" if base == "Area" else "")
            return col, f"{'Area' if base == 'Area' else 'ECD'} ({txt})"
    for name, t in tables.items():
        if base not in t.columns:
            raise ValueError(f"tables[{name!r}]: missing column {base!r}")
    return base, f"{'Area' if base == 'Area' else 'ECD'} (px{'²' if base == 'Area' else ''})"


def _values(tables: Mapping[str, pd.DataFrame], col: str, exclude_border: bool
            ) -> dict[str, np.ndarray]:
    out = {}
    for name, t in tables.items():
        v = _select(t, exclude_border)[col].to_numpy(float)
        out[name] = v[np.isfinite(v)]
    return out


def size_histograms(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *, column: str = "Area",
                    bins: int = 40, exclude_border: bool = True, log_x: bool = False) -> Figure:
    """Histogram of ``column`` ("Area" or "ECD") per image, plus a pooled panel."""
    tables = _as_mapping(tables)
    col, label = _size_column(tables, column)
    vals = _values(tables, col, exclude_border)
    panels = list(vals.items())
    if len(panels) > 1:
        panels.append(("pooled", np.concatenate(list(vals.values()))))
    n = len(panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    allv = np.concatenate([v for _, v in panels]) if panels else np.zeros(0)
    pos = allv[allv > 0]
    if log_x and pos.size:
        edges = np.geomspace(pos.min(), pos.max(), bins + 1)
    elif allv.size:
        edges = np.linspace(allv.min(), allv.max() if allv.max() > allv.min() else allv.min() + 1,
                            bins + 1)
    else:
        edges = np.linspace(0, 1, bins + 1)
    for k, (name, v) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.hist(v, bins=edges, color="0.35" if name == "pooled" else "C0", edgecolor="white",
                linewidth=0.3)
        if log_x:
            ax.set_xscale("log")
        med = float(np.median(v)) if v.size else math.nan
        ax.set_title(f"{name} (n = {v.size}, median {med:.3g})", fontsize=9)
        ax.set_xlabel(label)
        ax.set_ylabel("objects")
    return fig


def size_violins(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *, column: str = "Area",
                 exclude_border: bool = True, log_y: bool = False) -> Figure:
    """Violin of ``column`` ("Area" or "ECD") per image and pooled, with medians and quartiles."""
    tables = _as_mapping(tables)
    col, label = _size_column(tables, column)
    vals = _values(tables, col, exclude_border)
    names = list(vals)
    data = [vals[k] for k in names]
    if len(names) > 1:
        names.append("pooled")
        data.append(np.concatenate(data))
    fig = Figure(figsize=(1.6 + 1.3 * len(names), 4.0), layout="constrained")
    ax = fig.add_subplot()
    pos = np.arange(1, len(names) + 1)
    keep = [i for i, d in enumerate(data) if d.size >= 2]
    if keep:
        parts = ax.violinplot([data[i] for i in keep], positions=pos[keep], showextrema=False)
        for body, i in zip(parts["bodies"], keep):
            body.set_facecolor("0.55" if names[i] == "pooled" else "C0")
            body.set_alpha(0.6)
    for i, d in enumerate(data):
        if d.size:
            q1, med, q3 = np.percentile(d, [25, 50, 75])
            ax.vlines(pos[i], q1, q3, color="k", linewidth=3)
            ax.scatter([pos[i]], [med], color="white", zorder=3, s=12)
    ax.set_xticks(pos, [f"{n}\n(n={d.size})" for n, d in zip(names, data)], fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(label)
    ax.set_title(f"{label.split(' (')[0]} distribution per image", fontsize=10)
    return fig


def circular_kde(angles: Sequence[float] | np.ndarray, grid: np.ndarray, *, period: float = 180.0,
                 bw_method: str | float = "scott") -> np.ndarray:
    """Gaussian KDE of axial angles (degrees, period ``period``) evaluated on ``grid``.

    The data are wrapped (copies at -period and +period) so that the density is continuous
    across 0 / period; the bandwidth is that of a plain KDE of the original data (Scott's or
    Silverman's rule, or a scalar factor times the data's standard deviation). The result
    integrates to 1 over one period (for bandwidths well below the period).
    """
    a = np.asarray(angles, dtype=float).ravel()
    a = np.mod(a[np.isfinite(a)], period)
    if a.size < 2 or np.ptp(a) == 0:
        raise ValueError("angles: need at least 2 distinct finite angles for a KDE")
    base = gaussian_kde(a, bw_method=bw_method)
    h = float(np.sqrt(base.covariance[0, 0]))          # bandwidth in degrees
    wrapped = np.concatenate((a - period, a, a + period))
    kde = gaussian_kde(wrapped, bw_method=h / float(wrapped.std(ddof=1)))
    return 3.0 * kde(np.asarray(grid, dtype=float))


def feret_angle_kde(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                    column: str = "FeretAngle", exclude_border: bool = True,
                    bw_method: str | float = "scott") -> Figure:
    """Circular KDE of the Feret angle (0-180 deg, screen convention) per image."""
    tables = _as_mapping(tables)
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    grid = np.linspace(0.0, 180.0, 361)
    for k, (name, t) in enumerate(tables.items()):
        if column not in t.columns:
            raise ValueError(f"tables[{name!r}]: missing column {column!r}")
        v = _select(t, exclude_border)[column].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size >= 2 and np.ptp(v) > 0:
            ax.plot(grid, circular_kde(v, grid, bw_method=bw_method), color=f"C{k}",
                    label=f"{name} (n={v.size})")
    ax.set_xlim(0, 180)
    ax.set_xticks(np.arange(0, 181, 30))
    ax.set_xlabel(f"{column} (deg, counter-clockwise from +x as displayed)")
    ax.set_ylabel("density (1/deg)")
    ax.set_ylim(bottom=0)
    ax.set_title("Feret angle, circular KDE", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=8)
    return fig


def correlation_matrices(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                         columns: Sequence[str] = SHAPE_COLUMNS, method: str = "pearson",
                         exclude_border: bool = True) -> Figure:
    """Correlation matrix of shape descriptors, one heat map per image (values annotated)."""
    tables = _as_mapping(tables)
    if method not in ("pearson", "spearman", "kendall"):
        raise ValueError(f"method: expected pearson, spearman or kendall, got {method!r}")
    n = len(tables)
    fig = Figure(figsize=(4.6 * n + 0.8, 4.4), layout="constrained")
    axes = [fig.add_subplot(1, n, k + 1) for k in range(n)]
    im = None
    for ax, (name, t) in zip(axes, tables.items()):
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise ValueError(f"tables[{name!r}]: missing column(s) {missing}")
        corr = _select(t, exclude_border)[list(columns)].astype(float).corr(method=method)
        im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(columns)), columns, fontsize=8)
        for i in range(len(columns)):
            for j in range(len(columns)):
                val = corr.iat[i, j]
                ax.text(j, i, "" if not np.isfinite(val) else f"{val:.2f}", ha="center",
                        va="center", fontsize=7, color="white" if abs(val) > 0.6 else "black")
        ax.set_title(f"{name} ({method})", fontsize=10)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="correlation")
    return fig


def ripley_plot(envelope: Mapping[str, Any], *, title: str | None = None,
                pixel_size: float | None = None, length_unit: str = "um") -> Figure:
    """``L(r) - r`` observed with the CSR envelope from :func:`spatial.csr_envelope`.

    Shows the pointwise min/max envelope of the simulations (shaded), their mean (dashed) and
    the observation; ``pixel_size`` (nm per pixel) converts the axes to ``length_unit``.
    """
    need = ("r", "L_obs", "L_lo", "L_hi", "L_mean")
    missing = [k for k in need if k not in envelope]
    if missing:
        raise ValueError(f"envelope: missing key(s) {missing}; pass csr_envelope()'s result")
    scale, unit = 1.0, "px"
    if pixel_size is not None:
        if length_unit not in _UNIT_TEXT:
            raise ValueError(f"length_unit: expected 'um' or 'nm', got {length_unit!r}")
        scale = float(pixel_size) / (1000.0 if length_unit == "um" else 1.0)
        unit = _UNIT_TEXT[length_unit]
    r = np.asarray(envelope["r"]) * scale
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    n_sim = envelope.get("n_sim", "?")
    ax.fill_between(r, np.asarray(envelope["L_lo"]) * scale, np.asarray(envelope["L_hi"]) * scale,
                    color="0.85", label=f"CSR envelope (min-max of {n_sim} simulations)")
    ax.plot(r, np.asarray(envelope["L_mean"]) * scale, "k--", linewidth=1, label="CSR mean")
    ax.plot(r, np.asarray(envelope["L_obs"]) * scale, "C3", linewidth=1.8, label="observed")
    ax.axhline(0.0, color="0.5", linewidth=0.6)
    ax.set_xlabel(f"r ({unit})")
    ax.set_ylabel(f"L(r) - r ({unit})")
    sub = []
    if "L_p_value" in envelope:
        sub.append(f"global test p = {envelope['L_p_value']:.3g}")
    if "L_verdict" in envelope:
        sub.append(str(envelope["L_verdict"]))
    corr = envelope.get("correction", "translation")
    ax.set_title((title or f"Ripley's L(r) - r ({corr} edge correction)")
                 + (f"\n{', '.join(sub)}" if sub else ""), fontsize=10)
    ax.legend(fontsize=8)
    return fig
