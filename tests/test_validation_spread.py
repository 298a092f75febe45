"""bench/validation_spread.py: the validate stage's verdict over more draws of membranes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from porescope.analysis.params import AnalyzeParams
from porescope.analysis.validation import ValidateParams, validate_on_truth

from bench_scripts import load_bench

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_bench("validation_spread")


@pytest.fixture(scope="module")
def setting():
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    vp = replace(ValidateParams.from_mapping(p["validate"]), n_images=3, height=192, width=192,
                 diameter_min_px=15.0, diameter_max_px=25.0)
    return vp, p["synthesize"], AnalyzeParams.from_mapping(p["analyze"]), int(p["seed"])


def test_draws_are_new_membranes_and_match_the_stage(setting) -> None:
    """Each draw is the stage's validation with another seed offset (never the stage's own),
    its verdict is the stage's, and the draws hold different membranes."""
    vs = _module()
    vp, synth, analysis, seed = setting
    offsets = vs.draw_offsets(vp, 2)
    assert vp.seed_offset not in offsets and len(set(offsets)) == 2
    table, verdicts = vs.run_draws(vp, synth, analysis, seed, offsets)
    assert sorted(table["draw"].unique()) == [0, 1]
    own = validate_on_truth(replace(vp, seed_offset=offsets[1]), synth, analysis, seed)
    mine = table[table["draw"] == 1].drop(columns="draw").reset_index(drop=True)
    pd.testing.assert_series_equal(mine["count_measured"], own.table["count_measured"])
    assert verdicts[1]["all_met"] == own.metrics["targets"]["ground_truth"]["all_met"]
    first = table[table["draw"] == 0]["porosity_true"].to_numpy()
    assert not np.allclose(first, mine["porosity_true"].to_numpy())


def test_spread_counts_images_beyond_the_tolerance() -> None:
    """Shares, percentiles and the pooled error of a hand-made table."""
    vs = _module()
    rows = []
    for i, (pt, pe, ct, cm) in enumerate([(0.1, 0.2, 100, 103), (0.1, -0.7, 50, 50),
                                          (0.3, 0.6, 200, 190), (0.3, 0.1, 100, 101)]):
        rows.append({"image_id": f"v{i}", "mask": "predicted", "estimator": "boolean_model",
                     "porosity_true": pt, "porosity_error_pp": pe, "count_true": ct,
                     "count_measured": cm, "count_error_pct": round(100 * (cm / ct - 1), 3)})  # as the stage's table
    sp = vs.spread(pd.DataFrame(rows), 0.5, ((0.2, 2.0), (0.4, 5.0))).set_index("band")
    low, high = sp.loc["<=20%"], sp.loc[">20%"]
    assert low["n"] == 2 and low["porosity_share_over"] == 0.5 and low["porosity_max_pp"] == 0.7
    assert low["count_share_over"] == 0.5                      # 3 % > 2 %, 0 % is within
    assert low["count_pooled_pct"] == pytest.approx(100 * (153 / 150 - 1))
    assert high["count_share_over"] == 0.0                     # 5 % is within 5 %
    assert high["porosity_share_over"] == 0.5
    assert high["count_max_pct"] == pytest.approx(5.0)


def _pair_rows(errors: list[tuple[float, float, float | None]]) -> pd.DataFrame:
    """A predicted-mask table: one row per image (porosity_true, porosity error pp, count
    error %), one estimator; a ground-truth row per image that the comparison must ignore."""
    rows = []
    for i, (pt, pe, ce) in enumerate(errors):
        for mask in ("predicted", "ground truth"):
            rows.append({"image_id": f"v{i}", "mask": mask, "estimator": "boolean_model",
                         "porosity_true": pt, "porosity_error_pp": pe if mask == "predicted" else 0.0,
                         "count_error_pct": (np.nan if ce is None else ce) if mask == "predicted" else 99.0})
    return pd.DataFrame(rows)


def test_paired_comparison_of_two_models_on_the_same_images() -> None:
    """Hand-made errors: the model halves every porosity error (better, interval below 0),
    its counts are worse on one image and lack an estimate on another."""
    vs = _module()
    base = _pair_rows([(0.1, 0.8, 1.0), (0.1, -0.4, 3.0), (0.3, 0.6, 2.0), (0.3, -1.0, 4.0)])
    model = _pair_rows([(0.1, 0.4, 1.0), (0.1, -0.2, 6.0), (0.3, 0.3, 2.0), (0.3, -0.5, None)])
    cmp = vs.paired_comparison(model, base, 0.5, ((0.2, 2.0), (0.4, 5.0)), seed=1, n_boot=500)
    por = cmp[cmp["quantity"] == "porosity"].set_index("band")
    assert list(por.index) == ["<=20%", ">20%", "all"]
    assert por.loc["all", "n"] == 4 and por.loc["all", "model_better_share"] == 1.0
    assert por.loc["all", "change"] == pytest.approx(-0.35)        # mean of -0.4, -0.2, -0.3, -0.5
    assert por.loc["all", "change_ci_high"] < 0 and por.loc["all", "verdict"] == "better"
    assert por.loc["<=20%", "baseline_share_over"] == 0.5 and por.loc["<=20%", "model_share_over"] == 0.0
    assert por.loc[">20%", "baseline_max"] == 1.0 and por.loc[">20%", "model_max"] == 0.5
    cnt = cmp[cmp["quantity"] == "count:boolean_model"].set_index("band")
    # no estimate counts as worse than any estimate and is left out of the mean
    assert cnt.loc[">20%", "model_worse_share"] == 0.5 and cnt.loc[">20%", "model_max"] == np.inf
    assert cnt.loc[">20%", "model_mae"] == 2.0 and cnt.loc[">20%", "baseline_mae"] == 3.0
    assert cnt.loc["<=20%", "change"] == pytest.approx(1.5)         # (0 + 3) / 2
    assert cnt.loc["<=20%", "model_share_over"] == 0.5 and cnt.loc["<=20%", "baseline_share_over"] == 0.5
    assert cnt.loc["<=20%", "verdict"] == "no significant change"   # 0 and +3: the interval holds 0
    assert cnt.loc[">20%", "model_missing"] == 1 and cnt.loc[">20%", "baseline_missing"] == 0
    assert cnt.loc[">20%", "verdict"] == "worse"                    # it lost an estimate
    # a band without images has no row (small draws), instead of an error
    low_only = vs.paired_comparison(model.iloc[:4], base.iloc[:4], 0.5, ((0.2, 2.0), (0.4, 5.0)))
    assert set(low_only["band"]) == {"<=20%", "all"}
    with pytest.raises(ValueError, match="different images"):
        vs.paired_comparison(model[model["image_id"] != "v0"], base, 0.5, ((0.2, 2.0), (0.4, 5.0)))
