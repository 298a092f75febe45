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

With ``--baseline OTHER_MODEL`` both models segment the same membranes and the script compares them
image by image (:func:`paired_comparison`): per quantity (porosity, each estimator's count) and band,
the mean |error| of each, the mean paired change with a bootstrap 95 % interval, the share of
images each is better on, the max and the share beyond the tolerance. Issue 9 asks that the
synthetic validation be "unchanged or better" than when it was filed; the baseline for that is
the default model of commit 27a1df8, rebuilt byte for byte (model.pt md5 c6b1044b...)::

    git clone -q . /tmp/pre9 && cd /tmp/pre9 && git checkout -q 27a1df8 && \\
        ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=$PWD dvc repro train && \\
        md5sum models/model.pt && cd -   # the AVX2 kernels of every dvc.lock here
    python bench/validation_spread.py --model models/model.pt --baseline /tmp/pre9/models/model.pt \\
        --draws 8 --n-images 12 --json bench/results/validation_spread/vs_pre_issue9.json \\
        --table bench/results/validation_spread/vs_pre_issue9.csv

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


def paired_comparison(model: pd.DataFrame, baseline: pd.DataFrame, porosity_tol_pp: float,
                      count_steps: tuple[tuple[float, float], ...], seed: int = 0,
                      n_boot: int = 2000) -> pd.DataFrame:
    """Two models' predicted-mask errors on the same images, image by image.

    Parameters
    ----------
    model, baseline : DataFrame
        :func:`run_draws` tables of the same draws (same ``image_id`` and ``porosity_true``),
        segmented by the model under test and by the baseline; only ``mask == "predicted"``
        rows are used.
    porosity_tol_pp : float
        Porosity tolerance, percentage points.
    count_steps : tuple of (float, float)
        ``validate.targets.count_abs_pct``: band upper porosity edges (fraction) and count
        tolerances (%).
    seed : int
        Seed of the bootstrap.
    n_boot : int
        Bootstrap resamples (of images, pairs kept together).

    Returns
    -------
    DataFrame
        One row per quantity (``porosity``, pp; ``count:<estimator>``, %) and band (the bands
        of ``count_steps`` and ``all``): ``n`` pairs, ``baseline_mae``, ``model_mae``,
        ``change`` (mean of model |error| - baseline |error|; negative = the model is better)
        with ``change_ci_low`` / ``change_ci_high`` (bootstrap 95 %), ``model_better_share``
        and ``model_worse_share`` (images where its |error| is smaller / larger), ``baseline_max``,
        ``model_max``, ``baseline_share_over`` and ``model_share_over`` (beyond the tolerance),
        ``baseline_missing`` / ``model_missing`` (images without a count estimate), and
        ``verdict``: ``better`` / ``worse`` when the interval excludes 0, else ``no
        significant change``; ``worse`` too when the model lacks more estimates than the
        baseline. An image without a count estimate has an infinite |error| (worse than any
        estimate) and is left out of the means and the interval; a band without images has no
        row. About 20 intervals are read at once: one interval just excluding 0 is weak
        evidence.
    """
    edges = [s[0] for s in count_steps[:-1]]
    names = band_names(edges)
    tol = dict(zip(names, [s[1] for s in count_steps]))
    keys = ["image_id", "estimator"]
    cols = keys + ["porosity_true", "porosity_error_pp", "count_error_pct"]
    m = model[model["mask"] == "predicted"][cols]
    b = baseline[baseline["mask"] == "predicted"][cols]
    both = m.merge(b, on=keys, suffixes=("_m", "_b"), validate="one_to_one")
    if not len(both) == len(m) == len(b) or not np.allclose(both["porosity_true_m"], both["porosity_true_b"]):
        raise ValueError("model and baseline tables hold different images")
    both["band"] = pd.cut(both["porosity_true_m"], [-np.inf, *edges, np.inf], labels=names,
                          right=True).astype(str)
    rng = np.random.default_rng(seed)
    quantities = [("porosity", "porosity_error_pp", both["estimator"] == both["estimator"].iloc[0])]
    quantities += [(f"count:{e}", "count_error_pct", both["estimator"] == e)
                   for e in both["estimator"].unique()]
    rows = []
    for name, col, sel in quantities:
        for band in [*names, "all"]:
            g = both[sel & ((both["band"] == band) | (band == "all"))]
            if g.empty:
                continue
            em = g[f"{col}_m"].abs().fillna(np.inf).to_numpy()
            eb = g[f"{col}_b"].abs().fillna(np.inf).to_numpy()
            t = porosity_tol_pp if col == "porosity_error_pp" else tol.get(band)
            finite = np.isfinite(em) & np.isfinite(eb)
            d = em[finite] - eb[finite]
            if len(d):
                boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
                lo, hi = np.percentile(boots, [2.5, 97.5])
            else:
                lo = hi = np.nan
            rows.append({
                "quantity": name, "band": band, "n": len(g), "tolerance": t,
                "baseline_mae": eb[np.isfinite(eb)].mean(), "model_mae": em[np.isfinite(em)].mean(),
                "change": d.mean() if len(d) else np.nan, "change_ci_low": lo, "change_ci_high": hi,
                "baseline_missing": int(np.isinf(eb).sum()), "model_missing": int(np.isinf(em).sum()),
                "model_better_share": float((em < eb).mean()), "model_worse_share": float((em > eb).mean()),
                "baseline_max": eb.max(), "model_max": em.max(),
                "baseline_share_over": share_over(pd.Series(eb), t) if t is not None else np.nan,
                "model_share_over": share_over(pd.Series(em), t) if t is not None else np.nan,
                # an estimate lost is worse whatever the others say
                "verdict": ("worse" if lo > 0 or np.isinf(em).sum() > np.isinf(eb).sum() else
                            "better" if hi < 0 else "no significant change")})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="also the predicted masks")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--n-images", type=int, default=None, help="per draw (default validate.n_images)")
    ap.add_argument("--tta", action="store_true", help="validate.tta: true")
    ap.add_argument("--backend", default=None, help="validate.backend (default params.yaml's)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a second model segmenting the same membranes: paired comparison")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None, help="CSV of every image's errors")
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
    tables = {"model": table}
    paired = None
    if args.baseline:
        tables["baseline"], _ = run_draws(vp, p["synthesize"], analysis, int(p["seed"]), offsets,
                                          args.baseline)
        paired = paired_comparison(table, tables["baseline"], vp.targets.porosity_abs_pp, steps,
                                   seed=int(p["seed"]))
        print(f"paired, predicted masks: model {args.model} against baseline {args.baseline}")
        print(paired.round(3).to_string(index=False))
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        pd.concat([t.assign(model=str(getattr(args, k))) for k, t in tables.items()],
                  ignore_index=True).to_csv(args.table, index=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": str(args.model) if args.model else None, "draws": args.draws,
            "n_images": vp.n_images, "seed_offsets": offsets, "tta": vp.tta,
            "verdicts": verdicts, "spread": json.loads(sp.round(4).to_json(orient="records")),
            **({"baseline": str(args.baseline),
                "paired": json.loads(paired.round(4).to_json(orient="records"))}
               if paired is not None else {})},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
