"""README figure: a zoomed crop of one test image's evaluation overlay (truth yellow, prediction red).

    python bench/figure_evaluation_example.py [--image mem_016] [--out plots/readme/evaluation_example.png]

Reads ``plots/evaluate/overlays/<image>.png`` (written by the ``evaluate`` stage: left half the
border overlay, right half the filled overlay) and the per-image scores, and writes a 2x zoom
of the top-left 192 px of both halves with the image's Dice in the title.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="mem_016")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--out", type=Path, default=ROOT / "plots" / "readme" / "evaluation_example.png")
    args = parser.parse_args()
    panel = cv2.imread(str(ROOT / "plots" / "evaluate" / "overlays" / f"{args.image}.png"))
    if panel is None:
        raise SystemExit(f"plots/evaluate/overlays/{args.image}.png not found: run dvc repro evaluate")
    half = panel.shape[1] // 2
    scores = pd.read_csv(ROOT / "plots" / "evaluate" / "per_image.csv")
    dice = scores.loc[scores["image_id"] == args.image, "dice"].iloc[0]
    c = args.crop
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3), dpi=110)
    for ax, crop, title in ((axes[0], panel[:c, :c], "truth (yellow) vs prediction (red) borders"),
                            (axes[1], panel[:c, half:half + c], "prediction, 80 % transparent fill")):
        ax.imshow(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Synthetic test image {args.image}: Dice {dice:.3f} (crop {c}x{c} px)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
