"""Per-specimen statistics: the intervals' rules, one-image behaviour, and their coverage on
synthetic specimens of known truth."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from porescope.analysis.membrane import AnalyzeParams, analyse_mask
from porescope.analysis.specimens import (
    SpecimenError,
    garwood_interval,
    ratio_interval,
    specimen_statistics,
)
from porescope.synthetic import membranes as syn

PX_NM = 25.0
CM2_PER_PX = (PX_NM * 1e-7) ** 2


def _summary(porosity, counts, px=10_000):
    n = len(porosity)
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "analysed_px": [px] * n,
                         "analysed_area_cm2": [px * CM2_PER_PX] * n, "porosity": porosity,
                         "count_split_labels": counts})


def test_equal_areas_give_the_ordinary_t_interval():
    p = np.array([0.18, 0.21, 0.25, 0.19, 0.22])
    r, lo, hi = ratio_interval(p * 100, np.full(5, 100.0))
    ref = stats.t.interval(0.95, 4, loc=p.mean(), scale=stats.sem(p))
    assert r == pytest.approx(p.mean())
    assert (lo, hi) == pytest.approx(ref)


def test_ratio_estimator_weights_by_area():
    # a small image with a high porosity must not pull the pooled value as much as a big one
    r, _, _ = ratio_interval(np.array([0.5 * 10, 0.1 * 990]), np.array([10.0, 990.0]))
    assert r == pytest.approx((5 + 99) / 1000)


def test_garwood_interval_covers_at_least_the_level():
    # exact coverage of the Garwood interval at a few means, summed over the Poisson pmf
    for mu in (0.5, 3.0, 12.7, 40.0):
        k = np.arange(0, int(mu + 20 * math.sqrt(mu) + 20))
        cover = sum(stats.poisson.pmf(kk, mu) for kk in k
                    if garwood_interval(kk)[0] <= mu <= garwood_interval(kk)[1])
        assert cover >= 0.95 - 1e-9


def test_one_image_density_gets_poisson_only_and_porosity_no_interval():
    t = specimen_statistics(_summary([0.2], [50.0]), {"i0": "S"}, n_boot=100).set_index("quantity")
    p, d = t.loc["porosity"], t.loc["density_split_labels"]
    assert math.isnan(p["ci_low"]) and p["ci_method"] == "none" and "one image" in p["note"]
    lo, hi = garwood_interval(50)
    area = 10_000 * CM2_PER_PX
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((lo / area, hi / area))
    assert d["ci_method"] == "Poisson (Garwood)" and math.isnan(d["between_low"])


def test_density_interval_is_the_union_and_bootstrap_is_seeded():
    s = _summary([0.2, 0.21, 0.19, 0.2], [50.0, 52.0, 49.0, 51.0])   # under-dispersed counts
    groups = {i: "S" for i in s["image_id"]}
    t = specimen_statistics(s, groups, n_boot=300, seed=3).set_index("quantity")
    d = t.loc["density_split_labels"]
    assert d["ci_low"] == min(d["between_low"], d["poisson_low"])
    assert d["ci_high"] == max(d["between_high"], d["poisson_high"])
    assert d["ci_low"] == d["poisson_low"]       # Poisson is the floor here
    # same result whatever the row order and the other specimens
    other = pd.concat([_summary([0.3], [9.0]).assign(image_id="z"), s.iloc[::-1]])
    t2 = specimen_statistics(other, {**groups, "z": "A"}, n_boot=300, seed=3)
    t2 = t2[t2["specimen"] == "S"].set_index("quantity")
    assert t2.loc["porosity", "bootstrap_low"] == t.loc["porosity", "bootstrap_low"]
    t3 = specimen_statistics(s, groups, n_boot=300, seed=4).set_index("quantity")
    assert t3.loc["porosity", "bootstrap_low"] != t.loc["porosity", "bootstrap_low"]


def test_sizes_from_the_objects_table_pool_interior_pores():
    params = AnalyzeParams.from_mapping({"spatial": {"n_sim": 0}})
    rng = np.random.default_rng(1)
    summaries, objects = [], []
    for k in range(3):
        spec = syn.MembraneSpec(height=128, width=128, porosity=0.15, mean_diameter_px=14.0,
                                pixel_size_nm=PX_NM)
        mask = syn.opening_mask(syn.sample_pores(spec, rng), (128, 128))
        a = analyse_mask(mask.astype(np.uint8), pixel_size_nm=PX_NM, params=params,
                         image_id=f"im{k}", spatial=False)
        summaries.append(a.summary)
        objects.append(a.objects)
    summary, obj = pd.DataFrame(summaries), pd.concat(objects)
    t = specimen_statistics(summary, {f"im{k}": "S" for k in range(3)}, objects=obj,
                            n_boot=200).set_index("quantity")
    interior = obj[~obj["touches_border"]]
    assert t.loc["ecd_mean", "value"] == pytest.approx(interior["ECD_um"].mean())
    assert t.loc["feret_median", "value"] == pytest.approx(interior["Feret_um"].median())
    assert t.loc["ecd_mean", "unit"] == "um"
    assert t.loc["ecd_median", "ci_method"] == "bootstrap over images"
    # without objects: the mean ECD from the summary's per-image means agrees
    t0 = specimen_statistics(summary, {f"im{k}": "S" for k in range(3)}, n_boot=200).set_index("quantity")
    assert t0.loc["ecd_mean", "value"] == pytest.approx(t.loc["ecd_mean", "value"])
    assert "objects" in t0.loc["feret_median", "note"]
    assert t.loc["porosity", "value"] == pytest.approx(summary["porosity"].mean())
    assert t.loc["count_split_labels", "value"] == summary["count_split_labels"].sum()


def test_errors_name_the_image():
    with pytest.raises(SpecimenError, match="'i1' of the summary has no specimen"):
        specimen_statistics(_summary([0.2, 0.3], [5.0, 6.0]), {"i0": "S"})
    with pytest.raises(SpecimenError, match="n_boot"):
        specimen_statistics(_summary([0.2], [5.0]), {"i0": "S"}, n_boot=10)


def _synthetic_specimen(rng, n_images, size):
    """One specimen: ``n_images`` fields drawn with the same target porosity and diameter.

    Truth (exact, from the generator's parameters): the Boolean model covers any point - so
    any pixel centre - with probability ``1 - exp(-lambda E[A])`` = the target porosity, and
    the number of pore centres in the analysed window is Poisson with mean ``lambda * area``.
    So the specimen's expected porosity is the target and its density is ``lambda``. The
    measured porosity is the true mask's; the count is that of the centres inside the window
    (what a perfect counting rule measures), from the truth table.
    """
    phi, d = rng.uniform(0.05, 0.35), rng.uniform(10.0, 22.0)
    spec = syn.MembraneSpec(height=size, width=size, porosity=phi, mean_diameter_px=d,
                            pixel_size_nm=PX_NM)
    lam = syn.boolean_intensity(phi, syn.expected_opening_area(spec))
    rows = []
    for k in range(n_images):
        pores = syn.sample_pores(spec, rng)
        mask = syn.opening_mask(pores, (size, size))
        rows.append({"image_id": f"f{k}", "analysed_px": mask.size,
                     "analysed_area_cm2": mask.size * CM2_PER_PX, "porosity": float(mask.mean()),
                     "count_split_labels": float(pores["centre_inside"].sum())})
    return pd.DataFrame(rows), phi, lam / CM2_PER_PX


def test_intervals_cover_the_truth_on_repeated_synthetic_specimens():
    rng = np.random.default_rng(20261205)
    hits = {"porosity": [], "density": [], "density_between": [], "porosity_bootstrap": []}
    for _ in range(100):
        summary, phi, density = _synthetic_specimen(rng, n_images=5, size=160)
        t = specimen_statistics(summary, dict.fromkeys(summary["image_id"], "S"),
                                n_boot=200).set_index("quantity")
        p, d = t.loc["porosity"], t.loc["density_split_labels"]
        hits["porosity"].append(p["ci_low"] <= phi <= p["ci_high"])
        hits["porosity_bootstrap"].append(p["bootstrap_low"] <= phi <= p["bootstrap_high"])
        hits["density"].append(d["ci_low"] <= density <= d["ci_high"])
        hits["density_between"].append(d["between_low"] <= density <= d["between_high"])
    coverage = {k: float(np.mean(v)) for k, v in hits.items()}
    print("coverage of the 95 % intervals over 100 specimens:", coverage)
    assert coverage["porosity"] >= 0.90, coverage
    assert coverage["density"] >= 0.90, coverage
    # not trivially wide either: a 95 % interval that (almost) never misses is not calibrated
    assert coverage["porosity"] < 1.0 and coverage["density_between"] < 1.0, coverage


def test_without_pixel_size_densities_are_per_px2():
    s = _summary([0.2, 0.25], [50.0, 60.0])
    s.loc[1, "analysed_area_cm2"] = math.nan          # one image without a pixel size
    t = specimen_statistics(s, {"i0": "S", "i1": "S"}, n_boot=100).set_index("quantity")
    assert t.loc["density_split_labels", "unit"] == "px^-2"
    assert t.loc["density_split_labels", "value"] == pytest.approx(110 / 20_000)
    assert t.loc["analysed_area", "unit"] == "px^2"
