"""The out-of-distribution guard flags what a lab must not certify, and passes a clean image."""

from __future__ import annotations

import re

import cv2
from scipy import ndimage
import numpy as np
import pytest

from porescope import synthesize_membrane
from porescope.measure.morphometry import label_mask
from porescope.measure.quality import ObjectPixels, QualityLimits, overlay_mask, quality_flags

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


def test_letters_with_segmented_holes_and_text_on_a_dark_box_are_overlays_not_fringes():
    """Review cases: a label whose letter holes ("8", "0") a model segments as pores, and white
    text on a dark label box segmented as one object, lie next to / inside objects like a
    fringe, but they enclose pores or lie in a pore's hole: flagged on_overlay."""
    grey, labels = membrane(26.0, seed=5)
    text = np.zeros_like(grey)
    cv2.putText(text, "800", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 255, 4)
    holes = ndimage.binary_fill_holes(text > 0) & (text == 0)
    img = np.where(text > 0, 255, np.where(holes, 15, grey)).astype(np.uint8)
    objects = np.where(holes, label_mask(holes.astype(np.uint8)) + labels.max(), labels * (text == 0))
    q = quality_flags(img, objects, trained_ecd_px=TRAINED)
    assert any(f.startswith("on_overlay") for f in q.flags), q.flags
    # a dark box with white text, the box segmented as one object around the letters
    box = np.zeros(grey.shape, bool)
    box[300:340, 200:340] = True
    words = np.zeros_like(grey)
    cv2.putText(words, "20kV", (212, 330), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    img = np.where(words > 0, 255, np.where(box, 10, grey)).astype(np.uint8)
    objects = np.where(box & (words == 0), labels.max() + 1, labels * ~box)
    q = quality_flags(img, objects, trained_ecd_px=TRAINED)
    assert any(f.startswith("on_overlay") for f in q.flags), q.flags


def test_a_long_line_along_pores_is_an_overlay_in_bands_too():
    """A thin full-height white line with pores against it: whole image or analysed in bands
    (each band sees only a piece of the line), it is an overlay, never a fringe."""
    grey = np.full((400, 200), 120, np.uint8)
    labels = np.zeros(grey.shape, np.int32)
    for k, top in enumerate(range(150, 260, 22), start=1):    # all in the middle band
        labels[top:top + 21, 78:98], grey[top:top + 21, 78:98] = k, 15
    grey[:, 98:100] = 255
    whole = quality_flags(grey, labels, trained_ecd_px=TRAINED)
    assert whole.values["overlay_share"] == 1.0 and whole.values["fringe_share"] == 0.0
    pixels = ObjectPixels(grey, QualityLimits())
    for r0, r1 in ((0, 150), (150, 260), (260, 400)):
        pixels.add(r0, labels[r0:r1])
    banded = quality_flags(grey, pixels=pixels, trained_ecd_px=TRAINED)
    assert banded.values["overlay_share"] == 1.0 and banded.values["fringe_share"] == 0
