"""Tests of porescope.analysis.membrane on masks with an exact, independently known truth.

Known answers come from the construction of the masks (hand-placed discs, geometry), from
formulas (Boolean model, guard-frame rule) or from a brute-force rasteriser, never from the
module's own output.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from porescope.config import ParamsError, parse_group
from porescope.analysis import comparison, figures
from porescope.analysis import truth as synthetic_truth
from porescope.analysis import membrane as ma
from porescope.analysis.params import AnalyzeParams
from porescope.segmentation.instances import border_classes
from porescope.synthetic import membranes as syn

#: The settings these cases were built for: no debris filter, watershed h = 2 px, every split
#: object counted (params.yaml filters debris of < 20 px and splits at h = 0.5 px).
BASE = {"min_region_area_px": 0, "counting": {"split_min_area_px": 1}, "split": {"h": 2.0}}


def params(raw: dict | None = None) -> AnalyzeParams:
    """:class:`AnalyzeParams` of ``BASE`` updated with ``raw`` (nested groups merged)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for k, v in (raw or {}).items():
        merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
    return AnalyzeParams.from_mapping(merged)


FAST = params({"spatial": {"n_sim": 19}})


def disc(mask: np.ndarray, cx: float, cy: float, r: float, value: int = 1) -> None:
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    mask[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = value


def grid_of_discs(n_side: int = 6, spacing: int = 40, r: float = 9.0, margin: int = 30):
    """Non-overlapping, non-touching identical discs on a square grid, none at the frame."""
    size = 2 * margin + (n_side - 1) * spacing
    m = np.zeros((size, size), np.uint8)
    for i in range(n_side):
        for j in range(n_side):
            disc(m, margin + i * spacing, margin + j * spacing, r)
    return m


# ------------------------------------------------------------------ params

def test_params_defaults_and_round_trip():
    p = ma.AnalysisParams.from_mapping({"seed": 3})
    assert p == ma.AnalysisParams() and ma.AnalysisParams is AnalyzeParams
    # the dataclass defaults are the values of params.yaml
    root = Path(__file__).resolve().parents[1]
    assert AnalyzeParams().to_dict() == yaml.safe_load((root / "params.yaml").read_text())["analyze"]
    q = ma.AnalysisParams.from_mapping(p.to_dict())
    assert q == p
    assert p.include_edges == ("top", "left") and p.counting.single_pore_area_band == (0.6, 1.4)


@pytest.mark.parametrize("raw, key", [
    ({"foo": 1}, "analyze.foo"),
    ({"counting": {"smal_factor": 0.5}}, "analyze.counting.smal_factor"),
    ({"connectivity": 6}, "analyze.connectivity"),
    ({"include_edges": ["top", "up"]}, "analyze.include_edges"),
    ({"counting": {"single_pore_area_band": [1.2, 1.4]}}, "analyze.counting.single_pore_area_band"),
    ({"counting": {"mean_pore_area_px": -3}}, "analyze.counting.mean_pore_area_px"),
    ({"split": {"method": "otsu"}}, "analyze.split.method"),
    ({"split": {"h": 0}}, "analyze.split.h"),
    ({"spatial": {"n_sim": -1}}, "analyze.spatial.n_sim"),
    ({"spatial": "fast"}, "analyze.spatial"),
])
def test_params_errors_name_the_key(raw, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        ma.AnalysisParams.from_mapping(raw)


def test_params_unknown_nested_key_suggests_the_closest():
    with pytest.raises(ParamsError, match=r"analyze\.spatial\.n_sims: unknown parameter; "
                                          r"did you mean 'analyze\.spatial\.n_sim'\?"):
        parse_group(AnalyzeParams, {"spatial": {"n_sims": 9}}, group="analyze")


def test_analyse_mask_defaults_are_a_seeded_rng_and_image_id():
    m = grid_of_discs(n_side=3)
    p = params({"spatial": {"n_sim": 19, "n_radii": 10}})
    a = ma.analyse_mask(m, params=p)
    b = ma.analyse_mask(m, params=p, pixel_size_nm=None, image_id="image",
                        rng=ma.image_rng(ma.DEFAULT_SEED, "image"))
    assert a.image_id == "image" and (a.objects["image_id"] == "image").all()
    pd.testing.assert_series_equal(pd.Series(a.summary), pd.Series(b.summary))
    sims = a.spatial["monte_carlo"]["mean_nnd_sim"]
    assert np.array_equal(sims, b.spatial["monte_carlo"]["mean_nnd_sim"])        # same draws
    other = ma.analyse_mask(m, params=p, rng=ma.image_rng(ma.DEFAULT_SEED + 1, "image"))
    assert not np.array_equal(sims, other.spatial["monte_carlo"]["mean_nnd_sim"])
    assert ma.analyse_mask(m).summary["n_pores"] == 9               # every default


# ------------------------------------------------------------------ exact cases

def test_separate_discs_exact_counts_porosity_and_boolean_formula():
    m = grid_of_discs()
    a = ma.analyse_mask(m, pixel_size_nm=25.0, params=FAST, rng=np.random.default_rng(0),
                        image_id="grid")
    s = a.summary
    assert s["porosity"] == pytest.approx(np.count_nonzero(m) / m.size, abs=1e-15)
    assert s["count_median_area"] == 36 and s["count_split_labels"] == 36
    assert s["n_regions"] == 36 and s["n_pores"] == 36
    # Boolean model with E[A] = the (single, identical) disc area: count = -ln(1 - phi) A / a
    area = np.count_nonzero(m) / 36
    phi = s["porosity"]
    assert s["mean_pore_area_px"] == pytest.approx(area)
    assert s["count_boolean_model"] == pytest.approx(-math.log(1 - phi) * m.size / area, rel=1e-12)
    # densities per cm^2 from the analysed area (25 nm pixels)
    area_cm2 = m.size * (25e-7) ** 2
    assert s["density_cm2_split_labels"] == pytest.approx(36 / area_cm2)
    # object table: ImageJ columns, physical units, guard flag, one row per disc
    t = a.objects
    assert list(t.columns[:2]) == ["image_id", "label"] and (t["image_id"] == "grid").all()
    assert len(t) == 36 and t["counted"].all() and (t["region_pores"] == 1).all()
    assert np.allclose(t["Area_um2"], t["Area"] * 0.025 ** 2)
    assert s["ecd_px_mean"] == pytest.approx(math.sqrt(4 * area / math.pi))
    # a regular lattice is self-avoiding for every test
    assert s["ce_verdict"] == "self-avoiding" and s["bv_verdict"] == "self-avoiding"
    assert s["ce_R"] > 1.5 and s["spatial_n"] == 36


def test_guard_frame_counts_top_left_not_bottom_right():
    m = np.zeros((200, 300), np.uint8)
    inner = [(60, 60), (150, 60), (240, 60), (60, 140), (150, 140), (240, 140)]
    for x, y in inner:
        disc(m, x, y, 10)
    for x, y in [(100, 3), (200, 3), (3, 100)]:       # cut by top / left: counted
        disc(m, x, y, 10)
    for x, y in [(100, 196), (296, 100)]:              # cut by bottom / right: not counted
        disc(m, x, y, 10)
    a = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(1),
                        image_id="frame", spatial=False)
    assert a.summary["count_split_labels"] == 9
    assert a.summary["count_median_area"] == 9
    assert a.objects["counted"].sum() == 9 and len(a.objects) == 11
    assert math.isnan(a.summary["density_cm2_split_labels"])   # pixel size unknown
    assert a.summary["density_px2_split_labels"] == pytest.approx(9 / m.size)
    # with all four edges included every object counts
    allp = params({"include_edges": ["top", "bottom", "left", "right"]})
    b = ma.analyse_mask(m, pixel_size_nm=None, params=allp, rng=np.random.default_rng(1),
                        image_id="frame", spatial=False)
    assert b.summary["count_split_labels"] == 11


def test_overlapping_pair_split_and_region_bookkeeping():
    m = np.zeros((120, 160), np.uint8)
    disc(m, 50, 60, 14)
    disc(m, 74, 60, 14)          # centre distance 24 px: dynamic 14 - sqrt(14^2 - 12^2) = 6.8 > h
    disc(m, 125, 60, 10)
    one_each = params({"spatial": {"n_sim": 19}, "counting": {"split_max_pores": 1}})
    a = ma.analyse_mask(m, pixel_size_nm=None, params=one_each, rng=np.random.default_rng(2),
                        image_id="pair", spatial=False)
    assert a.summary["n_regions"] == 2 and a.summary["n_pores"] == 3
    assert a.summary["count_split_labels"] == 3
    # by default a split object counts round(Area / E[A]) pores, at most 2: E[A] comes from the
    # only single pore (r 10), so each r-14 half (twice its area) counts as two
    by_area = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(2),
                              image_id="pair", spatial=False)
    assert by_area.summary["count_split_labels"] == 5
    assert sorted(a.objects["region_pores"]) == [1, 2, 2]
    reg = ma.analyse_mask(m, pixel_size_nm=None,
                          params=params({"objects": "regions"}),
                          rng=np.random.default_rng(2), image_id="pair", spatial=False)
    assert len(reg.objects) == 2 and sorted(reg.objects["region_pores"]) == [1, 2]
    # the union of the split labels is the mask
    assert np.array_equal(a.labels != 0, m != 0)


def test_border_class_splits_touching_objects():
    m = np.zeros((80, 120), np.uint8)
    disc(m, 40, 40, 16, 2)
    disc(m, 70, 40, 16, 2)                  # two overlapping discs, border class 2 everywhere...
    disc(m, 40, 40, 12, 1)                  # ...except their separate interiors
    disc(m, 70, 40, 12, 1)
    m[(m == 1) & (np.arange(120)[None, :] >= 53) & (np.arange(120)[None, :] <= 57)] = 2
    names = {"0": "background", "1": "pore interior", "2": "pore border"}
    assert border_classes(names) == ([2], [1])
    a = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(3),
                        image_id="3c", class_names=names, spatial=False)
    assert a.summary["split_method"] == "border_class"
    assert a.summary["n_pores"] == 2 and a.summary["n_regions"] == 1
    assert a.summary["porosity"] == pytest.approx(np.count_nonzero(m) / m.size)


def test_data_bar_rows_are_not_analysed():
    m = grid_of_discs(n_side=3)
    h = m.shape[0]
    m2 = np.vstack([m, np.ones((20, m.shape[1]), np.uint8)])     # a "bar" full of foreground
    a = ma.analyse_mask(m2, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(4),
                        image_id="bar", bar_rows=20, spatial=False)
    assert a.summary["analysed_px"] == h * m.shape[1]
    assert a.summary["porosity"] == pytest.approx(np.count_nonzero(m) / m.size)
    assert a.summary["count_split_labels"] == 9


def test_few_pores_and_empty_mask():
    m = np.zeros((64, 64), np.uint8)
    a = ma.analyse_mask(m, pixel_size_nm=10.0, params=FAST, rng=np.random.default_rng(5),
                        image_id="empty")
    assert a.summary["porosity"] == 0 and a.summary["count_split_labels"] == 0
    assert a.summary["ce_verdict"] == "n/a" and a.spatial is None and a.objects.empty
    disc(m, 20, 20, 5)
    disc(m, 45, 40, 5)
    b = ma.analyse_mask(m, pixel_size_nm=10.0, params=FAST, rng=np.random.default_rng(5),
                        image_id="two")
    assert b.summary["count_split_labels"] == 2 and b.summary["mc_verdict"] == "n/a"


def test_bad_inputs_name_the_image():
    with pytest.raises(TypeError, match="img7"):
        ma.analyse_mask(np.zeros((8, 8), float), pixel_size_nm=None, params=FAST,
                        rng=np.random.default_rng(0), image_id="img7")
    with pytest.raises(ValueError, match="img8.*bar_rows"):
        ma.analyse_mask(np.zeros((8, 8), np.uint8), pixel_size_nm=None, params=FAST,
                        rng=np.random.default_rng(0), image_id="img8", bar_rows=8)
    with pytest.raises(ValueError, match="img9.*pixel_size_nm"):
        ma.analyse_mask(np.zeros((8, 8), np.uint8), pixel_size_nm=-1, params=FAST,
                        rng=np.random.default_rng(0), image_id="img9")


def test_reproducible_and_order_independent_rng():
    m = grid_of_discs(n_side=4)
    r1 = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=ma.image_rng(7, "a"), image_id="a")
    ma.image_rng(7, "b").uniform(size=100)    # another image in between changes nothing
    r2 = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=ma.image_rng(7, "a"), image_id="a")
    assert pd.Series(r1.summary).equals(pd.Series(r2.summary))   # NaN-aware
    assert ma.image_rng(7, "a").uniform() != ma.image_rng(7, "b").uniform()
    assert ma.image_rng(7, "a", "pred").uniform() != ma.image_rng(7, "a", "gt").uniform()


# ------------------------------------------------------------------ synthetic truth

def rasterised_contacts(pores: pd.DataFrame, h: int, w: int) -> np.ndarray:
    """Brute force: rasterise each pore on the whole grid and look at the frame rows/columns."""
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    out = []
    for p in pores.itertuples():
        th = math.radians(p.angle_deg)
        c, s = math.cos(th), math.sin(th)
        dx, dy = xx - p.x, yy - p.y
        m = ((dx * c - dy * s) / (p.major / 2)) ** 2 + ((dx * s + dy * c) / (p.minor / 2)) ** 2 <= 1
        out.append((m[0].any(), m[-1].any(), m[:, 0].any(), m[:, -1].any()))
    return np.array(out, bool).reshape(-1, 4)


def test_pore_edge_contacts_match_brute_force():
    rng = np.random.default_rng(11)
    n = 300
    h, w = 60, 80
    pores = pd.DataFrame({"x": rng.uniform(-12, w + 12, n), "y": rng.uniform(-12, h + 12, n),
                          "minor": rng.uniform(2, 16, n)})
    pores["major"] = pores["minor"] / np.cos(np.radians(rng.uniform(0, 60, n)))
    pores["angle_deg"] = rng.uniform(0, 180, n)
    got = synthetic_truth.pore_edge_contacts(pores, h, w)[["touches_top", "touches_bottom", "touches_left",
                                              "touches_right"]].to_numpy()
    assert np.array_equal(got, rasterised_contacts(pores, h, w))
    assert got.any(axis=0).all()        # every edge is exercised


def test_synthetic_reference_guard_count_equals_split_count_without_overlaps():
    # separate ellipses, some cut by each edge: the guard-frame truth equals what is counted
    rows = [(30, 30), (90, 35), (150, 40), (40, 100), (110, 95), (160, 110),
            (70, 2), (130, -3), (-2, 60), (100, 148), (197, 70)]
    pores = pd.DataFrame([{"x": x + 0.3, "y": y + 0.2, "major": 16.0, "minor": 12.0,
                           "angle_deg": 30.0} for x, y in rows])
    h, w = 150, 200
    mask = syn.opening_mask(pores, (h, w))
    pores["n_pixels"] = [int(syn.opening_mask(pores.iloc[[i]], (h, w)).sum()) for i in range(len(pores))]
    inside = ((pores.x >= -0.5) & (pores.x < w - 0.5) & (pores.y >= -0.5) & (pores.y < h - 0.5))
    truth = {"analysed_height": h, "width": w, "porosity": mask.mean(), "n_true": int(inside.sum()),
             "pixel_size_nm": 20.0, "expected_area_px": math.pi / 4 * 16 * 12}
    ref = synthetic_truth.synthetic_reference(truth, pores)
    # by hand: the top-cut (y = 2, -3) and left-cut (x = -2) pores count, bottom/right ones do not
    assert ref["n_guard"] == 9 and ref["n_true"] == 9
    assert ref["count"]["boolean_model"] == 9 and ref["convention"]["split_labels"] == "guard frame"
    a = ma.analyse_mask(mask.astype(np.uint8), pixel_size_nm=20.0, params=FAST,
                        rng=np.random.default_rng(0), image_id="e", spatial=False)
    rows_ = comparison.compare_with_reference(a, ref, mask="ground truth")
    by = {r["estimator"]: r for r in rows_}
    assert by["split_labels"]["count_error_pct"] == 0.0
    assert by["split_labels"]["porosity_error_pp"] == 0.0
    assert by["split_labels"]["density_true_cm2"] == pytest.approx(9 / (h * w * (20e-7) ** 2))


def test_boolean_estimate_on_synthetic_membrane_within_tolerance():
    """A realistic synthetic micrograph mask (Poisson tilted tracks, phi ~ 0.25): the Boolean
    model's density is within 8 % of the exact density. Tolerance: Poisson noise of the realised
    count (~ 1/sqrt(550) = 4 %) plus the +-3 % bias of the single-pore E[A] estimate
    (porescope.measure.counting docs)."""
    spec = syn.MembraneSpec(height=640, width=640, porosity=0.25, mean_diameter_px=16.0,
                            supersample=1, appearance=syn.Appearance.clean(), pixel_size_nm=30.0)
    res = syn.synthesize_image(spec, syn.image_rng(123, 0))
    ref = synthetic_truth.synthetic_reference(res.truth, res.pores)
    a = ma.analyse_mask(res.mask_opening.astype(np.uint8), pixel_size_nm=30.0, params=FAST,
                        rng=np.random.default_rng(0), image_id="syn", spatial=False)
    assert a.summary["porosity"] == pytest.approx(res.truth["porosity"], abs=1e-12)
    assert res.truth["n_true"] > 450
    dens = a.summary["density_cm2_boolean_model"]
    assert dens == pytest.approx(res.truth["density_cm2"], rel=0.08)
    # the frame counts under-count merged pores: never more than the truth in their convention
    assert a.summary["count_split_labels"] <= ref["n_guard"] * 1.02


def test_summarise_errors_by_hand():
    t = pd.DataFrame({
        "image_id": ["a", "b", "c", "a", "b", "c"], "mask": ["predicted"] * 6,
        "estimator": ["x"] * 3 + ["y"] * 3,
        "porosity_true": [0.1, 0.15, 0.3] * 2, "porosity_error_pp": [0.2, -0.4, 1.0] * 2,
        "count_true": [100, 50, 200] * 2, "count_measured": [98, 51, 190, 100, 50, 200],
        "count_error_pct": [-2.0, 2.0, -5.0, 0.0, 0.0, 0.0]})
    e = comparison.summarise_errors(t, bands=[0.2])
    x = e["predicted"]["x"]
    assert x["all"]["count_mae_pct"] == pytest.approx(3.0)
    assert x["all"]["count_bias_pct"] == pytest.approx(-5 / 3, abs=1e-4)
    assert x["all"]["count_pooled_pct"] == pytest.approx(100 * (339 / 350 - 1), abs=1e-4)
    assert x["<=20%"]["n_images"] == 2 and x["<=20%"]["count_max_abs_pct"] == 2.0
    assert x[">20%"]["porosity_mae_pp"] == 1.0
    assert e["predicted"]["y"]["all"]["count_mae_pct"] == 0.0
    assert comparison.band_names([0.2, 0.3]) == ["<=20%", "20-30%", ">30%"]


def test_figures_render_deterministically():
    m = grid_of_discs(n_side=4)
    a = ma.analyse_mask(m, pixel_size_nm=25.0, params=FAST, rng=np.random.default_rng(0), image_id="g")
    f1 = figures.distribution_figures({"g": a.objects}, {"g": a.spatial}, pixel_sizes={"g": 25.0})
    f2 = figures.distribution_figures({"g": a.objects}, {"g": a.spatial}, pixel_sizes={"g": 25.0})
    assert set(f1) >= {"area_histogram.png", "ecd_violin.png", "feret_angle_kde.png",
                       "correlation.png", "ripley_g.png"}
    assert f1 == f2 and all(v[:8] == b"\x89PNG\r\n\x1a\n" for v in f1.values())
    ov = figures.outline_overlay(m * 100, a.labels)
    assert ov.shape == m.shape + (3,) and (ov[..., 2] == 255).sum() > 0


def test_margin_excludes_a_frame_and_keeps_image_coordinates():
    core = grid_of_discs(n_side=3)
    m = np.pad(core, 6, constant_values=1)         # a 6-px frame "detected" as foreground
    a = ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(0),
                        image_id="framed", margin=6)
    assert a.summary["analysed_px"] == core.size and a.summary["margin"] == 6
    assert a.summary["porosity"] == pytest.approx(np.count_nonzero(core) / core.size)
    assert a.summary["count_split_labels"] == 9 and len(a.objects) == 9
    ref = ma.analyse_mask(core, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(0),
                          image_id="core")
    assert np.allclose(np.sort(a.objects["X"]), np.sort(ref.objects["X"]) + 6)
    assert a.summary["ce_R"] == pytest.approx(ref.summary["ce_R"])
    with pytest.raises(ValueError, match="margin"):
        ma.analyse_mask(m, pixel_size_nm=None, params=FAST, rng=np.random.default_rng(0),
                        image_id="framed", margin=200)


def test_debris_filter_drops_small_interior_regions_but_not_frame_cut_pores():
    mask = np.zeros((100, 120), np.uint8)
    yy, xx = np.mgrid[:100, :120]
    mask[np.hypot(yy - 50, xx - 60) <= 12] = 1      # a pore: 1 region of ~450 px
    mask[20:23, 20:23] = 1                           # a 9 px speck inside the image
    mask[0:2, 100:103] = 1                           # a 6 px sliver of a pore cut by the top edge
    rng = np.random.default_rng(0)
    keep_all = ma.analyse_mask(mask, pixel_size_nm=None, params=params(), rng=rng,
                               image_id="t", spatial=False)
    filtered = ma.analyse_mask(mask, pixel_size_nm=None, rng=rng, image_id="t", spatial=False,
                               params=params({"min_region_area_px": 20}))
    pore = int((np.hypot(yy - 50, xx - 60) <= 12).sum())
    assert keep_all.summary["foreground_px"] == pore + 9 + 6
    assert filtered.summary["foreground_px"] == pore + 6  # the speck goes, the frame-cut sliver stays
    assert filtered.summary["n_regions"] == keep_all.summary["n_regions"] - 1
    with pytest.raises(ParamsError, match="min_region_area_px"):
        ma.AnalysisParams.from_mapping({"min_region_area_px": -1})


def test_outline_overlay_in_row_blocks_equals_the_whole_image(monkeypatch):
    """Blocks of rows with a one-row halo draw exactly the boundaries of the whole label image."""
    import cv2
    from skimage.segmentation import find_boundaries

    from porescope.analysis import figures

    rng = np.random.default_rng(3)
    for block in (1, 2, 5, 7):
        labels = rng.integers(0, 5, (37, 29)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.4] = 0
        grey = rng.integers(0, 256, labels.shape).astype(np.uint8)
        monkeypatch.setattr(figures, "_OVERLAY_BLOCK_ROWS", block)
        expect = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        expect[find_boundaries(labels, mode="inner") & (labels != 0)] = (0, 0, 255)
        assert np.array_equal(figures.outline_overlay(grey, labels), expect)


def test_border_class_seed_h_splits_interiors_joined_through_a_gap():
    m = np.zeros((80, 120), np.uint8)
    disc(m, 40, 40, 16, 2)
    disc(m, 70, 40, 16, 2)
    disc(m, 40, 40, 12, 1)
    disc(m, 70, 40, 12, 1)
    m[38:43, 52:59] = 1                     # a gap in the border where the two discs touch
    names = {"0": "background", "1": "pore interior", "2": "pore border"}
    kw = dict(pixel_size_nm=None, rng=np.random.default_rng(3), image_id="gap", class_names=names, spatial=False)
    assert ma.analyse_mask(m, params=FAST, **kw).summary["n_pores"] == 1
    split = ma.analyse_mask(m, params=dataclasses.replace(FAST, split=dataclasses.replace(FAST.split, seed_h=2.0)), **kw)
    assert split.summary["n_pores"] == 2 and split.summary["split_method"] == "border_class seed_h=2"
