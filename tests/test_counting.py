"""Tests for porescope.measure.counting: hand-made cases and simulated Boolean models (known truth)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from porescope.measure.counting import (
    boolean_model_count,
    count_pores,
    median_area_count,
    median_area_count_table,
    single_pore_mean_area,
    split_count,
)
from porescope.measure.morphometry import label_mask, measure_objects


def disc_mask(shape, centres, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    m = np.zeros(shape, bool)
    for cx, cy in centres:
        m |= (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
    return m


def boolean_discs(rng: np.random.Generator, size: int, phi: float, r0: float, cv: float):
    """Rasterised Boolean model of discs (pixel centre inside the disc) in a size^2 window.

    Centres are Poisson in the window grown by the largest radius, so pores cut by the frame
    are present. Returns (mask, realised density of centres inside the window per px^2,
    E[A] = E[pi r^2] of the radius law, realised mean pi r^2 of the discs in the window)."""
    mean_area = math.pi * r0 ** 2 * (1 + cv ** 2)
    lam = -math.log(1 - phi) / mean_area
    m = int(math.ceil(r0 * (1 + 5 * cv))) + 1
    n = rng.poisson(lam * (size + 2 * m) ** 2)
    cx = rng.uniform(-m, size + m, n)
    cy = rng.uniform(-m, size + m, n)
    r = np.clip(rng.normal(r0, cv * r0, n), 0.5, None)
    mask = np.zeros((size, size), bool)
    for x, y, rr in zip(cx, cy, r):
        x0, x1 = max(int(math.floor(x - rr)), 0), min(int(math.ceil(x + rr)) + 1, size)
        y0, y1 = max(int(math.floor(y - rr)), 0), min(int(math.ceil(y + rr)) + 1, size)
        if x0 < x1 and y0 < y1:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            mask[y0:y1, x0:x1] |= (xx - x) ** 2 + (yy - y) ** 2 <= rr * rr
    inside = (cx >= -0.5) & (cx < size - 0.5) & (cy >= -0.5) & (cy < size - 0.5)
    return mask, inside.sum() / size ** 2, mean_area, float(np.mean(np.pi * r[inside] ** 2))


# ---------------------------------------------------------------------------------------------
# (a) median-area rule
# ---------------------------------------------------------------------------------------------

def test_median_area_rule_hand_made():
    areas = [100] * 10 + [200, 290, 20, 140]
    r = median_area_count(areas)
    # median 100: ten singles, pair -> 2, 290 -> ceil(2.9) = 3, 20 < 50 dropped, 140 <= 150 -> 1
    assert r["median_area"] == 100
    assert r["count"] == 10 + 2 + 3 + 1
    assert (r["n_artefacts"], r["n_single"], r["n_multi"], r["pores_in_multi"]) == (1, 11, 2, 5)
    r2 = median_area_count(areas, large_factor=1.3, small_factor=0.1)
    assert r2["count"] == 10 + 2 + 3 + 1 + 2      # 140 -> ceil(1.4) = 2, 20 kept as 1
    r3 = median_area_count([300], reference_areas=[100, 100, 100])
    assert r3["count"] == 3
    assert median_area_count([])["count"] == 0


def test_median_area_rule_on_image_with_guard_frame():
    shape, r = (200, 300), 8
    singles = [(40, 40), (100, 40), (160, 40), (220, 40), (40, 100), (100, 100)]
    pair = [(160, 100), (172, 100)]                   # overlapping pair
    triplet = [(220, 150), (232, 150), (226, 160)]
    top = [(80, 3)]                                   # cut by the top edge: counted
    right = [(296, 120)]                              # cut by the right edge: dropped
    m = disc_mask(shape, singles + pair + triplet + top + right, r)
    m[180:182, 50:52] = True                          # 4-px speck: artefact
    t = measure_objects(label_mask(m))
    res = median_area_count_table(t)
    assert res["median_area"] == pytest.approx(float(np.count_nonzero(disc_mask((40, 40), [(20, 20)], r))))
    assert res["count"] == 6 + 2 + 3 + 1
    assert res["n_artefacts"] == 1


# ---------------------------------------------------------------------------------------------
# (b) split labels
# ---------------------------------------------------------------------------------------------

def test_split_count_with_watershed_labels():
    shape, r = (120, 160), 10
    centres = [(30, 30), (46, 30), (100, 60), (130, 90), (144, 90), (60, 117)]
    m = disc_mask(shape, centres, r)
    markers = np.zeros(shape, np.int32)
    for k, (cx, cy) in enumerate(centres, 1):
        markers[cy, cx] = k
    split = watershed(-ndi.distance_transform_edt(m), markers, mask=m).astype(np.int32)
    assert label_mask(m).max() == 4                   # two merged pairs
    res = split_count(split)
    # (60, 117) touches the bottom edge -> dropped by the guard frame
    assert res["count"] == 5 and res["n_objects"] == 6
    assert split_count(split, include_edges=("bottom", "left"))["count"] == 6
    assert split_count(split, min_area=10_000)["count"] == 0


# ---------------------------------------------------------------------------------------------
# (c) Boolean model
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phi", [0.1, 0.25, 0.4])
def test_boolean_inversion_recovers_density(phi):
    rng = np.random.default_rng(int(phi * 100))
    mask, density, mean_area, _ = boolean_discs(rng, 1024, phi, r0=6.0, cv=0.1)
    res = boolean_model_count(mask.mean(), mask.size, mean_area)
    # against the realised density of centres (Poisson count noise removed): measured <= 1.2 %
    # over 10 seeds at these settings
    assert res["density_per_px2"] == pytest.approx(density, rel=0.03)
    assert res["count"] == pytest.approx(density * mask.size, rel=0.03)


def test_single_pore_area_estimator_bias():
    # truth: the realised mean pi r^2 of the pores in the window (removes the draw-to-draw
    # noise of the radii); the rest is the estimator's selection bias plus the sampling error
    # of ~150-300 singles (~1.5 %)
    for seed, phi in ((7, 0.05), (8, 0.2), (9, 0.4)):
        rng = np.random.default_rng(seed)
        mask, _, _, realised_area = boolean_discs(rng, 1024, phi, r0=10.0, cv=0.1)
        est = single_pore_mean_area(measure_objects(label_mask(mask)))
        assert est["n_used"] > 100
        ratio = est["mean_area"] / realised_area
        assert ratio == pytest.approx(1.0, abs=0.05), (phi, ratio)


def test_count_pores_side_by_side():
    rng = np.random.default_rng(11)
    mask, density, mean_area, _ = boolean_discs(rng, 512, 0.3, r0=8.0, cv=0.05)
    lab = label_mask(mask)
    split = lab  # stand-in label image (no split): its count equals the region count
    df = count_pores(mask, split_labels=split, mean_area=mean_area, pixel_size=20.0)
    assert list(df["estimator"]) == ["median_area", "split_labels", "boolean_model"]
    bm = df.set_index("estimator").loc["boolean_model"]
    assert bm["count"] == pytest.approx(density * mask.size, rel=0.08)
    assert bm["density_per_cm2"] == pytest.approx(bm["density_per_px2"] / (20e-7) ** 2)
    assert bm["detail"]["mean_area_source"] == "given"
    est = count_pores(mask).set_index("estimator")
    assert est.loc["boolean_model", "detail"]["mean_area_source"] == "single_pores"
    assert est.loc["boolean_model", "count"] == pytest.approx(density * mask.size, rel=0.12)
    # merged regions: the median rule counts more than the plain region count
    assert df.set_index("estimator").loc["median_area", "count"] > df.set_index(
        "estimator").loc["split_labels", "count"]


def test_data_bar_region_for_counts():
    m = disc_mask((100, 100), [(30, 30), (60, 30), (50, 90)], 6)
    df = count_pores(m, bar_rows=20, mean_area=float(m[:, :60].sum()) / 2).set_index("estimator")
    assert df.loc["median_area", "analysed_px"] == 8000
    assert df.loc["median_area", "count"] == 2         # the disc in the bar is not analysed


def test_bad_inputs():
    with pytest.raises(ValueError, match="porosity"):
        boolean_model_count(1.0, 100, 10)
    with pytest.raises(ValueError, match="mean_area"):
        boolean_model_count(0.2, 100, 0)
    with pytest.raises(ValueError, match="small_factor"):
        median_area_count([1, 2], small_factor=1.2)
    with pytest.raises(ValueError, match="large_factor"):
        median_area_count([1, 2], large_factor=0.5)
    with pytest.raises(ValueError, match="area_band"):
        single_pore_mean_area(measure_objects(label_mask(np.ones((4, 4)))), area_band=(1.2, 2))
    with pytest.raises(ValueError, match="Solidity"):
        single_pore_mean_area(measure_objects(np.pad(np.ones((4, 4), np.int32), 2),
                                              shape_descriptors=False))
