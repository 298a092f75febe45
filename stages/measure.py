"""DVC stage ``measure``: measure the micrographs of ``measure.source`` with the pipeline's model.

    python -m stages.measure --params params.yaml --model models/model.pt \\
        --source data/measure --out data/measured --metrics metrics/measure.json

The work is :func:`porescope.measure.folder.run_measure`; see there for the outputs. With
``measure.enabled: false`` nothing is measured: ``--out`` holds only a README saying so and
``--metrics`` is ``{"skipped": true, "reason": ...}``.

A partial run (some files not measured, listed in ``run.json`` and the report) writes all its
outputs and then fails (exit 2) unless ``measure.allow_partial`` is true: a pipeline stage
that succeeds with micrographs silently missing would let ``dvc repro`` record and cache
numbers for a folder it did not fully measure. With ``allow_partial: true`` it logs a
warning and succeeds (``--metrics`` lists the files not measured).
"""

from __future__ import annotations

import logging
from pathlib import Path

from porescope.analysis.params import AnalysisParams
from porescope.measure.folder import PartialMeasureError, run_measure, write_skipped
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
    try:
        run_measure(args.source, args.model, args.out, params, overwrite=True, metrics=args.metrics)
    except PartialMeasureError as exc:
        if not params.allow_partial:
            raise
        logging.getLogger("porescope.measure").warning("%s (measure.allow_partial: true)", exc)
    return 0


if __name__ == "__main__":
    run_stage("measure", main)
