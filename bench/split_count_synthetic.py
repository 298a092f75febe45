"""The split count's errors on the synthetic validation membranes, with ``analyze`` changes.

Runs :func:`porescope.analysis.validation.validate_on_truth` (the ``validate`` stage's
function: its images, exact truth and targets, from ``params.yaml``) once per settings string
and prints the split-count errors per porosity band on the true and the predicted masks, and
whether the accuracy targets are met. ``--seed-offset`` / ``--n-images`` draw another set of
membranes (a development set, so that a rule is not chosen on the validation images).

    python bench/split_count_synthetic.py --model models/model.pt "" \\
        "counting.split_max_pores=2" "counting.split_max_pores=null"
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import yaml

from porescope.analysis.validation import ValidateParams, validate_on_truth
from real_sem_reference import ROOT, with_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="+",
                    help='comma-separated analyze changes per run, "" = params.yaml as is')
    ap.add_argument("--model", type=Path, default=None, help="also the predicted masks")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--seed-offset", type=int, default=None)
    ap.add_argument("--n-images", type=int, default=None)
    args = ap.parse_args()
    p = yaml.safe_load(args.params.read_text())
    vp = ValidateParams.from_mapping(p["validate"])
    vp = replace(vp, **{k: v for k, v in (("seed_offset", args.seed_offset),
                                            ("n_images", args.n_images)) if v is not None})
    print(f"{vp.n_images} membranes, seed {p['seed']} + {vp.seed_offset}, model {args.model}")
    for settings in args.settings:
        analysis = with_settings(p["analyze"], [s for s in settings.split(",") if s])
        m = validate_on_truth(vp, p["synthesize"], analysis, int(p["seed"]),
                              model_path=args.model).metrics
        for mask, errors in m["errors"].items():
            t = m["targets"][mask]
            split = "  ".join(
                f"{band}: mean {e['count_mae_pct']:.2f} max {e['count_max_abs_pct']:.2f} "
                f"pooled {e['count_pooled_pct']:+.2f} %"
                for band, e in errors["split_labels"].items() if band != "all")
            print(f"[{settings or 'params.yaml'}] {mask}: split {split} | targets met: "
                  f"{t['all_met']} (best: " + ", ".join(
                      f"{b} {v['best_estimator']} {v['best_max_abs_pct']:.2f} %"
                      for b, v in t["count"].items()) + ")")


if __name__ == "__main__":
    main()
