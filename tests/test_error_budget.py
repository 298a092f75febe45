"""Systematic error budget from the validate table: band selection, bias and spread, the
recommended estimator, and its column in the specimens report."""

import math

import numpy as np
import pandas as pd
import pytest

from porescope.analysis.error_budget import (
    ErrorBudgetError,
    error_budget,
    recommended_estimator,
    specimen_budgets,
    specimen_diameters_px,
    systematic_text,
)
from porescope.analysis.specimens import specimen_statistics
from porescope.report.document import Table
from porescope.report.sections_specimens import specimen_blocks


def _validation(rng):
    """A validate-like table: 30 images; split_labels unbiased at low porosity and biased at
    high, median_area biased everywhere, boolean_model noisy."""
    rows = []
    for k in range(30):
        phi, d = rng.uniform(0.03, 0.45), rng.uniform(12, 40)
        por_err = rng.normal(0.5, 0.2)
        errs = {"split_labels": rng.normal(0 if phi < 0.25 else -20, 1.0),
                "median_area": rng.normal(-8, 1.0), "boolean_model": rng.normal(0, 6.0)}
        for mask in ("ground truth", "predicted"):
            for est, e in errs.items():
                rows.append({"image_id": f"v{k}", "mask": mask, "estimator": est,
                             "porosity_true": phi, "mean_diameter_px": d,
                             "porosity_error_pp": por_err if mask == "predicted" else 0.0,
                             "count_error_pct": e})
    return pd.DataFrame(rows)


def test_band_statistics_match_a_direct_selection():
    v = _validation(np.random.default_rng(0))
    b = error_budget(v, porosity=0.15, diameter_px=20.0, porosity_halfwidth=0.1,
                     diameter_factor=1.5)
    sel = v[(v["mask"] == "predicted") & v["porosity_true"].between(0.05, 0.25)
            & v["mean_diameter_px"].between(20 / 1.5, 30.0)]
    split = sel[sel["estimator"] == "split_labels"]["count_error_pct"]
    row = b[(b["quantity"] == "count") & (b["estimator"] == "split_labels")].iloc[0]
    assert row["n_images"] == len(split) >= 3
    assert row["bias"] == pytest.approx(split.mean())
    assert row["spread"] == pytest.approx(split.std(ddof=1))
    por = b[b["quantity"] == "porosity"].iloc[0]
    assert por["bias"] == pytest.approx(sel.drop_duplicates("image_id")["porosity_error_pp"].mean())


def test_recommended_estimator_follows_the_band():
    v = _validation(np.random.default_rng(0))
    low = error_budget(v, porosity=0.12, diameter_px=None)
    high = error_budget(v, porosity=0.38, diameter_px=None)
    assert recommended_estimator(low) == "split_labels"
    assert low.loc[low["recommended"], "estimator"].tolist() == ["split_labels"]
    # at high porosity split_labels is 20 % low; the noisy Boolean model wins
    assert recommended_estimator(high) != "split_labels"


def test_too_few_images_give_no_budget():
    v = _validation(np.random.default_rng(0))
    b = error_budget(v, porosity=0.9, diameter_px=20.0)
    assert b["bias"].isna().all() and (b["n_images"] == 0).all()
    assert recommended_estimator(b) is None
    assert "not covered by the validation" in b["note"].iloc[0]
    assert systematic_text(b, "porosity").startswith("n/a (0 validation image(s)")


def test_errors():
    v = _validation(np.random.default_rng(0))
    with pytest.raises(ErrorBudgetError, match="missing column"):
        error_budget(v.drop(columns=["count_error_pct"]), 0.1, 20.0)
    with pytest.raises(ErrorBudgetError, match="no rows with mask 'predicted'"):
        error_budget(v[v["mask"] == "ground truth"], 0.1, 20.0)


def test_budget_in_the_specimen_report():
    v = _validation(np.random.default_rng(0))
    summary = pd.DataFrame({"image_id": ["a", "b", "c"], "analysed_px": [40000] * 3,
                            "analysed_area_cm2": [2.5e-5] * 3, "porosity": [0.14, 0.16, 0.15],
                            "count_split_labels": [80.0, 90.0, 85.0], "ecd_px_mean": [19.0, 21.0, 20.0],
                            "n_objects": [80, 90, 85], "n_border": [10, 10, 10]})
    groups = {"a": "S1", "b": "S1", "c": "S2"}
    stats = specimen_statistics(summary, groups, n_boot=200)
    diam = specimen_diameters_px(summary, groups)
    assert diam["S1"] == pytest.approx((19 * 70 + 21 * 80) / 150)
    budgets = specimen_budgets(stats, v, diam)
    blocks = specimen_blocks(stats, budgets)
    tables = [b for b in blocks if isinstance(b, Table)]
    s1 = next(t for t in tables if t.caption.startswith("Specimen S1"))
    cells = {r[0]: r for r in s1.rows}
    sys_col = s1.columns.index("systematic (validation)")
    assert cells["porosity (%)"][sys_col] == systematic_text(budgets["S1"], "porosity")
    assert cells["porosity (%)"][sys_col].startswith("bias +0.")
    assert "recommended count estimator" in s1.caption
    # S2 has one image: the note says what cannot be claimed
    notes = [b.text for b in blocks if type(b).__name__ == "Note"]
    assert any("Specimen S2 has one image" in t and "no interval" in t for t in notes)
    assert not math.isnan(stats[(stats["specimen"] == "S2")
                                & (stats["quantity"] == "density_split_labels")]["ci_low"].iloc[0])
