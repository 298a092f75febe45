"""DVC stage ``split``: assign every ingested source image (and so all its tiles) to train/val/test.

    python -m stages.split --params params.yaml --ingested data/ingested --out data/split

Reads ``<ingested>/sources.csv`` and ``<ingested>/tiles.csv`` (ingest contract), groups sources with
identical content, assigns splits with the method of the ``split`` params group
(:class:`porescope.preprocessing.splitting.SplitParams`), audits the result with
``check_no_leakage`` and writes, atomically (:func:`porescope.preprocessing.splitting.run_split`):

    <out>/sources.csv   ingest sources.csv + group, split, fold
    <out>/tiles.csv     ingest tiles.csv + split, group, fold, source_image_file,
                        source_image_sha256, normalisation, pixel_size_nm   (audit manifest)

``fold`` is the k-fold index of a non-test source (empty unless ``method: kfold``).
"""

from __future__ import annotations

from porescope.config import parse_group
from porescope.preprocessing.splitting import SplitParams, run_split
from stages.common import load_params, run_stage, setup_logging, stage_parser

GROUP = "split"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("Split ingested sources into train/val/test by source image.")
    parser.add_argument("--ingested", default="data/ingested", help="ingest output folder")
    parser.add_argument("--out", default="data/split", help="output folder")
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = parse_group(SplitParams, raw, group=GROUP, source=str(args.params))
    run_split(params, raw["seed"], args.ingested, args.out)
    return 0


if __name__ == "__main__":
    run_stage("split", main)
