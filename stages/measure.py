"""DVC stage ``measure``: measure the micrographs of ``measure.source`` with the pipeline's model.

    python -m stages.measure --params params.yaml --model models/model.pt \\
        --source data/measure --out data/measured --metrics metrics/measure.json

The work is :func:`porescope.measure.workflow.run_measure`; see there for the outputs.
"""

from __future__ import annotations

from pathlib import Path

from porescope.analysis import membrane as ma
from porescope.measure.workflow import GROUP, parse_settings, run_measure
from stages.common import load_params, run_stage, setup_logging, stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--source", required=True, type=Path, help="folder of micrographs")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--metrics", type=Path, default=None)
    args = parser.parse_args(argv)
    setup_logging()
    raw_a = load_params(args.params, "analyze")
    analysis = ma.AnalysisParams.from_mapping(raw_a, source=str(args.params))
    _, settings = parse_settings(load_params(args.params, GROUP), analysis, seed=raw_a["seed"],
                                 source=str(args.params))
    run_measure(args.source, args.model, args.out, settings, overwrite=True, metrics=args.metrics)
    return 0


if __name__ == "__main__":
    run_stage("measure", main)
