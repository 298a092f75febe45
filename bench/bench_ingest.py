"""Ingest throughput in megapixels per second, against plain decoding measured in the same run.

    python bench/bench_ingest.py [--repeats 3] [--workers 1 2] [--size 4096]

Cases:
* ISBI 2012 (30 pairs of 512 x 512 PNGs, ../shared/data; skipped when absent), binary
  foreground 0, tile 256.
* A synthetic ``size`` x ``size`` 16-bit TIFF (uncompressed, percentile normalisation) with a
  binary PNG mask, tile 256.

Baselines on the same files: ``read`` = ``cv2.imread`` (``tifffile.imread`` for the TIFF) of
every image and mask; ``read+png`` = that plus ``cv2.imencode('.png')`` of each full image and
mask (the least any converter must do). Megapixels count source-image pixels (masks not
counted). Each ingest run writes a fresh output folder (removing the previous one, as a re-run
or DVC does, is not timed). Wall-clock medians of ``--repeats`` runs; ratios are baseline time /
ingest time.
Raw figures are also written to ``bench/results/bench_ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm when it is imported

from porescope.preprocessing.ingest import parse_ingest_params, run_ingest  # noqa: E402

ISBI = ROOT.parent / "shared" / "data" / "isbi2012-em-membranes"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _baseline_read(files: list[Path]) -> None:
    for f in files:
        a = tifffile.imread(f) if f.suffix == ".tif" else cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        assert a is not None


def _baseline_read_png(files: list[Path]) -> None:
    for f in files:
        a = tifffile.imread(f) if f.suffix == ".tif" else cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        ok, _ = cv2.imencode(".png", a)
        assert ok


def bench_case(name: str, source: Path, params: dict, megapixels: float, repeats: int,
               workers: list[int], work: Path) -> list[dict]:
    files = sorted((source / "images").iterdir()) + sorted((source / "masks").iterdir())
    rows = []
    t_read = _median_time(lambda: _baseline_read(files), repeats)
    t_png = _median_time(lambda: _baseline_read_png(files), repeats)
    rows.append({"case": name, "what": "baseline read", "seconds": t_read,
                 "mpx_per_s": megapixels / t_read})
    rows.append({"case": name, "what": "baseline read+png", "seconds": t_png,
                 "mpx_per_s": megapixels / t_png})
    for w in workers:
        p = parse_ingest_params({"pixel_size_nm": "auto", **params, "workers": w})
        times = []
        for i in range(repeats):  # a fresh output folder each time; its removal is not timed
            out = work / f"out_{name}_{w}_{i}"
            t0 = time.perf_counter()
            run_ingest(source, out, p)
            times.append(time.perf_counter() - t0)
            shutil.rmtree(out)
        t = statistics.median(times)
        rows.append({"case": name, "what": f"ingest workers={w}", "seconds": t,
                     "mpx_per_s": megapixels / t, "vs_read": t_read / t, "vs_read_png": t_png / t})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, default=4096, help="side of the synthetic 16-bit TIFF")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        work = Path(tmp)
        if ISBI.exists():
            rows += bench_case("isbi2012", ISBI, {"foreground": 0, "tile_size": 256},
                               30 * 512 * 512 / 1e6, args.repeats, args.workers, work)
        else:
            print(f"ISBI data not found at {ISBI}; skipping that case")
        n = args.size
        src = work / "tiff16"
        (src / "images").mkdir(parents=True)
        (src / "masks").mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:n, 0:n]
        img = (20000 + 8000 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
               + rng.normal(0, 1500, (n, n))).clip(0, 65535).astype(np.uint16)
        mask = (((xx % 200) - 100) ** 2 + ((yy % 200) - 100) ** 2 < 40 ** 2).astype(np.uint8) * 255
        del yy, xx
        tifffile.imwrite(src / "images" / "big.tif", img)
        cv2.imwrite(str(src / "masks" / "big.png"), mask)
        del img, mask
        rows += bench_case(f"tiff16_{n}", src, {"tile_size": 256}, n * n / 1e6,
                           args.repeats, args.workers[:1], work)

    print(f"{'case':<16} {'what':<20} {'seconds':>8} {'Mpx/s':>8} {'x read':>7} {'x rd+png':>8}")
    for r in rows:
        extra = (f"{r['vs_read']:7.2f} {r['vs_read_png']:8.2f}" if "vs_read" in r else "")
        print(f"{r['case']:<16} {r['what']:<20} {r['seconds']:8.3f} {r['mpx_per_s']:8.2f} {extra}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_ingest.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
