"""Where are a segmentation's pixel errors: on the edges of true structures, or whole structures?

For thin structures (EM membranes a few px wide) Dice is dominated by where the edges are put.
This script splits the false positives by their distance to the nearest true pixel and the false
negatives by their distance to the nearest predicted pixel: an error within ``r`` px is an edge
placed ``r`` px off; the rest are structures missed or invented, reported as 8-connected
components by size. It also prints the Dice one would get if the errors within ``r`` px were
forgiven, an upper bound on what better edge placement alone can give.

    python bench/edge_errors.py --truth WORK/ingested/masks --pred WORK/pred --ids 20 21 ... 29

(``WORK``: a ``bench/quality_run.py --work`` folder; the masks are class-id PNGs, ``--class-id``
the class scored, 1 by default.) Prints one row per image and a pooled row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.io.tables import read_png  # noqa: E402


def edge_errors(truth: np.ndarray, pred: np.ndarray, radii: tuple[float, ...] = (1, 2, 3),
                big: tuple[int, ...] = (50, 200)) -> dict[str, float]:
    """Pixel errors of boolean ``pred`` against boolean ``truth`` (same 2-D shape), by distance.

    Returns ``tp, fp, fn``; ``fp_le_<r>`` / ``fn_le_<r>``: false positives within ``r`` px of a
    true pixel / false negatives within ``r`` px of a predicted pixel (Euclidean); ``far_px``:
    the errors beyond the largest radius, and ``far_px_in_ge_<n>``: those in 8-connected
    components of at least ``n`` px.

    Examples
    --------
    >>> t = np.zeros((40, 40), bool); t[:, 10:14] = True      # a 4-px-wide membrane
    >>> p = np.zeros_like(t); p[:, 11:15] = True; p[30:36, 30:36] = True   # 1 px off + a blob
    >>> e = edge_errors(t, p, radii=(1, 2), big=(20,))
    >>> e["fp"], e["fp_le_1"], e["fn"], e["fn_le_1"], e["far_px"], e["far_px_in_ge_20"]
    (76, 40, 40, 40, 36, 36)
    """
    fp, fn = pred & ~truth, truth & ~pred
    to_truth, to_pred = ndi.distance_transform_edt(~truth), ndi.distance_transform_edt(~pred)
    out: dict[str, float] = {"tp": int((pred & truth).sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}
    for r in radii:
        out[f"fp_le_{r:g}"] = int((fp & (to_truth <= r)).sum())
        out[f"fn_le_{r:g}"] = int((fn & (to_pred <= r)).sum())
    far = (fp & (to_truth > max(radii))) | (fn & (to_pred > max(radii)))
    out["far_px"] = int(far.sum())
    labels, _ = ndi.label(far, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    for n in big:
        out[f"far_px_in_ge_{n}"] = int(sizes[sizes >= n].sum())
    return out


def dice_forgiving(row: pd.Series, r: float) -> float:
    """Dice with the errors within ``r`` px of an edge counted as right."""
    fp, fn = row["fp"] - row[f"fp_le_{r:g}"], row["fn"] - row[f"fn_le_{r:g}"]
    return 2 * row["tp"] / (2 * row["tp"] + fp + fn)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", type=Path, required=True, help="folder of class-id mask PNGs")
    ap.add_argument("--pred", type=Path, required=True, help="folder of predicted class-id PNGs, same names")
    ap.add_argument("--ids", nargs="+", required=True, help="image ids (file stems)")
    ap.add_argument("--class-id", type=int, default=1)
    ap.add_argument("--radii", type=float, nargs="+", default=[1, 2, 3])
    args = ap.parse_args(argv)
    rows = []
    for i in args.ids:
        truth = read_png(args.truth / f"{i}.png") == args.class_id
        pred = read_png(args.pred / f"{i}.png") == args.class_id
        rows.append({"image": i, **edge_errors(truth, pred, tuple(args.radii))})
    table = pd.DataFrame(rows)
    pooled = table.drop(columns="image").sum()
    table = pd.concat([table, pd.DataFrame([{"image": "pooled", **pooled.to_dict()}])], ignore_index=True)
    table["dice"] = 2 * table["tp"] / (2 * table["tp"] + table["fp"] + table["fn"])
    for r in args.radii:
        table[f"dice_forgiving_{r:g}px"] = table.apply(dice_forgiving, axis=1, r=r)
    print(table.round(4).to_string(index=False))
    errors = pooled["fp"] + pooled["fn"]
    within = {r: pooled[f"fp_le_{r:g}"] + pooled[f"fn_le_{r:g}"] for r in args.radii}
    print("pooled: " + ", ".join(f"{within[r] / errors:.0%} of the errors within {r:g} px of an edge"
                                 for r in args.radii)
          + f"; {pooled['far_px'] / errors:.0%} farther ({pooled['far_px_in_ge_200'] / errors:.0%} in "
            "components of >= 200 px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
