"""Tests of the synthetic SEM artefacts (``synthesize.artefacts``): exact truth, locality,
determinism, and unchanged defaults.

Known answers come from geometry (an independent full-grid rasteriser of the ellipse rule),
from the overlays' own coverage map drawn on a blank image, and from main's code (the default
images must be byte-identical to it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from porescope.config import ParamsError, parse_group
from porescope.synthetic import artefacts as art_mod
from porescope.synthetic import membranes as syn
from porescope.synthetic.artefacts import Artefacts
from porescope.synthetic.params import SynthesizeParams, artefacts_off

ALL_ON = {f"{name}_probability": 1.0 for name in art_mod.ARTEFACT_GROUPS}
ALL_OFF = {f"{name}_probability": 0.0 for name in art_mod.ARTEFACT_GROUPS}
ALL_OFF_RAW = artefacts_off()


def rasterise(pores: pd.DataFrame, shape) -> np.ndarray:
    """Full-grid union of the listed ellipses, pixel-centre rule of the membranes docs."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros(shape, bool)
    for p in pores.itertuples():
        th = math.radians(p.angle_deg)
        c, s = math.cos(th), math.sin(th)
        dx, dy = xx - p.x, yy - p.y
        out |= ((dx * c - dy * s) / (p.major / 2)) ** 2 + ((dx * s + dy * c) / (p.minor / 2)) ** 2 <= 1
    return out


def params(artefacts: dict | None = None, **kw) -> SynthesizeParams:
    raw = {"n_images": 4, "height": 112, "width": 128, "diameter_min_px": 12.0,
           "diameter_max_px": 20.0, "supersample": 2, "databar_probability": 0.5,
           "databar_height_px": 16, **kw}
    # only the artefacts a test names are on (the defaults switch several on)
    raw["artefacts"] = {**ALL_OFF, **(artefacts or {})}
    return parse_group(SynthesizeParams, raw, group="synthesize")


def spec_with(art: Artefacts | None, **kw) -> syn.MembraneSpec:
    base = dict(height=96, width=112, porosity=0.15, mean_diameter_px=14.0, supersample=2)
    base.update(kw)
    return syn.MembraneSpec(artefacts=art, **base)


# ------------------------------------------------------------------ artefacts off

def test_off_values_are_off():
    """An Artefacts with every value off renders exactly the image without artefacts."""
    spec = spec_with(None)
    pores = syn.sample_pores(spec, np.random.default_rng(1))
    plain = syn.render_sem(spec, pores, np.random.default_rng(2))
    off = syn.render_sem(spec_with(Artefacts(seed=9)), pores, np.random.default_rng(2))
    assert np.array_equal(plain, off)
    # every probability 0 draws no Artefacts at all (the dataset of a generator without them)
    assert all(s.artefacts is None for s in syn.dataset_specs(params(ALL_OFF), 3))
    assert not parse_group(SynthesizeParams, {"artefacts": ALL_OFF}, group="synthesize").artefacts.any_on()
    # the defaults are on: sized on real SEM
    assert SynthesizeParams().artefacts.any_on()


# ------------------------------------------------------------------ exact truth

@pytest.mark.parametrize("seed", [4, 17])
def test_truth_is_exact_with_every_artefact_on(seed):
    p = params(ALL_ON)
    for k, spec in enumerate(syn.dataset_specs(p, seed)):
        art = spec.artefacts
        assert art is not None and art.has_overlays()
        res = syn.synthesize_image(spec, syn.image_rng(seed, k))
        shape = (spec.height, spec.width)
        ha = spec.analysed_height
        hidden = art_mod.draw_overlays(np.zeros(shape, np.uint8), art, spec.pixel_size_nm)
        geom = rasterise(res.pores, shape)
        geom[ha:] = False
        assert hidden.any()
        assert np.array_equal(res.mask_opening, geom & ~hidden)
        assert not res.mask_opening[hidden].any() and not res.mask_core[hidden].any()
        assert not (res.mask_core & ~res.mask_opening).any()
        # counts: centre in the analysed region and its pixel visible
        x, y = res.pores["x"].to_numpy(), res.pores["y"].to_numpy()
        in_region = (x >= -0.5) & (x < spec.width - 0.5) & (y >= -0.5) & (y < ha - 0.5)
        r = np.clip(np.floor(y + 0.5).astype(int), 0, shape[0] - 1)
        c = np.clip(np.floor(x + 0.5).astype(int), 0, shape[1] - 1)
        visible = in_region & ~hidden[r, c]
        assert np.array_equal(res.pores["centre_inside"].to_numpy(), visible)
        assert res.truth["n_true"] == int(visible.sum())
        assert res.truth["n_hidden"] == int((in_region & hidden[r, c]).sum())
        assert res.truth["porosity"] == pytest.approx(res.mask_opening[:ha].mean(), abs=0)
        assert res.truth["hidden_fraction"] == pytest.approx(hidden[:ha].mean(), abs=0)
        for i, pore in enumerate(res.pores.itertuples()):
            own = rasterise(res.pores.iloc[[i]], shape)[:ha] & ~hidden[:ha]
            assert pore.n_pixels == int(own.sum())
        assert res.truth["art_text_count"] == art.text_count


def test_downsampling_makes_small_pores_with_exact_masks():
    off, on = (syn.dataset_specs(params({"downsample_probability": q, "downsample_factor": [2.0, 3.0]}), 8)
               for q in (0.0, 1.0))
    for a, b in zip(off, on):
        f = b.artefacts.downsample_factor
        assert 2.0 <= f <= 3.0
        assert b.mean_diameter_px == pytest.approx(a.mean_diameter_px / f)
        assert b.appearance.blur_sigma_px == pytest.approx(a.appearance.blur_sigma_px / f)
        assert b.appearance.read_noise == pytest.approx(a.appearance.read_noise / f)
    spec = on[0]
    res = syn.synthesize_image(spec, syn.image_rng(8, 0))
    geom = rasterise(res.pores, (spec.height, spec.width))
    geom[spec.analysed_height:] = False
    assert np.array_equal(res.mask_opening, geom)
    assert res.pores["diameter"].mean() < off[0].mean_diameter_px / 1.9


# ------------------------------------------------------------------ locality of each artefact

@pytest.mark.parametrize("overlay", [
    dict(frame_width_px=5.0), dict(text_count=3, text_height_px=12.0),
    dict(logo_size_px=30.0), dict(scalebar_length=0.3)])
def test_overlays_change_only_the_pixels_they_hide(overlay):
    art = Artefacts(seed=5, **overlay)
    spec = spec_with(art)
    plain = syn.synthesize_image(spec_with(None), np.random.default_rng(3))
    res = syn.synthesize_image(spec, np.random.default_rng(3))
    hidden = art_mod.draw_overlays(np.zeros(plain.image.shape, np.uint8), art, spec.pixel_size_nm)
    changed = res.image != plain.image
    assert changed.any() and hidden.any()
    assert not (changed & ~hidden).any()  # nothing outside the overlay moved
    assert np.array_equal(res.mask_opening, plain.mask_opening & ~hidden)
    assert not res.mask_opening[hidden].any()


def _clean_spec(art: Artefacts | None) -> syn.MembraneSpec:
    app = syn.Appearance.clean(blur_sigma_px=0.0)
    return spec_with(art, appearance=app, porosity=0.08, mean_diameter_px=16.0, tilt_sigma_deg=0.0)


def test_fringe_lies_outside_the_opening_and_is_brightest_on_its_side():
    art = Artefacts(seed=1, fringe_strength=100.0, fringe_width_px=3.0, fringe_gap_px=1.0,
                    fringe_gap_depth=0.3, fringe_asymmetry=0.8, fringe_direction_deg=270.0)
    pore = pd.DataFrame([dict(pore_id=0, x=55.3, y=47.6, diameter=16.0, major=16.0, minor=16.0,
                              angle_deg=0.0, tilt_deg=0.0, azimuth_deg=0.0, core_dx=0.0,
                              core_dy=0.0)])
    plain = syn.render_sem(_clean_spec(None), pore, np.random.default_rng(0)).astype(int)
    img = syn.render_sem(_clean_spec(art), pore, np.random.default_rng(0)).astype(int)
    mask = syn.opening_mask(pore, plain.shape)
    diff = img - plain
    inner = ndimage.binary_erosion(mask, iterations=1)
    assert not diff[inner].any()  # the opening itself is untouched
    dist = ndimage.distance_transform_edt(~mask)
    reach = art_mod.fringe_reach(art) + 1.5  # + the supersampled pixel and rounding
    assert not diff[dist > reach].any()  # nothing far from the edge
    assert (diff[(dist > 0) & (dist <= reach)] > 0).sum() > 0
    # brightest below the pore (270 deg = down on screen), weakest above
    yy, xx = np.mgrid[0:plain.shape[0], 0:plain.shape[1]]
    ring = (dist > 1.5) & (dist <= reach)
    below, above = ring & (yy > 47.6 + 6), ring & (yy < 47.6 - 6)
    assert diff[below].max() > 60 and diff[below].mean() > 3 * max(diff[above].mean(), 1.0)
    # the dark gap just outside the edge
    gap = (dist > 0) & (dist <= 1.0) & (yy < 47.6 - 6)
    assert diff[gap].min() < 0


def test_rough_patches_stay_outside_the_openings():
    art = Artefacts(seed=2, rough_coverage=0.5, rough_strength=40.0, rough_grain=0.3)
    spec0, spec1 = _clean_spec(None), _clean_spec(art)
    pores = syn.sample_pores(spec0, np.random.default_rng(4))
    plain = syn.render_sem(spec0, pores, np.random.default_rng(0)).astype(int)
    img = syn.render_sem(spec1, pores, np.random.default_rng(0)).astype(int)
    mask = syn.opening_mask(pores, plain.shape)
    diff = img - plain
    assert np.abs(diff[~mask]).mean() > 3
    assert not diff[ndimage.binary_erosion(mask, iterations=1)].any()
    # patches, not everywhere: a good share of the surface is untouched
    assert (diff[~mask] == 0).mean() > 0.2


def test_jpeg_and_charging():
    spec = spec_with(Artefacts(seed=3, jpeg_quality=30.0))
    plain = syn.synthesize_image(spec_with(None), np.random.default_rng(6))
    res = syn.synthesize_image(spec, np.random.default_rng(6))
    assert np.array_equal(res.image, art_mod.jpeg_roundtrip(plain.image, 30.0))
    assert np.array_equal(res.mask_opening, plain.mask_opening)
    charged = syn.synthesize_image(spec_with(Artefacts(seed=3, charging_strength=40.0,
                                                       charging_gradient=0.3)),
                                   np.random.default_rng(6))
    assert np.array_equal(charged.mask_opening, plain.mask_opening)
    assert np.abs(charged.image.astype(int) - plain.image).mean() > 5


# ------------------------------------------------------------------ determinism, params

def test_same_seed_same_bytes_and_artefacts_do_not_move_each_other():
    p = params(ALL_ON)
    a = [syn.synthesize_image(s, syn.image_rng(2, k)) for k, s in enumerate(syn.dataset_specs(p, 2))]
    b = [syn.synthesize_image(s, syn.image_rng(2, k)) for k, s in enumerate(syn.dataset_specs(p, 2))]
    for x, y in zip(a, b):
        assert x.image.tobytes() == y.image.tobytes()
        assert x.mask_opening.tobytes() == y.mask_opening.tobytes()
        assert x.pores.equals(y.pores)
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a[:-1], a[1:]))
    # turning JPEG off keeps every other drawn value of every image
    no_jpeg = syn.dataset_specs(params({**ALL_ON, "jpeg_probability": 0.0}), 2)
    for s0, s1 in zip(syn.dataset_specs(p, 2), no_jpeg):
        assert dataclasses.replace(s0.artefacts, jpeg_quality=0.0) == s1.artefacts


def test_a_partial_raw_artefacts_mapping_takes_the_defaults():
    """validate merges the raw synthesize mapping: a partial artefacts group must work."""
    raw = {**syn.DEFAULT_PARAMS, "n_images": 2, "artefacts": {"jpeg_probability": 1.0}}
    specs = syn.dataset_specs(raw, 3)
    parsed = syn.dataset_specs(parse_group(SynthesizeParams, {"n_images": 2, "artefacts": {
        "jpeg_probability": 1.0}}, group="synthesize"), 3)
    assert specs == parsed and all(25 <= s.artefacts.jpeg_quality <= 90 for s in specs)


def test_draw_follows_the_probabilities():
    ranges = {**ALL_OFF_RAW, "text_probability": 0.5, "text_count": (2.0, 2.0)}
    drawn = [art_mod.draw_artefacts(ranges, np.random.default_rng(i)) for i in range(200)]
    share = np.mean([a.text_count > 0 for a in drawn])
    assert 0.38 < share < 0.62
    assert {a.text_count for a in drawn} == {0, 2}
    assert all(a.fringe_strength == 0 and a.jpeg_quality == 0 for a in drawn)


@pytest.mark.parametrize("bad, key", [
    ({"jpeg_quality": [0, 50]}, "jpeg_quality"),
    ({"downsample_factor": [0.5, 2]}, "downsample_factor"),
    ({"fringe_width_px": [0, 2]}, "fringe_width_px"),
    ({"text_probability": 1.5}, "text_probability"),
    ({"rough_strength": [30, 10]}, "rough_strength"),
])
def test_bad_artefact_params_name_the_key(bad, key):
    with pytest.raises(ParamsError, match=f"synthesize.artefacts.{key}"):
        parse_group(SynthesizeParams, {"artefacts": bad}, group="synthesize")
