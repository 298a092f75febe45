"""The porescope report: a certificate-style document from the pipeline's tables and figures.

Pure functions: they take already-loaded tables (pandas), dicts (the metrics JSON files) and
figure bytes (PNG) and return Markdown text, a self-contained HTML string and the figure files
the Markdown links to. Reading files is the caller's job (:mod:`stages.report`,
:mod:`stages.measure`).

Structure. A report is a list of blocks (:class:`Heading`, :class:`Paragraph`,
:class:`Bullets`, :class:`Table`, :class:`Figure`, :class:`Note`) rendered twice from the same
content: :func:`render_markdown` (GitHub-flavoured tables, figures linked as
``figures/<name>.png``) and :func:`render_html` (one file: CSS inline, every figure a
``data:image/png;base64`` URI, no script, no font or other network resource; printable).
:func:`build_report` makes the pipeline report, :func:`measure_report` the report of a
``measure`` run (new micrographs).

Determinism. The same inputs give the same bytes: no clock, no random numbers, sorted
iteration, figures rendered with fixed PNG metadata (:func:`figure_png`) and downscaled with
OpenCV's ``INTER_AREA`` (:func:`fit_png`).

Number formats (every number comes from the inputs; missing or non-finite -> ``n/a``):

* porosity in % with 2 decimals (``100 * fraction``); porosity errors in percentage points
  with sign and 2 decimals (``+0.36``);
* counts of the frame-counting estimators (median-area rule, watershed split) as integers, the
  Boolean-model count with 1 decimal; count errors in % with sign and 1 decimal;
* densities with 3 significant digits in scientific notation, ``3.72×10⁷`` (per cm² when the
  pixel size is known, else per px², the unit then in the cell);
* lengths (ECD) with 3 significant digits, trailing zeros kept (:func:`format_sig`), in the
  analysis length unit when the pixel size is known, else in px;
* segmentation scores (Dice, IoU, precision, recall, AP) with 4 decimals; Clark-Evans R with 3.

The estimator behind the headline pore density of an image (:func:`choose_estimators`) is the
one with the lowest mean absolute count error, on the validation membranes (predicted masks,
``metrics/validate.json``), in the porosity band the image's measured porosity falls into;
without validation results the test-image comparison (``metrics/analyze.json``) is used, and
without either the watershed split count.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import quote

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

__all__ = [
    "ESTIMATORS",
    "ESTIMATOR_LABELS",
    "Heading",
    "Paragraph",
    "Bullets",
    "Table",
    "Figure",
    "Note",
    "Block",
    "ReportSettings",
    "ReportInputs",
    "Report",
    "EstimatorChoice",
    "format_number",
    "format_signed",
    "format_sci",
    "format_sig",
    "format_porosity",
    "format_count",
    "parse_band",
    "choose_estimators",
    "png_size",
    "fit_png",
    "figure_png",
    "training_curves_figure",
    "certificate_table",
    "render_markdown",
    "render_html",
    "build_report",
    "measure_report",
]

#: The practical counting estimators, in the order the analysis writes them.
ESTIMATORS: tuple[str, ...] = ("median_area", "split_labels", "boolean_model")
#: Readable names of the estimators (validation adds the Boolean model with a known E[A]).
ESTIMATOR_LABELS: dict[str, str] = {
    "median_area": "median-area rule",
    "split_labels": "watershed split",
    "boolean_model": "Boolean model",
    "boolean_model_known_area": "Boolean model, known E[A]",
}
_UNIT_TEXT = {"um": "µm", "nm": "nm", "px": "px"}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_NA = "n/a"


# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Heading:
    """A section heading; ``level`` 1 (title) to 4."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Text; ``code`` spans and **bold** are the only inline markup."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """An unordered list of inline-markup items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells; ``align`` per column, ``"l"`` or ``"r"``."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...] = ()
    caption: str = ""

    def __post_init__(self) -> None:
        for k, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.caption!r}: row {k} has {len(row)} cells for "
                                 f"{len(self.columns)} columns")


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``name`` is its file name under ``figures/``; ``data`` the PNG bytes."""

    name: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Note:
    """A short highlighted remark (e.g. an input that is not available)."""

    text: str


Block = Union[Heading, Paragraph, Bullets, Table, Figure, Note]


# --------------------------------------------------------------------------------------------
# inputs and settings
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportSettings:
    """How the report is laid out (params group ``report``).

    title: the document title. max_figure_width_px: figures wider than this are downscaled
    (aspect kept) before they are copied and embedded. thumbnail_width_px: width of the
    measured-micrograph outline thumbnails. max_overlays: at most this many of them.
    max_rows: per-image tables are cut after this many rows (the CSV files hold all rows).
    """

    title: str = "porescope membrane report"
    max_figure_width_px: int = 1100
    thumbnail_width_px: int = 480
    max_overlays: int = 6
    max_rows: int = 100

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, source: str = "params.yaml") -> "ReportSettings":
        """Settings from a ``report`` params group (missing keys take the defaults); raises
        ``ValueError`` naming ``report.<key>`` for an unknown key or a bad value."""
        raw = {k: v for k, v in dict(raw or {}).items() if k != "seed"}
        known = [f for f in cls.__dataclass_fields__]
        for key in raw:
            if key not in known:
                raise ValueError(f"{source}: report.{key}: unknown parameter (known: {', '.join(known)})")
        out = cls(**raw)
        if not isinstance(out.title, str) or not out.title.strip():
            raise ValueError(f"{source}: report.title: must be a non-empty string (got {out.title!r})")
        for key, lo in (("max_figure_width_px", 64), ("thumbnail_width_px", 32), ("max_overlays", 0),
                        ("max_rows", 1)):
            v = getattr(out, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{source}: report.{key}: must be an integer >= {lo} (got {v!r})")
        return out


@dataclass
class ReportInputs:
    """Everything the pipeline report shows; ``None`` / empty = not available.

    params: the whole params.yaml mapping. model_card: ``models/model_card.json``.
    train: ``metrics/train.json``; train_curves: DVCLive series ``{name: DataFrame(step, name)}``.
    evaluate: ``metrics/evaluate.json``; eval_per_image / eval_objects: ``plots/evaluate``
    ``per_image.csv`` / ``objects.csv``. analyze: ``metrics/analyze.json``; analysis_summary:
    ``data/analysis/summary.csv`` (the predictions, one row per test image); analyze_summary:
    ``plots/analyze/summary.csv`` (comparison with the reference). validate /
    validate_table: ``metrics/validate.json`` / ``plots/validate/table.csv``. measured_summary /
    measured_run: ``data/measured/summary.csv`` / ``run.json``. figures: PNG bytes keyed
    ``evaluate/<f>``, ``analyze/<f>``, ``validate/<f>``, ``measured/figures/<f>``,
    ``measured/overlays/<f>``. paths: display path of each input (for notes), keyed like
    the attributes. sources: ``(path, sha256)`` of every file read, for the appendix.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    model_card: Mapping[str, Any] | None = None
    train: Mapping[str, Any] | None = None
    train_curves: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    evaluate: Mapping[str, Any] | None = None
    eval_per_image: pd.DataFrame | None = None
    eval_objects: pd.DataFrame | None = None
    analyze: Mapping[str, Any] | None = None
    analysis_summary: pd.DataFrame | None = None
    analyze_summary: pd.DataFrame | None = None
    validate: Mapping[str, Any] | None = None
    validate_table: pd.DataFrame | None = None
    measured_summary: pd.DataFrame | None = None
    measured_run: Mapping[str, Any] | None = None
    figures: Mapping[str, bytes] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    sources: Sequence[tuple[str, str]] = ()

    def path(self, key: str) -> str:
        """Display path of input ``key`` (its attribute name)."""
        return self.paths.get(key, key)


@dataclass(frozen=True)
class Report:
    """A rendered report: Markdown text, one HTML page, and ``{file name: PNG}`` for figures/."""

    markdown: str
    html: str
    figures: dict[str, bytes]


# --------------------------------------------------------------------------------------------
# number formatting
# --------------------------------------------------------------------------------------------

def _num(x: Any) -> float | None:
    """``float(x)`` when finite, else None (None, NaN, inf, empty or non-numeric strings)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_number(x: Any, spec: str = ".4f") -> str:
    """``format(x, spec)``, or ``n/a`` when ``x`` is missing or not finite."""
    v = _num(x)
    return _NA if v is None else format(v, spec)


def format_signed(x: Any, decimals: int = 1) -> str:
    """Signed fixed-point (``+1.5``, ``-0.36``), ``n/a`` when missing."""
    return format_number(x, f"+.{decimals}f")


def format_sci(x: Any, digits: int = 3) -> str:
    """Scientific notation with ``digits`` significant digits: ``3.72×10⁷``; ``0`` for zero."""
    v = _num(x)
    if v is None:
        return _NA
    if v == 0:
        return "0"
    exp = math.floor(math.log10(abs(v)))
    mant = round(v / 10.0 ** exp, digits - 1)
    if abs(mant) >= 10:                     # 9.995 -> 10.0: carry into the exponent
        exp += 1
        mant = round(v / 10.0 ** exp, digits - 1)
    text = f"{mant:.{digits - 1}f}"
    return text if exp == 0 else f"{text}×10{str(exp).translate(_SUPERSCRIPT)}"


def format_sig(x: Any, digits: int = 3) -> str:
    """``digits`` significant digits in fixed-point, trailing zeros kept (``0.510``, ``0.0554``,
    ``29.9``; integers of more digits are shown whole, ``1235``)."""
    v = _num(x)
    if v is None:
        return _NA
    if v == 0:
        return f"{0:.{digits - 1}f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def format_porosity(fraction: Any) -> str:
    """Porosity fraction as % with 2 decimals (``0.2050 -> 20.50``)."""
    v = _num(fraction)
    return _NA if v is None else f"{100.0 * v:.2f}"


def format_count(x: Any, estimator: str) -> str:
    """A pore count: integer for frame counts, 1 decimal for the Boolean-model estimate."""
    return format_number(x, ".1f" if estimator.startswith("boolean_model") else ".0f")


def _text(x: Any) -> str:
    """A text cell: ``n/a`` for a missing value (None, NaN, empty)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or str(x).strip() == "":
        return _NA
    return str(x)


def _label(est: str) -> str:
    return ESTIMATOR_LABELS.get(est, est)


def _get(d: Any, *keys: Any) -> Any:
    """Nested lookup that returns None for any missing level."""
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


# --------------------------------------------------------------------------------------------
# which count estimator to trust where
# --------------------------------------------------------------------------------------------

_BAND_LE = re.compile(r"^<=\s*([0-9.]+)%$")
_BAND_GT = re.compile(r"^>\s*([0-9.]+)%$")
_BAND_RANGE = re.compile(r"^([0-9.]+)-([0-9.]+)%$")


def parse_band(name: str) -> tuple[float, float]:
    """``(lo, hi]`` porosity fractions of a band label (``"<=20%"``, ``"20-40%"``, ``">40%"``,
    ``"all"``), the labels of :func:`porescope.analysis.membrane.band_names`."""
    name = str(name).strip()
    if name == "all":
        return -math.inf, math.inf
    if m := _BAND_LE.match(name):
        return -math.inf, float(m.group(1)) / 100.0
    if m := _BAND_GT.match(name):
        return float(m.group(1)) / 100.0, math.inf
    if m := _BAND_RANGE.match(name):
        return float(m.group(1)) / 100.0, float(m.group(2)) / 100.0
    raise ValueError(f"porosity band label {name!r}: expected '<=A%', 'A-B%', '>A%' or 'all'")


@dataclass(frozen=True)
class EstimatorChoice:
    """The estimator to use per porosity band, and the evidence.

    bands: ``(label, lo, hi, estimator, {estimator: mean |count error| %})`` in band order.
    source: where the errors come from (a sentence fragment); default: used outside every band
    and when there is no evidence.
    """

    bands: tuple[tuple[str, float, float, str, dict[str, float]], ...]
    source: str
    default: str = "split_labels"

    def for_porosity(self, porosity: Any) -> str:
        """The estimator for an image of measured porosity ``porosity`` (fraction)."""
        p = _num(porosity)
        if p is not None:
            for _, lo, hi, est, _ in self.bands:
                if lo < p <= hi:
                    return est
        return self.default


def _band_errors(per_est: Mapping[str, Mapping[str, Any]]) -> EstimatorChoice | None:
    """Pick the lowest mean |count error| per band from ``{estimator: {band: stats}}``."""
    labels: list[str] = []
    for est in ESTIMATORS:
        for band in (per_est.get(est) or {}):
            if band != "all" and band not in labels:
                labels.append(band)
    bands = []
    for band in labels:
        try:
            lo, hi = parse_band(band)
        except ValueError:
            continue
        maes = {e: float(v) for e in ESTIMATORS
                if (v := _num(_get(per_est, e, band, "count_mae_pct"))) is not None}
        if maes:
            best = min(maes, key=lambda e: (maes[e], e))
            bands.append((band, lo, hi, best, maes))
    if not bands:
        return None
    bands.sort(key=lambda b: b[1])
    return EstimatorChoice(tuple(bands), "")


def choose_estimators(validate: Mapping[str, Any] | None,
                      analyze: Mapping[str, Any] | None) -> EstimatorChoice:
    """The count estimator to trust per porosity band, from the measured errors.

    Uses ``validate["errors"]["predicted"]`` (segmentation + measurement on fresh synthetic
    membranes; ``ground_truth`` when validation ran without a model), else the test images'
    ``analyze["estimators"][e]["pred"]["bands"]``; within a band the estimator with the lowest
    mean absolute count error wins (ties by name). Without either: the watershed split count.
    """
    for mask, what in (("predicted", "predicted masks"), ("ground_truth", "ground-truth masks")):
        errs = _get(validate, "errors", mask)
        if isinstance(errs, Mapping):
            choice = _band_errors(errs)
            if choice is not None:
                n = _get(validate, "n_images")
                return EstimatorChoice(choice.bands, f"validation on {n if n is not None else '?'} "
                                       f"synthetic membranes of known truth ({what})")
    ests = _get(analyze, "estimators")
    if isinstance(ests, Mapping):
        for key, what in (("pred", "predicted masks"), ("gt_mask", "ground-truth masks")):
            per = {e: _get(ests, e, key, "bands") or {} for e in ESTIMATORS}
            choice = _band_errors(per)
            if choice is not None:
                return EstimatorChoice(choice.bands, f"the test images against "
                                       f"the {_get(analyze, 'reference') or 'reference'} ({what})")
    return EstimatorChoice((), "")


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------

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
    best = _num(best_step)
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


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown; figures as ``![caption](figures/<name>)`` with a numbered
    caption line, tables with right-aligned numeric columns and an italic caption above."""
    out: list[str] = []
    n_fig = 0
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Note):
            out += [f"> {b.text}", ""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            align = b.align or ("l",) * len(b.columns)
            out.append("| " + " | ".join(_md_cell(c) for c in b.columns) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            n_fig += 1
            alt = _md_cell(b.caption).replace("[", "(").replace("]", ")")
            out += [f"![{alt}](figures/{quote(b.name)})", "",
                    f"*Figure {n_fig}. {b.caption}*", ""]
        else:  # pragma: no cover - Block is closed
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n".join(out).rstrip("\n") + "\n"


_CODE = re.compile(r"`([^`]+)`")
#: figures at most this wide (px) are laid out two per row in the HTML
NARROW_FIGURE_PX = 640
_BOLD = re.compile(r"\*\*(.+?)\*\*")

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1b1b1b;
line-height:1.45;margin:0;background:#fff}
main{max-width:1150px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.7em;border-bottom:2px solid #2a5d8f;padding-bottom:6px;margin-top:0}
h2{font-size:1.3em;color:#2a5d8f;border-bottom:1px solid #ccd;padding-bottom:3px;margin-top:1.8em}
h3{font-size:1.08em;margin-top:1.4em}h4{font-size:1em}
code{font-family:Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.9em;background:#f2f4f7;
padding:0 3px;border-radius:3px}
.tw{overflow-x:auto;margin:.6em 0 1em}
table{border-collapse:collapse;font-size:12.5px}
caption{caption-side:top;text-align:left;font-style:italic;color:#444;padding:2px 0 5px}
th,td{border:1px solid #c9ced6;padding:3px 7px;vertical-align:top}
th{background:#e9eef5;text-align:left}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#f7f9fb}
figure{margin:1em 0 1.4em;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
.grid{display:flex;flex-wrap:wrap;justify-content:center;column-gap:2%}
.grid figure{width:48%;margin:.6em 0 1em}
figcaption{font-size:.9em;color:#444;font-style:italic;margin-top:4px}
.note{border-left:4px solid #d39e00;background:#fff8e5;padding:6px 10px;margin:.8em 0}
nav.toc{background:#f5f7fa;border:1px solid #dde3ea;padding:6px 16px;margin:1em 0 1.5em;
font-size:.95em}
nav.toc ol{margin:4px 0;padding-left:22px}
a{color:#2a5d8f}
@media print{main{max-width:none;padding:0}.tw{overflow:visible}
h2{break-after:avoid}figure,table,.note{break-inside:avoid}a{color:inherit;text-decoration:none}}
@page{margin:15mm}
""".strip()


def _inline_html(text: str) -> str:
    s = html.escape(str(text), quote=False)
    s = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", s)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", s)


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page: inline CSS, figures as ``data:`` URIs (consecutive figures
    at most :data:`NARROW_FIGURE_PX` wide two per row), a table of contents of the level-2
    headings (with three or more) after the title; no script, no external resource."""
    body: list[str] = []
    toc: list[str] = []
    n_fig = n_sec = 0
    in_grid = False
    for b in blocks:
        narrow = isinstance(b, Figure) and png_size(b.data)[0] <= NARROW_FIGURE_PX
        if in_grid and not narrow:
            body.append("</div>")
            in_grid = False
        elif narrow and not in_grid:
            body.append('<div class="grid">')
            in_grid = True
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 4)
            if level == 2:
                n_sec += 1
                anchor = f"s{n_sec}"
                toc.append(f'<li><a href="#{anchor}">{_inline_html(b.text)}</a></li>')
                body.append(f'<h2 id="{anchor}">{_inline_html(b.text)}</h2>')
            else:
                body.append(f"<h{level}>{_inline_html(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Note):
            body.append(f'<p class="note">{_inline_html(b.text)}</p>')
        elif isinstance(b, Table):
            align = b.align or ("l",) * len(b.columns)
            cls = [' class="r"' if a == "r" else "" for a in align]
            head = "".join(f"<th{c}>{_inline_html(t)}</th>" for c, t in zip(cls, b.columns))
            rows = "".join("<tr>" + "".join(f"<td{c}>{_inline_html(t)}</td>" for c, t in zip(cls, row))
                           + "</tr>" for row in b.rows)
            cap = f"<caption>{_inline_html(b.caption)}</caption>" if b.caption else ""
            body.append(f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead>'
                        f"<tbody>{rows}</tbody></table></div>")
        elif isinstance(b, Figure):
            n_fig += 1
            w, h = png_size(b.data)
            uri = "data:image/png;base64," + base64.b64encode(b.data).decode("ascii")
            alt = html.escape(b.caption, quote=True)
            body.append(f'<figure><img src="{uri}" width="{w}" height="{h}" alt="{alt}">'
                        f"<figcaption>Figure {n_fig}. {_inline_html(b.caption)}</figcaption></figure>")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(b).__name__}")
    if in_grid:
        body.append("</div>")
    if len(toc) >= 3:
        # right after the title (or at the top when there is none)
        first = next((i + 1 for i, s in enumerate(body) if s.startswith("<h1>")), 0)
        body.insert(first, '<nav class="toc"><strong>Contents</strong><ol>' + "".join(toc) + "</ol></nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def _render(blocks: list[Block], title: str) -> Report:
    figures: dict[str, bytes] = {}
    for b in blocks:
        if isinstance(b, Figure):
            if b.name in figures and figures[b.name] != b.data:
                raise ValueError(f"two different figures named {b.name!r}")
            figures[b.name] = b.data
    return Report(render_markdown(blocks), render_html(blocks, title), figures)


# --------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------

def _cut(table: pd.DataFrame, max_rows: int) -> tuple[pd.DataFrame, str]:
    if len(table) <= max_rows:
        return table, ""
    return table.iloc[:max_rows], f" (first {max_rows} of {len(table)} rows)"


def _figure(inp_figs: Mapping[str, bytes], key: str, name: str, caption: str,
            settings: ReportSettings) -> list[Block]:
    data = inp_figs.get(key)
    if data is None:
        return []
    return [Figure(name, fit_png(data, settings.max_figure_width_px), caption)]


def _unit_columns(values: Sequence[tuple[float | None, str]], fmt) -> tuple[str, list[str]]:
    """(header unit suffix, cells): the unit goes in the header when every row shares it."""
    units = {u for v, u in values if v is not None}
    if len(units) <= 1:
        unit = next(iter(units), "")
        return (f" ({unit})" if unit else ""), [fmt(v) for v, _ in values]
    return "", [_NA if v is None else f"{fmt(v)} {u}" for v, u in values]


def _length_unit(row: Mapping[str, Any]) -> str:
    return str(row.get("length_unit") or "um")


def _ecd(row: Mapping[str, Any], stat: str) -> tuple[float | None, str]:
    unit = _length_unit(row)
    v = _num(row.get(f"ecd_{unit}_{stat}"))
    if v is not None:
        return v, _UNIT_TEXT.get(unit, unit)
    return _num(row.get(f"ecd_px_{stat}")), "px"


def _density(row: Mapping[str, Any], est: str) -> tuple[float | None, str]:
    v = _num(row.get(f"density_cm2_{est}"))
    if v is not None:
        return v, "cm⁻²"
    return _num(row.get(f"density_px2_{est}")), "px⁻²"


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(table.columns, row)) for row in table.itertuples(index=False, name=None)]


def certificate_table(summary: pd.DataFrame, choice: EstimatorChoice, *,
                      caption: str = "") -> Table:
    """The per-image certificate table from an analysis summary (``data/analysis/summary.csv``
    or ``data/measured/summary.csv`` columns): image, pixel size, porosity, pore density with
    the estimator used, the three counts, ECD mean and sd, Clark-Evans R and verdict, the
    Monte-Carlo CSR verdict."""
    rows = _records(summary)
    used = [choice.for_porosity(r.get("porosity")) for r in rows]
    d_unit, d_cells = _unit_columns([_density(r, e) for r, e in zip(rows, used)], format_sci)
    m_unit, m_cells = _unit_columns([_ecd(r, "mean") for r in rows], format_sig)
    s_unit, s_cells = _unit_columns([_ecd(r, "sd") for r in rows], format_sig)
    cols = ("image", "pixel size (nm)", "porosity (%)", f"pore density{d_unit}", "density from",
            *(f"pores: {_label(e)}" for e in ESTIMATORS), f"ECD mean{m_unit}", f"ECD sd{s_unit}",
            "Clark-Evans R", "Clark-Evans verdict", "CSR test (Monte-Carlo)")
    out = []
    for k, r in enumerate(rows):
        out.append((str(r.get("image_id")), format_number(r.get("pixel_size_nm"), ".4g"),
                    format_porosity(r.get("porosity")), d_cells[k], _label(used[k]),
                    *(format_count(r.get(f"count_{e}"), e) for e in ESTIMATORS),
                    m_cells[k], s_cells[k], format_number(r.get("ce_R"), ".3f"),
                    _text(r.get("ce_verdict")), _text(r.get("mc_verdict"))))
    return Table(cols, tuple(out), ("l", "r", "r", "r", "l", "r", "r", "r", "r", "r", "r", "l", "l"),
                 caption)


def _density_table(summary: pd.DataFrame, caption: str) -> Table:
    rows = _records(summary)
    per_est = {e: _unit_columns([_density(r, e) for r in rows], format_sci) for e in ESTIMATORS}
    cols = ("image", *(f"density: {_label(e)}{per_est[e][0]}" for e in ESTIMATORS),
            "pores (split)", "regions", "border objects", "E[A] of one pore (px)")
    out = []
    for k, r in enumerate(rows):
        out.append((str(r.get("image_id")), *(per_est[e][1][k] for e in ESTIMATORS),
                    format_number(r.get("n_pores"), ".0f"), format_number(r.get("n_regions"), ".0f"),
                    format_number(r.get("n_border"), ".0f"),
                    format_number(r.get("mean_pore_area_px"), ".1f")))
    return Table(cols, tuple(out), ("l",) + ("r",) * (len(cols) - 1), caption)


_NO_CHOICE = ("no validation results were available to choose a count estimator, so pore "
              "density uses the {label} count (`{est}`), a direct count of the separated pores")


def _choice_sentence(choice: EstimatorChoice) -> str:
    if not choice.bands:
        text = _NO_CHOICE.format(label=_label(choice.default), est=choice.default)
        return text[0].upper() + text[1:] + "."
    parts = []
    for band, _, _, est, maes in choice.bands:
        others = ", ".join(f"{_label(e)} {maes[e]:.2f} %" for e in ESTIMATORS if e in maes and e != est)
        parts.append(f"porosity {band}: **{_label(est)}** (`{est}`, mean |count error| "
                     f"{maes[est]:.2f} %" + (f"; {others}" if others else "") + ")")
    return ("Pore density uses, per image, the count estimator with the lowest mean absolute count "
            f"error in the image's porosity band, from {choice.source}: " + "; ".join(parts) + ".")


def _guard_frame_sentence(include_edges: Sequence[str] | None) -> str:
    edges = list(include_edges) if include_edges else ["top", "left"]
    excluded = [e for e in ("top", "bottom", "left", "right") if e not in edges]
    return ("Counts use the guard-frame rule (objects touching the "
            f"{' or '.join(excluded) or 'no'} edge are not counted); the Boolean-model count is "
            "λ × analysed area with λ = −ln(1 − porosity) / E[A], E[A] the mean area of one pore. "
            "ECD statistics exclude objects touching the image border. Densities per cm² need the "
            "pixel size; without it they are per px².")


# --------------------------------------------------------------------------------------------
# sections of the pipeline report
# --------------------------------------------------------------------------------------------

def _na(what: str, path: str, stage: str) -> Note:
    return Note(f"Not available: {what} (`{path}` not found; run the `{stage}` stage).")


def _key_results(inp: ReportInputs) -> list[Block]:
    items = []
    ev = inp.evaluate
    if ev:
        cls = [k for k in ev if isinstance(ev[k], Mapping) and "dice" in ev[k]]
        for c in cls:
            items.append(f"Segmentation ({c}), {ev.get('n_images')} test images: Dice mean "
                         f"{format_number(_get(ev, c, 'dice', 'mean'))} (pooled "
                         f"{format_number(_get(ev, c, 'dice', 'pooled'))}), IoU mean "
                         f"{format_number(_get(ev, c, 'iou', 'mean'))}.")
        if _get(ev, "objects", "map") is not None:
            items.append(f"Objects: mAP@0.5:0.95 {format_number(_get(ev, 'objects', 'map'))}, "
                         f"AP@0.5 {format_number(_get(ev, 'objects', 'ap@0.5'))}.")
    an = inp.analyze
    if an and _get(an, "porosity", "pred") is not None:
        items.append(f"Porosity of the test images against the {an.get('reference')}: mean |error| "
                     f"{format_number(_get(an, 'porosity', 'pred', 'mae_pp'), '.3f')} pp, max "
                     f"{format_number(_get(an, 'porosity', 'pred', 'max_abs_pp'), '.3f')} pp.")
    va = inp.validate
    for key, what in (("predicted", "model + measurement"), ("ground_truth", "measurement alone")):
        t = _get(va, "targets", key)
        if isinstance(t, Mapping) and "porosity_met" in t:
            bands = "; ".join(f"count {b}: {'met' if v.get('met') else 'not met'} "
                              f"(best {_label(v.get('best_estimator'))}, max |error| "
                              f"{format_number(v.get('best_max_abs_pct'), '.2f')} % vs "
                              f"{format_number(v.get('tolerance_pct'), 'g')} %)"
                              for b, v in (t.get("count") or {}).items())
            items.append(f"Validation targets, {what}: porosity "
                         f"{'met' if t.get('porosity_met') else 'not met'} (max |error| "
                         f"{format_number(t.get('porosity_max_abs_pp'), '.3f')} pp vs "
                         f"{format_number(_get(va, 'targets', 'porosity_abs_pp'), 'g')} pp); {bands}.")
    ms = inp.measured_summary
    if ms is not None:
        items.append(f"New micrographs measured: {len(ms)}.")
    if not items:
        return [Note("No results are available yet: none of the metrics files was found.")]
    return [Heading(2, "Key results"), Bullets(tuple(items))]


def _param_rows(p: Mapping[str, Any], group: str, keys: Sequence[str]) -> list[tuple[str, str]]:
    g = p.get(group)
    if not isinstance(g, Mapping):
        return []
    return [(f"`{group}.{k}`", _plain(g[k])) for k in keys if k in g]


def _plain(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_plain(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_plain(x)}" for k, x in v.items()) + "}"
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    out = []
    for k in d:
        v = d[k]
        if isinstance(v, Mapping) and depth < 1:
            out += _flatten(v, f"{prefix}{k}.", depth + 1)
        else:
            text = _plain(v)
            out.append((f"`{prefix}{k}`", text if len(text) <= 160 else text[:157] + "..."))
    return out


def _card_rows(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of a model card: the identity fields of a porescope card
    (``format: porescope-model-card/...``, :mod:`porescope.provenance.model_card`), else every field
    (nested mappings flattened one level)."""
    if not str(card.get("format", "")).startswith("porescope-model-card"):
        return _flatten(card)

    def row(label: str, *keys: str) -> list[tuple[str, str]]:
        v = _get(card, *keys)
        return [] if v is None else [(label, _plain(v))]

    rows = row("card format", "format") + row("model file", "model", "file")
    cfg = _get(card, "model", "config")
    if isinstance(cfg, Mapping):
        rows += [(f"model {k}", _plain(v)) for k, v in cfg.items()]
    rows += row("classes", "model", "class_names")
    rows += row("epochs run", "training", "epochs_run") + row("best epoch (0-based)", "training", "best_epoch")
    for k, v in (_get(card, "training", "validation") or {}).items():
        rows.append((f"validation {k}", format_number(v)))
    aug = _get(card, "data", "augmented") or {}
    if aug:
        rows.append(("training dataset", f"{aug.get('name')} ({aug.get('n_samples')} samples from "
                                         f"{aug.get('n_source_tiles')} tiles)"))
        rows += row("training dataset SHA-256 digest", "data", "augmented", "files_digest")
    for split, info in (_get(card, "data", "splits") or {}).items():
        if isinstance(info, Mapping):
            rows.append((f"{split} split", f"{info.get('n_sources')} source images, {info.get('n_tiles')} tiles"))
            rows.append((f"{split} sources SHA-256 digest", _plain(info.get("sources_digest"))))
    rows += row("git commit", "git", "commit")
    dirty = _get(card, "git", "dirty")
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


def _setup(inp: ReportInputs, settings: ReportSettings) -> list[Block]:
    p = inp.params
    blocks: list[Block] = [Heading(2, "1. What was measured, and with which model")]
    if inp.model_card:
        rows = _card_rows(inp.model_card)
        cut = rows[:settings.max_rows]
        blocks.append(Table(("field", "value"), tuple(cut), ("l", "l"),
                            f"Model card (`{inp.path('model_card')}`)"
                            + (f", first {len(cut)} of {len(rows)} fields" if len(rows) > len(cut) else "")))
    elif "model_card" in inp.paths:
        blocks.append(Note(f"No model card (`{inp.path('model_card')}` not found); the model is "
                           "identified by its training parameters below."))
    else:
        blocks.append(Note("No model card was given; the model is identified by its training "
                           "parameters below."))
    aug = p.get("augment") if isinstance(p.get("augment"), Mapping) else {}
    dataset = []
    ingest = p.get("ingest") if isinstance(p.get("ingest"), Mapping) else {}
    if ingest:
        dataset.append(f"Source dataset `{ingest.get('source')}`; tiles of {ingest.get('tile_size')} px; "
                       f"pixel size {_plain(ingest.get('pixel_size_nm'))} nm.")
    if aug:
        dataset.append(f"Training set: the train split augmented to `{aug.get('ops', '')}{aug.get('size', '')}` "
                       f"(operations `{aug.get('ops') or 'none'}`, {aug.get('size')} samples).")
    tr = inp.train
    if not tr:
        dataset.append(f"Training summary not available (`{inp.path('train')}` not found; run the "
                       "`train` stage).")
    else:
        dataset.append(f"Training: {tr.get('train_samples')} augmented samples, {tr.get('val_tiles')} "
                       f"validation tiles; {tr.get('epochs_run')} epochs run, the weights of epoch "
                       f"{tr.get('best_epoch')} (0-based, as in the curves) kept (val IoU "
                       f"{format_number(tr.get('val_iou'))}, Dice {format_number(tr.get('val_dice'))}); "
                       f"decision threshold {format_number(tr.get('threshold'))}.")
    n_test = _get(inp.evaluate, "n_images")
    if n_test is None and inp.analysis_summary is not None:
        n_test = len(inp.analysis_summary)
    dataset.append(f"Test split: {n_test if n_test is not None else 'n/a'} whole images "
                   "(never augmented, never seen in training).")
    blocks.append(Bullets(tuple(dataset)))
    rows = (_param_rows(p, "train", ("arch", "encoder", "encoder_depth", "decoder_channels",
                                     "encoder_weights", "init_from", "loss", "epochs", "batch_size",
                                     "lr", "optimizer", "scheduler", "calibrate_threshold"))
            + _param_rows(p, "split", ("method", "val_fraction", "test_fraction"))
            + _param_rows(p, "evaluate", ("tile", "overlap", "tta", "objects"))
            + _param_rows(p, "analyze", ("objects", "connectivity", "include_edges", "length_unit",
                                         "counting", "split", "spatial")))
    if p.get("seed") is not None:
        rows.insert(0, ("`seed`", _plain(p.get("seed"))))
    if rows:
        blocks.append(Table(("parameter", "value"), tuple(rows), ("l", "l"),
                            "Key parameters (params.yaml)"))
    else:
        blocks.append(Note("Not available: the parameters (params.yaml has none of the train / "
                           "split / evaluate / analyze groups)."))
    return blocks


def _segmentation(inp: ReportInputs, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "2. Segmentation quality on the test images")]
    ev = inp.evaluate
    if not ev:
        blocks.append(_na("the segmentation scores", inp.path("evaluate"), "evaluate"))
    else:
        rows = []
        for cls in ev:
            if not (isinstance(ev[cls], Mapping) and "dice" in ev[cls]):
                continue
            for m, name in (("dice", "Dice"), ("iou", "IoU"), ("precision", "precision"),
                            ("recall", "recall")):
                rows.append((cls, name, *(format_number(_get(ev, cls, m, s)) for s in
                                          ("mean", "median", "min", "max", "pooled"))))
        blocks.append(Table(("class", "score", "mean", "median", "min", "max", "pooled"), tuple(rows),
                            ("l", "l", "r", "r", "r", "r", "r"),
                            f"Pixel scores over {ev.get('n_images')} test images (per-image statistics "
                            "and the pooled score over all pixels)"))
        o = ev.get("objects") or {}
        if o:
            blocks.append(Table(
                ("mAP@0.5:0.95", "mAP pooled", "AP@0.5", "AP@0.75", "precision@0.5", "recall@0.5",
                 "F1@0.5", "true objects", "predicted objects"),
                ((format_number(o.get("map")), format_number(o.get("map_pooled")),
                  format_number(o.get("ap@0.5")), format_number(o.get("ap@0.75")),
                  format_number(o.get("precision@0.5")), format_number(o.get("recall@0.5")),
                  format_number(o.get("f1@0.5")), format_number(o.get("n_true"), ".0f"),
                  format_number(o.get("n_pred"), ".0f")),),
                ("r",) * 9, "Object scores (one-to-one matching by IoU; AP = TP / (TP + FP + FN))"))
    pi = inp.eval_per_image
    if pi is not None and len(pi):
        t, cut = _cut(pi.sort_values(["dice", "image_id"]), settings.max_rows)
        blocks.append(Table(("image", "class", "Dice", "IoU", "precision", "recall"),
                            tuple((str(r["image_id"]), str(r.get("class_name", "")),
                                   *(format_number(r.get(c)) for c in ("dice", "iou", "precision", "recall")))
                                  for r in _records(t)),
                            ("l", "l", "r", "r", "r", "r"),
                            f"Per-image pixel scores, worst Dice first{cut}"))
    ob = inp.eval_objects
    if ob is not None and len(ob):
        blocks.append(Table(("IoU threshold", "TP", "FP", "FN", "precision", "recall", "F1", "AP"),
                            tuple((format_number(r.get("threshold"), ".2f"),
                                   *(format_number(r.get(c), ".0f") for c in ("tp", "fp", "fn")),
                                   *(format_number(r.get(c)) for c in ("precision", "recall", "f1", "ap")))
                                  for r in _records(ob)),
                            ("r",) * 8, "Object matching per IoU threshold (all test images)"))
    blocks += _figure(inp.figures, "evaluate/boxplot.png", "evaluate_boxplot.png",
                      "Per-image scores on the test images.", settings)
    blocks += _figure(inp.figures, "evaluate/worst.png", "evaluate_worst.png",
                      "Worst test images by Dice (left: truth outline yellow, prediction red; right: "
                      "prediction filled).", settings)
    if inp.train_curves:
        fig = training_curves_figure(inp.train_curves, _get(inp.train, "best_epoch"))
        blocks.append(Figure("train_curves.png", fit_png(figure_png(fig), settings.max_figure_width_px),
                             "Training curves (DVCLive): losses, validation scores, learning rate; "
                             "dotted: the epoch kept."))
    else:
        blocks.append(_na("the training curves", inp.path("train_curves"), "train"))
    return blocks


def _certificate(inp: ReportInputs, choice: EstimatorChoice, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "3. Certificate: measurements per test image")]
    s = inp.analysis_summary
    if s is None or not len(s):
        return blocks + [_na("the per-image measurements", inp.path("analysis_summary"), "analyze")]
    t, cut = _cut(s.sort_values("image_id"), settings.max_rows)
    split = str(s["split_method"].iloc[0]) if "split_method" in s.columns else ""
    objects = str(s["objects"].iloc[0]) if "objects" in s.columns else "pores"
    blocks.append(Paragraph(f"Measured on the model's predicted masks of the test images. Objects: "
                            f"{objects}" + (f" (touching pores separated by {split})" if split else "")
                            + ". " + _guard_frame_sentence(_get(inp.params, "analyze", "include_edges"))))
    blocks.append(Paragraph(_choice_sentence(choice)))
    blocks.append(certificate_table(t, choice, caption=f"Certificate table{cut}"))
    blocks.append(_density_table(t, f"Pore density by estimator{cut}"))
    blocks += _truth_comparison(inp, settings)
    return blocks


def _truth_comparison(inp: ReportInputs, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Comparison with the reference")]
    c = inp.analyze_summary
    if c is None or not len(c):
        return blocks + [_na("the comparison with the truth", inp.path("analyze_summary"), "analyze")]
    ref = str(c["reference"].iloc[0]) if "reference" in c.columns else "reference"
    blocks.append(Paragraph(
        f"Reference: **{ref}**. Each estimator is compared with the truth in its own counting "
        "convention (frame counts: true pores kept by the guard-frame rule; Boolean model: pores "
        "whose centre lies in the image). Cells: measured / true (error %)."))
    t, cut = _cut(c.sort_values("image_id"), settings.max_rows)
    rows = []
    for r in _records(t):
        cells = []
        for e in ESTIMATORS:
            cells.append(f"{format_count(r.get(f'count_pred_{e}'), e)} / "
                         f"{format_count(r.get(f'count_true_{e}'), e)} "
                         f"({format_signed(r.get(f'count_error_pred_{e}_pct'))} %)")
        rows.append((str(r["image_id"]), format_porosity(r.get("porosity_true")),
                     format_porosity(r.get("porosity_gt_mask")), format_porosity(r.get("porosity_pred")),
                     format_signed(r.get("porosity_error_pred_pp"), 2), *cells))
    blocks.append(Table(("image", "porosity true (%)", "porosity GT mask (%)", "porosity predicted (%)",
                         "porosity error (pp)", *(f"pores: {_label(e)}" for e in ESTIMATORS)),
                        tuple(rows), ("l",) + ("r",) * 7, f"Predicted masks against the {ref}{cut}"))
    an = inp.analyze
    ests = _get(an, "estimators")
    if isinstance(ests, Mapping):
        bands: list[str] = []
        for e in ESTIMATORS:
            for b in (_get(ests, e, "pred", "bands") or {}):
                if b not in bands:
                    bands.append(b)
        rows = []
        for key, mask in (("pred", "predicted"), ("gt_mask", "ground truth")):
            for e in ESTIMATORS:
                st = _get(ests, e, key)
                if not isinstance(st, Mapping):
                    continue
                rows.append((mask, _label(e), format_number(st.get("porosity_mae_pp"), ".3f"),
                             format_number(st.get("count_mae_pct"), ".2f"),
                             format_signed(st.get("count_bias_pct"), 2),
                             format_signed(st.get("count_pooled_pct"), 2),
                             *(format_number(_get(st, "bands", b, "count_mae_pct"), ".2f") for b in bands)))
        if rows:
            blocks.append(Table(("mask", "estimator", "porosity MAE (pp)", "count MAE (%)",
                                 "count bias (%)", "count pooled (%)",
                                 *(f"count MAE {b} (%)" for b in bands)),
                                tuple(rows), ("l", "l") + ("r",) * (4 + len(bands)),
                                f"Errors over {an.get('n_images')} test images (`{inp.path('analyze')}`)"))
    blocks += _figure(inp.figures, "analyze/porosity_scatter.png", "analyze_porosity_scatter.png",
                      f"Test images: measured against {ref} porosity.", settings)
    blocks += _figure(inp.figures, "analyze/count_error.png", "analyze_count_error.png",
                      "Test images: count error per estimator against the true porosity.", settings)
    return blocks


_DIST_FIGURES = (
    ("area_histogram.png", "Pore area per image and pooled (objects not touching the border)."),
    ("ecd_histogram.png", "Equivalent circular diameter (ECD) per image and pooled."),
    ("area_violin.png", "Pore area: violins per image with medians and quartiles."),
    ("ecd_violin.png", "ECD: violins per image with medians and quartiles."),
    ("feret_angle_kde.png", "Feret angle, circular kernel density estimate (0-180°)."),
    ("correlation.png", "Correlation of the shape descriptors (Pearson)."),
)


def _distribution_blocks(figs: Mapping[str, bytes], key_prefix: str, name_prefix: str,
                         settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = []
    for name, caption in _DIST_FIGURES:
        blocks += _figure(figs, f"{key_prefix}{name}", f"{name_prefix}{name}", caption, settings)
    ripley = sorted(k for k in figs if k.startswith(f"{key_prefix}ripley_") and k.endswith(".png"))
    for key in ripley:
        name = key[len(key_prefix):]
        image = name[len("ripley_"):-len(".png")]
        blocks += _figure(figs, key, f"{name_prefix}{name}",
                          f"{image}: Ripley's L(r) − r with the Monte-Carlo CSR envelope "
                          "(outside the envelope: not random at that scale).", settings)
    return blocks


def _distributions(inp: ReportInputs, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "4. Size, shape and spatial distributions (test images)")]
    figs = _distribution_blocks(inp.figures, "analyze/", "analyze_", settings)
    return blocks + (figs or [_na("the distribution figures", inp.path("analyze_figures"), "analyze")])


def _validation(inp: ReportInputs, choice: EstimatorChoice, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "5. Validation against exact truth")]
    va = inp.validate
    if not va:
        return blocks + [_na("the validation on synthetic truth", inp.path("validate"), "validate")]
    tg = va.get("targets") or {}
    steps = tg.get("count_abs_pct") or []
    blocks.append(Paragraph(
        f"{va.get('n_images')} fresh synthetic membranes (never used in training; mask convention "
        f"`{va.get('mask_convention')}`), analysed on their exact ground-truth masks (the "
        "measurement alone) and on the masks the model predicts (segmentation + measurement). "
        f"Targets: porosity |error| ≤ {format_number(tg.get('porosity_abs_pp'), 'g')} pp for every "
        "image; count |error| " + ", ".join(
            f"≤ {format_number(tol, 'g')} % up to {format_number(100 * up, 'g')} % porosity"
            for up, tol in steps) + " for every image (best estimator of the band)."))
    rows = []
    for key, mask in (("ground_truth", "ground truth"), ("predicted", "predicted")):
        t = tg.get(key)
        if not isinstance(t, Mapping):
            continue
        rows.append((mask, "porosity", "", format_number(t.get("porosity_max_abs_pp"), ".3f") + " pp",
                     format_number(tg.get("porosity_abs_pp"), "g") + " pp",
                     "met" if t.get("porosity_met") else "**not met**", "", ""))
        for band, v in (t.get("count") or {}).items():
            rows.append((mask, f"count, porosity {band}", _label(v.get("best_estimator")),
                         format_number(v.get("best_max_abs_pct"), ".2f") + " %",
                         format_number(v.get("tolerance_pct"), "g") + " %",
                         "met" if v.get("met") else "**not met**",
                         f"{format_signed(v.get('best_pooled_pct'), 2)} % "
                         f"({'met' if v.get('met_pooled') else 'not met'})",
                         ", ".join(_label(e) for e in v.get("estimators_meeting") or []) or "none"))
    if rows:
        blocks.append(Table(("mask", "criterion", "best estimator", "max |error|", "tolerance",
                             "every image", "pooled error", "estimators meeting it"),
                            tuple(rows), ("l", "l", "l", "r", "r", "l", "r", "l"),
                            f"Targets (`{inp.path('validate')}`)"))
    errors = va.get("errors") or {}
    rows = []
    bands: list[str] = []
    for per_est in errors.values():
        for st in per_est.values():
            for b in st:
                if b not in bands:
                    bands.append(b)
    bands.sort(key=lambda b: (b == "all", parse_band(b)[0] if b != "all" else 0.0))
    for key in ("ground_truth", "predicted"):
        for e in (*ESTIMATORS, "boolean_model_known_area"):
            st = _get(errors, key, e)
            if not isinstance(st, Mapping):
                continue
            rows.append((key.replace("_", " "), _label(e),
                         *(f"{format_number(_get(st, b, 'count_mae_pct'), '.2f')} "
                           f"({format_number(_get(st, b, 'count_max_abs_pct'), '.2f')})" for b in bands),
                         format_signed(_get(st, "all", "count_bias_pct"), 2),
                         format_signed(_get(st, "all", "count_pooled_pct"), 2),
                         format_number(_get(st, "all", "porosity_mae_pp"), ".3f")))
    if rows:
        blocks.append(Table(("mask", "estimator", *(f"count error {b}: mean (max) %" for b in bands),
                             "bias (%)", "pooled (%)", "porosity MAE (pp)"),
                            tuple(rows), ("l", "l") + ("r",) * (len(bands) + 3),
                            "Count errors per estimator and porosity band (mean |error|, in brackets "
                            "the largest |error|); the Boolean model with a known E[A] separates the "
                            "model's error from that of estimating E[A]"))
        blocks.append(Paragraph("**Which estimator to trust.** " + _trust_sentence(choice)))
    vt = inp.validate_table
    if vt is not None and len(vt):
        blocks += _validation_images(vt, settings)
    else:
        blocks.append(_na("the per-image validation table", inp.path("validate_table"), "validate"))
    blocks += _figure(inp.figures, "validate/count_error.png", "validate_count_error.png",
                      "Validation: count error per estimator against the true porosity (grey: "
                      "tolerance).", settings)
    blocks += _figure(inp.figures, "validate/porosity_error.png", "validate_porosity_error.png",
                      "Validation: porosity error against the true porosity (grey: tolerance).", settings)
    blocks += _figure(inp.figures, "validate/porosity_scatter.png", "validate_porosity_scatter.png",
                      "Validation: measured against true porosity.", settings)
    return blocks


def _trust_sentence(choice: EstimatorChoice) -> str:
    if not choice.bands:
        text = _NO_CHOICE.format(label=_label(choice.default), est=choice.default)
        return text[0].upper() + text[1:] + "."
    parts = []
    for band, _, _, est, maes in choice.bands:
        ranked = sorted(maes, key=lambda e: (maes[e], e))
        rest = ", then ".join(f"{_label(e)} ({maes[e]:.2f} %)" for e in ranked[1:])
        parts.append(f"at porosity {band} the **{_label(est)}** has the smallest mean |count error| "
                     f"({maes[est]:.2f} %)" + (f", then {rest}" if rest else ""))
    return f"From {choice.source}: " + "; ".join(parts) + ". The certificate's densities follow this choice."


def _validation_images(vt: pd.DataFrame, settings: ReportSettings) -> list[Block]:
    ests = [e for e in (*ESTIMATORS, "boolean_model_known_area") if e in set(vt["estimator"])]
    masks = [m for m in ("ground truth", "predicted") if m in set(vt["mask"])]
    rows = []
    ids = (vt.drop_duplicates("image_id").sort_values(["porosity_true", "image_id"])["image_id"].tolist())
    by = {(r["image_id"], r["mask"], r["estimator"]): r for r in _records(vt)}
    for iid in ids[:settings.max_rows]:
        any_row = next(r for k, r in by.items() if k[0] == iid)
        pred = by.get((iid, "predicted", ests[0])) if "predicted" in masks else None
        guard = by.get((iid, masks[0], "split_labels"))
        centres = by.get((iid, masks[0], "boolean_model"))
        cells = [f"{format_signed(_get(by, (iid, m, e), 'count_error_pct'))}" for e in ests for m in masks]
        rows.append((str(iid), format_porosity(any_row.get("porosity_true")),
                     format_number(any_row.get("mean_diameter_px"), ".1f"),
                     format_signed(pred.get("porosity_error_pp"), 2) if pred else _NA,
                     format_number(guard.get("count_true") if guard else None, ".0f"),
                     format_number(centres.get("count_true") if centres else None, ".0f"), *cells))
    short = {"ground truth": "GT", "predicted": "pred."}
    cols = ("image", "true porosity (%)", "mean diameter (px)", "porosity error, pred. (pp)",
            "true pores (guard frame)", "true pores (centres inside)",
            *(f"{_label(e)}, {short[m]} (%)" for e in ests for m in masks))
    cut = f" (first {settings.max_rows} of {len(ids)})" if len(ids) > settings.max_rows else ""
    return [Table(cols, tuple(rows), ("l",) + ("r",) * (len(cols) - 1),
                  f"Per validation image: count error per estimator on the ground-truth (GT) and "
                  f"predicted masks, by true porosity{cut}")]


def _measured_blocks(summary: pd.DataFrame | None, run: Mapping[str, Any] | None,
                     figs: Mapping[str, bytes], choice: EstimatorChoice, settings: ReportSettings, *,
                     level: int, fig_key: str, fig_prefix: str, overlay_key: str | None,
                     empty_text: str) -> list[Block]:
    blocks: list[Block] = []
    run = run or {}
    info = []
    if run.get("model") is not None:
        info.append(f"Model: `{run.get('model')}`")
    if run.get("input") is not None:
        info.append(f"Input: `{run.get('input')}` ({0 if summary is None else len(summary)} image(s))")
    if run.get("split"):
        info.append(f"Pore objects: {run.get('split')}")
    if info:
        blocks.append(Bullets(tuple(info)))
    if summary is None or summary.empty:
        return blocks + [Paragraph(empty_text)]
    t, cut = _cut(summary.sort_values("image_id"), settings.max_rows)
    include = _get(run, "settings", "analysis", "include_edges")
    blocks.append(Paragraph(_guard_frame_sentence(include) + " " + _choice_sentence(choice)))
    blocks.append(certificate_table(t, choice, caption=f"Measurements per micrograph{cut}"))
    blocks.append(_density_table(t, f"Pore density by estimator{cut}"))
    rows = []
    for r in _records(t):
        rows.append((str(r.get("image_id")), str(r.get("image_file", "")), str(r.get("format", "")),
                     f"{format_number(r.get('orig_width'), '.0f')}×{format_number(r.get('orig_height'), '.0f')}",
                     format_number(r.get("crop_bottom"), ".0f"),
                     format_number(r.get("pixel_size_nm"), ".4g") + f" ({r.get('pixel_size_source', '')})",
                     format_number(r.get("scale"), ".3g") + f" ({r.get('scale_source', '')})"))
    blocks.append(Table(("image", "file", "format", "size (px)", "data bar rows cropped",
                         "pixel size nm (source)", "resize before inference"),
                        tuple(rows), ("l", "l", "l", "r", "r", "r", "r"), f"Image handling{cut}"))
    if "warnings" in t.columns:
        warn = [(str(r["image_id"]), str(r["warnings"])) for r in _records(t)
                if isinstance(r.get("warnings"), str) and r["warnings"].strip()]
        if warn:
            blocks += [Heading(level + 1, "Warnings"), Bullets(tuple(f"{i}: {w}" for i, w in warn))]
    if overlay_key is not None:
        over = sorted(k for k in figs if k.startswith(overlay_key))
        for key in over[:settings.max_overlays]:
            stem = key[len(overlay_key):].rsplit(".", 1)[0]
            blocks.append(Figure(f"{fig_prefix}overlay_{stem}.png",
                                 fit_png(figs[key], settings.thumbnail_width_px),
                                 f"{stem}: pore outlines (red) on the analysed micrograph."))
        if len(over) > settings.max_overlays:
            blocks.append(Note(f"{len(over) - settings.max_overlays} more outline images are in the "
                               "measurement folder (`overlays/`)."))
    blocks += _distribution_blocks(figs, fig_key, fig_prefix, settings)
    return blocks


def _measured(inp: ReportInputs, choice: EstimatorChoice, settings: ReportSettings) -> list[Block]:
    blocks: list[Block] = [Heading(2, "6. New micrographs (measure)")]
    if inp.measured_summary is None:
        return blocks + [_na("measurements of new micrographs", inp.path("measured_summary"), "measure")]
    return blocks + _measured_blocks(
        inp.measured_summary, inp.measured_run, inp.figures, choice, settings, level=2,
        fig_key="measured/figures/", fig_prefix="measured_", overlay_key="measured/overlays/",
        empty_text="No micrographs were measured (the measure input folder held none).")


def _appendix(inp: ReportInputs) -> list[Block]:
    if not inp.sources:
        return []
    return [Heading(2, "Inputs of this report"),
            Table(("file", "SHA-256"), tuple((f"`{p}`", f"`{h}`") for p, h in inp.sources),
                  ("l", "l"), "Every file the report was built from")]


def build_report(inp: ReportInputs, settings: ReportSettings | None = None) -> Report:
    """The pipeline report (Markdown, HTML, figure files) from loaded inputs; missing inputs
    give a 'Not available' note in their section."""
    settings = settings or ReportSettings()
    choice = choose_estimators(inp.validate, inp.analyze)
    blocks: list[Block] = [Heading(1, settings.title)]
    blocks += _key_results(inp)
    blocks += _setup(inp, settings)
    blocks += _segmentation(inp, settings)
    blocks += _certificate(inp, choice, settings)
    blocks += _distributions(inp, settings)
    blocks += _validation(inp, choice, settings)
    blocks += _measured(inp, choice, settings)
    blocks += _appendix(inp)
    return _render(blocks, settings.title)


def measure_report(summary: pd.DataFrame, run_info: Mapping[str, Any], figures: Mapping[str, bytes],
                   settings: ReportSettings | None = None,
                   choice: EstimatorChoice | None = None) -> Report:
    """The report of a ``measure`` run: ``summary`` = its ``summary.csv`` table, ``run_info`` its
    ``run.json`` dict, ``figures`` = ``{file name: PNG}`` of its ``figures/`` folder (the
    Markdown links ``figures/<name>``). ``choice`` defaults to the watershed split count."""
    settings = settings or ReportSettings(title="porescope measurement report")
    choice = choice or choose_estimators(None, None)
    figs = {f"figures/{k}": v for k, v in figures.items()}
    blocks: list[Block] = [Heading(1, settings.title)]
    blocks += _measured_blocks(summary, run_info, figs, choice, settings, level=1,
                               fig_key="figures/", fig_prefix="", overlay_key=None,
                               empty_text="No micrographs were found in the input folder.")
    if summary is not None and not summary.empty:
        blocks.append(Paragraph("Tables: `summary.csv` (per image), `objects.csv` (per object, ImageJ "
                                "column names; Fiji's X, Y = ours + 0.5 px). Masks: `masks/`, outlines: "
                                "`overlays/`."))
    return _render(blocks, settings.title)
