"""DVC stage ``measure``: measure the micrographs of ``measure.source`` with the pipeline's model.

    python -m stages.measure --params params.yaml --model models/model.pt \\
        --source data/measure --out data/measured --metrics metrics/measure.json

The work is :func:`porescope.measure.folder.run_measure`; see there for the outputs. With
``measure.enabled: false`` nothing is measured: ``--out`` holds only a README saying so and
``--metrics`` is ``{"skipped": true, "reason": ...}``.
"""

from __future__ import annotations

from pathlib import Path

from porescope.analysis.params import AnalysisParams
from porescope.measure.folder import run_measure, write_skipped
from porescope.measure.params import parse_measure_params
from stages.common import load_params, run_stage, setup_logging, stage_parser


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--source", required=True, type=Path, help="folder of micrographs")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--metrics", type=Path, default=None)
    args = parser.parse_args(argv)
    setup_logging()
    analysis = AnalysisParams.from_mapping(load_params(args.params, "analyze"), source=str(args.params))
    params = parse_measure_params(load_params(args.params, "measure"), analysis,
                                  source=str(args.params))
    if not params.enabled:
        write_skipped(args.out, args.metrics, f"measure.enabled is false in {args.params}; set it "
                                              "to true to measure the micrographs of "
                                              f"{args.source}")
        return 0
    run_measure(args.source, args.model, args.out, params, overwrite=True, metrics=args.metrics)
    return 0


if __name__ == "__main__":
    run_stage("measure", main)
