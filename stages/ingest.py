"""DVC stage ``ingest``: bring any labelled (or unlabelled) micrograph dataset into one layout.

Command (paths from ``dvc.yaml``)::

    python -m stages.ingest --params params.yaml --source <ingest.source> --out data/ingested

``--source`` wins over ``ingest.source`` when both are given (``dvc.yaml`` passes
``${ingest.source}``, so they agree under DVC; a differing value is logged). Everything else comes
from the ``ingest`` group of ``params.yaml`` (:class:`porescope.preprocessing.ingest.IngestParams`,
unknown keys are an error). The work and the outputs: :func:`porescope.preprocessing.ingest.run_ingest`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from porescope.preprocessing.ingest import parse_ingest_params, run_ingest
from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser

LOG = logging.getLogger("porescope.ingest")


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser("Ingest a micrograph dataset: read any supported format, decode masks "
                          "to class ids, crop SEM data bars, tile, and record provenance.")
    parser.add_argument("--source", default=None,
                        help="dataset folder (images/, masks/); overrides ingest.source")
    parser.add_argument("--out", default="data/ingested", help="output folder (data/ingested)")
    args = parser.parse_args(argv)
    setup_logging()
    params = parse_ingest_params(load_params(args.params, "ingest"), source=str(args.params))
    source = args.source if args.source is not None else params.source
    if params.sources is not None:  # the datasets name their own folders
        LOG.info("ingest.sources: %d dataset(s); %s is not read", len(params.sources), source)
        source = source if source is not None else "."
    if source is None:
        raise ParamsError(f"{args.params}: ingest.source is not set and --source was not given")
    if args.source is not None and params.source is not None and \
            Path(args.source) != Path(params.source):
        LOG.info("--source %s overrides ingest.source %s", args.source, params.source)
    run_ingest(source, args.out, params)
    return 0


if __name__ == "__main__":
    run_stage("ingest", main)
