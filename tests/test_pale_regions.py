"""Tests of :mod:`porescope.measure.pale_regions` and ``measure.min_region_contrast``: regions
that are not darker than the surface around them (strips along bright frames) are dropped,
dark pores are kept, and a big mask judged in bands gives the whole image's result."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from porescope.analysis.params import AnalysisParams
from porescope.config import ParamsError
from porescope.measure.measurement import measure_micrograph
from porescope.measure.pale_regions import drop_pale_regions, region_contrast
from porescope.measure.params import MeasureParams, parse_measure_params
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import artefacts_off

FAST = AnalysisParams.from_mapping({"spatial": {"n_sim": 0}})
PARAMS = MeasureParams(device="cpu", figures=False, scale_bar=False, analysis=FAST)
OFF = dataclasses.replace(PARAMS, min_region_contrast=None)


def framed_membrane(seed: int = 3):
    """A clean synthetic membrane with a white 5-px frame painted on its left and bottom edges,
    its true opening mask (background under the frame) and that mask plus a 3-px strip of
    surface just inside the frame, which a network calls pore next to a bright band."""
    raw = {**syn.DEFAULT_PARAMS, "n_images": 1, "height": 160, "width": 200, "porosity_min": 0.1,
           "porosity_max": 0.1, "diameter_min_px": 16.0, "diameter_max_px": 16.0,
           "supersample": 2, "artefacts": artefacts_off()}
    spec = syn.dataset_specs(raw, seed)[0]
    res = syn.synthesize_image(spec, syn.image_rng(seed, 0))
    image, truth = res.image.copy(), res.mask_opening.copy()
    image[:, :5], image[-5:] = 250, 250
    truth[:, :5], truth[-5:] = False, False
    strip = np.zeros_like(truth)
    strip[:-5, 5:8], strip[-8:-5, 5:] = True, True
    # the strip stops 2 px short of the openings (a pore touching it would hold it in its region)
    strip &= ~ndi.binary_dilation(truth, np.ones((5, 5), bool))
    return image, truth, truth | strip


def test_contrast_of_a_dark_pore_and_of_surface():
    grey = np.full((50, 70), 150, np.uint8)
    mask = np.zeros((50, 70), bool)
    yy, xx = np.mgrid[:50, :70]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64
    grey[disc], mask[disc] = 30, True
    mask[5:40, 50:53] = True                     # surface grey
    grey[5:40, 60] = 60                          # darker surface line, ring only
    labels, t = region_contrast(grey, mask)
    assert len(t) == 2 and set(np.unique(labels)) == {0, 1, 2}
    pore = t.set_index("label").loc[labels[20, 20]]
    pale = t.set_index("label").loc[labels[20, 51]]
    assert pore["contrast"] == pytest.approx((150 - 30) / 150)
    assert pale["contrast"] == pytest.approx(0.0)
    assert pore["area"] == disc.sum() and pale["area"] == 35 * 3


def test_ring_median_equals_numpy_median_per_region():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (80, 90)).astype(np.uint8)
    mask = rng.uniform(size=(80, 90)) < 0.04
    mask[30:40, 30:45] = True
    exclude = rng.uniform(size=(80, 90)) < 0.1
    labels, t = region_contrast(grey, mask, ring_px=2, exclude=exclude)
    fg = mask > 0
    shared = 0
    for row in t.itertuples():
        # every surface pixel within the 5 x 5 square, also those near another region
        ring = ndi.binary_dilation(labels == row.label, np.ones((5, 5), bool)) & ~fg & ~exclude
        near_other = ndi.binary_dilation((labels > 0) & (labels != row.label), np.ones((5, 5), bool))
        shared += int((ring & near_other).sum())
        assert row.ring_grey == np.median(grey[ring]), row.label
        assert row.mean_grey == pytest.approx(grey[labels == row.label].mean())
    assert shared > 0                           # the case that numbering used to decide


def test_contrast_does_not_depend_on_the_numbering():
    # a surface mirror-symmetric about column 20, two regions mirrored about it: their rings
    # share columns 19-21 and must be mirrors too, whichever region is numbered higher
    cols = np.arange(41)
    grey = np.tile((200 - 6 * np.abs(cols - 20)).astype(np.uint8), (30, 1))
    mask = np.zeros((30, 41), bool)
    mask[10:20, 16:19] = mask[10:20, 22:25] = True
    _, t = region_contrast(grey, mask)
    assert t["ring_grey"].iloc[0] == t["ring_grey"].iloc[1]
    assert t["contrast"].iloc[0] == t["contrast"].iloc[1]


def dense_membrane(seed: int = 5):
    """A dense synthetic membrane (porosity 0.35, small pores) with a white frame, a burned-in
    bar and surface strips called pore along them: many regions, many shared rings."""
    raw = {**syn.DEFAULT_PARAMS, "n_images": 1, "height": 150, "width": 190, "porosity_min": 0.35,
           "porosity_max": 0.35, "diameter_min_px": 6.0, "diameter_max_px": 10.0,
           "supersample": 2, "artefacts": artefacts_off()}
    spec = syn.dataset_specs(raw, seed)[0]
    res = syn.synthesize_image(spec, syn.image_rng(seed, 0))
    image, mask = res.image.copy(), res.mask_opening.astype(np.uint8) * 2
    # a surface gradient and noise: every ring pixel moves the medians
    noise = np.random.default_rng(seed).integers(-40, 41, image.shape)
    image = np.clip(image + noise + np.arange(image.shape[0])[:, None] // 3, 0, 240).astype(np.uint8)
    image[:, :4], image[-4:] = 252, 252                   # frame
    image[60:63, 40:150] = 255                            # a scale bar across the pores
    mask[:-4, 4:7], mask[-7:-4, 4:] = 1, 1                # strips inside the frame
    mask[63:65, 40:150] = 1                               # and under the bar
    mask[:, :4], mask[-4:] = 0, 0
    return image, mask


@pytest.mark.parametrize("ring_px", [1, 3])
@pytest.mark.parametrize("overlay_level", [245, None])
def test_banded_equals_whole_image(ring_px, overlay_level):
    image, mask = dense_membrane()
    for th in (0.3, 0.5, 0.55, 0.6):         # rings judged on other rows would flip some region
        whole, n = drop_pale_regions(image, mask, th, ring_px, overlay_level)
        assert 0 < n and whole.any()
        for band_pixels in (1, 190 * 2, 190 * 7, 190 * 40, mask.size - 1):
            banded, m = drop_pale_regions(image, mask, th, ring_px, overlay_level,
                                          band_pixels=band_pixels)
            assert m == n and np.array_equal(banded, whole), (th, band_pixels)
    whole, n = drop_pale_regions(image, mask, 0.3, ring_px, overlay_level)
    same = mask.copy()
    out, m = drop_pale_regions(image, same, 0.3, ring_px, overlay_level, band_pixels=190 * 3,
                               in_place=True)
    assert out is same and m == n and np.array_equal(same, whole)
    assert drop_pale_regions(image, mask, 0.3, ring_px, overlay_level,
                             band_pixels=mask.size)[1] == n        # not above: whole image


def test_measure_judges_big_images_in_bands(monkeypatch):
    from porescope.measure import pale_regions

    image, truth, with_strip = framed_membrane()
    seen = []
    real = pale_regions._drop_in_bands
    monkeypatch.setattr(pale_regions, "_drop_in_bands",
                        lambda *a: seen.append(a[-1]) or real(*a))
    small = dataclasses.replace(PARAMS, band_pixels=5000)
    _, banded = measure_micrograph(image, mask=with_strip, params=small)
    _, whole = measure_micrograph(image, mask=with_strip, params=PARAMS)
    assert seen == [5000] and with_strip.size > 5000
    assert banded["pale_regions_dropped"] == whole["pale_regions_dropped"] >= 1
    for key in ("porosity", "count_split_labels"):
        assert banded[key] == whole[key], key


def test_drop_keeps_the_dtype_the_pores_and_a_region_without_ring():
    grey = np.full((30, 30), 120, np.uint8)
    ids = np.zeros((30, 30), np.uint8)
    ids[5:10, 5:10] = 2                            # a class id other than 1, pale
    grey[15:25, 15:25] = 10
    ids[15:25, 15:25] = 1                          # dark
    out, n = drop_pale_regions(grey, ids, 0.3)
    assert n == 1 and out.dtype == np.uint8 and not out[5:10, 5:10].any()
    assert (out[15:25, 15:25] == 1).all() and (ids[5:10, 5:10] == 2).all()   # input untouched
    _, t = region_contrast(grey, np.ones((30, 30), bool))
    assert np.isnan(t["contrast"].iloc[0])
    assert drop_pale_regions(grey, np.ones((30, 30), bool), 0.9)[1] == 0


def test_a_strip_along_a_frame_is_dropped_and_the_pores_are_kept():
    image, truth, with_strip = framed_membrane()
    _, exact = measure_micrograph(image, mask=truth, params=OFF)
    _, fooled = measure_micrograph(image, mask=with_strip, params=OFF)
    assert fooled["porosity"] > exact["porosity"] + 0.01        # the strip is counted
    assert "pale_regions_dropped" not in fooled                # off: the summary as before
    rule = dataclasses.replace(OFF, min_region_contrast=0.3)
    _, fixed = measure_micrograph(image, mask=with_strip, params=rule)
    _, same = measure_micrograph(image, mask=truth, params=rule)
    assert fixed["pale_regions_dropped"] >= 1 and same["pale_regions_dropped"] == 0
    for key in ("porosity", "count_split_labels", "count_median_area"):
        assert same[key] == exact[key], key                     # no true pore is pale
    for key in ("porosity", "count_split_labels", "count_median_area"):
        assert fixed[key] == exact[key], key                    # the strip is gone, all of it


def test_the_frame_is_not_the_surface_of_a_strip_beside_it():
    image, truth, with_strip = framed_membrane()
    strip = with_strip & ~truth
    _, left_in = drop_pale_regions(image, strip, 0.3, overlay_level=None)
    _, left_out = drop_pale_regions(image, strip, 0.3)
    assert left_out > left_in          # with the white frame in the ring the strips look dark


def test_on_by_default_as_in_params_yaml_and_recorded_in_run_json():
    import yaml
    from pathlib import Path

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert MeasureParams().min_region_contrast == raw["measure"]["min_region_contrast"]
    assert MeasureParams().min_region_contrast is not None
    image, truth, _ = framed_membrane()
    _, summary = measure_micrograph(image, mask=truth, params=PARAMS)
    assert summary["pale_regions_dropped"] == 0
    assert PARAMS.settings_dict()["min_region_contrast"] == PARAMS.min_region_contrast
    assert "min_region_contrast" not in OFF.settings_dict()
    assert parse_measure_params({"min_region_contrast": None}).min_region_contrast is None


@pytest.mark.parametrize("value", [1.0, -0.1, "high"])
def test_bad_threshold_is_refused_naming_the_key(value):
    with pytest.raises(ParamsError, match="measure.min_region_contrast"):
        parse_measure_params({"min_region_contrast": value})


def test_validation_drops_pale_predicted_regions_only(tmp_path):
    from porescope.analysis.params import AnalyzeParams
    from porescope.analysis.validation import ValidateParams, validate_on_truth
    from test_measure import tiny_model
    from test_validate import SMALL, SYNTH

    model = tiny_model(tmp_path / "model.pt")
    vp = ValidateParams.from_mapping(SMALL)
    analysis = AnalyzeParams.from_mapping({"spatial": {"n_sim": 0}})
    base = validate_on_truth(vp, SYNTH, analysis, 42, model_path=model).table
    strict = validate_on_truth(vp, SYNTH, analysis, 42, model_path=model,
                               min_region_contrast=0.99).table
    gt = base["mask"] == "ground truth"
    assert base[gt].equals(strict[gt])                 # the truth masks are never filtered
    before = base[~gt].groupby("image_id")["porosity_measured"].first()
    after = strict[~gt].groupby("image_id")["porosity_measured"].first()
    assert (before > 0).any() and (after <= before).all()
    assert (after[before > 0] < before[before > 0]).all()   # an untrained net's regions are pale
