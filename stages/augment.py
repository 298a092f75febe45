"""DVC stage ``augment``: offline Augmentor augmentation of the TRAIN split only.

    python -m stages.augment --params params.yaml --ingested data/ingested --split data/split \\
        --out data/augmented

Reads the audit manifest ``<split>/tiles.csv``, keeps the tiles with ``split == train`` (their
PNGs from ``<ingested>/tiles/images`` and ``<ingested>/tiles/masks``) and the class ids from
``<ingested>/classes.json``, and builds a dataset of exactly ``augment.size`` samples named by the
ops and size (``RDZ1000``; see ``porescope.preprocessing.augmentation`` for operations, probabilities, seeding
and mask handling). The whole output folder is built under a temporary name and swapped in:

    <out>/images/<name>_<i:05d>.png   uint8 grey, tile size
    <out>/masks/<name>_<i:05d>.png    uint8 class ids (only ids declared in classes.json)
    <out>/samples.csv                 i, file, tile_id, source_id, ops, rotate_deg, zoom_factor,
                                      py_seed, np_seed
    <out>/dataset.json                name, size, ops, augmented, params, probability_mode,
                                      effective_probability, seed, n_source_tiles, tile_size,
                                      class_ids, augmentor_version

``size: 0`` or ``ops: ""`` -> no augmentation: the train tiles are copied once each under the
same layout (name ``orig<n>``), so training always reads this one format.
Validation and test tiles are never read; the stage asserts that every sample comes from a
train tile before the folder is swapped in.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.io import atomic as atomic_io
from porescope.preprocessing.augmentation import AugmentError, augment_tiles, resolve_params
from porescope.io.tables import read_classes, read_table

LOG = logging.getLogger("porescope.augment")


class LeakageError(AssertionError):
    """An augmented sample was made from a tile outside the training split."""


def train_tiles(split_tiles: pd.DataFrame, ingested: str | os.PathLike) -> pd.DataFrame:
    """Rows of the manifest with ``split == train``, plus ``image_path`` / ``mask_path``."""
    ingested = Path(ingested)
    train = split_tiles.loc[split_tiles["split"] == "train", ["tile_id", "source_id"]].copy()
    train["image_path"] = [str(ingested / "tiles" / "images" / f"{t}.png") for t in train["tile_id"]]
    train["mask_path"] = [str(ingested / "tiles" / "masks" / f"{t}.png") for t in train["tile_id"]]
    return train.reset_index(drop=True)


def check_train_only(samples: pd.DataFrame, split_tiles: pd.DataFrame) -> None:
    """Raise ``LeakageError`` unless every sample's ``tile_id`` is a train tile of the manifest."""
    split_of = dict(zip(split_tiles["tile_id"].astype(str), split_tiles["split"].astype(str)))
    where = samples["tile_id"].astype(str).map(lambda t: split_of.get(t, "<not in manifest>"))
    bad = samples.loc[where != "train", "tile_id"]
    if len(bad):
        raise LeakageError(f"augmented samples made from non-train tiles: "
                           f"{sorted(set(bad.astype(str)))[:10]} ({len(bad)} samples)")


def run(params_path: str | os.PathLike, ingested: str | os.PathLike, split: str | os.PathLike,
        out: str | os.PathLike, progress: bool = True) -> dict:
    """Run the stage (see the module docstring); returns the dataset.json content."""
    raw = load_params(params_path, "augment")
    try:
        params = resolve_params(raw)
    except AugmentError as exc:
        raise ParamsError(f"{params_path}: {exc}") from None
    ingested, split = Path(ingested), Path(split)
    manifest = read_table(split / "tiles.csv", ("tile_id", "source_id", "split", "tile_size"),
                          unique="tile_id")
    class_ids = sorted(read_classes(ingested))
    tiles = train_tiles(manifest, ingested)
    if tiles.empty:
        raise ValueError(f"{split / 'tiles.csv'}: no tile has split == train")
    sizes = manifest.loc[manifest["split"] == "train", "tile_size"].unique()
    if len(sizes) != 1:
        raise ValueError(f"{split / 'tiles.csv'}: train tiles have several tile_size values {sorted(sizes)}")
    tile_size = int(sizes[0])
    with atomic_io.output_dir(out) as tmp:
        samples, info = augment_tiles(tiles, tmp, params, class_ids, tile_size=tile_size,
                                      progress=progress)
        check_train_only(samples, manifest)
        atomic_io.write_csv(tmp / "samples.csv", samples)
        atomic_io.write_json(tmp / "dataset.json", info)
    LOG.info("augment: %s, %d samples from %d train tiles (%s), seed %d", info["name"], info["size"],
             info["n_source_tiles"], info["ops"] or "no augmentation", info["seed"])
    return info


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("Augment the training tiles offline with Augmentor (deterministic).")
    parser.add_argument("--ingested", default="data/ingested", help="ingest output folder")
    parser.add_argument("--split", default="data/split", help="split output folder")
    parser.add_argument("--out", default="data/augmented", help="output folder")
    args = parser.parse_args(argv)
    setup_logging()
    run(args.params, args.ingested, args.split, args.out)


if __name__ == "__main__":
    run_stage("augment", main)
