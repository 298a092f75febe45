"""Partial annotations (ingest.ignore_value): the "not annotated" value survives ingest, tiling
and augmentation exactly, and the loss, the threshold calibration and the pixel and object
metrics skip it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from porescope.config import ParamsError, parse_group
from porescope.evaluation import metrics
from porescope.evaluation.evaluate_model import object_labels
from porescope.io.mask_encoding import IGNORE_ID
from porescope.preprocessing.augmentation import AugmentParams, augment_pair, augment_tiles, build_operations
from porescope.preprocessing.ingest import parse_ingest_params, run_ingest
from porescope.segmentation.losses import build_loss
from porescope.segmentation.train_model import annotated_area_threshold


def _png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def disks(shape, centres, radius) -> np.ndarray:
    """Instance labels 1..n of disks at ``centres``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, 1):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = k
    return out


# ------------------------------------------------------------------------------------ ingest


def _ingest(tmp_path: Path, mask: np.ndarray, **params) -> tuple[np.ndarray, Path]:
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    _png(src / "images" / "a.png", rng.integers(0, 256, mask.shape[:2], dtype=np.uint8))
    _png(src / "masks" / "a.png", mask)
    out = tmp_path / "out"
    run_ingest(src, out, parse_ingest_params({"tile_size": 32, **params}))
    return _read(out / "masks" / "a.png"), out


@pytest.mark.parametrize("fmt", ["binary", "labels", "instances", "rgb"])
def test_ingest_writes_the_ignore_value_exactly(tmp_path: Path, fmt: str) -> None:
    lab = disks((70, 90), [(20, 20), (20, 60), (50, 30)], 8)
    hidden = np.zeros(lab.shape, bool)
    hidden[40:70, 10:60] = True  # hides the third disk and some background
    expected = np.where(hidden, IGNORE_ID, lab > 0).astype(np.uint8)
    if fmt == "binary":
        raw, extra = np.where(hidden, 128, (lab > 0) * 255).astype(np.uint8), {"ignore_value": 128}
    elif fmt == "labels":
        raw = np.where(hidden, 7, lab > 0).astype(np.uint8)
        extra = {"n_classes": 2, "class_names": None, "ignore_value": 7}
    elif fmt == "instances":
        raw = np.where(hidden, 65535, lab).astype(np.uint16)
        extra = {"ignore_value": 65535, "class_names": None}
    else:
        raw = np.zeros((*lab.shape, 3), np.uint8)  # BGR on disk
        raw[lab > 0] = (0, 0, 255)
        raw[hidden] = (0, 255, 255)
        extra = {"colour_map": {"255,0,0": 1, "0,0,0": 0}, "class_names": None,
                 "ignore_value": "255,255,0"}
    mask, out = _ingest(tmp_path, raw, mask_format=fmt, **extra)
    np.testing.assert_array_equal(mask, expected)
    tiles = pd.read_csv(out / "tiles.csv")
    t = np.load(out / "tiles" / "masks.npy")[0]  # the tile of row 0 of tiles.csv
    np.testing.assert_array_equal(t, expected[:32, :32])
    # fg_fraction counts objects only, never not-annotated pixels
    row = tiles[(tiles["y"] == 32) & (tiles["x"] == 32)].iloc[0]
    block = expected[32:64, 32:64]
    assert row["fg_fraction"] == pytest.approx(np.count_nonzero(block == 1) / block.size)


def test_ingest_three_class_keeps_ignore_and_default_has_none(tmp_path: Path) -> None:
    lab = disks((64, 64), [(20, 20), (45, 45)], 8)
    hidden = np.zeros(lab.shape, bool)
    hidden[34:, 34:] = True
    raw = np.where(hidden, 128, (lab > 0) * 255).astype(np.uint8)
    mask, _ = _ingest(tmp_path / "a", raw, ignore_value=128, target="three_class")
    assert (mask[hidden] == IGNORE_ID).all()
    assert set(np.unique(mask[~hidden]).tolist()) == {0, 1, 2}
    # without ignore_value a third value stays an error (nothing is ignored by accident)
    with pytest.raises(Exception, match="distinct values"):
        _ingest(tmp_path / "b", raw)


@pytest.mark.parametrize("raw, key", [
    ({"ignore_value": 255}, "ignore_value"),                                  # = foreground
    ({"ignore_value": "x"}, "ignore_value"),
    ({"mask_format": "labels", "n_classes": 3, "class_names": None, "ignore_value": 2}, "ignore_value"),
    ({"mask_format": "rgb", "colour_map": {"255,0,0": 1, "0,0,0": 0}, "class_names": None,
      "ignore_value": "255,0,0"}, "ignore_value"),
    ({"mask_format": "labels", "n_classes": 256, "class_names": None, "ignore_value": 300}, "class_names"),
])
def test_bad_ignore_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ParamsError, match=f"ingest.{key}"):
        parse_ingest_params(raw)


# ------------------------------------------------------------------------------ augmentation


@pytest.mark.parametrize("ops", ["F", "RDZ", "RDZF"])
def test_ingest_then_augment_keeps_ignore_exact(tmp_path: Path, ops: str) -> None:
    lab = disks((128, 128), [(20, 20), (30, 90), (90, 30), (100, 100)], 12)
    hidden = np.zeros(lab.shape, bool)
    hidden[64:, :] = True
    raw = np.where(hidden, 100, (lab > 0) * 255).astype(np.uint8)
    _, ingested = _ingest(tmp_path, raw, ignore_value=100, tile_size=64)
    tiles = pd.read_csv(ingested / "tiles.csv")
    tiles["row"] = np.arange(len(tiles))  # the stacks' rows are tiles.csv's
    params = parse_group(AugmentParams, {"ops": ops, "size": 24, "workers": 1}, group="augment")
    out = tmp_path / "aug"
    out.mkdir()
    samples, _ = augment_tiles(tiles, out, params, [0, 1], 64, progress=False, seed=3,
                               images=ingested / "tiles/images.npy", masks=ingested / "tiles/masks.npy")
    by_tile = dict(zip(tiles["tile_id"], np.load(ingested / "tiles/masks.npy")))
    augmented = np.load(out / "masks.npy")
    seen_ignore = 0
    for r in samples.itertuples():
        m = augmented[r.i]
        assert set(np.unique(m).tolist()) <= {0, 1, IGNORE_ID}  # nothing in between
        src = by_tile[r.tile_id]
        if ops == "F":  # flips only: the exact mirror image of the ingested tile
            assert any(np.array_equal(m, f(src)) for f in
                       (lambda a: a, np.fliplr, np.flipud, lambda a: a[::-1, ::-1]))
        elif (src == IGNORE_ID).all():
            # fully hidden tile: every pixel stays hidden except those brought in from outside
            # (background, as Augmentor fills them)
            assert set(np.unique(m).tolist()) <= {0, IGNORE_ID}
            assert np.count_nonzero(m == IGNORE_ID) > 0.6 * m.size
        seen_ignore += int((m == IGNORE_ID).any())
    assert seen_ignore > 0


def test_ignore_channel_does_not_change_the_transform() -> None:
    """The extra not-annotated channel is resampled with the same draws: the image and the
    annotated classes come out as without it."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    mask = (disks((64, 64), [(20, 20), (44, 40)], 9) > 0).astype(np.uint8)
    hidden = mask.copy()
    hidden[:, 50:] = IGNORE_ID
    ops = build_operations("RDZ", parse_group(AugmentParams, {}, group="augment"))
    a = augment_pair(image, mask, ops, [True] * len(ops), (0, 1), 5, 6)
    b = augment_pair(image, hidden, ops, [True] * len(ops), (0, 1), 5, 6)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    assert (b[1] == IGNORE_ID).any()
    # away from the edge of the hidden region (where it competes in the argmax) the classes agree
    away = ~ndimage.binary_dilation(b[1] == IGNORE_ID, iterations=2)
    np.testing.assert_array_equal(a[1][away], b[1][away])


# ---------------------------------------------------------------------------------------- loss


@pytest.mark.parametrize("n_classes, spec, weights", [
    (1, "bce+dice", None), (1, {"bce": 1.0, "focal": 0.5, "jaccard": 1.0}, [0.3, 0.7]),
    (3, {"ce": 1.0, "dice": 1.0, "tversky": 0.5}, [0.2, 0.3, 0.5]), (3, "focal+jaccard", None)])
def test_loss_with_ignore_equals_loss_of_the_annotated_pixels(n_classes, spec, weights) -> None:
    torch.manual_seed(0)
    loss_fn = build_loss(spec, n_classes, weights)
    logits = torch.randn(3, n_classes, 32, 32, requires_grad=True)
    target = torch.randint(0, max(n_classes, 2), (3, 32, 32))
    target[:, 8:24, 4:28] = torch.randint(0, max(n_classes, 2), (3, 16, 24))
    partial = torch.full_like(target, IGNORE_ID)
    partial[:, 8:24, 4:28] = target[:, 8:24, 4:28]  # only this block is annotated
    value = loss_fn(logits, partial)
    # the reference: the same loss on a batch cut down to the annotated block
    reference = loss_fn(logits[:, :, 8:24, 4:28], target[:, 8:24, 4:28])
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=1e-5, abs=1e-6)
    # and it is not the loss of the whole tile
    assert float(value.detach()) != pytest.approx(float(loss_fn(logits, target).detach()), rel=1e-3)
    value.backward()
    grad = logits.grad.abs().sum(1)
    assert float(grad[:, :8].sum()) == 0.0 and float(grad[:, 8:24, 4:28].sum()) > 0


def test_loss_without_annotated_pixels_is_zero_with_a_graph() -> None:
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    value = build_loss("bce+dice", 1)(logits, torch.full((2, 8, 8), IGNORE_ID))
    value.backward()
    assert float(value.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0


# -------------------------------------------------------------------------------- calibration


def test_threshold_calibration_skips_not_annotated_pixels() -> None:
    rng = np.random.default_rng(2)
    proba = rng.random((4, 32, 32)).astype(np.float32)
    masks = (rng.random((4, 32, 32)) < 0.3).astype(np.uint8)
    partial = masks.copy()
    partial[:, :, 20:] = IGNORE_ID
    proba_hidden_high = proba.copy()
    proba_hidden_high[:, :, 20:] = 0.99  # whatever is predicted there must not matter
    t = annotated_area_threshold(proba_hidden_high, partial)
    assert t == annotated_area_threshold(proba[:, :, :20], masks[:, :, :20])
    assert t != annotated_area_threshold(proba_hidden_high, masks)


# ---------------------------------------------------------------------------------- metrics


SHAPE = (160, 160)
CENTRES = [(25, 25), (25, 75), (25, 130), (75, 25), (75, 80), (80, 130), (130, 30), (130, 80),
           (128, 128), (55, 52)]


def _scene(rng: np.random.Generator):
    """Truth (some touching pairs), a prediction with shifts, a miss, a merge and false
    positives, and a not-annotated region covering half of the true objects and their
    predictions."""
    truth_lab = disks(SHAPE, CENTRES, 11)
    truth = (truth_lab > 0).astype(np.uint8)
    shifted = [(y + int(rng.integers(-2, 3)), x + int(rng.integers(-2, 3))) for y, x in CENTRES]
    pred = (disks(SHAPE, shifted[1:], 10) > 0).astype(np.uint8)  # object 1 missed
    pred[5:12, 140:150] = 1  # a false positive in the annotated part
    pred[140:150, 5:14] = 1  # a false positive in the hidden part
    hide = np.isin(truth_lab, [2, 4, 6, 8, 9])
    region = ndimage.binary_dilation(hide, iterations=5)
    region[138:152, 3:16] = True
    return truth, pred, region


@pytest.mark.parametrize("method", ["components", "watershed"])
def test_hiding_half_the_objects_leaves_the_scores_of_the_rest_unchanged(method: str) -> None:
    truth, pred, region = _scene(np.random.default_rng(4))
    # the partial annotation: hidden objects (and their surroundings) painted "not annotated"
    partial = np.where(region, IGNORE_ID, truth).astype(np.uint8)
    # the image that contains only the other objects, predicted the same there
    only_truth = np.where(region, 0, truth).astype(np.uint8)
    only_pred = np.where(region, 0, pred).astype(np.uint8)
    got = metrics.pixel_counts(partial, pred)
    want = metrics.pixel_counts(only_truth, only_pred)
    pd.testing.assert_frame_equal(got, want)
    assert not got.equals(metrics.pixel_counts(truth, pred))  # the hidden part mattered
    kw = {"method": method, "h": 2.0, "min_distance": 5, "split_method": "h_maxima", "connectivity": 8}
    got_obj = metrics.match_objects(*object_labels(partial, pred, kw))
    want_obj = metrics.match_objects(*object_labels(only_truth, only_pred, kw))
    pd.testing.assert_frame_equal(got_obj, want_obj)
    assert int(got_obj["n_true"][0]) == 5 and int(got_obj["fp"][0]) >= 1 and int(got_obj["fn"][0]) >= 1
    full = metrics.match_objects(*object_labels(truth, pred, kw))
    assert int(full["n_true"][0]) > int(got_obj["n_true"][0])


def test_objects_mostly_hidden_are_dropped_others_kept() -> None:
    t = np.zeros((10, 10), np.int32)
    p = np.zeros((10, 10), np.int32)
    t[0:4, 0:4] = 1
    p[0:4, 0:4] = 1          # 0 % hidden: kept
    p[6:10, 0:4] = 2         # 16 px, 12 hidden (75 %): dropped
    p[6:10, 6:10] = 3        # 16 px, 8 hidden (50 %): kept, its hidden half removed
    hidden = np.zeros((10, 10), bool)
    hidden[7:10, 0:4] = True
    hidden[6:10, 8:10] = True
    tt, pp = metrics.drop_unannotated_objects(t, p, hidden)
    np.testing.assert_array_equal(tt, t)
    assert set(np.unique(pp).tolist()) == {0, 1, 3}
    assert np.count_nonzero(pp == 3) == 8 and not (pp[hidden]).any()


def test_pixel_counts_ignore_value_can_be_turned_off() -> None:
    truth = np.array([[1, 255]], np.uint8)
    pred = np.array([[1, 1]], np.uint8)
    assert metrics.pixel_counts(truth, pred)["fp"].item() == 0
    assert metrics.pixel_counts(truth, pred, ignore=None)["fp"].item() == 1
