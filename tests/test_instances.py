"""Tests of porescope.segmentation.instances on drawn discs, ellipses and squares with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from porescope.segmentation.instances import (
    instances_from_three_class,
    label_components,
    separate_objects,
    split_touching,
    three_class_from_binary,
    three_class_from_instances,
)

SHAPE = (120, 200)
RR, CC = np.mgrid[: SHAPE[0], : SHAPE[1]]


def disc(y, x, r):
    return (RR - y) ** 2 + (CC - x) ** 2 <= r * r


def ellipse(y, x, a, b, angle_deg):
    t = np.deg2rad(angle_deg)
    u = (CC - x) * np.cos(t) + (RR - y) * np.sin(t)
    v = -(CC - x) * np.sin(t) + (RR - y) * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def n_objects(labels):
    return len(np.unique(labels[labels > 0]))


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


# ------------------------------------------------------------------------ label_components


def test_label_components_connectivity():
    m = np.zeros((5, 5), np.uint8)
    m[1, 1] = m[2, 2] = 255  # diagonal neighbours
    m[4, 4] = 1
    assert n_objects(label_components(m, 8)) == 2
    assert n_objects(label_components(m, 4)) == 3
    lab = label_components(m)
    assert lab.dtype == np.int32 and lab[1, 1] == lab[2, 2] != lab[4, 4]
    with pytest.raises(ValueError, match="connectivity"):
        label_components(m, 6)
    with pytest.raises(TypeError, match="dtype"):
        label_components(m.astype(float))


# --------------------------------------------------------------------------- split_touching


def test_two_overlapping_discs_are_split_along_the_bisector():
    a, b = disc(60, 70, 20), disc(60, 100, 20)  # d = 30 < 2R: overlapping
    lab = split_touching(a | b)
    assert n_objects(lab) == 2
    assert np.array_equal(lab > 0, a | b)  # union preserved exactly
    only_a, only_b = a & ~b, b & ~a
    la, lb = np.unique(lab[only_a]), np.unique(lab[only_b])
    assert len(la) == 1 and len(lb) == 1 and la[0] != lb[0]
    # the cut lies on the bisector x = 85 within a pixel
    cols_a = CC[lab == la[0]]
    assert cols_a.max() in (84, 85, 86)


@pytest.mark.parametrize("angle", [0, 17, 30, 45, 60, 90, 123])
@pytest.mark.parametrize("a,b", [(30, 20), (15, 10), (9, 6)])
def test_isolated_ellipse_aspect_1_5_is_not_split(a, b, angle):
    lab = split_touching(ellipse(60, 100, a, b, angle))
    assert n_objects(lab) == 1


@pytest.mark.parametrize("angle", [0, 30, 45])
def test_elongated_ellipse_with_tied_edt_summits_is_not_split(angle):
    """A 60 x 20 ellipse at 30 deg has three separate EDT pixels of the same top value
    (skimage.morphology.h_maxima would return three markers); it must stay one object."""
    assert n_objects(split_touching(ellipse(60, 100, 60, 20, angle))) == 1


@pytest.mark.parametrize("d,h,expect", [(20, 2.0, 2), (12, 2.0, 1), (16, 1.0, 2), (16, 2.0, 1)])
def test_split_follows_the_dynamic_rule(d, h, expect):
    """Two discs of radius 20 at centre distance d: summit dynamic R - sqrt(R^2 - d^2/4) is 2.68
    (d=20), 0.92 (d=12), 1.67 (d=16); split iff dynamic >= h (cases kept away from equality)."""
    R = 20
    dyn = R - np.sqrt(R * R - d * d / 4)
    assert (dyn >= h) == (expect == 2)
    lab = split_touching(disc(60, 90, R) | disc(60, 90 + d, R), h=h)
    assert n_objects(lab) == expect


def test_chain_of_three_touching_discs():
    centres = [(60, 50), (60, 76), (60, 102)]
    discs = [disc(y, x, 15) for y, x in centres]
    lab = split_touching(discs[0] | discs[1] | discs[2])
    assert n_objects(lab) == 3
    for (y, x), dd in zip(centres, discs):
        ids, counts = np.unique(lab[dd], return_counts=True)
        obj = lab == ids[np.argmax(counts)]
        assert abs(CC[obj].mean() - x) < 1.5 and abs(RR[obj].mean() - y) < 0.5


def test_peak_local_max_method_splits_two_discs():
    lab = split_touching(disc(60, 70, 20) | disc(60, 100, 20), method="peak_local_max", min_distance=10)
    assert n_objects(lab) == 2


def test_tiny_and_empty_objects_survive():
    m = np.zeros((20, 20), bool)
    m[3, 3] = True  # 1 px: EDT 1 < h, no marker
    m[10:12, 10:12] = True
    m[15:17, 2:12] = True  # 2 px thin bar
    lab = split_touching(m)
    assert n_objects(lab) == 3 and np.array_equal(lab > 0, m)
    assert not split_touching(np.zeros((7, 9), np.uint8)).any()
    with pytest.raises(ValueError, match="method"):
        split_touching(m, method="nope")
    with pytest.raises(ValueError, match="2-D"):
        split_touching(np.zeros((2, 3, 4), bool))


def _non_touching_discs(rng, n, shape, rmin=4, rmax=12, gap=3, avoid=()):
    """Label image of n discs whose edges are more than ``gap`` px apart (and from ``avoid``
    discs, given as (y, x, r)); labels 1..n."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    placed = []
    while len(placed) < n:
        r = rng.uniform(rmin, rmax)
        y, x = rng.uniform(r + 1, np.array(shape) - r - 1)
        if all(np.hypot(y - py, x - px) > r + pr + gap for py, px, pr in [*placed, *avoid]):
            placed.append((y, x, r))
    lab = np.zeros(shape, np.int32)
    for k, (y, x, r) in enumerate(placed):
        lab[(rr - y) ** 2 + (cc - x) ** 2 <= r * r] = k + 1
    return lab


def test_counts_on_random_non_touching_discs():
    rng = np.random.default_rng(2024)
    truth = _non_touching_discs(rng, 40, (256, 256))
    mask = truth > 0
    assert n_objects(label_components(mask)) == 40
    lab = split_touching(mask)
    assert n_objects(lab) == 40
    # every recovered object is exactly one drawn disc
    for k in range(1, 41):
        assert len(np.unique(lab[truth == k])) == 1
    assert n_objects(instances_from_three_class(three_class_from_binary(mask))) == 40


# ------------------------------------------------------------------------------ three-class


def test_three_class_of_a_square_by_hand():
    lab = np.zeros((20, 30), np.int32)
    lab[5:15, 5:15] = 3  # 10 x 10
    lab[5:15, 15:25] = 8  # touching neighbour
    cm = three_class_from_instances(lab, border_width=2)
    assert cm.dtype == np.uint8
    # each square: 2-px band all round (its neighbour's side included) -> 6 x 6 interior
    assert (cm == 1).sum() == 2 * 36 and (cm == 2).sum() == 2 * 64
    assert (cm[7:13, 7:13] == 1).all() and (cm[7:13, 17:23] == 1).all()
    assert (cm[5:15, 13:17] == 2).all()  # 4-px line where the squares touch
    assert (cm[lab == 0] == 0).all()
    # no border along the image frame
    lab2 = np.zeros((10, 10), np.int32)
    lab2[:, :5] = 1
    cm2 = three_class_from_instances(lab2, border_width=1)
    assert (cm2[:, :4] == 1).all() and (cm2[:, 4] == 2).all()
    assert (three_class_from_instances(lab, border_width=0) == (lab > 0)).all()


def test_three_class_round_trip_recovers_instances():
    """labels -> three-class map -> labels. Isolated discs must come back exactly; touching discs
    (cut between centres by nearest centre, a Voronoi split) with IoU > 0.98 (observed: exact
    for border widths 1-3; border pixels along an oblique touching line could in principle be
    reassigned by watershed tie-breaking, hence the tolerance)."""
    groups = [[(30, 30, 14), (30, 52, 14)], [(85, 140, 12), (85, 160, 12), (103, 150, 12)]]
    rng = np.random.default_rng(7)
    lab = _non_touching_discs(rng, 12, SHAPE, rmin=6, rmax=10, gap=4, avoid=[c for g in groups for c in g])
    n_iso = int(lab.max())
    nxt = n_iso + 1
    for grp in groups:
        union = np.any([disc(y, x, r) for y, x, r in grp], axis=0)
        owner = np.argmin([(RR - y) ** 2 + (CC - x) ** 2 for y, x, _ in grp], axis=0)
        lab[union] = nxt + owner[union]
        nxt += len(grp)
    assert n_objects(lab) == n_iso + 5
    for bw in (1, 2, 3):
        back = instances_from_three_class(three_class_from_instances(lab, border_width=bw))
        assert n_objects(back) == n_iso + 5
        assert np.array_equal(back > 0, lab > 0)
        for k in range(1, nxt):
            obj = lab == k
            ids, counts = np.unique(back[obj], return_counts=True)
            rec = back == ids[np.argmax(counts)]
            if k <= n_iso:
                assert np.array_equal(rec, obj)
            else:
                assert _iou(rec, obj) > 0.98, (bw, k, _iou(rec, obj))


def test_three_class_from_binary_splits_touching_discs():
    mask = disc(60, 70, 20) | disc(60, 100, 20)
    cm = three_class_from_binary(mask, border_width=2)
    assert set(np.unique(cm)) == {0, 1, 2}
    assert n_objects(label_components(cm == 1)) == 2  # two interiors, separated by the border
    assert n_objects(instances_from_three_class(cm)) == 2


def test_instances_from_three_class_seedless_and_ids():
    cm = np.zeros((12, 12), np.uint8)
    cm[1:4, 1:4] = 2  # border only: no interior
    cm[6:11, 6:11] = 2
    cm[7:10, 7:10] = 5  # interior under a custom id
    lab = instances_from_three_class(cm, interior=5, border=2)
    assert n_objects(lab) == 2 and np.array_equal(lab > 0, cm > 0)
    lab2 = instances_from_three_class(cm, interior=5, border=2, keep_seedless=False)
    assert n_objects(lab2) == 1 and not lab2[1:4, 1:4].any()
    with pytest.raises(ValueError, match="differ"):
        instances_from_three_class(cm, interior=2, border=2)
    with pytest.raises(ValueError, match="border_width"):
        three_class_from_instances(cm.astype(np.int32), border_width=-1)


def test_au_tetrahedra_boundary_lines_need_4_connectivity():
    """Real masks (red particle, blue 1-px boundary lines between touching particles): the lines
    are only 4-connected, so 8-connected interiors leak across them. With connectivity 4 every
    red 4-component is one object and every blue pixel is absorbed by a neighbour."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "au-nanoparticles-tem" / "tetrahedra" / "masks"
    files = sorted(data.glob("*.tif")) if data.is_dir() else []
    if not files:
        pytest.skip(f"real data not found at {data}")
    tifffile = pytest.importorskip("tifffile")
    m = tifffile.imread(files[0])[..., :3]
    red = (m[..., 0] > 127) & (m[..., 1] < 128) & (m[..., 2] < 128)
    blue = (m[..., 2] > 127) & (m[..., 0] < 128) & (m[..., 1] < 128)
    cm = np.zeros(red.shape, np.uint8)
    cm[red], cm[blue] = 1, 2
    lab4 = instances_from_three_class(cm, connectivity=4, keep_seedless=False)
    lab8 = instances_from_three_class(cm, connectivity=8, keep_seedless=False)
    n_red4 = n_objects(label_components(red, 4))
    assert n_objects(lab4) == n_red4
    assert n_objects(lab8) < n_red4  # the leak the docstring warns about
    # every blue pixel 4-adjacent to a particle is assigned to an object
    from scipy import ndimage as ndi

    touching = blue & ndi.binary_dilation(red, ndi.generate_binary_structure(2, 1))
    assert touching.any() and (lab4[touching] > 0).all()


def test_separate_objects_dispatch():
    two = (disc(60, 70, 20) | disc(60, 100, 20)).astype(np.uint8)
    assert n_objects(separate_objects(two, "components")) == 1
    assert n_objects(separate_objects(two, "watershed", h=2.0)) == 2
    assert n_objects(separate_objects(two, "watershed", split_method="peak_local_max", min_distance=10)) == 2
    cm = three_class_from_binary(two)
    assert n_objects(separate_objects(cm, "three_class")) == 2
    assert n_objects(separate_objects(cm * 2, "three_class", interior=2, border=4)) == 2
    with pytest.raises(ValueError, match="method"):
        separate_objects(two, "magic")


# ------------------------------------------------- split_touching in bands (bounded memory)
def _random_mask(rng, rows, cols):
    """Overlapping discs and ellipses, thin lines and rings, some cut by the frame, and specks
    (components whose EDT never exceeds h, which no marker reaches)."""
    import cv2

    m = np.zeros((rows, cols), np.uint8)
    for _ in range(int(rng.integers(5, 30))):
        x, y = int(rng.integers(-5, cols + 5)), int(rng.integers(-5, rows + 5))
        kind = rng.integers(0, 4)
        if kind == 0:
            cv2.circle(m, (x, y), int(rng.integers(1, 15)), 1, -1)
        elif kind == 1:
            cv2.ellipse(m, (x, y), (int(rng.integers(1, 20)), int(rng.integers(1, 8))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 2:
            cv2.line(m, (x, y), (int(rng.integers(0, cols)), int(rng.integers(0, rows))), 1,
                     int(rng.integers(1, 3)))
        else:
            cv2.circle(m, (x, y), int(rng.integers(3, 15)), 1, int(rng.integers(1, 3)))
    m |= (rng.random((rows, cols)) < 0.01).astype(np.uint8)
    return m


@pytest.mark.parametrize("seed", range(40))
def test_split_by_bands_matches_the_whole_image(seed):
    """Bands of whole components give the whole-image objects: same number, same pixels of
    the mask, same numbering (objects correspond one to one), and pixel-identical labels when
    one band holds the image. Only pixels equidistant from two markers may go either way (the
    watershed's order among equal-valued marker pixels depends on what else is queued)."""
    rng = np.random.default_rng(seed)
    rows, cols = (int(v) for v in rng.integers(20, 120, 2))
    mask = _random_mask(rng, rows, cols)
    h = float(rng.choice([0.5, 1.0, 2.0, 3.0]))
    whole = split_touching(mask, h=h, band_pixels=None)
    assert np.array_equal(split_touching(mask, h=h, band_pixels=rows * cols), whole)
    banded = split_touching(mask, h=h, band_pixels=int(rng.integers(1, 3 * cols)))
    assert banded.max() == whole.max() and np.array_equal(banded > 0, mask > 0)
    n = int(whole.max()) + 1
    overlap = np.bincount(whole.ravel() * n + banded.ravel(), minlength=n * n).reshape(n, n)
    assert np.array_equal(overlap[1:, 1:].argmax(axis=1), np.arange(n - 1))   # same numbering
    assert (whole != banded).sum() <= 0.05 * (mask > 0).sum()


def test_split_by_bands_numbers_unreached_specks_last():
    """A speck (EDT 1 <= h) gets no marker, so it is numbered after every split object even
    when it comes first in raster order, as the whole-image watershed numbers it."""
    mask = np.zeros((60, 80), np.uint8)
    mask[2, 3] = 1                                        # speck, first in raster order
    mask |= (disc(30, 20, 9) | disc(30, 33, 9) | disc(45, 65, 7))[:60, :80].astype(np.uint8)
    labels = split_touching(mask, h=2.0, band_pixels=80)
    assert labels[2, 3] == labels.max() == 4
    assert np.array_equal(labels, split_touching(mask, h=2.0, band_pixels=None))


def test_split_by_bands_bounds_the_working_memory():
    """Traced peak memory per image pixel: about 15 B/px in bands of 64 k px against ~100 B/px
    for the whole image at once (the control, so the test can fail)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    mask = np.zeros((1024, 1024), np.uint8)
    yy, xx = np.mgrid[:1024, :1024]
    for cy, cx in rng.integers(0, 1024, size=(600, 2)):
        sl = np.s_[max(0, cy - 7):cy + 8, max(0, cx - 7):cx + 8]
        mask[sl] |= ((yy[sl] - cy) ** 2 + (xx[sl] - cx) ** 2 <= 36).astype(np.uint8)
    peaks = {}
    for band in (65536, None):
        tracemalloc.start()
        split_touching(mask, h=2.0, band_pixels=band)
        peaks[band] = tracemalloc.get_traced_memory()[1] / mask.size
        tracemalloc.stop()
    assert peaks[65536] < 25 < 60 < peaks[None], peaks


def _touching_discs_with_gap(gap_rows):
    """Two discs of radius 20 px touching along a short chord, border line width 1 px; the
    border pixels in ``gap_rows`` of the touching line are turned to interior (a broken line)."""
    left, right = disc(60, 70, 20), disc(60, 106, 20)
    lab = np.zeros(SHAPE, np.int32)
    lab[left], lab[right & ~left] = 1, 2
    cm = three_class_from_instances(lab, border_width=1)
    touch = np.zeros(SHAPE, bool)
    touch[gap_rows, 86:91] = True
    cm[touch & (cm == 2)] = 1
    return lab, cm


def test_seed_h_splits_touching_objects_through_a_gap_in_the_border_line():
    lab, cm = _touching_discs_with_gap(slice(57, 64))
    assert n_objects(label_components(cm == 1, 4)) == 1           # the gap joins both interiors
    assert n_objects(instances_from_three_class(cm, connectivity=4)) == 1   # paper 003: merged
    split = instances_from_three_class(cm, connectivity=4, seed_h=2.0)
    assert n_objects(split) == 2 and np.array_equal(split > 0, cm > 0)
    for k in (1, 2):   # each object is one disc, up to the pixels of the touching line
        ids, counts = np.unique(split[lab == k], return_counts=True)
        assert _iou(split == ids[np.argmax(counts)], lab == k) > 0.95
    assert n_objects(separate_objects(cm, "three_class", connectivity=4, seed_h=2.0)) == 2
    # a neck shallower than seed_h is not cut: R - gap half-width = 20 - 3.5 < 18
    assert n_objects(instances_from_three_class(cm, connectivity=4, seed_h=18.0)) == 1


def test_seed_h_keeps_whole_objects_whole_and_respects_connectivity():
    # an unbroken border: the same objects as without seed_h; an elongated ellipse stays one
    lab, cm = _touching_discs_with_gap(slice(0, 0))
    cm = np.where(ellipse(25, 160, 30, 9, 20), three_class_from_instances(ellipse(25, 160, 30, 9, 20).astype(np.int32), 1), cm)
    ref = instances_from_three_class(cm, connectivity=4)
    got = instances_from_three_class(cm, connectivity=4, seed_h=2.0)
    assert n_objects(ref) == n_objects(got) == 3
    assert all(len(np.unique(got[ref == k])) == 1 for k in range(1, 4))
    # two interiors that touch only diagonally are two objects under connectivity 4, seed_h or not
    two = np.zeros((20, 20), np.uint8)
    two[2:10, 2:10] = 1
    two[10:18, 10:18] = 1
    assert n_objects(instances_from_three_class(two, connectivity=4, seed_h=1.0)) == 2
    assert n_objects(instances_from_three_class(two, connectivity=8, seed_h=50.0)) == 1
    with pytest.raises(ValueError, match="seed_h"):
        instances_from_three_class(two, seed_h=0.0)
