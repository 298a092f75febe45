"""Training throughput (images/s) of the default model and of the reference papers' U-Nets.

    python bench/bench_training.py [--steps 6] [--device auto]

Times full optimisation steps (forward, BCE+Dice loss, backward, Adam) on random batches, after
one warm-up step, for: the default porescope model (params.yaml ``train``: U-Net with a
MobileNetV3-small encoder, 128 px tiles, batch 16) and, as the baseline measured in the same run,
smp ``Unet(resnet34)`` at 256 px, batch 4 (papers 000/001). On CUDA it also times AMP (float16
autocast + gradient scaling) against float32. Prints images/s, megapixels/s and ratios.

``--full-res`` also times the quality configuration's network (``examples/params_quality.yaml``:
ResNet-18 U-Net, 256 px, batch 8) without and with ``train.full_res_channels=16`` and prints
the cost of the full-resolution skip as a ratio of the two, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from porescope.segmentation import losses

from porescope.segmentation import models
from porescope.segmentation.devices import configure_cpu_threads, select_device
from porescope.segmentation.training import train_step

ROOT = Path(__file__).resolve().parents[1]


def _time_steps(config: dict, size: int, batch: int, steps: int, device: torch.device, amp: bool) -> float:
    torch.manual_seed(0)
    model = models.build_model(config).to(device).train()
    loss_fn = losses.build_loss("bce+dice", config["classes"]).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    x = torch.rand(batch, 1, size, size, device=device)
    y = (torch.rand(batch, size, size, device=device) > 0.7).long()
    elapsed = 0.0
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(model, loss_fn, opt, scaler, x, y, amp=amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - t0
    return steps * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--full-res", action="store_true", help="also time train.full_res_channels=16 against 0")
    args = parser.parse_args()
    device = select_device(args.device)
    threads = configure_cpu_threads(0)
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    t, tile = p["train"], p["ingest"]["tile_size"]
    default = models.model_config(t["arch"], t["encoder"], 1, encoder_depth=t["encoder_depth"],
                                  decoder_channels=t["decoder_channels"])
    baseline = models.model_config("Unet", "resnet34", 1)
    runs = [("default " + t["encoder"], default, tile, t["batch_size"]), ("Unet resnet34 (papers)", baseline, 256, 4)]
    if args.full_res:
        q = yaml.safe_load((ROOT / "examples" / "params_quality.yaml").read_text())["train"]
        for channels in (0, 16):
            config = models.model_config("Unet", q["encoder"], 1, decoder_channels=q["decoder_channels"],
                                         full_res_channels=channels)
            runs.append((f"quality full_res_channels={channels}", config, 256, q["batch_size"]))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {threads} threads"
    print(f"device: {name}; torch {torch.__version__}")
    rows = []
    for label, config, size, batch in runs:
        for amp in ([False, True] if device.type == "cuda" else [False]):
            ips = _time_steps(config, size, batch, args.steps, device, amp)
            rows.append((label, size, batch, amp, ips))
            print(f"  {label:<34} {size:4d} px  batch {batch:3d}  {'AMP ' if amp else 'fp32'}  "
                  f"{ips:8.2f} images/s  {ips * size * size / 1e6:7.2f} Mpx/s")
    base = next(r for r in rows if r[0].startswith("Unet resnet34") and not r[3])
    for label, size, batch, amp, ips in rows:
        if not label.startswith("Unet resnet34"):
            ratio = (ips * size * size) / (base[4] * base[1] * base[1])
            print(f"  {label} {'AMP' if amp else 'fp32'}: {ratio:.1f}x the baseline's pixel throughput")
    if args.full_res:
        for amp in sorted({r[3] for r in rows}):
            plain, skip = (next(r[4] for r in rows if r[0] == f"quality full_res_channels={c}" and r[3] == amp)
                           for c in (0, 16))
            print(f"  full-resolution skip {'AMP' if amp else 'fp32'}: {plain / skip:.2f}x the time per step")
    if device.type == "cuda":
        for label in {r[0] for r in rows}:
            fp32 = next(r[4] for r in rows if r[0] == label and not r[3])
            amp16 = next(r[4] for r in rows if r[0] == label and r[3])
            print(f"  {label}: AMP / fp32 = {amp16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
