"""The README's example certificate: two synthetic specimens of four micrographs each.

Renders 2 x 4 synthetic membranes of known truth (specimen M1: porosity 10 %, 24 px pores;
M2: 22 %, 30 px pores; 25 nm/px), measures them with the pipeline model through
``porescope measure`` with ``--specimens pattern`` and the validate stage's table, prints the
report to PDF with headless Chromium, renders its specimen page to a PNG for the README and
prints each specimen's figures next to the truth.

    python bench/figure_certificate.py [--model models/model.pt] [--validation plots/validate/table.csv]
        [--out bench/results/certificate] [--png plots/readme/certificate.png]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import pandas as pd

from porescope import synthesize_membrane
from porescope.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
SPECIMENS = {"M1": (0.10, 24.0), "M2": (0.22, 30.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt")
    ap.add_argument("--validation", type=Path, default=ROOT / "plots" / "validate" / "table.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "certificate")
    ap.add_argument("--png", type=Path, default=ROOT / "plots" / "readme" / "certificate.png")
    args = ap.parse_args()
    images = args.out / "images"
    if args.out.exists():
        shutil.rmtree(args.out)
    images.mkdir(parents=True)
    truth = []
    for k, (name, (porosity, diameter)) in enumerate(SPECIMENS.items()):
        for i in range(4):
            m = synthesize_membrane(512, 512, porosity=porosity, mean_diameter_px=diameter,
                                    pixel_size_nm=25.0, seed=1000 + 10 * k + i)
            cv2.imwrite(str(images / f"{name}_{i + 1:02d}.png"), m.image)
            truth.append({"specimen": name, "porosity": m.truth["porosity"],
                          "density_cm2": m.truth["density_cm2"]})
    measured = args.out / "measured"
    rc = cli.main(["measure", "--model", str(args.model), "--input", str(images), "--out", str(measured),
                   "--pixel-size-nm", "25", "--specimens", r"pattern:^(.+?)_\d+$",
                   "--validation", str(args.validation), "--pdf"])
    print("porescope measure exit status", rc)
    stats = pd.read_csv(measured / "specimens.csv")
    true = pd.DataFrame(truth).groupby("specimen").mean()
    show = stats[stats["quantity"].isin(["porosity", "density_split_labels"])]
    print(show.to_string(index=False, max_colwidth=40))
    print("truth (mean of the images):")
    print(true.to_string())
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(measured / "report.pdf"))
    for index in range(len(pdf)):
        if "Specimens" in pdf[index].get_textpage().get_text_range():
            page = pdf[index]
            break
    else:
        page = pdf[0]
    import numpy as np
    from PIL import Image

    # the specimen pages (overview, then each specimen), white margins cut, stacked
    parts = []
    for k in range(index, min(index + 2, len(pdf))):
        px = np.asarray(pdf[k].render(scale=1.4).to_pil().convert("RGB"))
        ink = np.nonzero((px < 245).any(axis=2))
        parts.append(px[max(0, ink[0].min() - 20):ink[0].max() + 20])
    width = max(p.shape[1] for p in parts)
    sheet = np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255)
                       for p in parts])
    args.png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.png, optimize=True)
    print(f"wrote {args.png} (pages {index + 1}-{index + len(parts)} of {len(pdf)})")


if __name__ == "__main__":
    main()
