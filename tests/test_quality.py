"""The out-of-distribution guard flags what a lab must not certify, and passes a clean image."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from porescope import synthesize_membrane
from porescope.measure.morphometry import label_mask
from porescope.measure.quality import QualityLimits, overlay_mask, quality_flags

TRAINED = (16.0, 26.0, 42.0)   # ECD percentiles (5, 50, 95) of the training pores, px


def membrane(diameter: float, seed: int = 0):
    m = synthesize_membrane(384, 384, porosity=0.12, mean_diameter_px=diameter, seed=seed)
    return m.image.copy(), label_mask(m.mask_opening.astype(np.uint8))


def test_a_clean_membrane_at_the_trained_size_is_certified():
    grey, labels = membrane(26.0)
    q = quality_flags(grey, labels, trained_ecd_px=TRAINED)
    assert q.certified, q.flags
    assert q.values["bright_share"] <= 0.10 and q.values["overlay_share"] == 0


def test_pores_far_below_the_trained_size_are_flagged():
    grey, labels = membrane(7.0)
    q = quality_flags(grey, labels, trained_ecd_px=TRAINED)
    assert not q.certified
    assert any(f.startswith("size_out_of_range") for f in q.flags)
    assert any(f.startswith("small_objects") for f in q.flags)
    # the same image resampled x3 before inference is in range
    assert quality_flags(grey, labels, scale=3.0, trained_ecd_px=TRAINED).certified
    # the flag names the factor that puts the median at the trained median, and it works
    flag = next(f for f in q.flags if f.startswith("size_out_of_range"))
    assert "; " not in flag                  # summary.csv joins the flags with "; "
    fix = float(re.search(r"a resize by ([0-9.]+)", flag).group(1))
    assert fix * q.values["median_ecd_px"] == pytest.approx(TRAINED[1], rel=0.01)
    assert quality_flags(grey, labels, scale=fix, trained_ecd_px=TRAINED).certified
    # measured at another scale, the factor is the total resize from the original image
    q2 = quality_flags(grey, labels, scale=0.5, trained_ecd_px=TRAINED)
    flag2 = next(f for f in q2.flags if f.startswith("size_out_of_range"))
    assert float(re.search(r"a resize by ([0-9.]+)", flag2).group(1)) == pytest.approx(fix, rel=0.01)


def test_a_burned_in_logo_segmented_as_pores_is_flagged():
    grey, labels = membrane(26.0, seed=1)
    logo = np.zeros_like(grey)
    cv2.putText(logo, "LOGO", (20, 370), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 6)
    grey = np.maximum(grey, logo)
    # a model that calls the letters' inner holes and edges pores: objects on the logo
    fake = label_mask(((logo > 0) & (cv2.dilate(logo, np.ones((9, 9), np.uint8)) > 0)).astype(np.uint8))
    labels = np.where(fake > 0, fake + labels.max(), labels)
    q = quality_flags(grey, labels, trained_ecd_px=TRAINED)
    assert not q.certified
    assert any(f.startswith("on_overlay") for f in q.flags)
    assert any(f.startswith("bright_objects") for f in q.flags)


def _with_saturated_fringes(grey: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A 3 px saturated crescent below every pore, outside it (the SEM edge fringe)."""
    pores = (labels > 0).astype(np.uint8)
    band = cv2.dilate(pores, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) & ~pores.astype(bool)
    below = np.zeros_like(band, dtype=bool)
    below[3:] = pores[:-3] > 0                      # under the pore's lower half
    out = grey.copy()
    out[band.astype(bool) & below] = 255
    return out


def test_saturated_edge_fringes_are_not_overlays_but_a_logo_still_is():
    grey, labels = membrane(26.0, seed=3)
    fringed = _with_saturated_fringes(grey, labels)
    q = quality_flags(fringed, labels, trained_ecd_px=TRAINED)
    assert q.certified, q.flags
    assert q.values["overlay_share"] == 0 and q.values["fringe_share"] > 0.5
    # with the rule off (fringe_reach 0) every saturated stroke is an overlay again
    off = quality_flags(fringed, labels, trained_ecd_px=TRAINED, limits=QualityLimits(fringe_reach=0))
    assert any(f.startswith("on_overlay") for f in off.flags) and off.values["fringe_share"] == 0
    # a logo over the same membrane, with objects on it, is flagged despite the fringes
    logo = np.zeros_like(grey)
    cv2.putText(logo, "LOGO", (20, 370), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 6)
    fake = label_mask(((logo > 0) & (cv2.dilate(logo, np.ones((9, 9), np.uint8)) > 0)).astype(np.uint8))
    both = np.where(fake > 0, fake + labels.max(), labels)
    q = quality_flags(np.maximum(fringed, logo), both, trained_ecd_px=TRAINED)
    assert any(f.startswith("on_overlay") for f in q.flags)


def test_uncertain_probabilities_are_flagged():
    grey, labels = membrane(26.0, seed=2)
    proba = np.where(labels > 0, 0.9, 0.05)
    assert quality_flags(grey, labels, proba=proba, trained_ecd_px=TRAINED).certified
    proba[: proba.shape[0] // 2] = 0.5
    q = quality_flags(grey, labels, proba=proba, trained_ecd_px=TRAINED)
    assert any(f.startswith("uncertain_pixels") for f in q.flags)


def test_without_trained_sizes_the_size_checks_are_skipped():
    grey, labels = membrane(7.0)
    q = quality_flags(grey, labels)
    assert np.isnan(q.values["small_share"]) and q.certified


def test_overlay_mask_keeps_strokes_not_specks():
    img = np.full((64, 64), 100, np.uint8)
    img[5:8, 5:40] = 255
    img[40, 40] = 255
    m = overlay_mask(img)
    assert m[6, 20] and not m[40, 40]


@pytest.mark.parametrize("limit", [0.0, 1.0])
def test_limits_move_the_verdict(limit):
    grey, labels = membrane(7.0)
    q = quality_flags(grey, labels, trained_ecd_px=TRAINED,
                      limits=QualityLimits(max_small_share=limit, size_margin=0.01 if limit else 0.6))
    assert q.certified == (limit == 1.0)


def test_a_blank_image_and_an_image_without_objects_are_not_certified():
    blank = np.full((256, 256), 120, np.uint8)
    q = quality_flags(blank, np.zeros(blank.shape, np.int32), trained_ecd_px=TRAINED)
    assert not q.certified and q.values["contrast"] == 0
    assert [f.split(":")[0] for f in q.flags] == ["no_contrast", "no_objects"]
    # a real-looking membrane on which nothing was segmented: no contrast problem, no objects
    grey, labels = membrane(26.0, seed=4)
    q = quality_flags(grey, np.zeros_like(labels), trained_ecd_px=TRAINED)
    assert [f.split(":")[0] for f in q.flags] == ["no_objects"] and q.values["contrast"] > 50
    assert quality_flags(grey, labels, trained_ecd_px=TRAINED).certified
