"""Benchmark: deterministic parallel augmentation vs Augmentor's own ``Pipeline.sample()``.

    python bench/bench_augment.py [--tiles 64] [--tile-size 256] [--size 400] [--ops RDZ]
                                  [--workers 2] [--repeats 2]

Both sides get the same tiles (``--tiles`` SEM-like grey tiles with binary masks), the same
operations and parameters (paper 004's defaults) and the same firing rates, each in its own
storage: Augmentor decodes the image and mask PNGs of one folder and encodes and writes two PNGs
per sample; ours reads the tiles from ``.npy`` stacks (the ingest layout) and appends each
sample to two ``.npy`` stacks (the augment layout); both apply the operations to image and mask
together.

- ours: ``porescope.preprocessing.augmentation.augment_tiles`` with ``probability_mode="augmentor"`` (so that
  operations fire as often as in Augmentor: p 0.7 -> 0.75 ...), ``--workers`` processes; includes
  process-pool start, per-sample seeding, the one-hot/argmax mask fix, the samples table.
- Augmentor: ``Pipeline(images) + ground_truth(masks)`` with ``rotate / random_distortion / zoom /
  flip_*``, ``sample(n, multi_threaded=False)``; PIL decode (lazy) and PIL PNG save (default
  compression level 6); pipeline construction (folder scan) is not timed. Its masks come out
  with interpolated values (not fixed); its file names are UUIDs.

Also printed for attribution: ours with 1 worker (same code, no parallelism) and Augmentor's
multi-threaded ``sample()`` (not reproducible; informational). Best of ``--repeats`` runs each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage

import Augmentor

from porescope.config import parse_group
from porescope.preprocessing.augmentation import AugmentParams, augment_tiles


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (pool workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_tiles(folder: Path, n: int, size: int, seed: int = 0) -> pd.DataFrame:
    """SEM-like tiles: smooth grey texture + noise, dark disks (pores) as the mask. Written as
    PNGs in ``images/`` and ``masks/`` (Augmentor's input) and as the stacks ``images.npy`` and
    ``masks.npy`` (ours, the ingest layout); returns ``tile_id`` and the stack ``row``."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    rows, stacks = [], {"images": [], "masks": []}
    for k in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(rng.integers(10, 30)):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 14)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 6)
        image = 150 + 400 * texture - 90 * mask + rng.normal(0, 8, (size, size))
        image = np.clip(image, 0, 255).astype(np.uint8)
        name = f"tile{k:03d}.png"
        cv2.imwrite(str(folder / "images" / name), image)
        cv2.imwrite(str(folder / "masks" / name), mask)
        stacks["images"].append(image)
        stacks["masks"].append(mask)
        rows.append({"tile_id": f"tile{k:03d}", "row": k})
    for kind, tiles in stacks.items():
        np.save(folder / f"{kind}.npy", np.stack(tiles))
    return pd.DataFrame(rows)


def run_ours(tiles: pd.DataFrame, src: Path, out: Path, ops: str, size: int, workers: int) -> tuple[float, float]:
    params = parse_group(AugmentParams, {"ops": ops, "size": size, "workers": workers,
                                         "probability_mode": "augmentor"}, group="augment")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    c0, t0 = cpu_seconds(), time.perf_counter()
    augment_tiles(tiles, out, params, class_ids=(0, 1), progress=False, seed=0,
                  images=src / "images.npy", masks=src / "masks.npy")
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    assert len(np.load(out / "images.npy", mmap_mode="r")) == size == len(np.load(out / "masks.npy", mmap_mode="r"))
    return elapsed, cpu


def run_augmentor(src: Path, out: Path, ops: str, size: int, multi_threaded: bool) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pipeline = Augmentor.Pipeline(str(src / "images"), output_directory=str(out))
        pipeline.ground_truth(str(src / "masks"))
        for letter in ops:
            if letter == "R":
                pipeline.rotate(probability=0.7, max_left_rotation=25, max_right_rotation=25)
            elif letter == "D":
                pipeline.random_distortion(probability=0.9, grid_width=8, grid_height=8, magnitude=2)
            elif letter == "Z":
                pipeline.zoom(probability=0.3, min_factor=1.1, max_factor=1.6)
            elif letter == "F":
                pipeline.flip_left_right(probability=0.5)
                pipeline.flip_top_bottom(probability=0.5)
        Augmentor.Pipeline.set_seed(0)
        c0, t0 = cpu_seconds(), time.perf_counter()
        pipeline.sample(size, multi_threaded=multi_threaded)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    n_files = len(os.listdir(out))
    assert n_files == 2 * size, n_files
    return elapsed, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--ops", default="RDZ")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_augment_") as tmp:
        tmp = Path(tmp)
        tiles = make_tiles(tmp / "src", args.tiles, args.tile_size)
        best: dict[str, tuple[float, float]] = {}
        load_before = os.getloadavg()[0]

        def record(key: str, result: tuple[float, float]) -> None:
            best[key] = min(best.get(key, (float("inf"), 0.0)), result)

        for _ in range(args.repeats):   # interleaved, best of N
            record("augmentor", run_augmentor(tmp / "src", tmp / "out_aug", args.ops, args.size, False))
            record("ours", run_ours(tiles, tmp / "src", tmp / "out_ours", args.ops, args.size, args.workers))
            record("ours_1", run_ours(tiles, tmp / "src", tmp / "out_ours1", args.ops, args.size, 1))
            record("augmentor_mt", run_augmentor(tmp / "src", tmp / "out_augmt", args.ops, args.size, True))

    n = args.size
    print(f"inputs: {args.tiles} tiles {args.tile_size}x{args.tile_size} (PNG / .npy), ops {args.ops}, "
          f"{n} samples (image + mask each), best of {args.repeats}")
    print(f"cores available: {len(os.sched_getaffinity(0))}; 1-min load average before "
          f"{load_before:.2f}, after {os.getloadavg()[0]:.2f} (other processes compete if > 0)")
    rows = [
        ("augmentor", "Augmentor Pipeline.sample(multi_threaded=False)"),
        ("ours", f"ours, deterministic, workers={args.workers}"),
        ("ours_1", "ours, deterministic, workers=1"),
        ("augmentor_mt", "Augmentor Pipeline.sample(multi_threaded=True) [not reproducible]"),
    ]
    for key, label in rows:
        wall, cpu = best[key]
        print(f"  {label:<68s} {wall:7.2f} s wall {n / wall:7.1f} samples/s   "
              f"CPU {1000 * cpu / n:5.1f} ms/sample")
    best = {k: v[0] for k, v in best.items()}
    ratio = best["augmentor"] / best["ours"]
    print(f"ratio ours(workers={args.workers}) / Augmentor single-threaded: {ratio:.2f}x "
          f"(goal >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})")
    print(f"ratio ours(workers=1) / Augmentor single-threaded: {best['augmentor'] / best['ours_1']:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
