"""A big mask analysed in bands of whole regions gives the whole-image numbers (issue 14).

``analyse_mask(..., band_pixels=N)`` never makes an image-sized label image; these tests force
tiny bands on small masks and compare every table and summary value with the whole-image
analysis, over margins, data bars, debris removal, region tables, border-class models, pores
that no watershed marker reaches, and regions taller than a band.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from porescope.analysis.membrane import analyse_mask, image_rng
from porescope.analysis.params import AnalyzeParams


def _membrane(shape=(240, 180), seed=0, n=70, r=(3, 9)):
    """Random overlapping discs (touching pairs, chains), thin slivers and single-pixel debris."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, np.uint8)
    for cy, cx, rad in zip(rng.integers(0, shape[0], n), rng.integers(0, shape[1], n),
                           rng.uniform(*r, n)):
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad] = 1
    for y, x in zip(rng.integers(2, shape[0] - 2, 6), rng.integers(0, shape[1] - 12, 6)):
        mask[y:y + 2, x:x + 12] = 1          # slivers: no watershed marker reaches them
    for y, x in zip(rng.integers(0, shape[0], 15), rng.integers(0, shape[1], 15)):
        mask[y, x] = 1                        # debris
    mask[:, 40:43] = 0
    mask[30:200, 41] = 1                      # a region taller than a band
    return mask


def _params(**kw):
    return AnalyzeParams.from_mapping({"spatial": {"n_sim": 19}, **kw})


def _assert_same(whole, banded):
    a, b = whole.objects, banded.objects
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) > 0
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), rtol=0, atol=0,
                                       err_msg=c)
        else:
            assert a[c].tolist() == b[c].tolist(), c
    for k, v in whole.summary.items():
        w = banded.summary[k]
        if isinstance(v, float) and not isinstance(w, str):
            assert (math.isnan(v) and math.isnan(w)) or w == v, k
        else:
            assert w == v, k
    pd.testing.assert_frame_equal(whole.counts.drop(columns="detail"),
                                  banded.counts.drop(columns="detail"))
    assert banded.labels is None and whole.labels is not None


@pytest.mark.parametrize("kw, analyse_kw", [
    ({}, {}),
    ({"min_region_area_px": 5}, {"margin": 6}),
    ({"min_region_area_px": 3}, {"bar_rows": 17}),
    ({"objects": "regions"}, {"margin": 3, "bar_rows": 9}),
])
@pytest.mark.parametrize("band_pixels", [900, 5000])
def test_bands_equal_whole_image(kw, analyse_kw, band_pixels):
    mask = _membrane()
    p = _params(**kw)
    whole = analyse_mask(mask, params=p, pixel_size_nm=50.0, rng=image_rng(3, "m"), **analyse_kw)
    banded = analyse_mask(mask, params=p, pixel_size_nm=50.0, rng=image_rng(3, "m"),
                          band_pixels=band_pixels, **analyse_kw)
    _assert_same(whole, banded)


@pytest.mark.parametrize("kw", [{"split": {"method": "peak_local_max", "min_distance": 4}},
                                {"connectivity": 4}])
def test_other_splits_in_bands_keep_the_regions(kw):
    """Exact equality holds for the default split (h-maxima, 8-connected). peak_local_max
    compares EDT peaks within min_distance across neighbouring pores, and the 4-connected
    h-maxima split breaks watershed ties between diagonal neighbours differently, so a few
    pixels may change sides in bands; the regions, porosity and region-based counts cannot."""
    mask = _membrane()
    p = _params(**kw)
    whole = analyse_mask(mask, params=p)
    banded = analyse_mask(mask, params=p, band_pixels=900)
    for key in ("porosity", "n_regions", "count_median_area", "count_boolean_model"):
        assert banded.summary[key] == whole.summary[key], key
    assert banded.summary["n_pores"] == pytest.approx(whole.summary["n_pores"], rel=0.05)


def test_border_class_model_in_bands():
    mask = _membrane(seed=4)
    three = mask.copy()
    edge = mask.astype(bool) & ~np.pad(mask.astype(bool), 1)[2:, 1:-1]   # bottom edges: border class
    three[edge] = 2
    names = {0: "background", 1: "pore", 2: "border"}
    whole = analyse_mask(three, params=_params(), class_names=names)
    banded = analyse_mask(three, params=_params(), class_names=names, band_pixels=1500)
    assert whole.summary["split_method"] == banded.summary["split_method"] == "border_class"
    # the seeds' watershed runs on the distance to the nearest interior pixel, which another
    # pore's interior can supply: a few border pixels between touching seeds may change sides
    for key in ("porosity", "n_regions", "n_pores", "count_split_labels", "count_median_area"):
        assert banded.summary[key] == whole.summary[key], key
    a, b = whole.objects, banded.objects
    np.testing.assert_allclose(b["Area"], a["Area"], rtol=0.05)
    assert (a["Area"] != b["Area"]).mean() < 0.1


def test_on_labels_sees_every_pore_once_in_bands():
    mask = _membrane(seed=7)
    mask[:, 41] = 0
    seen = []
    a = analyse_mask(mask, params=_params(), band_pixels=2000,
                     on_labels=lambda r0, lab: seen.append((r0, lab.copy())))
    assert len(seen) >= 3
    starts = [r0 for r0, _ in seen]
    assert starts[0] == 0 and starts == sorted(starts)
    # bands may share rows (a band holds its pores whole) but never a pixel
    covered = np.zeros(mask.shape, np.int32)
    for r0, lab in seen:
        covered[r0:r0 + lab.shape[0]] += lab > 0
    whole = analyse_mask(mask, params=_params())
    assert covered.max() == 1
    assert np.array_equal(covered > 0, whole.labels > 0)
    assert sum(int(lab.max(initial=0)) for _, lab in seen) == len(a.objects) == len(whole.objects)


def test_whole_image_path_unchanged_below_band_size():
    mask = _membrane(seed=2)
    a = analyse_mask(mask, params=_params(), band_pixels=mask.size)
    assert a.labels is not None


def test_empty_and_full_masks_in_bands():
    p = _params()
    empty = np.zeros((50, 40), np.uint8)
    assert analyse_mask(empty, params=p, band_pixels=100).summary["n_pores"] == 0
    full = np.ones((50, 40), np.uint8)
    w, b = analyse_mask(full, params=p), analyse_mask(full, params=p, band_pixels=100)
    assert b.summary["n_regions"] == w.summary["n_regions"] == 1
    assert b.summary["porosity"] == w.summary["porosity"] == 1.0


def test_overlay_mask_rows_equal_whole_image():
    from porescope.measure.quality import overlay_mask

    rng = np.random.default_rng(5)
    grey = rng.integers(100, 200, (200, 150), dtype=np.uint8)
    grey[40:43, 10:140] = 255            # a bar
    grey[60:130, 70:72] = 255            # a tall stroke crossing many windows
    grey[rng.integers(0, 200, 30), rng.integers(0, 150, 30)] = 255   # specks
    grey[150:160, 20:25] = 250           # a 10 px blob: not a stroke
    whole = overlay_mask(grey)
    assert whole[41, 50] and whole[100, 71] and not whole[155, 22]
    for r0, r1 in [(0, 1), (0, 45), (45, 61), (61, 62), (99, 131), (120, 200), (199, 200)]:
        assert np.array_equal(overlay_mask(grey, rows=(r0, r1)), whole[r0:r1]), (r0, r1)


@pytest.mark.parametrize("margin", [0, 5])
def test_quality_values_in_bands_equal_whole_image(margin):
    from porescope.measure.quality import ObjectPixels, QualityLimits, quality_flags

    mask = _membrane(seed=9)
    mask[:, 41] = 0
    rng = np.random.default_rng(9)
    grey = np.where(mask > 0, 30, 150).astype(np.uint8) + rng.integers(0, 20, mask.shape, dtype=np.uint8)
    grey[100:104, :] = 255               # a bright line over pores and surface
    grey[rng.integers(0, 240, 40), rng.integers(0, 180, 40)] = 250
    bright = (np.arange(mask.shape[0])[:, None] // 60 == 2) & (mask > 0)
    grey[bright] = 220                   # some bright "pores"
    p = _params()
    limits = QualityLimits(max_overlay_share=1.0)
    whole = analyse_mask(mask, params=p, margin=margin)
    q_whole = quality_flags(grey, whole.labels, n_uncertain=500, trained_ecd_px=(8, 12, 20),
                            limits=limits)
    pixels = ObjectPixels(grey, limits)
    banded = analyse_mask(mask, params=p, margin=margin, band_pixels=1500, on_labels=pixels.add)
    q_banded = quality_flags(grey, pixels=pixels, n_uncertain=500, trained_ecd_px=(8, 12, 20),
                             limits=limits)
    assert len(banded.objects) == len(whole.objects)
    assert q_banded == q_whole
    assert 0 < q_whole.values["bright_share"] < 1 and 0 < q_whole.values["overlay_share"] < 1
