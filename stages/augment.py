"""DVC stage ``augment``: offline Augmentor augmentation of the TRAIN split only.

    python -m stages.augment --params params.yaml --ingested data/ingested --split data/split \\
        --out data/augmented

Reads the audit manifest ``<split>/tiles.csv``, keeps the tiles with ``split == train`` (their
rows of the ingest stacks ``<ingested>/tiles/images.npy`` and ``masks.npy``, found through
``<ingested>/tiles.csv``) and the class ids from ``<ingested>/classes.json``, and builds a
dataset of exactly ``augment.size`` samples named by the ops and size (``RDZ1000``; see
``porescope.preprocessing.augmentation`` for operations, probabilities, seeding and mask
handling). The whole output folder is built under a temporary name and swapped in:

    <out>/images.npy     uint8 (size, tile, tile) grey, row i = sample i = row i of samples.csv
    <out>/masks.npy      uint8 (size, tile, tile) class ids (only ids declared in classes.json)
    <out>/samples.csv    i, sample_id (<name>_<i:05d>), tile_id, source_id, ops, rotate_deg,
                         zoom_factor, py_seed, np_seed
    <out>/dataset.json   name, size, ops, augmented, params, probability_mode,
                         effective_probability, seed, n_source_tiles, tile_size, class_ids,
                         augmentor_version

``size: 0`` or ``ops: ""`` -> no augmentation: the train tiles are copied once each under the
same layout (name ``orig<n>``), so training always reads this one format.
Validation and test tiles are never read; every sample is checked to come from a train tile
before the folder is swapped in. Params: :class:`porescope.preprocessing.augmentation.AugmentParams`;
the work: :func:`porescope.preprocessing.augmentation.run_augment`.
"""

from __future__ import annotations

from porescope.config import parse_group
from porescope.preprocessing.augmentation import AugmentParams, run_augment
from stages.common import load_params, run_stage, setup_logging, stage_parser

GROUP = "augment"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("Augment the training tiles offline with Augmentor (deterministic).")
    parser.add_argument("--ingested", default="data/ingested", help="ingest output folder")
    parser.add_argument("--split", default="data/split", help="split output folder")
    parser.add_argument("--out", default="data/augmented", help="output folder")
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = parse_group(AugmentParams, raw, group=GROUP, source=str(args.params))
    run_augment(params, raw["seed"], args.ingested, args.split, args.out)
    return 0


if __name__ == "__main__":
    run_stage("augment", main)
