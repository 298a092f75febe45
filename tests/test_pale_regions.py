"""Tests of :mod:`porescope.measure.pale_regions` and ``measure.min_region_contrast``: regions
that are not darker than the surface around them (strips along bright frames) are dropped,
dark pores are kept, and the default changes nothing."""

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
    labels, t = region_contrast(grey, mask, ring_px=2)
    fg = mask > 0
    for row in t.itertuples():
        mine = ndi.binary_dilation(labels == row.label, np.ones((5, 5), bool)) & ~fg
        # a ring pixel shared by two regions goes to the higher label
        near = ndi.maximum_filter(labels, size=5, mode="constant")
        ring = mine & (near == row.label)
        assert row.ring_grey == np.median(grey[ring]), row.label
        assert row.mean_grey == pytest.approx(grey[labels == row.label].mean())


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
    _, exact = measure_micrograph(image, mask=truth, params=PARAMS)
    _, fooled = measure_micrograph(image, mask=with_strip, params=PARAMS)
    assert fooled["porosity"] > exact["porosity"] + 0.01        # the strip is counted
    rule = dataclasses.replace(PARAMS, min_region_contrast=0.3)
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


def test_off_by_default_and_nothing_added_to_the_summary_or_run_json():
    assert MeasureParams().min_region_contrast is None
    image, truth, _ = framed_membrane()
    _, summary = measure_micrograph(image, mask=truth, params=PARAMS)
    assert "pale_regions_dropped" not in summary
    assert "min_region_contrast" not in PARAMS.settings_dict()
    on = dataclasses.replace(PARAMS, min_region_contrast=0.3)
    assert on.settings_dict()["min_region_contrast"] == 0.3


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
