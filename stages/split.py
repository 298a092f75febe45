"""DVC stage ``split``: assign every ingested source image (and so all its tiles) to train/val/test.

    python -m stages.split --params params.yaml --ingested data/ingested --out data/split

Reads ``<ingested>/sources.csv`` and ``<ingested>/tiles.csv`` (ingest contract), groups sources with
identical content, assigns splits with the method of the ``split`` params group (see
``porescope.preprocessing.splitting``), audits the result with ``check_no_leakage`` and writes, atomically:

    <out>/sources.csv   ingest sources.csv + group, split, fold
    <out>/tiles.csv     ingest tiles.csv + split, group, fold, source_image_file,
                        source_image_sha256, normalisation, pixel_size_nm   (audit manifest)

``fold`` is the k-fold index of a non-test source (empty unless ``method: kfold``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.io import atomic as atomic_io
from porescope.io.tables import read_table
from porescope.preprocessing.splitting import SplitError, check_no_leakage, split_tables

LOG = logging.getLogger("porescope.split")

SOURCE_COLUMNS = ("source_id", "image_file", "image_sha256")
TILE_COLUMNS = ("tile_id", "source_id", "image_sha256")
def run(params_path: str | os.PathLike, ingested: str | os.PathLike, out: str | os.PathLike) -> None:
    """Run the stage (see the module docstring)."""
    params = load_params(params_path, "split")
    ingested = Path(ingested)
    sources = read_table(ingested / "sources.csv", SOURCE_COLUMNS, unique="source_id")
    tiles = read_table(ingested / "tiles.csv", TILE_COLUMNS, unique="tile_id")
    try:
        sources_out, tiles_out = split_tables(sources, tiles, params)
        check_no_leakage(tiles_out)  # split_tables audits too; the stage never writes unaudited
    except SplitError as exc:
        raise ParamsError(f"{params_path} / {ingested}: {exc}") from exc
    with atomic_io.output_dir(out) as tmp:
        atomic_io.write_csv(tmp / "sources.csv", sources_out)
        atomic_io.write_csv(tmp / "tiles.csv", tiles_out)
    n_groups = int(sources_out["group"].nunique())
    LOG.info("split (%s, seed %d): %d sources in %d groups", params.get("method", "fraction"),
             params["seed"], len(sources_out), n_groups)
    joined = sources_out.groupby("group")["source_id"].agg(list)
    joined = joined[joined.map(len) > 1]
    if len(joined):
        LOG.warning("%d group(s) of sources share raw content (identical file or identical tile "
                    "pixels) and were kept in one split: %s", len(joined),
                    "; ".join(", ".join(map(repr, g)) for g in joined.head(10)))
    for name in ("train", "val", "test"):
        LOG.info("  %-5s %4d sources %6d tiles", name, int((sources_out["split"] == name).sum()),
                 int((tiles_out["split"] == name).sum()))


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("Split ingested sources into train/val/test by source image.")
    parser.add_argument("--ingested", default="data/ingested", help="ingest output folder")
    parser.add_argument("--out", default="data/split", help="output folder")
    args = parser.parse_args(argv)
    setup_logging()
    run(args.params, args.ingested, args.out)


if __name__ == "__main__":
    run_stage("split", main)
