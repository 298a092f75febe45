"""DVC stage ``report``: the certificate-style document of a pipeline run (Markdown + one HTML file).

    python -m stages.report --params params.yaml --metrics metrics --plots plots \\
        --analysis data/analysis --measured data/measured --out report \\
        [--model-card models/model_card.json]

Reads what the other stages wrote - nothing is recomputed, every number printed comes from
these files - and builds (:func:`porescope.report.document.build_report`):

* ``<out>/report.md``: GitHub-readable Markdown; figures linked as ``figures/<name>.png``;
* ``<out>/report.html``: one self-contained page (CSS inline, figures as base64 ``data:``
  URIs, no script or network resource), printable;
* ``<out>/figures/*.png``: the figures the Markdown links (wide ones downscaled to
  ``report.max_figure_width_px``), including the training curves drawn from the DVCLive TSVs.

Inputs (each optional: a missing one gives a short "Not available" note in its section; a
present but malformed one is an error naming the file, and nothing is written):

* ``<params>``: the groups ``seed``, ``train``, ``split``, ``augment``, ``ingest``, ``evaluate``,
  ``analyze`` (shown as key parameters) and ``report`` (layout; defaults when absent);
* ``<metrics>/train.json``, ``evaluate.json``, ``analyze.json``, ``validate.json``;
* ``<plots>/train/plots/metrics/*.tsv`` (DVCLive curves); ``<plots>/evaluate/per_image.csv``,
  ``objects.csv``, ``boxplot.png``, ``worst.png``; ``<plots>/analyze/summary.csv`` and its
  ``*.png``; ``<plots>/validate/table.csv`` and its ``*.png``;
* ``<analysis>/summary.csv`` (per test image, on the predicted masks);
* ``<measured>/summary.csv``, ``run.json``, ``figures/*.png``, ``overlays/*.png`` (``measure``);
* ``--model-card``: a JSON model card, shown field by field when the file exists.

The output folder is built under a temporary name and swapped in whole
(:func:`porescope.io.atomic.output_dir`); the same inputs give the same bytes (no dates or
clock values; an appendix lists every input file with its SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.io.atomic import output_dir, write_bytes, write_text
from porescope.io.tables import PipelineDataError, read_table
from porescope.report.document import (
    Report,
    ReportInputs,
    ReportSettings,
    build_report,
    png_size,
)

LOG = logging.getLogger("porescope.report")
GROUP = "report"


class _Reader:
    """Reads the optional inputs, remembering each file's display path and SHA-256."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def _bytes(self, path: Path) -> bytes | None:
        if not path.is_file():
            return None
        data = path.read_bytes()
        self.sources[path.as_posix()] = hashlib.sha256(data).hexdigest()
        return data

    def json(self, path: Path | None) -> dict[str, Any] | None:
        data = self._bytes(path) if path is not None else None
        if data is None:
            return None
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PipelineDataError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise PipelineDataError(f"{path}: expected a JSON object at the top level")
        return obj

    def table(self, path: Path, required: Iterable[str] = ()) -> pd.DataFrame | None:
        if self._bytes(path) is None:
            return None
        return read_table(path, required=required)

    def png(self, path: Path) -> bytes | None:
        data = self._bytes(path)
        if data is None:
            return None
        try:
            png_size(data)
        except ValueError as exc:
            raise PipelineDataError(f"{path}: {exc}; rerun the stage that writes it") from None
        return data

    def pngs(self, folder: Path, key_prefix: str, out: dict[str, bytes]) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.png")):
            data = self.png(path)
            if data is not None:
                out[f"{key_prefix}{path.name}"] = data

    def curves(self, folder: Path) -> dict[str, pd.DataFrame]:
        """DVCLive ``<name>.tsv`` series (``step`` and the value column ``name``)."""
        out: dict[str, pd.DataFrame] = {}
        if not folder.is_dir():
            return out
        for path in sorted(folder.rglob("*.tsv")):
            if self._bytes(path) is None:
                continue
            name = path.relative_to(folder).with_suffix("").as_posix()
            try:
                t = pd.read_csv(path, sep="\t")
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise PipelineDataError(f"{path}: not a readable DVCLive TSV: {exc}") from None
            col = path.stem
            if "step" not in t.columns or col not in t.columns:
                raise PipelineDataError(f"{path}: expected DVCLive columns 'step' and '{col}', "
                                        f"got {list(t.columns)}")
            out[name] = t[["step", col]].rename(columns={col: name})
        return out


def load_inputs(params_path: Path, metrics: Path, plots: Path, analysis: Path,
                measured: Path | None = None, model_card: Path | None = None) -> ReportInputs:
    """Read every input that exists (see the module docstring) into :class:`ReportInputs`."""
    r = _Reader()
    params_path = Path(params_path)
    params = load_params(params_path)
    r._bytes(params_path)
    figures: dict[str, bytes] = {}
    inp = ReportInputs(params=params)
    inp.model_card = r.json(model_card)
    inp.train = r.json(metrics / "train.json")
    inp.train_curves = r.curves(plots / "train" / "plots" / "metrics")
    inp.evaluate = r.json(metrics / "evaluate.json")
    inp.eval_per_image = r.table(plots / "evaluate" / "per_image.csv", ("image_id", "dice"))
    inp.eval_objects = r.table(plots / "evaluate" / "objects.csv", ("threshold", "ap"))
    for name in ("boxplot.png", "worst.png"):
        data = r.png(plots / "evaluate" / name)
        if data is not None:
            figures[f"evaluate/{name}"] = data
    inp.analyze = r.json(metrics / "analyze.json")
    inp.analysis_summary = r.table(analysis / "summary.csv", ("image_id", "porosity"))
    inp.analyze_summary = r.table(plots / "analyze" / "summary.csv", ("image_id", "reference"))
    r.pngs(plots / "analyze", "analyze/", figures)
    inp.validate = r.json(metrics / "validate.json")
    inp.validate_table = r.table(plots / "validate" / "table.csv",
                                 ("image_id", "mask", "estimator", "porosity_true", "count_true",
                                  "count_error_pct"))
    r.pngs(plots / "validate", "validate/", figures)
    if measured is not None:
        inp.measured_summary = r.table(measured / "summary.csv", ("image_id", "porosity"))
        inp.measured_run = r.json(measured / "run.json")
        r.pngs(measured / "figures", "measured/figures/", figures)
        r.pngs(measured / "overlays", "measured/overlays/", figures)
    inp.figures = figures
    inp.paths = {
        "train": (metrics / "train.json").as_posix(),
        "train_curves": (plots / "train" / "plots" / "metrics").as_posix(),
        "evaluate": (metrics / "evaluate.json").as_posix(),
        "analyze": (metrics / "analyze.json").as_posix(),
        "analysis_summary": (analysis / "summary.csv").as_posix(),
        "analyze_summary": (plots / "analyze" / "summary.csv").as_posix(),
        "analyze_figures": (plots / "analyze").as_posix(),
        "validate": (metrics / "validate.json").as_posix(),
        "validate_table": (plots / "validate" / "table.csv").as_posix(),
        "measured_summary": ((measured or Path("data/measured")) / "summary.csv").as_posix(),
    }
    if model_card is not None:
        inp.paths = {**inp.paths, "model_card": model_card.as_posix()}
    inp.sources = tuple(sorted(r.sources.items()))
    return inp


def write_report(report: Report, out: str | os.PathLike) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out``, atomically."""
    out = Path(out)
    with output_dir(out) as tmp:
        write_text(tmp / "report.md", report.markdown)
        write_text(tmp / "report.html", report.html)
        for name in sorted(report.figures):
            write_bytes(tmp / "figures" / name, report.figures[name])
    return out


def run(params_path: Path, *, metrics: Path, plots: Path, analysis: Path, out: Path,
        measured: Path | None = None, model_card: Path | None = None) -> Report:
    """Load, build and write the report; returns it."""
    params_path = Path(params_path)
    raw = load_params(params_path)
    try:
        settings = ReportSettings.from_mapping(raw.get(GROUP), source=str(params_path))
    except (TypeError, ValueError) as exc:
        raise ParamsError(str(exc)) from None
    inputs = load_inputs(params_path, metrics, plots, analysis, measured, model_card)
    report = build_report(inputs, settings)
    write_report(report, out)
    LOG.info("wrote %s: report.md (%d chars), report.html (%.0f KiB), %d figure(s) from %d input files",
             out, len(report.markdown), len(report.html.encode("utf-8")) / 1024, len(report.figures),
             len(inputs.sources))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, type=Path, help="folder of the metrics JSON files")
    parser.add_argument("--plots", required=True, type=Path, help="plots root (train/, evaluate/, ...)")
    parser.add_argument("--analysis", required=True, type=Path, help="analyze's tables (summary.csv)")
    parser.add_argument("--measured", type=Path, default=None, help="measure's output folder")
    parser.add_argument("--model-card", type=Path, default=None, help="model card JSON (optional)")
    parser.add_argument("--out", required=True, type=Path, help="report folder to write")
    args = parser.parse_args(argv)
    setup_logging()
    run(args.params, metrics=args.metrics, plots=args.plots, analysis=args.analysis, out=args.out,
        measured=args.measured, model_card=args.model_card)
    return 0


if __name__ == "__main__":
    run_stage("report", main)
