"""Segmentation metrics: pixel level per class and object level (DSB-2018 convention).

Pixel level (METHODS.md section 4)
----------------------------------
For one image and one foreground class ``c`` (never the background class 0):
``TP`` = pixels with truth ``c`` and prediction ``c``, ``FP`` = prediction ``c`` but truth not,
``FN`` = truth ``c`` but prediction not, and

* Dice = 2 TP / (2 TP + FP + FN)
* IoU = TP / (TP + FP + FN)
* precision = TP / (TP + FP)
* recall = TP / (TP + FN)

Empty masks (the convention, stated once and used everywhere): a ratio whose denominator is 0
is **1 when the image has neither truth nor prediction of the class** (TP = FP = FN = 0, a
perfect answer) and **0 otherwise**. So empty truth + empty prediction -> Dice = IoU = precision =
recall = 1; empty truth + non-empty prediction -> all 0 (recall 0/0 -> 0); non-empty truth +
empty prediction -> all 0 (precision 0/0 -> 0).

Not-annotated pixels (partial annotations: truth :data:`~porescope.io.mask_encoding.IGNORE_ID`,
255) are no pixels at all for these counts: whatever is predicted there is neither TP, FP nor FN.

Reported per image (imagewise) with mean, median, min and max over images, and pooled (micro):
the same formulas on TP, FP, FN summed over all images. The two differ, and both are reported.

Object level
------------
Objects are the non-zero labels of a label image (see :mod:`porescope.segmentation.instances`). Predicted
objects are matched one-to-one to true objects by IoU at thresholds 0.50, 0.55, ..., 0.95; a pair
is a match when IoU > threshold (strictly, "above the threshold" as in the DSB-2018 rules). Per
threshold: TP = matched pairs, FP = unmatched predictions, FN = unmatched truths; precision,
recall, F1 = 2TP/(2TP+FP+FN) and AP = TP/(TP+FP+FN); mAP = mean of AP over the thresholds. The same
empty convention applies (no true and no predicted object -> every score 1).

Why no assignment solver is needed: if IoU(A, B) > 1/2 then |A n B| > |A u B| / 2 >= |A| / 2, so
B covers more than half of A; predicted objects are disjoint, so no second prediction can also
cover more than half of A (and symmetrically for B). For every threshold >= 0.5 the pairs above the
threshold therefore already form a one-to-one matching, and Hungarian, greedy or any maximum
matching would return exactly these pairs. Thresholds below 0.5 are refused for that reason.

The IoU of all overlapping pairs comes from one joint histogram of (true label, predicted label)
pairs over the pixels (``numpy.bincount`` on combined codes, or ``numpy.unique`` when the code
range is large), never from per-object mask loops.

Partial annotations (object level). :func:`drop_unannotated_objects` applies one rule to the true
and the predicted objects before matching: an object with **more than half** of its pixels in the
not-annotated region is dropped (neither TP, FP nor FN: nobody said what is there), and the
not-annotated pixels of the objects that remain are removed from them, so IoU is measured on
annotated pixels only. An object hidden wholly behind the ignore label therefore changes nothing,
and a prediction that spills over the edge of the annotated region is judged by its annotated part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from porescope.io.mask_encoding import IGNORE_ID

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "pixel_counts",
    "scores_from_counts",
    "pixel_scores_table",
    "summarise_pixel_scores",
    "iou_pairs",
    "iou_matrix",
    "match_objects",
    "drop_unannotated_objects",
    "object_scores_table",
    "summarise_object_scores",
    "summarise_map",
]

#: IoU thresholds of the DSB-2018 object metric: 0.50, 0.55, ..., 0.95.
DEFAULT_IOU_THRESHOLDS: np.ndarray = np.round(np.arange(10) * 0.05 + 0.5, 2)

PIXEL_METRICS = ("dice", "iou", "precision", "recall")


# ------------------------------------------------------------------------------- validation


def _as_label_array(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class ids / labels (or bool), got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} has negative values (min {a.min()}); ids must be >= 0")
    return a


def _check_pair(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = _as_label_array(truth, "truth")
    pred = _as_label_array(pred, "pred")
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape} differs from pred shape {pred.shape}")
    return truth, pred


def _check_classes(classes: Sequence[int]) -> list[int]:
    cls = [int(c) for c in classes]
    if not cls:
        raise ValueError("classes must name at least one foreground class")
    if any(c <= 0 for c in cls):
        raise ValueError(f"classes must be foreground ids >= 1 (the background 0 is never scored), got {cls}")
    if len(set(cls)) != len(cls):
        raise ValueError(f"classes has duplicates: {cls}")
    return cls


def _safe_ratio(num, den, perfect) -> np.ndarray:
    """num / den, with 0/0 -> 1 where ``perfect`` (nothing to find, nothing found), else 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.where(perfect, 1.0, 0.0)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ------------------------------------------------------------------------------ pixel level


def pixel_counts(truth: np.ndarray, pred: np.ndarray, classes: Sequence[int] = (1,), *,
                 ignore: int | None = IGNORE_ID) -> pd.DataFrame:
    """TP, FP, FN pixel counts of each foreground class of one image.

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Same-shape integer class-id masks (0 = background) or bool masks (True = class 1).
    classes : sequence of int
        Foreground class ids to score (>= 1).
    ignore : int or None
        Truth value of not-annotated pixels, which are left out of every count (default
        :data:`~porescope.io.mask_encoding.IGNORE_ID`); ``None``: every pixel counts.

    Returns
    -------
    pandas.DataFrame
        One row per class: ``class, tp, fp, fn`` (int64).
    """
    truth, pred = _check_pair(truth, pred)
    cls = _check_classes(classes)
    if ignore is not None and ignore in cls:
        raise ValueError(f"class {ignore} is the ignore value (not-annotated pixels); it cannot be scored")
    k = int(max(truth.max(initial=0), pred.max(initial=0), max(cls))) + 1
    conf = np.bincount(
        truth.ravel().astype(np.int64) * k + pred.ravel().astype(np.int64), minlength=k * k
    ).reshape(k, k)  # conf[t, p] = pixels with truth t and prediction p
    if ignore is not None and ignore < k:
        conf[ignore, :] = 0  # not annotated: no TP, FP or FN
    idx = np.array(cls)
    tp = conf[idx, idx]
    fp = conf[:, idx].sum(axis=0) - tp
    fn = conf[idx, :].sum(axis=1) - tp
    return pd.DataFrame({"class": idx, "tp": tp, "fp": fp, "fn": fn}).astype("int64")


def scores_from_counts(tp, fp, fn) -> dict[str, np.ndarray]:
    """Dice, IoU, precision and recall from TP, FP, FN (scalars or arrays, broadcast).

    Uses the empty convention of the module docstring (0/0 -> 1 only when TP = FP = FN = 0).
    Returns a dict ``{"dice", "iou", "precision", "recall"}`` of float64 arrays (0-d for scalars).
    """
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    if np.any(tp < 0) or np.any(fp < 0) or np.any(fn < 0):
        raise ValueError("counts must be >= 0")
    perfect = (tp + fp + fn) == 0
    return {
        "dice": _safe_ratio(2 * tp, 2 * tp + fp + fn, perfect),
        "iou": _safe_ratio(tp, tp + fp + fn, perfect),
        "precision": _safe_ratio(tp, tp + fp, perfect),
        "recall": _safe_ratio(tp, tp + fn, perfect),
    }


def _per_image(items: Iterable[tuple[str, Any, Any]], score: Callable[[Any, Any], pd.DataFrame],
               caller: str) -> pd.DataFrame:
    """``score(truth, pred)`` of every ``(image_id, truth, pred)``, stacked with an ``image_id``
    column first; a bad image's error names it."""
    rows = []
    for image_id, truth, pred in items:
        try:
            df = score(truth, pred)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"image {image_id!r}: {exc}") from None
        df.insert(0, "image_id", str(image_id))
        rows.append(df)
    if not rows:
        raise ValueError(f"{caller}: no images given")
    return pd.concat(rows, ignore_index=True)


def pixel_scores_table(
    items: Iterable[tuple[str, np.ndarray, np.ndarray]], classes: Sequence[int] = (1,)
) -> pd.DataFrame:
    """Per-image pixel scores.

    Parameters
    ----------
    items : iterable of (image_id, truth, pred)
        Same-shape class-id masks per image.
    classes : sequence of int
        Foreground classes to score.

    Returns
    -------
    pandas.DataFrame
        One row per (image, class): ``image_id, class, tp, fp, fn, dice, iou, precision, recall``.
    """
    cls = _check_classes(classes)
    table = _per_image(items, lambda truth, pred: pixel_counts(truth, pred, cls), "pixel_scores_table")
    for name, values in scores_from_counts(table["tp"], table["fp"], table["fn"]).items():
        table[name] = values
    return table


def summarise_pixel_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Summary over images of a :func:`pixel_scores_table`, per class and metric.

    Returns a long table with columns ``class, metric, n_images, mean, median, min, max,
    pooled``: the first five over the per-image scores (imagewise), ``pooled`` the micro score
    from TP, FP, FN summed over the images.
    """
    missing = {"class", "tp", "fp", "fn", *PIXEL_METRICS} - set(table.columns)
    if missing:
        raise ValueError(f"summarise_pixel_scores: table lacks columns {sorted(missing)}")
    rows = []
    for c, group in table.groupby("class", sort=True):
        pooled = scores_from_counts(group["tp"].sum(), group["fp"].sum(), group["fn"].sum())
        for metric in PIXEL_METRICS:
            v = group[metric].to_numpy(dtype=np.float64)
            rows.append(
                {
                    "class": int(c),
                    "metric": metric,
                    "n_images": len(v),
                    "mean": float(v.mean()),
                    "median": float(np.median(v)),
                    "min": float(v.min()),
                    "max": float(v.max()),
                    "pooled": float(pooled[metric]),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- object level


def _sequential(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat labels renumbered 0 (background), 1..n; the original ids and pixel areas of 1..n."""
    flat = labels.ravel()
    if flat.dtype == np.uint64:  # numpy.bincount casts safely to int64 only
        flat = flat.astype(np.int64)
    top = int(flat.max(initial=0))
    if top <= 4 * flat.size + 1024:
        counts = np.bincount(flat, minlength=top + 1)
        counts[0] = 0
        ids = np.flatnonzero(counts)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, len(ids) + 1)
        return lut[flat], ids, counts[ids]
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if uniq[0] == 0:
        return inverse.astype(np.int64), uniq[1:], counts[1:]
    return inverse.astype(np.int64) + 1, uniq, counts


def drop_unannotated_objects(true_labels: np.ndarray, pred_labels: np.ndarray, hidden: np.ndarray,
                             max_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted labels with the not-annotated region taken out (module docstring).

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        Same-shape label images, 0 = background.
    hidden : numpy.ndarray of bool
        Same shape; True where nothing is annotated (truth == ``IGNORE_ID``).
    max_fraction : float
        An object with more than this fraction of its area hidden is dropped.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Copies of both label images: dropped objects and all hidden pixels set to 0.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 0, 0]])
    >>> p = np.array([[1, 1, 3, 2, 3]])            # 2: wholly hidden; 3: 1 of 2 px hidden
    >>> hidden = np.array([[False, False, False, True, True]])
    >>> drop_unannotated_objects(t, p, hidden)[1].tolist()
    [[1, 1, 3, 0, 0]]
    """
    hidden = np.asarray(hidden, dtype=bool)
    out = []
    for name, labels in (("true_labels", true_labels), ("pred_labels", pred_labels)):
        labels = _as_label_array(labels, name)
        if labels.shape != hidden.shape:
            raise ValueError(f"{name} shape {labels.shape} differs from hidden shape {hidden.shape}")
        seq, _, area = _sequential(labels)
        hidden_area = np.bincount(seq[hidden.ravel()], minlength=len(area) + 1)[1:]
        dropped = np.concatenate([[False], hidden_area > max_fraction * area])
        kept = labels.copy()
        kept[dropped[seq].reshape(labels.shape) | hidden] = 0
        out.append(kept)
    return out[0], out[1]


def iou_pairs(true_labels: np.ndarray, pred_labels: np.ndarray) -> pd.DataFrame:
    """IoU of every overlapping (true object, predicted object) pair, from a joint histogram.

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        Same-shape label images, 0 = background, any non-negative ids.

    Returns
    -------
    pandas.DataFrame
        One row per pair with a non-empty intersection: ``true_id, pred_id, intersection,
        true_area, pred_area, iou``. ``.attrs`` holds ``true_ids`` / ``pred_ids`` (all objects)
        and ``true_areas`` / ``pred_areas``.
    """
    t_lab, p_lab = _check_pair(true_labels, pred_labels)
    t_seq, t_ids, t_area = _sequential(t_lab)
    p_seq, p_ids, p_area = _sequential(p_lab)
    n_p1 = len(p_ids) + 1
    codes = t_seq * n_p1 + p_seq
    n_codes = (len(t_ids) + 1) * n_p1
    if n_codes <= max(4 * codes.size, 1 << 20):
        hist = np.bincount(codes, minlength=n_codes)
        present = np.flatnonzero(hist)
        inter = hist[present]
    else:
        present, inter = np.unique(codes, return_counts=True)
    ti, pi = np.divmod(present, n_p1)
    keep = (ti > 0) & (pi > 0)
    ti, pi, inter = ti[keep], pi[keep], inter[keep]
    ta, pa = t_area[ti - 1], p_area[pi - 1]
    out = pd.DataFrame(
        {
            "true_id": t_ids[ti - 1],
            "pred_id": p_ids[pi - 1],
            "intersection": inter.astype(np.int64),
            "true_area": ta.astype(np.int64),
            "pred_area": pa.astype(np.int64),
            "iou": inter / (ta + pa - inter).astype(np.float64),
        }
    )
    out.attrs.update(true_ids=t_ids, pred_ids=p_ids, true_areas=t_area, pred_areas=p_area)
    return out


def iou_matrix(true_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense IoU matrix (n_true x n_pred, float64) with the true and predicted ids of its rows
    and columns. Convenience for inspection; :func:`match_objects` uses the sparse pairs."""
    pairs = iou_pairs(true_labels, pred_labels)
    t_ids, p_ids = pairs.attrs["true_ids"], pairs.attrs["pred_ids"]
    m = np.zeros((len(t_ids), len(p_ids)), dtype=np.float64)
    m[np.searchsorted(t_ids, pairs["true_id"]), np.searchsorted(p_ids, pairs["pred_id"])] = pairs["iou"]
    return m, t_ids, p_ids


def _check_thresholds(thresholds) -> np.ndarray:
    th = np.asarray(thresholds, dtype=np.float64).ravel()
    if th.size == 0 or np.any(th < 0.5) or np.any(th >= 1.0):
        raise ValueError(
            f"IoU thresholds must lie in [0.5, 1): below 0.5 a one-to-one matching is no longer "
            f"unique and needs an assignment solver; got {th.tolist()}"
        )
    return th


def _object_scores(df: pd.DataFrame) -> pd.DataFrame:
    tp, fp, fn = (df[c].to_numpy(dtype=np.float64) for c in ("tp", "fp", "fn"))
    perfect = (tp + fp + fn) == 0
    df["precision"] = _safe_ratio(tp, tp + fp, perfect)
    df["recall"] = _safe_ratio(tp, tp + fn, perfect)
    df["f1"] = _safe_ratio(2 * tp, 2 * tp + fp + fn, perfect)
    df["ap"] = _safe_ratio(tp, tp + fp + fn, perfect)
    return df


def match_objects(
    true_labels: np.ndarray, pred_labels: np.ndarray, thresholds=DEFAULT_IOU_THRESHOLDS
) -> pd.DataFrame:
    """Object matching of one image at each IoU threshold (match when IoU > threshold).

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold, n_true, n_pred, tp, fp, fn, precision, recall, f1,
        ap``. ``ap.mean()`` is the image's mAP.
    """
    th = _check_thresholds(thresholds)
    pairs = iou_pairs(true_labels, pred_labels)
    n_true, n_pred = len(pairs.attrs["true_ids"]), len(pairs.attrs["pred_ids"])
    iou = np.sort(pairs["iou"].to_numpy())
    tp = len(iou) - np.searchsorted(iou, th, side="right")  # pairs with IoU > t
    df = pd.DataFrame(
        {"threshold": th, "n_true": n_true, "n_pred": n_pred, "tp": tp, "fp": n_pred - tp, "fn": n_true - tp}
    )
    df[["n_true", "n_pred", "tp", "fp", "fn"]] = df[["n_true", "n_pred", "tp", "fp", "fn"]].astype("int64")
    return _object_scores(df)


def object_scores_table(
    items: Iterable[tuple[str, np.ndarray, np.ndarray]], thresholds=DEFAULT_IOU_THRESHOLDS
) -> pd.DataFrame:
    """Per-image object scores: :func:`match_objects` for each ``(image_id, true_labels,
    pred_labels)``, stacked with an ``image_id`` column first."""
    _check_thresholds(thresholds)
    return _per_image(items, lambda t_lab, p_lab: match_objects(t_lab, p_lab, thresholds),
                      "object_scores_table")


def summarise_object_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per-threshold summary of an :func:`object_scores_table`.

    Columns: ``threshold, n_images, tp, fp, fn`` (summed), pooled ``precision, recall, f1, ap``
    (from the summed counts), and ``ap_mean, ap_median, ap_min, ap_max`` over images.
    """
    g = table.groupby("threshold", sort=True)
    out = g[["tp", "fp", "fn"]].sum().reset_index()
    out.insert(1, "n_images", g.size().to_numpy())
    out = _object_scores(out)
    ap = g["ap"]
    out["ap_mean"] = ap.mean().to_numpy()
    out["ap_median"] = ap.median().to_numpy()
    out["ap_min"] = ap.min().to_numpy()
    out["ap_max"] = ap.max().to_numpy()
    return out


def summarise_map(table: pd.DataFrame) -> dict[str, float]:
    """mAP of an :func:`object_scores_table`.

    Returns ``{"n_images", "mean", "median", "min", "max", "pooled"}``: the statistics of the
    per-image mAP (mean over thresholds of each image's AP; ``mean`` is the DSB-2018 score) and
    the pooled mAP (mean over thresholds of the AP from counts summed over images).
    """
    per_image = table.groupby("image_id", sort=False)["ap"].mean().to_numpy()
    pooled = summarise_object_scores(table)["ap"].mean()
    return {
        "n_images": int(len(per_image)),
        "mean": float(per_image.mean()),
        "median": float(np.median(per_image)),
        "min": float(per_image.min()),
        "max": float(per_image.max()),
        "pooled": float(pooled),
    }
