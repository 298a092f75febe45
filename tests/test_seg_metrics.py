"""Tests of porescope.evaluation.metrics on hand-made masks with hand-computed answers."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from porescope.evaluation.metrics import (
    DEFAULT_IOU_THRESHOLDS,
    iou_matrix,
    iou_pairs,
    match_objects,
    object_scores_table,
    pixel_counts,
    pixel_scores_table,
    scores_from_counts,
    summarise_map,
    summarise_object_scores,
    summarise_pixel_scores,
)


def _scores(truth, pred, classes=(1,)):
    counts = pixel_counts(truth, pred, classes)
    s = scores_from_counts(counts["tp"], counts["fp"], counts["fn"])
    return counts, {k: v.tolist() for k, v in s.items()}


# ------------------------------------------------------------------------------ pixel level


def test_shifted_square_by_hand():
    truth = np.zeros((4, 4), np.uint8)
    truth[0:2, 0:2] = 1
    pred = np.zeros((4, 4), np.uint8)
    pred[0:2, 1:3] = 1  # overlap 2 px, 2 extra, 2 missed
    counts, s = _scores(truth, pred)
    assert counts[["tp", "fp", "fn"]].values.tolist() == [[2, 2, 2]]
    assert s["dice"] == [0.5] and s["precision"] == [0.5] and s["recall"] == [0.5]
    assert s["iou"] == pytest.approx([1 / 3])


def test_superset_prediction_by_hand():
    truth = np.array([[1, 1, 1, 0, 0, 0]], np.int32)
    pred = np.array([[1, 1, 1, 1, 1, 0]], np.int32)
    _, s = _scores(truth, pred)
    assert s["dice"] == pytest.approx([6 / 8]) and s["iou"] == pytest.approx([3 / 5])
    assert s["precision"] == pytest.approx([3 / 5]) and s["recall"] == [1.0]
    # bool masks are class 1
    _, sb = _scores(truth.astype(bool), pred.astype(bool))
    assert sb == s


@pytest.mark.parametrize(
    "t_fg,p_fg,expected",
    [
        (False, False, 1.0),  # nothing to find, nothing found
        (False, True, 0.0),  # false alarm on an empty image
        (True, False, 0.0),  # everything missed
    ],
)
def test_empty_conventions(t_fg, p_fg, expected):
    truth = np.zeros((5, 5), np.uint8)
    pred = np.zeros((5, 5), np.uint8)
    truth[1:3, 1:3] = t_fg
    pred[2:4, 2:4] = p_fg
    _, s = _scores(truth, pred)
    assert s == {"dice": [expected], "iou": [expected], "precision": [expected], "recall": [expected]}


def test_multiclass_counts_and_background_never_scored():
    truth = np.array([[0, 1, 1, 2], [2, 2, 0, 0]])
    pred = np.array([[1, 1, 2, 2], [2, 0, 0, 1]])
    counts = pixel_counts(truth, pred, classes=(1, 2))
    # class 1: truth at (0,1),(0,2); pred at (0,0),(0,1),(1,3) -> TP 1, FP 2, FN 1
    # class 2: truth at (0,3),(1,0),(1,1); pred at (0,2),(0,3),(1,0) -> TP 2, FP 1, FN 1
    assert counts.values.tolist() == [[1, 1, 2, 1], [2, 2, 1, 1]]
    with pytest.raises(ValueError, match="background"):
        pixel_counts(truth, pred, classes=(0, 1))
    # a class absent from both images scores 1 under the empty convention
    assert _scores(truth, pred, classes=(5,))[1]["dice"] == [1.0]


def test_bad_inputs_are_rejected():
    a = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        pixel_counts(a, np.zeros((3, 4), np.uint8))
    with pytest.raises(TypeError, match="integer"):
        pixel_counts(a, a.astype(float))
    with pytest.raises(ValueError, match="negative"):
        pixel_counts(a, -np.ones((3, 3), np.int8))
    with pytest.raises(ValueError, match="img7"):
        pixel_scores_table([("img7", a, np.zeros((2, 2), np.uint8))])
    with pytest.raises(ValueError, match=">= 0"):
        scores_from_counts(-1, 0, 0)


def test_table_summary_imagewise_vs_pooled():
    # A: TP 2 FP 2 FN 2 (dice 0.5); B: both empty (dice 1); C: TP 90, FN 10 (dice 180/190)
    ta = np.zeros((4, 4), np.uint8); ta[0:2, 0:2] = 1
    pa = np.zeros((4, 4), np.uint8); pa[0:2, 1:3] = 1
    tb = np.zeros((6, 6), np.uint8)
    tc = np.zeros((20, 20), np.uint8); tc[0:10, 0:10] = 1
    pc = tc.copy(); pc[9, :] = 0  # 10 true pixels missed
    table = pixel_scores_table([("A", ta, pa), ("B", tb, tb), ("C", tc, pc)])
    assert list(table["image_id"]) == ["A", "B", "C"]
    assert table["dice"].tolist() == pytest.approx([0.5, 1.0, 180 / 190])
    summ = summarise_pixel_scores(table).set_index("metric")
    dice = summ.loc["dice"]
    assert dice["n_images"] == 3
    assert dice["mean"] == pytest.approx((0.5 + 1 + 180 / 190) / 3)
    assert dice["median"] == pytest.approx(180 / 190)
    assert dice["min"] == 0.5 and dice["max"] == 1.0
    # pooled: TP 92, FP 2, FN 12
    assert dice["pooled"] == pytest.approx(184 / 198)
    assert summ.loc["iou", "pooled"] == pytest.approx(92 / 106)
    assert summ.loc["precision", "pooled"] == pytest.approx(92 / 94)
    assert summ.loc["recall", "pooled"] == pytest.approx(92 / 104)


def test_scores_from_counts_vectorised():
    s = scores_from_counts(np.array([0, 5, 0]), np.array([0, 5, 3]), np.array([0, 0, 0]))
    assert s["dice"].tolist() == pytest.approx([1.0, 10 / 15, 0.0])
    assert s["recall"].tolist() == [1.0, 1.0, 0.0]


# ----------------------------------------------------------------------------- object level


def _square(img, label, r, c, side=10, dr=0, dc=0):
    img[r + dr : r + dr + side, c + dc : c + dc + side] = label


def test_shifted_squares_known_iou():
    """Side-10 squares shifted by (dr, dc): IoU = (10-|dr|)(10-|dc|) / (200 - that)."""
    shifts = [(0, 0), (0, 1), (2, 0), (0, 3), (1, 1), (0, 5)]
    truth = np.zeros((40, 200), np.int32)
    pred = np.zeros((40, 200), np.int32)
    exact = []
    for i, (dr, dc) in enumerate(shifts):
        _square(truth, i + 1, 10, 10 + 30 * i)
        _square(pred, 100 + i, 10, 10 + 30 * i, dr=dr, dc=dc)  # ids unrelated to truth ids
        inter = (10 - dr) * (10 - dc)
        exact.append(Fraction(inter, 200 - inter))
    m, t_ids, p_ids = iou_matrix(truth, pred)
    assert t_ids.tolist() == list(range(1, 7)) and p_ids.tolist() == list(range(100, 106))
    np.testing.assert_allclose(np.diag(m), [float(f) for f in exact])
    assert np.count_nonzero(m) == 6
    res = match_objects(truth, pred)
    np.testing.assert_allclose(res["threshold"], np.arange(10) * 0.05 + 0.5)
    for _, row in res.iterrows():
        t = Fraction(str(row["threshold"]))
        tp = sum(f > t for f in exact)
        assert (row["tp"], row["fp"], row["fn"]) == (tp, 6 - tp, 6 - tp)
        assert row["ap"] == pytest.approx(tp / (12 - tp))
        assert row["precision"] == pytest.approx(tp / 6) and row["f1"] == pytest.approx(tp / 6)
    # by hand: IoUs 1, .818 (9/11), .667 (8/12), .538 (7/13), .681 (81/119), .333 (5/15)
    assert res["tp"].tolist() == [5, 4, 4, 4, 2, 2, 2, 1, 1, 1]


def test_split_object():
    """A 10x20 true object predicted as a 14-wide and a 6-wide part: IoUs 140/200 = 0.7 and 0.3."""
    truth = np.zeros((12, 22), np.uint8)
    truth[1:11, 1:21] = 1
    pred = np.zeros_like(truth)
    pred[1:11, 1:15] = 1
    pred[1:11, 15:21] = 2
    res = match_objects(truth, pred).set_index("threshold")
    low, high = res.loc[[0.5, 0.55, 0.6, 0.65]], res.loc[[0.7, 0.75, 0.8, 0.85, 0.9, 0.95]]
    assert (low["tp"] == 1).all() and (low["fp"] == 1).all() and (low["fn"] == 0).all()
    assert low["ap"].tolist() == [0.5] * 4
    # 0.7 is not *above* 0.7: no match from there on
    assert (high["tp"] == 0).all() and (high["fp"] == 2).all() and (high["fn"] == 1).all()
    # an exact half split has IoU 0.5 twice: no match even at 0.5
    pred2 = np.zeros_like(truth)
    pred2[1:11, 1:11] = 1
    pred2[1:11, 11:21] = 2
    assert match_objects(truth, pred2)["tp"].sum() == 0


def test_merged_objects():
    truth = np.zeros((12, 22), np.uint16)
    truth[1:11, 1:15] = 7
    truth[1:11, 15:21] = 9  # touching neighbours, 140 and 60 px
    pred = (truth > 0).astype(np.uint16) * 3  # one merged 200-px object
    m, _, _ = iou_matrix(truth, pred)
    np.testing.assert_allclose(m[:, 0], [0.7, 0.3])
    res = match_objects(truth, pred, thresholds=[0.5, 0.65, 0.9])
    assert res[["tp", "fp", "fn"]].values.tolist() == [[1, 0, 1], [1, 0, 1], [0, 1, 2]]


def test_empty_object_cases():
    z = np.zeros((8, 8), np.int32)
    one = z.copy()
    one[2:5, 2:5] = 4
    both = match_objects(z, z)
    assert (both[["precision", "recall", "f1", "ap"]] == 1).all().all()
    fa = match_objects(z, one)  # false alarm only
    assert (fa["fp"] == 1).all() and (fa[["precision", "recall", "f1", "ap"]] == 0).all().all()
    miss = match_objects(one, z)
    assert (miss["fn"] == 1).all() and (miss[["precision", "recall", "f1", "ap"]] == 0).all().all()
    with pytest.raises(ValueError, match="0.5"):
        match_objects(one, one, thresholds=[0.3, 0.5])


def test_large_and_sparse_label_ids():
    truth = np.zeros((10, 10), np.uint64)
    truth[0:4, 0:4] = 2**40
    truth[6:9, 6:9] = 3
    pred = np.zeros((10, 10), np.int64)
    pred[0:4, 0:4] = 5
    pairs = iou_pairs(truth, pred)
    assert pairs[["true_id", "pred_id", "intersection", "iou"]].values.tolist() == [[2**40, 5, 16, 1.0]]
    assert pairs.attrs["true_ids"].tolist() == [3, 2**40]


def _brute_force_iou(truth, pred):
    t_ids = [i for i in np.unique(truth) if i]
    p_ids = [j for j in np.unique(pred) if j]
    m = np.zeros((len(t_ids), len(p_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            ti, pj = truth == i, pred == j
            m[a, b] = (ti & pj).sum() / (ti | pj).sum()
    return m


def _random_discs(rng, n, shape, centres=None, radii=None):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.int32)
    if centres is None:
        centres = rng.uniform(0, shape, size=(n, 2))
        radii = rng.uniform(3, 9, size=n)
    for k, ((y, x), r) in enumerate(zip(centres, radii)):
        img[(rr - y) ** 2 + (cc - x) ** 2 <= r * r] = k + 1
    return img, centres, radii


def test_matching_equals_hungarian_maximum_matching_on_random_overlaps():
    """Independent check of the uniqueness argument: brute-force IoU matrix, then the maximum
    one-to-one matching of pairs above the threshold by scipy's Hungarian solver."""
    rng = np.random.default_rng(11)
    for trial in range(4):
        truth, c, r = _random_discs(rng, 25, (80, 90))
        pred, _, _ = _random_discs(rng, 25, (80, 90), centres=c + rng.normal(0, 2, c.shape),
                                   radii=r * rng.uniform(0.7, 1.3, r.shape))
        pred = np.where(pred > 0, pred * 3 + 1, 0)  # unrelated ids
        brute = _brute_force_iou(truth, pred)
        m, _, _ = iou_matrix(truth, pred)
        np.testing.assert_allclose(m, brute)
        res = match_objects(truth, pred)
        for t, tp in zip(res["threshold"], res["tp"]):
            ok = brute > t
            rows, cols = linear_sum_assignment(-ok.astype(float))
            assert tp == ok[rows, cols].sum()
        assert res["tp"].iloc[0] > 5  # the random case is not trivial


def test_object_table_and_pooled_summary():
    z = np.zeros((12, 22), np.int32)
    t1 = z.copy(); t1[1:11, 1:15] = 1; t1[1:11, 15:21] = 2
    p1 = (t1 > 0).astype(np.int32)  # merged: at 0.5..0.65 TP 1 FN 1; above TP 0 FP 1 FN 2
    t2 = z.copy(); t2[2:6, 2:6] = 1
    table = object_scores_table([("m", t1, p1), ("perfect", t2, t2), ("empty", z, z)])
    assert len(table) == 30 and table["image_id"].unique().tolist() == ["m", "perfect", "empty"]
    summ = summarise_object_scores(table).set_index("threshold")
    assert summ.loc[0.5, ["tp", "fp", "fn"]].tolist() == [2, 0, 1]
    assert summ.loc[0.5, "ap"] == pytest.approx(2 / 3)
    assert summ.loc[0.9, ["tp", "fp", "fn"]].tolist() == [1, 1, 2]
    assert summ.loc[0.9, "ap"] == pytest.approx(1 / 4)
    assert summ.loc[0.5, "ap_mean"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert summ.loc[0.9, "ap_min"] == 0.0
    # image m: AP 0.5 at 4 thresholds, 0 at 6 -> mAP 0.2; the others 1
    mp = summarise_map(table)
    assert mp["n_images"] == 3
    assert mp["mean"] == pytest.approx((0.2 + 1 + 1) / 3)
    assert mp["min"] == pytest.approx(0.2) and mp["median"] == 1.0
    assert mp["pooled"] == pytest.approx((4 * (2 / 3) + 6 * (1 / 4)) / 10)


def test_default_thresholds():
    assert DEFAULT_IOU_THRESHOLDS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# --- the evaluate params group -------------------------------------------------------------------------

def test_evaluate_params_defaults_are_the_params_yaml_values() -> None:
    from pathlib import Path

    import yaml

    from porescope.config import parse_group
    from porescope.evaluation.evaluate_model import EvaluateParams

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["evaluate"]
    assert parse_group(EvaluateParams, raw, group="evaluate") == EvaluateParams()


def test_evaluate_param_typo_fails_naming_the_key_it_meant(tmp_path) -> None:
    """A typo used to be ignored silently (the default stayed in force)."""
    import yaml

    from porescope.config import ParamsError
    from stages import evaluate as evaluate_stage

    params = tmp_path / "params.yaml"
    argv = ["--params", str(params), *[a for name in ("model", "ingested", "split", "predictions", "metrics", "plots")
                                       for a in (f"--{name}", str(tmp_path / name))]]
    params.write_text(yaml.safe_dump({"seed": 0, "evaluate": {"n_worts": 2}}))
    with pytest.raises(ParamsError, match=r"evaluate\.n_worts: unknown parameter; did you mean 'evaluate\.n_worst'\?"):
        evaluate_stage.main(argv)
    params.write_text(yaml.safe_dump({"seed": 0, "evaluate": {"objects": {"metod": "components"}}}))
    with pytest.raises(ParamsError, match=r"evaluate\.objects\.metod: unknown parameter; "
                                          r"did you mean 'evaluate\.objects\.method'\?"):
        evaluate_stage.main(argv)
    params.write_text(yaml.safe_dump({"seed": 0, "evaluate": {"overlay_transparency": 1.5}}))
    with pytest.raises(ParamsError, match=r"evaluate\.overlay_transparency: expected a value <= 1"):
        evaluate_stage.main(argv)
    assert not (tmp_path / "predictions").exists()


def test_objects_auto_resolves_by_the_model_classes() -> None:
    from porescope.evaluation.evaluate_model import ObjectsParams, resolve_objects

    three = resolve_objects(ObjectsParams(), {"0": "background", "1": "interior", "2": "border"})
    assert (three.method, three.interior, three.border) == ("three_class", 1, 2)
    assert resolve_objects(ObjectsParams(), {"0": "background", "1": "pore"}).method == "watershed"
    assert resolve_objects(ObjectsParams(method="components"), {"0": "b", "1": "i", "2": "border"}).method == "components"


@pytest.mark.parametrize("key", ["seed_h", "truth_seed_h"])
def test_seed_h_without_interiors_is_an_error_not_ignored(key: str) -> None:
    """``seed_h`` / ``truth_seed_h`` cut interiors: with a binary model (watershed) or an explicit
    non-three-class method they would do nothing, so evaluation refuses them by name."""
    from porescope.config import ParamsError
    from porescope.evaluation.evaluate_model import ObjectsParams, resolve_objects

    three = {"0": "background", "1": "interior", "2": "border"}
    assert resolve_objects(ObjectsParams(**{key: 2.0}), three).method == "three_class"
    with pytest.raises(ParamsError, match=rf"evaluate\.objects\.{key} = 2: .*'watershed'"):
        resolve_objects(ObjectsParams(**{key: 2.0}), {"0": "background", "1": "pore"})
    with pytest.raises(ParamsError, match=rf"evaluate\.objects\.{key} = 3: .*'components'"):
        resolve_objects(ObjectsParams(method="components", **{key: 3.0}), three)


def test_objects_seed_h_splits_the_prediction_never_the_truth() -> None:
    """``seed_h`` separates predicted interiors at necks; the truth keeps the annotated objects."""
    from porescope.config import ParamsError, parse_group
    from porescope.evaluation.evaluate_model import ObjectsParams, object_labels

    rr, cc = np.mgrid[:60, :100]
    cm = np.zeros((60, 100), np.uint8)
    cm[((rr - 30) ** 2 + (cc - 30) ** 2 <= 400) | ((rr - 30) ** 2 + (cc - 66) ** 2 <= 400)] = 1
    cm[((rr - 30) ** 2 + (cc - 30) ** 2 <= 400) & ((rr - 30) ** 2 + (cc - 66) ** 2 > 324)
       & ((rr - 30) ** 2 + (cc - 66) ** 2 <= 441)] = 2   # a border arc, broken in the middle
    cm[26:35, 44:52] = 1
    kw = dataclasses.asdict(parse_group(ObjectsParams, {"method": "three_class", "seed_h": 2.0}, group="o"))
    truth, pred = object_labels(cm, cm, kw)
    assert truth.max() == 1 and pred.max() == 2
    kw["seed_h"] = None
    assert object_labels(cm, cm, kw)[1].max() == 1
    with pytest.raises(ParamsError, match="seed_h"):
        parse_group(ObjectsParams, {"seed_h": 0}, group="evaluate.objects")


def test_objects_truth_seed_h_splits_the_annotation_only() -> None:
    """``truth_seed_h`` cuts annotated interiors joined through a neck (two touching discs with
    no line between them) into one true object each, whatever the prediction; the prediction is
    cut only by ``seed_h``. A single disc is never cut."""
    from porescope.config import ParamsError, parse_group
    from porescope.evaluation.evaluate_model import ObjectsParams, object_labels
    from porescope.evaluation.metrics import match_objects

    rr, cc = np.mgrid[:60, :100]
    left, right = (rr - 30) ** 2 + (cc - 30) ** 2 <= 400, (rr - 30) ** 2 + (cc - 68) ** 2 <= 400
    pair = np.zeros((60, 100), np.uint8)
    pair[left | right] = 1
    pair[27:34, 49:49 + 1] = 1  # the discs touch through a 7 px wide neck
    assert pair[30, 45:55].all()
    single = left.astype(np.uint8)
    kw = dataclasses.asdict(parse_group(ObjectsParams, {"method": "three_class", "connectivity": 4,
                                                        "truth_seed_h": 2.0}, group="o"))
    truth, pred = object_labels(pair, pair, kw)
    assert (truth.max(), pred.max()) == (2, 1)
    assert set(np.unique(truth[left & ~right])) == {1} and set(np.unique(truth[right & ~left])) == {2}
    # a prediction of the two particles now matches both true objects, the cluster one at most
    two = np.where(right, 2, left).astype(np.int32)
    assert int(match_objects(truth, two, [0.5])["tp"][0]) == 2
    assert int(match_objects(truth, pred, [0.5])["tp"][0]) <= 1
    assert object_labels(single, single, kw)[0].max() == 1
    kw["truth_seed_h"] = None
    assert object_labels(pair, pair, kw)[0].max() == 1
    with pytest.raises(ParamsError, match="truth_seed_h"):
        parse_group(ObjectsParams, {"truth_seed_h": -1}, group="evaluate.objects")
