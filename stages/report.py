"""DVC stage ``report``: the certificate-style document of a pipeline run (Markdown + one HTML file).

    python -m stages.report --params params.yaml --metrics metrics --plots plots \\
        --analysis data/analysis --measured data/measured --out report \\
        [--model-card models/model_card.json]

Reads what the other stages wrote (:func:`porescope.report.inputs.read_report_inputs`; each
input optional, a malformed one an error naming the file, and nothing is written), builds the
report (:func:`porescope.report.sections_pipeline.build_report`) laid out by the ``report``
params group (:class:`porescope.report.params.ReportParams`), and writes, atomically
(:func:`porescope.report.output.write_report`):

* ``<out>/report.md``: GitHub-readable Markdown; figures linked as ``figures/<name>.png``;
* ``<out>/report.html``: one self-contained page (CSS inline, figures as base64 ``data:``
  URIs, no script or network resource), printable;
* ``<out>/figures/*.png``: the figures the Markdown links (wide ones downscaled to
  ``report.max_figure_width_px``), including the training curves drawn from the DVCLive TSVs.

The same inputs give the same bytes (no dates or clock values; an appendix lists every input
file with its SHA-256).
"""

from __future__ import annotations

import logging
from pathlib import Path

from porescope.config import parse_group
from porescope.report.inputs import read_report_inputs
from porescope.report.output import Report, write_report
from porescope.report.params import ReportParams
from porescope.report.sections_pipeline import build_report
from stages.common import load_params, run_stage, setup_logging, stage_parser

LOG = logging.getLogger("porescope.report")
GROUP = "report"
#: the measure output the report names when ``--measured`` is not given
DEFAULT_MEASURED = Path("data/measured")


def run(params_path: Path, *, metrics: Path, plots: Path, analysis: Path, out: Path,
        measured: Path | None = None, model_card: Path | None = None) -> Report:
    """Load, build and write the report; returns it."""
    params_path = Path(params_path)
    params = parse_group(ReportParams, load_params(params_path).get(GROUP), group=GROUP,
                         source=str(params_path))
    inputs = read_report_inputs(params_path, metrics, plots, analysis, measured, model_card)
    if measured is None:
        inputs.paths = {**inputs.paths, "measured_summary": (DEFAULT_MEASURED / "summary.csv").as_posix()}
    report = build_report(inputs, params)
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
