"""Benchmark of porescope.segmentation.inference: throughput and memory of sliding-window inference.

Model: smp Unet, resnet18 encoder, 1 input channel, 1 class, random init, eval mode.

Measured in one run:
* throughput (megapixels of the input image per second) on a size x size image for untiled
  inference (the whole image in one forward pass: the baseline), tiled inference and tiled
  inference with flip TTA; ratios to the baseline;
* peak memory of tiled inference on a mem-size x mem-size image (default 4096), each measured
  in a fresh subprocess so the figure is clean: peak resident set (VmHWM, torch included) after
  setup (imports + model + image) and during the prediction, and the tracemalloc peak (numpy
  allocations); an untiled and a tiled run on the size x size image for comparison;
* on CUDA, fp32 vs AMP (float16 autocast) throughput and peak GPU memory.

    python bench/bench_inference.py                  # CPU: 1024 throughput + 4096 memory
    python bench/bench_inference.py --skip-mem       # throughput only
    python bench/bench_inference.py --device cuda --batch-size 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def _model(device: str):
    import torch

    from porescope.segmentation.torch_compat import import_smp

    smp = import_smp()
    torch.manual_seed(0)
    return smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1).eval().to(device)


def _image(size: int) -> np.ndarray:
    """uint8 texture: a 512-px smooth-noise patch tiled to size x size (cheap in memory, so the
    memory figures are those of inference, not of making the test image)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    n = min(size, 512)
    small = ndi.zoom(rng.normal(size=(n // 8 + 1, n // 8 + 1)), 8, order=1)[:n, :n]
    patch = np.clip(128 + 40 * small + rng.normal(0, 10, (n, n)), 0, 255).astype(np.uint8)
    reps = -(-size // n)
    return np.ascontiguousarray(np.tile(patch, (reps, reps))[:size, :size])


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    """Peak RSS of this process image: VmHWM from /proc (ru_maxrss is not used because Linux
    carries the parent's peak over fork + exec into a child's ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _untiled(model, img, device, amp=False):
    import torch

    from porescope.segmentation.inference import normalise

    x = torch.from_numpy(normalise(img))[None, None].to(device)
    ctx = torch.autocast("cuda", dtype=torch.float16) if amp and device.startswith("cuda") else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        out = torch.sigmoid(model(x).float())[0].cpu().numpy()
    return out


def child(mode: str, size: int, tile: int, overlap: int, batch: int) -> None:
    """Runs in a subprocess: one inference, prints a JSON line with memory figures."""
    import torch

    from porescope.segmentation.inference import predict_proba

    model = _model("cpu")
    img = _image(size)
    # touch the model once on a small input so lazy allocations are part of the setup figure
    with torch.inference_mode():
        model(torch.zeros(1, 1, 64, 64))
    setup_rss, setup_max = _rss_mb(), _maxrss_mb()
    reset = _reset_peak_rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    if mode == "tiled":
        out = predict_proba(model, img, tile=tile, overlap=overlap, batch_size=batch)
    else:
        out = _untiled(model, img, "cpu")
    dt = time.perf_counter() - t0
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    run_peak = _maxrss_mb()
    print(json.dumps({
        "mode": mode, "size": size, "seconds": dt, "setup_rss_mb": setup_rss, "setup_maxrss_mb": setup_max,
        "peak_reset": reset, "inference_peak_rss_mb": run_peak, "process_peak_rss_mb": max(setup_max, run_peak),
        "tracemalloc_peak_mb": tm_peak / 2**20, "out_shape": list(out.shape),
    }))


def _run_child(mode, size, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--child-size", str(size), "--tile", str(args.tile),
           "--overlap", str(args.overlap), "--batch-size", str(args.batch_size)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"child {mode} {size} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _time(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="throughput image side (px)")
    p.add_argument("--mem-size", type=int, default=4096, help="memory test image side (px)")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--skip-mem", action="store_true")
    p.add_argument("--child", choices=["tiled", "untiled"], help=argparse.SUPPRESS)
    p.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.child_size, args.tile, args.overlap, args.batch_size)
        return

    import torch

    from porescope.segmentation.inference import predict_proba, tile_starts, padding_for

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _model(device)
    img = _image(args.size)
    mp = args.size**2 / 1e6
    (t, b), (l, r) = padding_for(img.shape, args.tile, args.overlap)
    n_win = len(tile_starts(args.size + t + b, args.tile, args.overlap)) * len(
        tile_starts(args.size + l + r, args.tile, args.overlap))
    print(f"device {device}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"image {args.size}x{args.size}; tile {args.tile} overlap {args.overlap} batch {args.batch_size}; "
          f"{n_win} windows = {n_win * args.tile**2 / args.size**2:.2f} x the image's pixels")

    _untiled(model, img[:256, :256], device)  # warm-up
    rows = []
    t_base = _time(lambda: _untiled(model, img, device), args.repeats, device)
    rows.append(("untiled (baseline)", t_base))
    t_tile = _time(lambda: predict_proba(model, img, tile=args.tile, overlap=args.overlap,
                                         batch_size=args.batch_size), args.repeats, device)
    rows.append(("tiled", t_tile))
    t_tta = _time(lambda: predict_proba(model, img, tile=args.tile, overlap=args.overlap,
                                        batch_size=args.batch_size, tta=True), max(1, args.repeats - 1), device)
    rows.append(("tiled + flip TTA", t_tta))
    if device.startswith("cuda"):
        for amp in (False, True):
            torch.cuda.reset_peak_memory_stats()
            tt = _time(lambda: predict_proba(model, img, tile=args.tile, overlap=args.overlap,
                                             batch_size=args.batch_size, amp=amp), args.repeats, device)
            rows.append((f"tiled {'AMP fp16' if amp else 'fp32'} (GPU peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB)", tt))
        ta = _time(lambda: _untiled(model, img, device, amp=True), args.repeats, device)
        rows.append(("untiled AMP fp16", ta))

    print(f"\n{'mode':<48} {'seconds':>9} {'MP/s':>8} {'time / baseline':>16}")
    for name, sec in rows:
        print(f"{name:<48} {sec:>9.3f} {mp / sec:>8.3f} {sec / t_base:>16.2f}")

    if args.skip_mem:
        return
    print("\nmemory, CPU, one fresh subprocess per row (MB = MiB). setup = imports + model + image;")
    print("inference peak = peak RSS while predicting (peak counter reset after setup); process peak =")
    print("max of both; tracemalloc = peak of numpy/Python allocations during the prediction")
    print(f"{'run':<20} {'seconds':>8} {'setup RSS':>10} {'inference peak':>15} {'- setup':>8} "
          f"{'process peak':>13} {'tracemalloc':>12}")
    for mode, size in (("untiled", args.size), ("tiled", args.size), ("tiled", args.mem_size)):
        r = _run_child(mode, size, args)
        peak = r["inference_peak_rss_mb"] if r["peak_reset"] else float("nan")
        print(f"{mode + ' ' + str(size) + 'x' + str(size):<20} {r['seconds']:>8.1f} {r['setup_rss_mb']:>10.0f} "
              f"{peak:>15.0f} {peak - r['setup_rss_mb']:>8.0f} {r['process_peak_rss_mb']:>13.0f} "
              f"{r['tracemalloc_peak_mb']:>12.0f}")


if __name__ == "__main__":
    main()
