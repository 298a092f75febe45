"""Multi-source datasets: several labelled datasets ingested, split and trained on together.

``ingest.sources`` lists datasets, e.g. the synthetic membranes plus a lab's ten annotated real
micrographs. Each entry (:class:`DatasetParams`) names the dataset, its folder, how its masks
encode the classes and its pixel size (keys left out or null take the flat ``ingest`` key), a
sampling ``weight`` and a ``role``:

``name``     short id (letters, digits, ``-``); every source id becomes ``<name>__<file stem>``,
             so file names may repeat across datasets.
``path``     folder with ``images/`` and ``masks/``, as ``ingest.source``.
``weight``   relative share of the augmented training samples drawn from this dataset's train
             tiles (:func:`dataset_shares`): weights 1 and 1 give half the samples to each,
             however many images each has; 0 = none (the dataset is then only validated and
             tested on).
``role``     ``any``: split like every source; ``train``: every source of the dataset is a train
             source (e.g. synthetic helper data that should not be scored).

All datasets must give the same output classes (ids and names). Ingest records the ``dataset``,
``weight`` and ``role`` of each source in ``sources.csv``; the split, augment and evaluate stages
read them there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from porescope.config import Fail

#: Columns ingest adds to ``sources.csv`` with ``ingest.sources`` (absent otherwise).
DATASET_COLUMNS = ("dataset", "weight", "role")

#: Separator of dataset name and file stem in the source ids.
SEPARATOR = "__"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


@dataclass(frozen=True)
class DatasetParams:
    """One entry of ``ingest.sources``; the mask and pixel-size keys override the flat
    ``ingest`` keys of the same name when given (null = as the flat key)."""

    name: str = ""
    path: str = ""
    weight: float = field(default=1.0, metadata={"ge": 0})
    role: Literal["any", "train"] = "any"
    require_masks: bool | None = None
    mask_suffix: str | None = None
    mask_format: Literal["binary", "labels", "rgb", "instances"] | None = None
    foreground: int | float | None = None
    n_classes: int | None = field(default=None, metadata={"ge": 2, "le": 256})
    colour_map: dict | None = None
    class_names: tuple[str, ...] | dict | None = None
    crop_bottom: int | Literal["auto"] | None = None
    pixel_size_nm: float | Literal["auto"] | None = field(default=None, metadata={"gt": 0})
    ignore_value: int | str | tuple[int, ...] | None = None

    def check(self, fail: Fail) -> None:
        if not _NAME.match(self.name):
            raise fail("name", "each dataset needs a name of letters, digits and '-' (it "
                               f"prefixes its source ids as <name>{SEPARATOR}<file stem>)")
        if not self.path:
            raise fail("path", f"dataset {self.name!r} needs the folder of its images/ and masks/")

    def overrides(self) -> dict[str, Any]:
        """The flat ``ingest`` keys this dataset sets (those given, not null)."""
        own = {"name", "path", "weight", "role"}
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in own and getattr(self, f.name) is not None}


def source_id(dataset: str | None, stem: str) -> str:
    """The source id of a file stem: ``<dataset>__<stem>``, or the stem alone (one dataset).

    Examples
    --------
    >>> source_id("lab", "img_01"), source_id(None, "img_01")
    ('lab__img_01', 'img_01')
    """
    return stem if dataset is None else f"{dataset}{SEPARATOR}{stem}"


def dataset_shares(weights: Mapping[str, float], size: int) -> dict[str, int]:
    """How many of ``size`` samples each dataset gets: proportional to its weight, rounded by
    largest remainder (ties to the first name in sorted order), summing to ``size``.

    Examples
    --------
    >>> dataset_shares({"synthetic": 1.0, "lab": 2.0}, 800)
    {'lab': 533, 'synthetic': 267}
    >>> dataset_shares({"a": 1.0, "b": 0.0}, 5)
    {'a': 5, 'b': 0}
    """
    names = sorted(weights)
    w = np.array([float(weights[n]) for n in names])
    if not len(names) or w.sum() <= 0:
        raise ValueError(f"dataset weights {dict(weights)}: need at least one weight > 0")
    exact = size * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = size - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return {n: int(c) for n, c in zip(names, counts)}


def assign_tiles_by_dataset(datasets: Sequence[str], weights: Mapping[str, float], size: int,
                            seed: int) -> np.ndarray:
    """Source-tile index of each of ``size`` samples when tiles come from weighted datasets.

    ``datasets[t]`` is the dataset of tile ``t``. Dataset ``d`` gets :func:`dataset_shares`
    samples, spread evenly over its tiles (each used ``floor`` or ``ceil`` of its share / its
    tiles, in seeded permutations); the samples of all datasets are then shuffled together.
    Depends only on ``(datasets, weights, size, seed)``.

    Examples
    --------
    >>> idx = assign_tiles_by_dataset(["a", "a", "a", "b"], {"a": 1, "b": 1}, 8, seed=0)
    >>> np.bincount(idx, minlength=4).tolist()  # a: 4 samples over 3 tiles, b: 4 on its one
    [2, 1, 1, 4]
    """
    datasets = np.asarray([str(d) for d in datasets], dtype=object)
    present = sorted(set(datasets.tolist()))
    missing = [d for d in present if d not in weights]
    if missing:
        raise ValueError(f"no sampling weight for dataset(s) {missing}")
    shares = dataset_shares({d: weights[d] for d in present}, size)
    parts = []
    for k, name in enumerate(present):
        tiles = np.flatnonzero(datasets == name)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, k + 1)))
        reps = -(-shares[name] // len(tiles))
        picks = [tiles[rng.permutation(len(tiles))] for _ in range(reps)]
        parts.append(np.concatenate(picks or [np.zeros(0, np.int64)])[:shares[name]])
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,))).permutation(size)
    return np.concatenate(parts).astype(np.int64)[order]
