"""Tests for porescope.measure.spatial: textbook formulas, paper 001's table, simulated patterns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from porescope.measure.spatial import (
    Window,
    biovoxxel_test,
    biovoxxel_test_from_summary,
    clark_evans,
    csr_envelope,
    nearest_neighbour_distances,
    ripley_k,
    spatial_summary,
)

W100 = Window(0.0, 0.0, 100.0, 100.0)


def lattice(spacing: float, window: Window, jitter: float = 0.0, rng=None) -> np.ndarray:
    xs = np.arange(window.x0 + spacing / 2, window.x1, spacing)
    ys = np.arange(window.y0 + spacing / 2, window.y1, spacing)
    pts = np.array([(x, y) for y in ys for x in xs], float)
    if jitter:
        pts += rng.uniform(-jitter, jitter, pts.shape)
    return pts


def thomas(rng: np.random.Generator, window: Window, n_parents: int, mean_children: float,
           sigma: float) -> np.ndarray:
    """Thomas cluster process (Gaussian offspring around Poisson parents), clipped to window."""
    parents = window.uniform(n_parents, rng)
    counts = rng.poisson(mean_children, n_parents)
    pts = np.repeat(parents, counts, axis=0) + rng.normal(0, sigma, (counts.sum(), 2))
    keep = ((pts[:, 0] >= window.x0) & (pts[:, 0] <= window.x1) & (pts[:, 1] >= window.y0)
            & (pts[:, 1] <= window.y1))
    return pts[keep]


def test_nnd_against_brute_force():
    rng = np.random.default_rng(0)
    pts = W100.uniform(300, rng)
    d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(nearest_neighbour_distances(pts), d.min(axis=1))


def test_window_from_shape():
    w = Window.from_shape(896, 1280)
    assert (w.width, w.height, w.area, w.perimeter) == (1280, 896, 1280 * 896, 2 * (1280 + 896))
    with pytest.raises(ValueError, match="window"):
        Window(0, 0, 0, 1)


def test_clark_evans_formulas_by_hand():
    # n = 100 in a 100 x 100 window (A = 1e4, P = 400), observed mean NND 6
    nnd = np.full(100, 6.0)
    don = clark_evans(window=W100, nnd=nnd)
    exp_d = 5.0 + (0.0514 + 0.041 / 10) * 400 / 100                     # = 5.222
    se_d = math.sqrt(0.0703 * 1e4 / 1e4 + 0.037 * 400 * math.sqrt(1e4 / 1e10))
    assert don["expected_nnd"] == pytest.approx(exp_d)
    assert don["se"] == pytest.approx(se_d)
    assert don["z"] == pytest.approx((6 - exp_d) / se_d)
    assert don["R"] == pytest.approx(6 / exp_d)
    raw = clark_evans(window=W100, nnd=nnd, edge_correction="none")
    assert raw["expected_nnd"] == pytest.approx(5.0)
    assert raw["se"] == pytest.approx(0.26136 / math.sqrt(100 * 0.01))
    assert raw["p_value"] == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(raw["z"] / math.sqrt(2)))))
    one_sided = clark_evans(window=W100, nnd=nnd, edge_correction="none", alternative="regular")
    assert raw["z"] > 0 and one_sided["p_value"] == pytest.approx(raw["p_value"] / 2)
    assert clark_evans(window=W100, nnd=nnd, edge_correction="none",
                       alternative="clustered")["p_value"] == pytest.approx(1 - raw["p_value"] / 2)


def test_clark_evans_lattice_is_regular():
    rng = np.random.default_rng(1)
    pts = lattice(5.0, W100, jitter=0.5, rng=rng)
    res = clark_evans(pts, W100)
    assert res["R"] > 1.5 and res["p_value"] < 1e-6 and res["verdict"] == "self-avoiding"


def test_clark_evans_thomas_is_clustered():
    rng = np.random.default_rng(2)
    pts = thomas(rng, W100, n_parents=20, mean_children=15, sigma=2.0)
    res = clark_evans(pts, W100)
    assert res["R"] < 0.7 and res["verdict"] == "clustering"
    assert clark_evans(pts, W100, alternative="clustered")["p_value"] < 1e-6


def test_clark_evans_csr_false_positive_rate():
    rng = np.random.default_rng(3)
    rejected = {"donnelly": 0, "none": 0}
    r_values = {"donnelly": [], "none": []}
    for _ in range(100):
        pts = W100.uniform(200, rng)
        for ec in rejected:
            res = clark_evans(pts, W100, edge_correction=ec)
            rejected[ec] += res["verdict"] != "random"
            r_values[ec].append(res["R"])
    assert rejected["donnelly"] <= 10                      # >= 90 % not significant
    # without the edge correction R is biased upwards (border points miss neighbours)
    assert np.mean(r_values["none"]) > np.mean(r_values["donnelly"]) + 0.02
    assert np.mean(r_values["donnelly"]) == pytest.approx(1.0, abs=0.015)


@pytest.mark.parametrize("n, median, var, t_paper", [(3472, 11.636, 17.0, 29.403),
                                                     (8179, 7.480, 8.9, 36.654),
                                                     (14733, 6.569, 1.9, 104.354)])
def test_biovoxxel_reproduces_paper_001(n, median, var, t_paper):
    area = 1280 * 896
    res = biovoxxel_test_from_summary(median, var, n, area)
    ref_paper = {3472: 9.087, 8179: 5.920, 14733: 4.411}[n]
    assert res["reference_nnd"] == pytest.approx(ref_paper, abs=1e-3)   # paper truncates
    assert res["t"] == pytest.approx(t_paper, rel=0.005)
    assert res["test"] == "welch"
    assert res["critical_t"] == pytest.approx(1.645, abs=1e-3)
    assert res["verdict"] == "self-avoiding"


def test_biovoxxel_on_distances_and_classes():
    rng = np.random.default_rng(4)
    d = rng.normal(5.0, 1.0, 1000).clip(0.1)
    res = biovoxxel_test(nnd=d, area=1e5)
    med = float(np.median(d))
    assert res["median_nnd"] == pytest.approx(med)
    assert res["var_nnd"] == pytest.approx(np.mean((d - med) ** 2))
    # reference 0.5 sqrt(1e5 / 1000) = 5: the sample is centred on it -> random
    assert res["reference_nnd"] == pytest.approx(5.0)
    assert res["verdict"] == "random"
    low = biovoxxel_test(nnd=d * 0.5, area=1e5)
    assert low["verdict"] == "clustering"
    # equal variances -> Student's t with pooled variance and df = 2n - 2
    st = biovoxxel_test_from_summary(6.0, 5.0, 1000, 1e5)
    assert st["test"] == "student" and st["df"] == 1998
    assert st["t"] == pytest.approx(1.0 / math.sqrt((1000 * 5 + 1000 * 5) / 1998 * 2 / 1000))


def test_ripley_l_unbiased_with_translation_correction():
    rng = np.random.default_rng(5)
    r = np.array([5.0, 10.0, 15.0, 20.0])
    corr, none = [], []
    for _ in range(20):
        pts = W100.uniform(400, rng)
        corr.append(np.sqrt(ripley_k(pts, W100, r) / np.pi) - r)
        none.append(np.sqrt(ripley_k(pts, W100, r, correction="none") / np.pi) - r)
    corr_mean, none_mean = np.mean(corr, axis=0), np.mean(none, axis=0)
    # CSR: K = pi r^2, so L(r) - r = 0; standard error of the 20-pattern mean <= 0.05 here
    assert np.all(np.abs(corr_mean) < 0.15)
    # without correction K is too small, increasingly with r (~ -r^2 P / (3 pi A) for L - r)
    assert none_mean[-1] < -1.0 and np.all(np.diff(none_mean) < 0)


def test_ripley_k_exact_small_case():
    pts = np.array([[10.0, 10.0], [13.0, 14.0], [50.0, 50.0]])     # one pair at distance 5
    k = ripley_k(pts, W100, np.array([4.0, 5.0, 6.0]))
    w = 1e4 / ((100 - 3) * (100 - 4))
    np.testing.assert_allclose(k, [0.0, 1e4 / 6 * 2 * w, 1e4 / 6 * 2 * w])


def test_monte_carlo_envelope_csr_inside_lattice_outside():
    rng = np.random.default_rng(6)
    csr = W100.uniform(300, rng)
    res = csr_envelope(csr, W100, np.random.default_rng(7), n_sim=99)
    assert res["verdict"] == "random" and res["L_verdict"] == "random"
    inside = (res["L_obs"] >= res["L_lo"]) & (res["L_obs"] <= res["L_hi"])
    assert inside.mean() > 0.8
    lat = lattice(100 / 17, W100, jitter=0.3, rng=rng)                 # 289 points
    res_l = csr_envelope(lat, W100, np.random.default_rng(8), n_sim=99)
    assert res_l["mean_nnd_p_value"] <= 0.05 and res_l["verdict"] == "self-avoiding"
    assert res_l["L_p_value"] <= 0.05 and res_l["L_verdict"] == "self-avoiding"
    assert np.any(res_l["L_obs"] < res_l["L_lo"])                      # inhibition at short r
    # reproducible with the same generator seed
    again = csr_envelope(csr, W100, np.random.default_rng(7), n_sim=99)
    np.testing.assert_array_equal(again["L_sim"], res["L_sim"])


def test_spatial_summary_and_bad_inputs():
    rng = np.random.default_rng(9)
    pts = thomas(rng, W100, n_parents=15, mean_children=12, sigma=2.5)
    s = spatial_summary(pts, W100, np.random.default_rng(10), n_sim=39)
    assert s["verdict"] == "clustering"
    assert s["clark_evans"]["verdict"] == "clustering"
    assert s["monte_carlo"]["L_verdict"] == "clustering"
    assert s["n"] == len(pts) and s["nnd"].shape == (len(pts),)
    with pytest.raises(ValueError, match="outside the window"):
        spatial_summary(pts + 200, W100, np.random.default_rng(0), n_sim=3)
    with pytest.raises(ValueError, match="points"):
        nearest_neighbour_distances(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="edge_correction"):
        clark_evans(pts, W100, edge_correction="guard")
    with pytest.raises(TypeError, match="rng"):
        csr_envelope(pts, W100, 42)
    with pytest.raises(ValueError, match="r:"):
        ripley_k(pts, W100, np.array([5.0, 200.0]))
