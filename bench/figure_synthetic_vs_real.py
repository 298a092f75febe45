"""README figure: real SEM micrographs of track-etched membranes next to synthetic ones.

Top row: real images from ``../shared/data/track-membranes-sem-unlabelled`` (grey, native
pixels, centre crops). Middle row: synthetic crops from :mod:`porescope.synthetic.membranes` at a similar
pore diameter and porosity (pore size and dark fraction measured on each real image with a
simple threshold), appearance drawn from the built-in default ranges (no hand-picking: the seed
is fixed and printed). Bottom row: one synthetic image with its opening mask (cyan) and core
mask (magenta) outlines, and a zoom.

``--synthesize FILE`` takes a YAML mapping of ``synthesize`` keys (e.g. ``appearance`` and
``artefacts`` ranges: edge-effect fringe, rough patches, frames, text, JPEG, ...) laid over the
defaults for every synthetic panel; the mask outlines then show that overlays are background.

    python bench/figure_synthetic_vs_real.py [--out plots/readme/synthetic_vs_real.png] [--seed 7]
        [--synthesize artefacts_on.yaml]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import measure, segmentation  # noqa: E402

from porescope.config import parse_group
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import SynthesizeParams

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "track-membranes-sem-unlabelled"
REAL_FILES = ("photo5.jpg", "photo7.jpg", "photo9.jpg", "photo6.jpg")
CROP = 200


def load_grey(path: Path) -> np.ndarray:
    """Any of the real files (JPEG, PNG, WebP named .jpg) as uint8 grey."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def centre_crop(img: np.ndarray, size: int, bottom_margin: int = 0) -> np.ndarray:
    h, w = img.shape
    h_eff = h - bottom_margin
    s = min(size, h_eff, w)
    r0, c0 = (h_eff - s) // 2, (w - s) // 2
    return img[r0:r0 + s, c0:c0 + s]


def pore_stats(img: np.ndarray) -> tuple[float, float]:
    """(median equivalent diameter px, dark area fraction) with a mid-level threshold."""
    g = img.astype(float)
    thr = 0.5 * (np.median(g) + np.percentile(g, 2))
    lab = measure.label(g < thr)
    areas = np.array([r.area for r in measure.regionprops(lab)])
    areas = areas[areas > 10]
    ecd = float(np.sqrt(4 * np.median(areas) / np.pi)) if len(areas) else 20.0
    return ecd, float((g < thr).mean())


def synthesize_params(overrides: dict, source: str = "--synthesize", **kw) -> SynthesizeParams:
    """The ``synthesize`` params: defaults, then ``overrides`` (a partial group), then ``kw``."""
    return parse_group(SynthesizeParams, {**overrides, **kw}, group="synthesize", source=source)


def synthetic_like(ecd: float, phi: float, size: int, seed: int, k: int,
                   overrides: dict | None = None) -> np.ndarray:
    params = synthesize_params(overrides or {}, n_images=k + 1, height=size, width=size,
                               diameter_min_px=ecd, diameter_max_px=ecd,
                               porosity_min=min(phi, 0.9), porosity_max=min(phi, 0.9))
    spec = syn.dataset_specs(params, seed)[k]
    return syn.synthesize_image(spec, syn.image_rng(seed, k)).image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "plots" / "readme" / "synthetic_vs_real.png"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--synthesize", metavar="YAML", default=None,
                    help="synthesize keys (appearance / artefacts ranges) laid over the defaults")
    args = ap.parse_args()
    overrides = {}
    if args.synthesize:
        overrides = yaml.safe_load(Path(args.synthesize).read_text(encoding="utf-8")) or {}
    if not REAL.is_dir():
        raise SystemExit(f"{REAL}: real track-membrane images not found")

    ncol = len(REAL_FILES)
    fig, axes = plt.subplots(3, ncol, figsize=(2.6 * ncol, 8.0))
    for j, name in enumerate(REAL_FILES):
        img = load_grey(REAL / name)
        crop = centre_crop(img, CROP, bottom_margin=60 if name == "photo5.jpg" else 0)
        ecd, phi = pore_stats(crop)
        synth = synthetic_like(ecd, phi, crop.shape[0], args.seed, j, overrides)
        print(f"{name}: crop {crop.shape}, pore ECD {ecd:.1f} px, dark fraction {phi:.3f}")
        for row, (im, title) in enumerate(((crop, f"real: {name}"),
                                           (synth, f"synthetic, d={ecd:.0f} px, phi={phi:.2f}"))):
            ax = axes[row, j]
            ax.imshow(im, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")

    # bottom row: a default-dataset image with mask outlines, plus zooms
    spec = syn.dataset_specs(synthesize_params(overrides, n_images=2), args.seed)[1]
    res = syn.synthesize_image(spec, syn.image_rng(args.seed, 1))
    rgb = np.repeat(res.image[..., None], 3, axis=2).astype(float) / 255
    over = rgb.copy()
    over[segmentation.find_boundaries(res.mask_opening, mode="inner")] = (0.0, 1.0, 1.0)
    over[segmentation.find_boundaries(res.mask_core, mode="inner")] = (1.0, 0.0, 1.0)
    t = res.truth
    axes[2, 0].imshow(res.image, cmap="gray", vmin=0, vmax=255)
    axes[2, 0].set_title(f"synthetic 512 px, phi={t['porosity']:.3f}\n"
                         f"d={spec.mean_diameter_px:.0f} px, n={t['n_true']}", fontsize=8)
    axes[2, 1].imshow(over)
    axes[2, 1].set_title("opening (cyan) / core (magenta)", fontsize=8)
    z = (slice(150, 250), slice(150, 250))
    axes[2, 2].imshow(res.image[z], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axes[2, 2].set_title("zoom", fontsize=8)
    axes[2, 3].imshow(over[z], interpolation="nearest")
    axes[2, 3].set_title("zoom with mask outlines", fontsize=8)
    for ax in axes[2]:
        ax.axis("off")
    fig.tight_layout()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    # quantise to a 64-grey+colour palette to keep the README asset small
    with Image.open(buf) as im:
        im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
