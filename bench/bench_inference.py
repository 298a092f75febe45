"""Benchmark of porescope.segmentation.inference: ONNX Runtime vs torch eager, tiled vs untiled.

Model: the default architecture of params.yaml (smp Unet, tu-mobilenetv3_small_100 encoder,
decoder channels 64-32-16-16-8, 1 input channel, 1 class), random init, eval mode. Both backends
use the same thread count (``--threads``, default torch's).

Measured in one run, on a size x size uint8 texture for each ``--sizes``:

* untiled: the network once on the whole image (the baseline of each backend);
* tiled 256: ``predict_proba`` with the default tiling (tile 256, overlap 64, batch 4);
* tiled auto: ``predict_proba(tile="auto")`` (the window and overlap of ``throughput_window``: fewest pixels);

each as seconds (best of ``--repeats``), megapixels of the image per second and the tiled /
untiled throughput ratio within the backend; plus the ONNX Runtime / torch speed-up. Sizes in
``--mem-sizes`` (default 4096) run once each in a fresh subprocess, tiled only (an untiled 4096 px
forward pass of torch needs several GB), and also report the peak resident set during the
prediction (VmHWM after a reset, so imports and the model are counted but not the set-up peak).

    python bench/bench_inference.py                      # 256 and 1024 in-process, 4096 in subprocesses
    python bench/bench_inference.py --mem-sizes          # skip the 4096 runs
    python bench/bench_inference.py --torch-mem          # also torch at 4096 (slow on a CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ARCH = {"arch": "Unet", "encoder": "tu-mobilenetv3_small_100", "classes": 1, "in_channels": 1,
        "encoder_depth": 5, "decoder_channels": [64, 32, 16, 16, 8]}


def _model():
    import torch

    from porescope.segmentation.models import build_model

    torch.manual_seed(0)
    return build_model(ARCH).eval()


def _image(size: int) -> np.ndarray:
    """uint8 texture: a 512-px smooth-noise patch tiled to size x size (cheap in memory)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    n = min(size, 512)
    small = ndi.zoom(rng.normal(size=(n // 8 + 1, n // 8 + 1)), 8, order=1)[:n, :n]
    patch = np.clip(128 + 40 * small + rng.normal(0, 10, (n, n)), 0, 255).astype(np.uint8)
    reps = -(-size // n)
    return np.ascontiguousarray(np.tile(patch, (reps, reps))[:size, :size])


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _runners(model, backend: str, threads: int):
    """name -> callable(image) for one backend."""
    import torch

    from porescope.segmentation.inference import normalise, predict_proba
    from porescope.segmentation.onnx_runtime import onnx_model_for

    if backend == "torch":
        def untiled(img):
            with torch.inference_mode():
                return torch.sigmoid(model(torch.from_numpy(normalise(img))[None, None]))[0].numpy()
    else:
        onnx_model = onnx_model_for(model, threads)

        def untiled(img):
            return torch.sigmoid(torch.from_numpy(onnx_model(normalise(img)[None, None])))[0].numpy()
    return {
        "untiled": untiled,
        "tiled 256": lambda img: predict_proba(model, img, backend=backend, threads=threads),
        "tiled auto": lambda img: predict_proba(model, img, tile="auto", backend=backend, threads=threads),
    }


def _best(fn, img, repeats: int) -> tuple[float, float]:
    """Best wall and best CPU (all threads of this process) seconds; on a shared machine the
    CPU figure is the steadier one (ONNX Runtime runs with spinning off, so idle threads cost
    nothing)."""
    best, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(img)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return best, cpu


def child(backend: str, mode: str, size: int, threads: int) -> None:
    """Runs in a subprocess: one prediction, prints a JSON line with time and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    model = _model()
    run = _runners(model, backend, threads)[mode]
    run(_image(64))  # warm-up: lazy allocations and (onnxruntime) the export belong to the setup
    img = _image(size)
    reset = _reset_peak_rss()
    t0 = time.perf_counter()
    run(img)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "peak_rss_mb": _peak_rss_mb() if reset else float("nan")}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[256, 1024])
    p.add_argument("--mem-sizes", type=int, nargs="*", default=[4096])
    p.add_argument("--repeats", type=int, default=2, help="timed repeats in-process (best is kept)")
    p.add_argument("--threads", type=int, default=0, help="0: torch's default")
    p.add_argument("--torch-mem", action="store_true", help="also run torch at the --mem-sizes")
    p.add_argument("--child", nargs=3, metavar=("BACKEND", "MODE", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()

    import onnxruntime
    import torch

    threads = args.threads or torch.get_num_threads()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), threads)
        return
    torch.set_num_threads(threads)
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()}; torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; {threads} threads; model {ARCH['arch']} {ARCH['encoder']}")
    model = _model()
    runners = {b: _runners(model, b, threads) for b in ("torch", "onnxruntime")}
    for b in runners:
        runners[b]["untiled"](_image(64))  # warm-up

    print("\nthroughput ratios are tiled / untiled within the backend; speed-up = torch time / ort time")
    print(f"{'size':>5} {'backend':<12} {'mode':<11} {'seconds':>8} {'Mpx/s':>7} {'/ untiled':>10} "
          f"{'ort speed-up':>13} {'CPU s':>7} {'/ untiled (CPU)':>16}")
    for size in args.sizes:
        img = _image(size)
        res = {(b, m): _best(fn, img, args.repeats) for b in runners for m, fn in runners[b].items()}
        for (b, m), (s, c) in res.items():
            ratio = res[(b, "untiled")][0] / s
            ratio_cpu = res[(b, "untiled")][1] / c
            speed = f"{res[('torch', m)][0] / s:.2f}x" if b == "onnxruntime" else ""
            print(f"{size:>5} {b:<12} {m:<11} {s:>8.3f} {size * size / 1e6 / s:>7.2f} {ratio:>9.0%} {speed:>13} "
                  f"{c:>7.3f} {ratio_cpu:>15.0%}")

    backends = ["onnxruntime"] + (["torch"] if args.torch_mem else [])
    for size in args.mem_sizes:
        print(f"\n{size} x {size}, one fresh subprocess per row; peak RSS = VmHWM during the prediction "
              f"(interpreter, torch, model and image included)")
        for b in backends:
            for m in ("tiled auto", "tiled 256"):
                cmd = [sys.executable, __file__, "--threads", str(threads), "--child", b, m, str(size)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    raise RuntimeError(f"child {b} {m} {size} failed:\n{res.stderr[-3000:]}")
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"{size:>5} {b:<12} {m:<11} {r['seconds']:>8.2f} s {size * size / 1e6 / r['seconds']:>7.2f} Mpx/s "
                      f"peak RSS {r['peak_rss_mb']:>6.0f} MiB")


if __name__ == "__main__":
    main()
