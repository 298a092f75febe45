"""Which true objects do the Au tetrahedra annotations draw? Checked against particles marked by eye.

The RGB masks of ``au-nanoparticles-tem/tetrahedra`` paint particles red and the overlap of two
particles blue, but two particles that merely touch share no line: red touches red. Taken as
the annotated classes' components (``evaluate.objects.truth_seed_h: null``), such a pair is one
true object. ``truth_seed_h`` cuts the annotated interiors at necks first
(:func:`porescope.segmentation.instances.instances_from_three_class`, 4-connected). This script
compares both with the particle centres that a person marked by eye on the images alone
(``data/reference/au-tetrahedra/centres.csv``): a true object should hold exactly one centre.

    python bench/au_truth_objects.py --shared-data ../shared/data \\
        --reference data/reference/au-tetrahedra --truth-seed-h 1 2 3 \\
        --figure plots/readme/au_truth_objects.png

Prints one row per image and definition: true objects, objects holding exactly one marked
centre, none (no particle marked there), of those the specks (at most 1 annotated particle
pixel), two or more (a cluster), and marked centres outside every object.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.io.mask_encoding import decode_rgb  # noqa: E402
from porescope.segmentation.instances import instances_from_three_class  # noqa: E402

SUB = "au-nanoparticles-tem/tetrahedra"
COLOURS = {(255, 0, 0): 1, (0, 0, 255): 2, (0, 0, 0): 0}


def class_map(path: Path) -> np.ndarray:
    """Class ids (0 background, 1 particle, 2 overlap / boundary) of one RGB mask."""
    return decode_rgb(np.asarray(Image.open(path).convert("RGB")), COLOURS, name=str(path))


def centre_census(labels: np.ndarray, xy: np.ndarray, interior: np.ndarray | None = None) -> dict[str, int]:
    """How the marked centres ``xy`` (N x 2, x = column, y = row) fall on the objects ``labels``.

    With the annotated ``interior`` (bool, the particle class), ``no_centre_specks`` counts the
    objects without a centre whose interior is at most 1 pixel: specks of annotation.

    Examples
    --------
    >>> lab = np.zeros((10, 10), int); lab[:5] = 1; lab[6:] = 2
    >>> centre_census(lab, np.array([[1, 1], [2, 2], [5, 5]]))
    {'objects': 2, 'one_centre': 0, 'no_centre': 1, 'several_centres': 1, 'centres_outside': 1}
    >>> centre_census(lab, np.array([[1, 1]]), interior=lab == 1)["no_centre_specks"]
    1
    """
    hit = labels[xy[:, 1], xy[:, 0]]
    n = int(labels.max())
    per_object = np.bincount(hit[hit > 0], minlength=n + 1)[1:]
    out = {"objects": n, "one_centre": int((per_object == 1).sum()),
           "no_centre": int((per_object == 0).sum()), "several_centres": int((per_object >= 2).sum()),
           "centres_outside": int((hit == 0).sum())}
    if interior is not None:
        inner = np.bincount(labels[interior], minlength=n + 1)[1:]
        out["no_centre_specks"] = int(((per_object == 0) & (inner <= 1)).sum())
    return out


def figure(image: np.ndarray, before: np.ndarray, after: np.ndarray, cm: np.ndarray, xy: np.ndarray,
           h: float) -> bytes:
    """Two panels: the true objects without and with the neck cut, each in its own colour, the
    overlap class in blue and the marked centres as black dots."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    colours = rng.uniform(0.35, 1.0, (int(max(before.max(), after.max())) + 1, 3))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.3), dpi=100)
    for ax, lab, title in ((axes[0], before, f"annotated components: {before.max()} objects"),
                           (axes[1], after, f"cut at necks (truth_seed_h={h:g}): {after.max()} objects")):
        rgb = np.repeat(image[..., None] / 255.0, 3, axis=2) * 0.5
        rgb[lab > 0] += 0.5 * colours[lab[lab > 0]]
        rgb[cm == 2] = (0.1, 0.2, 1.0)
        ax.imshow(np.clip(rgb, 0, 1))
        ax.plot(xy[:, 0], xy[:, 1], "k.", ms=5)
        ax.set_title(f"{title}; {len(xy)} particles marked by eye", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True, help="folder with centres.csv")
    ap.add_argument("--truth-seed-h", type=float, nargs="+", default=[2.0])
    ap.add_argument("--figure", type=Path, default=None, help="PNG of the first image, both definitions")
    ap.add_argument("--figure-h", type=float, default=2.0, help="truth_seed_h of the figure's right panel")
    args = ap.parse_args(argv)
    root = args.shared_data / SUB
    if not root.is_dir():
        raise SystemExit(f"{root}: not found (the shared real datasets)")
    centres = pd.read_csv(args.reference / "centres.csv")
    rows = []
    for name, marks in centres.groupby("file", sort=False):
        cm = class_map(root / "masks" / name)
        xy = marks[["x", "y"]].to_numpy(int)
        for h in [None, *args.truth_seed_h]:
            lab = instances_from_three_class(cm, 1, 2, connectivity=4, seed_h=h)
            rows.append({"file": name, "marked": len(xy), "truth_seed_h": "null" if h is None else h,
                         **centre_census(lab, xy, interior=cm == 1)})
    table = pd.DataFrame(rows)
    pooled = table.groupby("truth_seed_h", sort=False)[
        ["marked", "objects", "one_centre", "no_centre", "no_centre_specks", "several_centres",
         "centres_outside"]].sum()
    pd.set_option("display.width", 200)
    print(table.to_string(index=False))
    print("\npooled over the images:\n" + pooled.to_string())
    if args.figure:
        name = centres["file"].iloc[0]
        cm = class_map(root / "masks" / name)
        image = np.asarray(Image.open(root / "images" / name).convert("L"), dtype=float)
        image = 255 * (image - image.min()) / max(np.ptp(image), 1)
        xy = centres.loc[centres["file"] == name, ["x", "y"]].to_numpy(int)
        png = figure(image, instances_from_three_class(cm, 1, 2, connectivity=4),
                     instances_from_three_class(cm, 1, 2, connectivity=4, seed_h=args.figure_h), cm, xy,
                     args.figure_h)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        args.figure.write_bytes(png)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
