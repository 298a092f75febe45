r"""What the pipeline report shows, read from the folders the other stages wrote.

:func:`read_report_inputs` reads every input that exists into :class:`ReportInputs`; nothing is
recomputed. Each input is optional: a missing one stays ``None`` / empty (its section then says
"Not available"); a present but malformed one is a :class:`porescope.io.tables.PipelineDataError`
naming the file. Every file read is listed with its SHA-256 (:attr:`ReportInputs.sources`).

Layout read (relative to the folders given):

* ``<metrics>/train.json``, ``evaluate.json``, ``analyze.json``, ``validate.json``;
* ``<plots>/train/plots/metrics/*.tsv`` (DVCLive curves); ``<plots>/evaluate/per_image.csv``,
  ``objects.csv``, ``boxplot.png``, ``worst.png``; ``<plots>/analyze/summary.csv`` and its
  ``*.png``; ``<plots>/validate/table.csv`` and its ``*.png``;
* ``<analysis>/summary.csv`` (per test image, on the predicted masks);
* ``<measured>/summary.csv``, ``run.json``, ``figures/*.png``, ``overlays/*.png`` (``measure``);
* the model card JSON, when given.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "params.yaml").write_text("seed: 1\n")
>>> inp = read_report_inputs(root / "params.yaml", root / "metrics", root / "plots", root / "analysis")
>>> inp.params, inp.evaluate, len(inp.sources)
({'seed': 1}, None, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from porescope.config import load_params
from porescope.io.tables import PipelineDataError, read_table
from porescope.report.figures import png_size

__all__ = ["ReportInputs", "read_report_inputs"]


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


class _Reader:
    """Reads the optional inputs, remembering each file's display path and SHA-256."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def bytes(self, path: Path) -> bytes | None:
        if not path.is_file():
            return None
        data = path.read_bytes()
        self.sources[path.as_posix()] = hashlib.sha256(data).hexdigest()
        return data

    def json(self, path: Path | None) -> dict[str, Any] | None:
        data = self.bytes(path) if path is not None else None
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
        if self.bytes(path) is None:
            return None
        return read_table(path, required=required)

    def png(self, path: Path) -> bytes | None:
        data = self.bytes(path)
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
            if self.bytes(path) is None:
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


def read_report_inputs(params_path: str | os.PathLike, metrics: Path, plots: Path, analysis: Path,
                       measured: Path | None = None, model_card: Path | None = None) -> ReportInputs:
    """Read every input that exists (see the module docstring) into :class:`ReportInputs`.

    Parameters
    ----------
    params_path : path
        The params file, shown as key parameters (and listed among the sources).
    metrics, plots, analysis : Path
        The folders of the metrics JSON files, the plots and the analysis tables.
    measured : Path, optional
        The ``measure`` output folder; ``None``: no measurements (the display path
        ``paths["measured_summary"]`` is then left to the caller).
    model_card : Path, optional
        A JSON model card; when given but absent, the report says it was not found.

    Raises
    ------
    porescope.io.tables.PipelineDataError
        An input that exists but cannot be read (bad JSON, table, PNG or TSV), naming the file.
    """
    r = _Reader()
    params_path = Path(params_path)
    metrics, plots, analysis = Path(metrics), Path(plots), Path(analysis)
    params = load_params(params_path)
    r.bytes(params_path)
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
    paths = {
        "train": (metrics / "train.json").as_posix(),
        "train_curves": (plots / "train" / "plots" / "metrics").as_posix(),
        "evaluate": (metrics / "evaluate.json").as_posix(),
        "analyze": (metrics / "analyze.json").as_posix(),
        "analysis_summary": (analysis / "summary.csv").as_posix(),
        "analyze_summary": (plots / "analyze" / "summary.csv").as_posix(),
        "analyze_figures": (plots / "analyze").as_posix(),
        "validate": (metrics / "validate.json").as_posix(),
        "validate_table": (plots / "validate" / "table.csv").as_posix(),
    }
    if measured is not None:
        measured = Path(measured)
        inp.measured_summary = r.table(measured / "summary.csv", ("image_id", "porosity"))
        inp.measured_run = r.json(measured / "run.json")
        r.pngs(measured / "figures", "measured/figures/", figures)
        r.pngs(measured / "overlays", "measured/overlays/", figures)
        paths["measured_summary"] = (measured / "summary.csv").as_posix()
    if model_card is not None:
        paths["model_card"] = Path(model_card).as_posix()
    inp.figures = figures
    inp.paths = paths
    inp.sources = tuple(sorted(r.sources.items()))
    return inp
