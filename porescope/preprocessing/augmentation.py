"""Deterministic, parallel offline augmentation with Augmentor's operations (paper 004's recipe).

Paper 004 built fixed-size augmented datasets with Augmentor 0.2.12 and named them by the
operations used and their size (``R1000``, ``RDZ10000``). This module makes the same datasets
reproducibly:

Operations (one letter each; the order of the letters in ``ops`` is the order they are applied;
each is Augmentor's own class, applied to ``[image, mask channels...]`` together so image and mask
get the same geometric transform):

====  ===============================  ==========================================================
 R    ``Operations.RotateRange``       rotate by an integer angle in [-max_left, max_right] deg,
                                       crop the largest axis-aligned rectangle and resize it back
                                       (so R also zooms slightly), bicubic
 D    ``Operations.Distort``           elastic mesh distortion on a grid_width x grid_height grid,
                                       integer corner shifts in [-magnitude, magnitude] px, bicubic
 Z    ``Operations.Zoom``              centre zoom by a factor drawn in [min_factor, max_factor]
                                       (rounded to 0.01), bicubic, cropped back to the tile size
 F    ``Operations.Flip`` x 2          LEFT_RIGHT then TOP_BOTTOM, each with its own probability
====  ===============================  ==========================================================

Defaults (paper 004): R p 0.7, 25/25 deg; D p 0.9, grid 8 x 8, magnitude 2; Z p 0.3, 1.1..1.6;
F p 0.5 each. Rotation and zoom change the pixel size: never measure objects on these images.

Probabilities. Augmentor's ``Pipeline`` fires an operation when ``round(random.uniform(0, 1), 1)
<= probability`` (``Pipeline._execute``). Rounding the draw to one decimal makes the effective
probability ``min(1, (floor(10 p) + 0.5) / 10)``: p 0.7 fires 75 % of the time, 0.9 -> 95 %,
0.3 -> 35 %, 0.5 -> 55 %, and even p = 0 would fire 5 %. Here the firing decision is drawn by this
module, not by Augmentor: ``probability_mode="exact"`` (default) fires when ``u < p`` (rate = p);
``probability_mode="augmentor"`` reproduces Augmentor's rule (rate as above) for a like-for-like
comparison with paper 004.

Determinism. Sample ``i`` depends only on ``(seed, i)``: its generator is
``default_rng(SeedSequence(seed, spawn_key=(1, i)))``, which draws the firing decisions and two
seeds for Python's ``random`` and numpy's global RNG (Augmentor's operations draw from these);
both are seeded in the worker just before the operations run on that sample. The source tile of
sample ``i`` comes from a balanced assignment (concatenated seeded permutations of the tiles, from
``SeedSequence(seed, spawn_key=(0,))``), so every tile is used ``floor`` or ``ceil`` of
``size / n_tiles`` times. Output files are therefore identical for any number of workers and any
completion order.

Storage. The tiles are read from the ingest stacks (``tiles/images.npy``, ``tiles/masks.npy``,
memory-mapped, one row per ``tiles.csv`` row; :mod:`porescope.io.stacks`) and the samples are
written as two stacks, ``images.npy`` and ``masks.npy``, row ``i`` = sample ``i`` = row ``i`` of
``samples.csv``. (Augmentor's own multi-threaded ``Pipeline.sample`` is not reproducible and
names files with UUIDs; it is not used.)

Masks. Augmentor resamples every image bicubically, so a mask passed through it comes out with
in-between values (and a 0|2 border passes through 1). Instead each non-background class ``k`` is
sent through the operations as a 0/255 indicator image, and the class of an output pixel is the
argmax over ``[255 - sum_k s_k, s_1, ..., s_K]`` (background score first; ties go to the lower
class id). As the resampling weights sum to one, ``255 - sum_k s_k`` is the resampled background
indicator, so this is the per-class one-hot resampling + argmax (up to uint8 rounding): for two
classes it is a threshold at 127.5 of the resampled indicator, i.e. the boundary stays where the
interpolated edge crosses half height, unshifted, and the output holds only declared class ids.
Pixels that the transform brings in from outside the tile (e.g. rotation corners) are background
in the mask and 0 (black) in the image, as Augmentor fills them. Not-annotated pixels
(:data:`~porescope.io.mask_encoding.IGNORE_ID`, partial annotations) are one more indicator channel,
last in the argmax: they stay exactly 255, are never blended into a class, and no class turns into
them except by the same half-height rule.

Draw records. While an operation runs, the ``random`` module seen by ``Augmentor.Operations`` is a
recording proxy (single-threaded per process; restored afterwards), so ``samples.csv`` can list
the angle and zoom factor actually drawn.

Images are ``(rows, cols)`` uint8 grey; masks uint8 class ids (0 = background).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import Augmentor
import Augmentor.Operations as _aug_ops
import cv2
import numpy as np
import pandas as pd
from PIL import Image

from porescope.config import Fail, to_mapping
from porescope.errors import PorescopeError
from porescope.io.mask_encoding import IGNORE_ID
from porescope.io.stacks import StackWriter, open_stack, table_rows
from porescope.preprocessing.datasets import assign_tiles_by_dataset
from porescope.parallel.processes import worker_context

LOG = logging.getLogger("porescope.augment")

OP_LETTERS = "RDZF"
PROBABILITY_MODES = ("exact", "augmentor")

_GROUP_OF_LETTER = {"R": "rotate", "D": "distort", "Z": "zoom", "F": "flip"}


class AugmentError(PorescopeError, ValueError):
    """Bad augmentation parameters or input tiles; the message names the key or file."""


# --------------------------------------------------------------------------------------------
# parameters and operations


_PROBABILITY = {"ge": 0.0, "le": 1.0}


@dataclass(frozen=True)
class RotateParams:
    """``augment.rotate`` (R): integer angle in [-max_left, max_right] deg."""

    probability: float = field(default=0.7, metadata=_PROBABILITY)
    # Augmentor's Pipeline.rotate limit: RotateRange's crop is wrong beyond 25 deg
    max_left_rotation: int = field(default=25, metadata={"ge": 0, "le": 25})
    max_right_rotation: int = field(default=25, metadata={"ge": 0, "le": 25})


@dataclass(frozen=True)
class DistortParams:
    """``augment.distort`` (D): elastic mesh distortion, corner shifts up to ``magnitude`` px."""

    probability: float = field(default=0.9, metadata=_PROBABILITY)
    grid_width: int = field(default=8, metadata={"ge": 1})
    grid_height: int = field(default=8, metadata={"ge": 1})
    magnitude: int = field(default=2, metadata={"ge": 0})


@dataclass(frozen=True)
class ZoomParams:
    """``augment.zoom`` (Z): centre zoom by a factor in [min_factor, max_factor]."""

    probability: float = field(default=0.3, metadata=_PROBABILITY)
    min_factor: float = field(default=1.1, metadata={"gt": 0.0})
    max_factor: float = field(default=1.6, metadata={"gt": 0.0})

    def check(self, fail: Fail) -> None:
        if self.min_factor > self.max_factor:
            raise fail("min_factor", f"must be <= max_factor ({self.max_factor})")


@dataclass(frozen=True)
class FlipParams:
    """``augment.flip`` (F): left-right then top-bottom flips, each with its own probability."""

    probability_left_right: float = field(default=0.5, metadata=_PROBABILITY)
    probability_top_bottom: float = field(default=0.5, metadata=_PROBABILITY)


@dataclass(frozen=True)
class AugmentParams:
    """``augment``: which operations, how many samples, how many processes.

    ``ops`` is normalised (stripped, upper case; ``None`` = ``""``, no augmentation).

    Examples
    --------
    >>> from porescope.config import parse_group
    >>> p = parse_group(AugmentParams, {"ops": "rz", "zoom": {"max_factor": 2}}, group="augment")
    >>> p.ops, p.zoom.max_factor, p.rotate.probability
    ('RZ', 2.0, 0.7)
    """

    ops: str | None = "RDZF"
    size: int = field(default=800, metadata={"ge": 0})
    workers: int = field(default=2, metadata={"ge": 0})
    probability_mode: Literal["exact", "augmentor"] = "exact"
    rotate: RotateParams = field(default_factory=RotateParams)
    distort: DistortParams = field(default_factory=DistortParams)
    zoom: ZoomParams = field(default_factory=ZoomParams)
    flip: FlipParams = field(default_factory=FlipParams)

    def __post_init__(self) -> None:
        if self.ops is None or isinstance(self.ops, str):
            object.__setattr__(self, "ops", (self.ops or "").strip().upper())

    def check(self, fail: Fail) -> None:
        try:
            parse_ops(self.ops)
        except AugmentError as exc:
            raise fail("ops", str(exc).removeprefix("augment.ops: ")) from None


def parse_ops(ops: Any) -> str:
    """Validate an ops string (letters from ``RDZF``, each at most once; ``""`` = none)."""
    if ops is None:
        return ""
    if not isinstance(ops, str):
        raise AugmentError(f"augment.ops: expected a string of letters from {OP_LETTERS!r}, got {ops!r}")
    ops = ops.strip().upper()
    bad = sorted(set(ops) - set(OP_LETTERS))
    if bad:
        raise AugmentError(f"augment.ops: unknown operation letter(s) {bad} in {ops!r}; "
                           f"known: R rotate, D distort, Z zoom, F flips")
    if len(set(ops)) != len(ops):
        raise AugmentError(f"augment.ops: a letter is repeated in {ops!r}")
    return ops


def dataset_name(ops: str, size: int, n_tiles: int | None = None) -> str:
    """Dataset name: ops letters + size (``"RDZ", 1000 -> "RDZ1000"``).

    Without augmentation (``ops == ""`` or ``size == 0``) the name is ``orig<n_tiles>``.
    """
    ops = parse_ops(ops)
    if not ops or size == 0:
        if n_tiles is None:
            raise AugmentError("dataset_name: n_tiles is needed when there is no augmentation")
        return f"orig{n_tiles}"
    return f"{ops}{size}"


@dataclass(frozen=True)
class Operation:
    """One gated operation: ``key`` (e.g. ``"rotate"``), its letter, firing probability, and the
    Augmentor operation object (built with probability 1; firing is decided by this module)."""

    key: str
    letter: str
    probability: float
    op: Any = field(compare=False, repr=False)

    def describe(self, draws: Sequence[Any]) -> dict[str, Any]:
        """Parameters drawn by the Augmentor operation, from its recorded ``random`` draws."""
        if self.key == "rotate" and len(draws) >= 3:
            # RotateRange: randint(left, 0), randint(0, right), randint(0, 1) picks one of them;
            # the angle is passed to PIL Image.rotate (degrees, positive = anticlockwise)
            return {"rotate_deg": int(draws[0] if draws[2] == 0 else draws[1])}
        if self.key == "zoom" and draws:
            return {"zoom_factor": round(float(draws[0]), 2)}
        return {}


def build_operations(ops: str, params: AugmentParams) -> tuple[Operation, ...]:
    """Augmentor operations for the letters in ``ops`` (in that order), from ``params``."""
    result: list[Operation] = []
    r, d, z, f = params.rotate, params.distort, params.zoom, params.flip
    for letter in parse_ops(ops):
        if letter == "R":
            result.append(Operation("rotate", "R", float(r.probability), _aug_ops.RotateRange(
                1.0, int(r.max_left_rotation), int(r.max_right_rotation))))
        elif letter == "D":
            result.append(Operation("distort", "D", float(d.probability), _aug_ops.Distort(
                1.0, int(d.grid_width), int(d.grid_height), int(d.magnitude))))
        elif letter == "Z":
            result.append(Operation("zoom", "Z", float(z.probability), _aug_ops.Zoom(
                1.0, float(z.min_factor), float(z.max_factor))))
        else:
            result.append(Operation("flip_left_right", "F", float(f.probability_left_right),
                                    _aug_ops.Flip(1.0, "LEFT_RIGHT")))
            result.append(Operation("flip_top_bottom", "F", float(f.probability_top_bottom),
                                    _aug_ops.Flip(1.0, "TOP_BOTTOM")))
    return tuple(result)


# --------------------------------------------------------------------------------------------
# randomness


def effective_probability(probability: float, mode: str = "exact") -> float:
    """Firing rate of an operation with nominal ``probability`` under ``mode``.

    ``"exact"``: ``probability``. ``"augmentor"``: Augmentor's rate for
    ``round(uniform(0, 1), 1) <= p``, i.e. ``min(1, (floor(10 p) + 0.5) / 10)`` (0.7 -> 0.75).
    """
    if mode == "exact":
        return float(probability)
    if mode == "augmentor":
        return min(1.0, (math.floor(10 * probability + 1e-9) + 0.5) / 10)
    raise AugmentError(f"probability_mode: expected one of {PROBABILITY_MODES}, got {mode!r}")


def fires(u: np.ndarray, probabilities: Sequence[float], mode: str = "exact") -> np.ndarray:
    """Firing decisions for uniform draws ``u`` in [0, 1) against ``probabilities``.

    ``"exact"``: ``u < p``. ``"augmentor"``: ``round(u, 1) <= p`` (Augmentor's ``Pipeline`` rule,
    Python's ``round``).
    """
    u = np.asarray(u, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if mode == "exact":
        return u < p
    if mode == "augmentor":
        rounded = np.array([round(float(x), 1) for x in u.ravel()]).reshape(u.shape)
        return rounded <= p
    raise AugmentError(f"probability_mode: expected one of {PROBABILITY_MODES}, got {mode!r}")


def sample_generator(seed: int, i: int) -> np.random.Generator:
    """The generator of sample ``i``: ``default_rng(SeedSequence(seed, spawn_key=(1, i)))``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, int(i))))


def draw_sample(seed: int, i: int, probabilities: Sequence[float],
                mode: str = "exact") -> tuple[np.ndarray, int, int]:
    """Firing decisions and the (Python ``random``, numpy global) seeds of sample ``i``."""
    rng = sample_generator(seed, i)
    fired = fires(rng.random(len(probabilities)), probabilities, mode)
    py_seed, np_seed = (int(x) for x in rng.integers(0, 2**32, size=2, dtype=np.uint64))
    return fired, py_seed, np_seed


def assign_tiles(n_tiles: int, size: int, seed: int) -> np.ndarray:
    """Balanced source-tile index of each of ``size`` samples (seeded permutations, concatenated).

    Every tile is used ``floor(size / n_tiles)`` or ``ceil(size / n_tiles)`` times.
    """
    if n_tiles < 1:
        raise AugmentError("no training tiles to augment")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    reps = -(-size // n_tiles)
    return np.concatenate([rng.permutation(n_tiles) for _ in range(reps)] or
                          [np.zeros(0, dtype=np.int64)])[:size].astype(np.int64)


class _DrawRecorder:
    """Stands in for the ``random`` module: forwards every call and records the values drawn."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.draws: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            value = attr(*args, **kwargs)
            self.draws.append(value)
            return value

        return call


@contextlib.contextmanager
def _recording_random() -> Iterator[_DrawRecorder]:
    recorder = _DrawRecorder(random)
    saved = _aug_ops.random
    _aug_ops.random = recorder
    try:
        yield recorder
    finally:
        _aug_ops.random = saved


# --------------------------------------------------------------------------------------------
# masks


def mask_to_channels(mask: np.ndarray, class_ids: Sequence[int]) -> list[np.ndarray]:
    """0/255 uint8 indicator image of every non-background class id (``class_ids[0]`` = 0)."""
    return [np.where(mask == k, np.uint8(255), np.uint8(0)) for k in class_ids[1:]]


def channels_to_mask(channels: Sequence[np.ndarray], class_ids: Sequence[int]) -> np.ndarray:
    """Class ids from resampled indicators: argmax of ``[255 - sum(s), s_1, ...]`` (module doc)."""
    ids = np.asarray(class_ids, dtype=np.uint8)
    if not channels:
        raise AugmentError("channels_to_mask: no class channels")
    if len(channels) == 1:
        # two classes: argmax([255 - s, s]) is s > 127.5 (integers: no ties)
        return np.where(np.asarray(channels[0]) >= 128, ids[1], ids[0]).astype(np.uint8)
    scores = np.stack([np.asarray(c, dtype=np.int16) for c in channels])
    background = 255 - scores.sum(axis=0, dtype=np.int16)
    best = np.argmax(np.concatenate([background[None], scores]), axis=0)
    return ids[best]


def augment_pair(image: np.ndarray, mask: np.ndarray, operations: Sequence[Operation],
                 fired: Sequence[bool], class_ids: Sequence[int], py_seed: int,
                 np_seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply the fired Augmentor operations to an image and its mask with the same transform.

    ``random`` and ``numpy.random`` are seeded with ``py_seed`` / ``np_seed`` first. Returns the
    uint8 image, the mask (only ids from ``class_ids``) and the drawn parameters
    (``rotate_deg``, ``zoom_factor`` where those fired).
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise AugmentError(f"augment_pair: expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    if mask.shape != image.shape:
        raise AugmentError(f"augment_pair: mask shape {mask.shape} != image shape {image.shape}")
    drawn: dict[str, Any] = {}
    if not any(fired):
        return image.copy(), mask.astype(np.uint8, copy=True), drawn
    random.seed(py_seed)
    np.random.seed(np_seed)
    if IGNORE_ID not in class_ids and np.any(mask == IGNORE_ID):
        class_ids = (*class_ids, IGNORE_ID)  # resampled like a class, so it stays exact
    images = [Image.fromarray(image)] + [Image.fromarray(c) for c in mask_to_channels(mask, class_ids)]
    for operation, on in zip(operations, fired):
        if on:
            with _recording_random() as recorder:
                images = operation.op.perform_operation(images)
            drawn.update(operation.describe(recorder.draws))
    out_image = np.asarray(images[0], dtype=np.uint8)
    if len(class_ids) > 1:
        out_mask = channels_to_mask([np.asarray(c) for c in images[1:]], class_ids)
    else:
        out_mask = np.zeros_like(out_image)
    if out_image.shape != image.shape:
        raise AugmentError(f"augment_pair: operations changed the size {image.shape} -> {out_image.shape}")
    return np.ascontiguousarray(out_image), out_mask, drawn


# --------------------------------------------------------------------------------------------
# datasets


@dataclass(frozen=True)
class AugmentJob:
    """Everything a worker needs to make samples independently (picklable)."""

    name: str
    out_dir: str
    tile_ids: tuple[str, ...]
    images: str                 # the tile stacks (.npy) ...
    masks: str
    rows: tuple[int, ...]       # ... and the stack row of each tile
    tile_index: np.ndarray
    operations: tuple[Operation, ...]
    class_ids: tuple[int, ...]
    seed: int
    probability_mode: str = "exact"
    tile_size: int | None = None


def open_tiles(job: AugmentJob) -> tuple[np.ndarray, np.ndarray]:
    """The job's image and mask tile stacks, memory-mapped (``AugmentError`` if they differ)."""
    images, masks = open_stack(job.images), open_stack(job.masks)
    if images.shape != masks.shape:
        raise AugmentError(f"{job.masks}: mask stack {masks.shape} != image stack {images.shape} "
                           f"({job.images})")
    if job.tile_size is not None and images.shape[1:] != (job.tile_size, job.tile_size):
        raise AugmentError(f"{job.images}: tiles are {images.shape[1:]}, expected "
                           f"{job.tile_size} x {job.tile_size}")
    return images, masks


def make_sample(job: AugmentJob, i: int, tiles: tuple[np.ndarray, np.ndarray]
                ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Make sample ``i`` of ``job`` from its tile in ``tiles`` (:func:`open_tiles`); return its
    record, image and mask."""
    t = int(job.tile_index[i])
    row = job.rows[t]
    image, mask = np.array(tiles[0][row]), np.array(tiles[1][row])
    valid = np.zeros(256, dtype=bool)
    valid[list(job.class_ids)] = True
    valid[IGNORE_ID] = True  # not annotated (ingest.ignore_value)
    if not valid[mask].all():
        found = sorted(set(np.unique(mask).tolist()) - set(job.class_ids))
        raise AugmentError(f"{job.masks}, row {row} (tile {job.tile_ids[t]}): mask values "
                           f"{found[:10]} are not declared class ids {list(job.class_ids)} "
                           "(classes.json)")
    probabilities = [op.probability for op in job.operations]
    fired, py_seed, np_seed = draw_sample(job.seed, i, probabilities, job.probability_mode)
    out_image, out_mask, drawn = augment_pair(image, mask, job.operations, fired, job.class_ids,
                                              py_seed, np_seed)
    record = {"i": i, "sample_id": f"{job.name}_{i:05d}", "tile_id": job.tile_ids[t],
              "ops": "+".join(op.key for op, on in zip(job.operations, fired) if on),
              "rotate_deg": drawn.get("rotate_deg"), "zoom_factor": drawn.get("zoom_factor"),
              "py_seed": py_seed, "np_seed": np_seed}
    return record, out_image, out_mask


_WORKER: tuple[AugmentJob, tuple[np.ndarray, np.ndarray]] | None = None


def _init_worker(job: AugmentJob) -> None:
    global _WORKER
    _WORKER = (job, open_tiles(job))
    cv2.setNumThreads(1)


def _worker_sample(i: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    assert _WORKER is not None
    return make_sample(_WORKER[0], i, _WORKER[1])


def run_job(job: AugmentJob, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Make every sample of ``job`` (``workers`` processes; 0 or 1 = in this process).

    Writes ``<job.out_dir>/images.npy`` and ``masks.npy`` (row ``i`` = sample ``i``). Returns
    the samples table (one row per sample, ordered by ``i``): ``i, sample_id, tile_id, ops,
    rotate_deg, zoom_factor, py_seed, np_seed``.
    """
    from tqdm import tqdm

    size = len(job.tile_index)
    tiles = open_tiles(job)
    shape = tiles[0].shape[1:]
    records: list[dict[str, Any]] = []
    with StackWriter(Path(job.out_dir, "images.npy"), size, shape) as images, \
            StackWriter(Path(job.out_dir, "masks.npy"), size, shape) as masks, \
            tqdm(total=size, desc=job.name, unit="sample", disable=not progress) as bar:
        with contextlib.ExitStack() as stack:
            if workers <= 1 or size <= 1:
                made: Iterator = (make_sample(job, i, tiles) for i in range(size))
            else:
                chunksize = max(1, min(32, size // (workers * 8)))
                pool = stack.enter_context(worker_context([__name__]).Pool(
                    workers, initializer=_init_worker, initargs=(job,)))
                made = pool.imap(_worker_sample, range(size), chunksize=chunksize)
            for record, image, mask in made:  # in the order of i
                records.append(record)
                images.append(image)
                masks.append(mask)
                bar.update(1)
    columns = ["i", "sample_id", "tile_id", "ops", "rotate_deg", "zoom_factor", "py_seed", "np_seed"]
    table = pd.DataFrame.from_records(records, columns=columns)
    table["rotate_deg"] = table["rotate_deg"].astype("Int64")
    table["zoom_factor"] = table["zoom_factor"].astype("Float64")
    return table


def augment_tiles(tiles: pd.DataFrame, out_dir: str | os.PathLike, params: AugmentParams,
                  class_ids: Sequence[int], tile_size: int | None = None,
                  progress: bool = True, *, seed: int, images: str | os.PathLike,
                  masks: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build an augmented dataset from training tiles into ``out_dir/images.npy`` and
    ``out_dir/masks.npy`` (row ``i`` = sample ``i``).

    Parameters
    ----------
    tiles : DataFrame
        Columns ``tile_id`` and ``row``, the tile's row in the stacks ``images`` / ``masks``
        (optionally ``source_id``; and ``dataset`` with ``weight`` for several datasets,
        ``ingest.sources``): the TRAIN tiles only. They are sorted by ``tile_id`` first, so row
        order does not matter.
    out_dir : folder to fill (the caller makes it atomic, e.g. ``atomic_io.output_dir``).
    params : the ``augment`` params group.
    class_ids : declared class ids (classes.json); 0 = background must be among them.
    tile_size : expected tile side in pixels, checked when given.
    seed : the shared seed; sample ``i`` depends only on ``(seed, i)``.
    images, masks : ``.npy`` stacks of the tiles, uint8 ``(N, H, W)`` (grey; class ids), e.g. the
        ingest stacks ``tiles/images.npy`` and ``tiles/masks.npy``; only the rows of ``tiles``
        are read.

    With a ``dataset`` column the samples are shared among the datasets by their weights
    (:func:`porescope.preprocessing.datasets.assign_tiles_by_dataset`), else spread evenly over
    the tiles (:func:`assign_tiles`).

    ``size == 0`` or ``ops == ""`` means no augmentation: every tile is written once, unchanged,
    in ``tile_id`` order, as sample ``orig<n>_<i:05d>`` (same layout, so training reads one format).

    Returns ``(samples, info)``: the samples table (plus ``source_id`` if given) and the
    ``dataset.json`` content (name, size, ops, params, seed, n_source_tiles, ...).
    """
    p = params
    ids = sorted({int(k) for k in class_ids})
    if 0 not in ids or not all(0 <= k <= 255 for k in ids):
        raise AugmentError(f"class ids {ids}: need 0 (background) and ids in 0..255 (classes.json)")
    missing = {"tile_id", "row"} - set(tiles.columns)
    if missing:
        raise AugmentError(f"augment_tiles: tiles table lacks column(s) {sorted(missing)}")
    if tiles["tile_id"].duplicated().any():
        raise AugmentError(f"augment_tiles: repeated tile ids {tiles.loc[tiles['tile_id'].duplicated(), 'tile_id'].tolist()[:5]}")
    tiles = tiles.sort_values("tile_id", kind="stable").reset_index(drop=True)
    n = len(tiles)
    if n == 0:
        raise AugmentError("augment: no training tiles (split has no train tiles?)")
    augmenting = bool(p.ops) and p.size > 0
    name = dataset_name(p.ops, p.size, n)
    if augmenting:
        operations = build_operations(p.ops, p)
        if "dataset" in tiles.columns:
            weights = dict(zip(tiles["dataset"].astype(str), tiles["weight"].astype(float)))
            try:
                tile_index = assign_tiles_by_dataset(tiles["dataset"], weights, p.size, seed)
            except ValueError as exc:
                raise AugmentError(f"augment: the train tiles' datasets: {exc}") from None
        else:
            tile_index = assign_tiles(n, p.size, seed)
    else:
        operations = ()
        tile_index = np.arange(n, dtype=np.int64)
    job = AugmentJob(name=name, out_dir=os.fspath(out_dir),
                     tile_ids=tuple(tiles["tile_id"].astype(str)),
                     images=os.fspath(images), masks=os.fspath(masks),
                     rows=tuple(int(r) for r in tiles["row"]),
                     tile_index=tile_index, operations=operations, class_ids=tuple(ids),
                     seed=seed, probability_mode=p.probability_mode, tile_size=tile_size)
    samples = run_job(job, workers=p.workers, progress=progress)
    if "source_id" in tiles.columns:
        source_of = dict(zip(tiles["tile_id"].astype(str), tiles["source_id"].astype(str)))
        samples.insert(3, "source_id", samples["tile_id"].map(source_of))
    used = {_GROUP_OF_LETTER[letter]: to_mapping(getattr(p, _GROUP_OF_LETTER[letter]))
            for letter in (p.ops if augmenting else "")}
    info = {
        "name": name,
        "size": int(len(samples)),
        "ops": p.ops if augmenting else "",
        "augmented": augmenting,
        "params": used,
        "probability_mode": p.probability_mode,
        "effective_probability": {op.key: effective_probability(op.probability, p.probability_mode)
                                  for op in operations},
        "seed": seed,
        "n_source_tiles": n,
        "tile_size": tile_size,
        "class_ids": ids,
        "augmentor_version": getattr(Augmentor, "__version__", "unknown"),
    }
    if "dataset" in tiles.columns:  # several datasets: how many samples each gave
        dataset_of = dict(zip(tiles["tile_id"].astype(str), tiles["dataset"].astype(str)))
        per = samples["tile_id"].astype(str).map(dataset_of).value_counts()
        info["dataset_samples"] = {d: int(per.get(d, 0)) for d in sorted(set(dataset_of.values()))}
    return samples, info


# --------------------------------------------------------------------------------------------
# the augmented dataset of a split


class LeakageError(AssertionError):
    """An augmented sample was made from a tile outside the training split (a bug, not bad input)."""


def train_tiles(split_tiles: pd.DataFrame, ingested_tiles: pd.DataFrame,
                table: str | os.PathLike = "tiles.csv") -> pd.DataFrame:
    """Rows of the split manifest with ``split == train`` (``tile_id``, ``source_id``), plus
    ``row``: the tile's row in the ingest stacks, i.e. in ``ingested_tiles`` (ingest's
    ``tiles.csv``, named ``table`` in errors). Raises ``AugmentError`` for a train tile without
    a mask."""
    train = split_tiles.loc[split_tiles["split"] == "train", ["tile_id", "source_id"]].copy()
    train["row"] = table_rows(ingested_tiles["tile_id"], train["tile_id"], table)
    unmasked = ingested_tiles["mask_sha256"].isna().to_numpy()[train["row"].to_numpy()]
    if unmasked.any():
        raise AugmentError(f"{table}: train tile(s) {train['tile_id'][unmasked].tolist()[:5]} have no "
                           "mask; every training image needs its mask (ingest.require_masks)")
    return train.reset_index(drop=True)


def check_train_only(samples: pd.DataFrame, split_tiles: pd.DataFrame) -> None:
    """Raise :class:`LeakageError` unless every sample's ``tile_id`` is a train tile of the manifest."""
    split_of = dict(zip(split_tiles["tile_id"].astype(str), split_tiles["split"].astype(str)))
    where = samples["tile_id"].astype(str).map(lambda t: split_of.get(t, "<not in manifest>"))
    bad = samples.loc[where != "train", "tile_id"]
    if len(bad):
        raise LeakageError(f"augmented samples made from non-train tiles: "
                           f"{sorted(set(bad.astype(str)))[:10]} ({len(bad)} samples)")


def run_augment(params: AugmentParams, seed: int, ingested: str | os.PathLike, split: str | os.PathLike,
                out: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Augment the train tiles of a split into the folder ``out``; returns the dataset.json content.

    Reads the audit manifest ``<split>/tiles.csv`` (only ``split == train`` tiles are used), the
    ingest stacks ``<ingested>/tiles/images.npy`` and ``masks.npy`` (rows as in
    ``<ingested>/tiles.csv``), ``<ingested>/classes.json`` and ``sources.csv``; writes
    ``images.npy``, ``masks.npy``, ``samples.csv`` and ``dataset.json`` atomically, after
    checking that every sample comes from a train tile.
    """
    from porescope.io import atomic as atomic_io
    from porescope.io.tables import read_classes, read_table

    ingested, split = Path(ingested), Path(split)
    manifest = read_table(split / "tiles.csv", ("tile_id", "source_id", "split", "tile_size"),
                          unique="tile_id")
    class_ids = sorted(read_classes(ingested))
    ingested_tiles = read_table(ingested / "tiles.csv", ("tile_id", "mask_sha256"), unique="tile_id")
    tiles = train_tiles(manifest, ingested_tiles, ingested / "tiles.csv")
    stacks = {k: ingested / "tiles" / f"{k}.npy" for k in ("images", "masks")}
    for path in stacks.values():  # rows = the rows of tiles.csv
        open_stack(path, n_rows=len(ingested_tiles))
    sources = read_table(ingested / "sources.csv") if (ingested / "sources.csv").is_file() else None
    if sources is not None and "dataset" in sources.columns:  # ingest.sources: by their weights
        by_source = sources.assign(source_id=sources["source_id"].astype(str)).set_index("source_id")
        for col in ("dataset", "weight"):
            tiles[col] = by_source[col].reindex(tiles["source_id"].astype(str)).to_numpy()
    if tiles.empty:
        raise AugmentError(f"{split / 'tiles.csv'}: no tile has split == train")
    sizes = manifest.loc[manifest["split"] == "train", "tile_size"].unique()
    if len(sizes) != 1:
        raise AugmentError(f"{split / 'tiles.csv'}: train tiles have several tile_size values {sorted(sizes)}")
    with atomic_io.output_dir(out) as tmp:
        samples, info = augment_tiles(tiles, tmp, params, class_ids, tile_size=int(sizes[0]),
                                      progress=progress, seed=seed, **stacks)
        check_train_only(samples, manifest)
        atomic_io.write_csv(tmp / "samples.csv", samples)
        atomic_io.write_json(tmp / "dataset.json", info)
    LOG.info("augment: %s, %d samples from %d train tiles (%s), seed %d", info["name"], info["size"],
             info["n_source_tiles"], info["ops"] or "no augmentation", info["seed"])
    return info
