"""Peak memory and time of ``measure`` on one big micrograph: 4096, 8000 and 16000 px.

    nice python bench/bench_measure_memory.py [--sizes 4096 8000 16000] [--default-architecture]

For each size, a synthetic grey micrograph (mid-grey with dark discs of radius 6 px, about one
per 40 x 40 px, fixed seed) is written as a PNG, then a *fresh child process* runs
:func:`porescope.measure.folder.run_measure` on it (default tiling, batch and backend of
``MeasureParams``; ``max_pixels`` raised to 400 Mpx so that 16000 px is read; figures off;
``--n-sim`` Monte-Carlo simulations for the spatial tests). The child reports its own peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the wall time; the parent
cross-checks the peak with ``RUSAGE_CHILDREN``. The model is random-initialised (weights do not
change memory or time): a tiny U-Net (``encoder_depth=3``) by default, the default training
architecture with ``--default-architecture``.

Printed: size, Mpx, seconds, seconds per Mpx relative to the smallest size (1.0 = linear in
area), peak RSS in MiB, and whether it is within the 2 GB budget of issue 14. A size whose
peak, extrapolated from the previous one, would not fit in the available memory is skipped.

Measured 2026-12-05 on the shared 2-core / 23 GB CPU machine (tiny model, ONNX Runtime, machine
load 3-6 from other jobs), with inference decided band by band and images above
``measure.band_pixels`` (2 Mpx) analysed in bands of whole pores: 4096 px 47.4 s, 886 MiB;
8000 px 166.2 s, 1021 MiB; 16000 px 616.6 s, 1567 MiB (0.85 x the 4096 px time per Mpx): all
within 2 GB, time linear in area. About 670 MiB are the interpreter, torch, smp and ONNX
Runtime with the exported model; above that ~3.5 B per pixel (the grey image, the class ids, the
overlay's outline bits, the tables) plus a constant ~170 MiB of band work. Before: 4096 px
1001 MiB, 8000 px 1849 MiB (~14 B/px; the image-sized float32 probability maps and int32 label
images), 16000 px projected ~4.2 GiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MIB = 2048


def synthetic_micrograph(side: int, seed: int = 0):
    """``side x side`` uint8: grey 140 with dark (20) discs of radius 6 px, ~1 per 1600 px^2."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    img = np.full((side, side), 140, np.uint8)
    n = side * side // 1600
    for x, y in rng.integers(0, side, size=(n, 2)):
        cv2.circle(img, (int(x), int(y)), 6, 20, -1)
    return img


def make_model(path: Path, default_architecture: bool) -> Path:
    import torch

    from porescope.segmentation import models

    if default_architecture:
        from porescope.segmentation.train_model import TrainParams
        p = TrainParams()
        cfg = models.model_config(p.arch, p.encoder, 1, encoder_depth=p.encoder_depth,
                                  decoder_channels=list(p.decoder_channels))
    else:
        cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3,
                                  decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    models.save_model_file(path, models.build_model(cfg), cfg, {"0": "background", "1": "pore"})
    return path


def child(image_dir: Path, model: Path, out: Path, n_sim: int) -> None:
    """Measure ``image_dir`` once; print ``{"seconds", "peak_mib"}`` as JSON."""
    from porescope.analysis.params import AnalysisParams
    from porescope.measure.folder import run_measure
    from porescope.measure.params import MeasureParams

    analysis = AnalysisParams.from_mapping({"spatial": {"n_sim": n_sim}})
    params = dataclasses.replace(MeasureParams(), max_pixels=400_000_000, figures=False,
                                 scale_bar=False, analysis=analysis)
    t0 = time.perf_counter()
    run_measure(image_dir, model, out, params)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024}))


def _fits(last: tuple, side: int) -> bool:
    """Whether ``side`` px, extrapolated from the last size's bytes per pixel, fits in 80 % of
    the memory available now (a shared machine must not be driven into the OOM killer)."""
    try:
        import psutil
    except ImportError:
        return True
    per_px = last[3] * 2 ** 20 / (last[0] ** 2)
    need, free = per_px * side * side, 0.8 * psutil.virtual_memory().available
    if need > free:
        print(f"{side} px skipped: about {need / 2 ** 30:.1f} GiB projected from {last[0]} px, "
              f"{free / 2 ** 30:.1f} GiB available", file=sys.stderr)
    return need <= free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8000, 16000])
    parser.add_argument("--default-architecture", action="store_true")
    parser.add_argument("--n-sim", type=int, default=9)
    parser.add_argument("--child", nargs=3, metavar=("IMAGES", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), Path(args.child[2]), args.n_sim)
        return
    import cv2

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model.pt", args.default_architecture)
        for side in args.sizes:
            if rows and not _fits(rows[-1], side):
                continue
            images = tmp / f"in{side}"
            images.mkdir()
            cv2.imwrite(str(images / f"syn{side}.png"), synthetic_micrograph(side))
            proc = subprocess.run([sys.executable, __file__, "--n-sim", str(args.n_sim), "--child",
                                   str(images), str(model), str(tmp / f"out{side}")],
                                  capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"{side} px: child failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append((side, side * side / 1e6, res["seconds"], res["peak_mib"], children))
            print(f"{side} px done: {res['seconds']:.1f} s, peak {res['peak_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)
    if not rows:
        return
    base = rows[0][2] / rows[0][1]
    print(f"{'size px':>8} {'Mpx':>7} {'time s':>8} {'s/Mpx rel.':>10} {'peak MiB':>9} "
          f"{'max child MiB':>13} {'<= 2 GB':>7}")
    for side, mpx, sec, peak, children in rows:
        print(f"{side:>8} {mpx:>7.1f} {sec:>8.1f} {sec / mpx / base:>10.2f} {peak:>9.0f} "
              f"{children:>13.0f} {'yes' if peak <= BUDGET_MIB else 'NO':>7}")


if __name__ == "__main__":
    main()
