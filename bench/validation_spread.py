"""How much does the ``validate`` stage's verdict depend on which membranes it drew?

The stage checks its accuracy targets (``validate.targets``: every image's porosity within
0.5 pp, every image's count within 2 % / 5 %) on one set of ``validate.n_images`` membranes
(12 until December 2026, now 48). This script draws ``--draws`` more sets of that size (or
``--n-images``) and settings (seed ``seed + k * validate.seed_offset``
for ``k = 2, 3, ...``: never the stage's set, never the training images) and reports

* per draw: the stage's verdicts (porosity max |error|, best count estimator's max |error| per
  band, all targets met?), i.e. how often a draw passes;
* over all drawn images, per mask (true / predicted), estimator and porosity band: mean, 95th
  percentile and max |error| and the share of images beyond the tolerance, for porosity and
  count, and the pooled count error.

On the true masks the porosity error is 0 and the count error is the estimator's own sampling
error: a tolerance that the exact masks exceed cannot be met by any segmentation.

    python bench/validation_spread.py --model models/model.pt --draws 8 --n-images 12 [--tta] \\
        [--json bench/results/validation_spread/model_notta.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.analysis.comparison import band_names  # noqa: E402
from porescope.analysis.params import AnalyzeParams  # noqa: E402
from porescope.analysis.validation import MASKS, ValidateParams, share_over, validate_on_truth  # noqa: E402


def draw_offsets(params: ValidateParams, draws: int) -> list[int]:
    """Seed offsets of the extra draws: 2, 3, ... times ``params.seed_offset`` (the stage's own
    set is 1 times it)."""
    return [params.seed_offset * (k + 2) for k in range(draws)]


def run_draws(params: ValidateParams, synth: dict[str, Any], analysis: AnalyzeParams, seed: int,
              offsets: list[int], model_path: Path | None = None
              ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """:func:`validate_on_truth` once per seed offset: the tables stacked (column ``draw``,
    image ids made unique as ``d<k>_val_<i>``) and one verdict dict per draw."""
    tables, verdicts = [], []
    for k, offset in enumerate(offsets):
        res = validate_on_truth(replace(params, seed_offset=offset), synth, analysis, seed,
                                model_path=model_path)
        t = res.table.copy()
        t.insert(0, "draw", k)
        t["image_id"] = [f"d{k}_{i}" for i in t["image_id"]]
        tables.append(t)
        for mask, v in res.metrics["targets"].items():
            if isinstance(v, dict) and "porosity_met" in v:
                verdicts.append({"draw": k, "seed_offset": offset, "mask": mask,
                                 "porosity_max_abs_pp": v["porosity_max_abs_pp"],
                                 "porosity_met": v["porosity_met"],
                                 **{f"count_{b}_max_abs_pct": c["best_max_abs_pct"]
                                    for b, c in v["count"].items()},
                                 **{f"count_{b}_met": c["met"] for b, c in v["count"].items()},
                                 "all_met": v["all_met"]})
    return pd.concat(tables, ignore_index=True), verdicts


def spread(table: pd.DataFrame, porosity_tol_pp: float,
           count_steps: tuple[tuple[float, float], ...]) -> pd.DataFrame:
    """Error spread over all images of ``table`` (a :func:`validate_on_truth` table), one row
    per mask, estimator and band (the bands of ``count_steps``, as in ``validate.targets``):
    ``n``, ``porosity_mae_pp``, ``porosity_p95_pp``, ``porosity_max_pp``,
    ``porosity_share_over`` (fraction of images with |error| > ``porosity_tol_pp``), the same
    for the count in % against the band's tolerance, and ``count_pooled_pct``."""
    edges = [s[0] for s in count_steps[:-1]]
    names = band_names(edges)
    tol = dict(zip(names, [s[1] for s in count_steps]))
    t = table.copy()
    t["band"] = pd.cut(t["porosity_true"], [-np.inf, *edges, np.inf], labels=names, right=True)
    rows = []
    for (mask, est, band), g in t.groupby(["mask", "estimator", "band"], sort=False, observed=True):
        pe = g["porosity_error_pp"].abs()
        ce = g["count_error_pct"].abs().dropna()
        rows.append({"mask": mask, "estimator": est, "band": band, "n": len(g),
                     "porosity_mae_pp": pe.mean(), "porosity_p95_pp": pe.quantile(0.95),
                     "porosity_max_pp": pe.max(),
                     "porosity_share_over": share_over(pe, porosity_tol_pp),
                     "count_tolerance_pct": tol[band], "count_mae_pct": ce.mean(),
                     "count_p95_pct": ce.quantile(0.95), "count_max_pct": ce.max(),
                     "count_share_over": share_over(ce, tol[band]),
                     "count_pooled_pct": 100.0 * (g["count_measured"].sum() / g["count_true"].sum() - 1.0)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="also the predicted masks")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--n-images", type=int, default=None, help="per draw (default validate.n_images)")
    ap.add_argument("--tta", action="store_true", help="validate.tta: true")
    ap.add_argument("--backend", default=None, help="validate.backend (default params.yaml's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    p = yaml.safe_load(args.params.read_text())
    vp = ValidateParams.from_mapping(p["validate"])
    vp = replace(vp, tta=args.tta or vp.tta, n_images=args.n_images or vp.n_images,
                 backend=args.backend or vp.backend)
    analysis = AnalyzeParams.from_mapping(p["analyze"])
    offsets = draw_offsets(vp, args.draws)
    table, verdicts = run_draws(vp, p["synthesize"], analysis, int(p["seed"]), offsets, args.model)
    steps = vp.targets.count_abs_pct
    sp = spread(table, vp.targets.porosity_abs_pp, steps)
    pd.set_option("display.width", 220)
    print(f"{args.draws} draws x {vp.n_images} membranes, seed {p['seed']} + k x {vp.seed_offset} "
          f"(k = 2..{args.draws + 1}), model {args.model}, tta {vp.tta}")
    print(pd.DataFrame(verdicts).round(3).to_string(index=False))
    for mask in sp["mask"].unique():
        n = sum(v["all_met"] for v in verdicts if v["mask"] == MASKS[mask])
        print(f"{mask}: {n} of {args.draws} draws meet every target")
    print(sp.round(3).to_string(index=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": str(args.model) if args.model else None, "draws": args.draws,
            "n_images": vp.n_images, "seed_offsets": offsets, "tta": vp.tta,
            "verdicts": verdicts, "spread": json.loads(sp.round(4).to_json(orient="records"))},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
