"""Which pore-count estimator to trust where: the choice behind the headline pore densities.

The estimator behind the headline pore density of an image (:func:`choose_estimators`) is the
one with the lowest mean absolute count error, on the validation membranes (predicted masks,
``metrics/validate.json``), in the porosity band the image's measured porosity falls into;
without validation results the test-image comparison (``metrics/analyze.json``) is used, and
without either the watershed split count. This reads the errors the ``validate`` and ``analyze``
stages measured; it computes no new statistic.

Examples
--------
>>> errors = {"split_labels": {"<=20%": {"count_mae_pct": 1.0}, ">20%": {"count_mae_pct": 9.0}},
...           "boolean_model": {"<=20%": {"count_mae_pct": 3.0}, ">20%": {"count_mae_pct": 2.0}}}
>>> choice = choose_estimators({"n_images": 6, "errors": {"predicted": errors}}, None)
>>> choice.for_porosity(0.1), choice.for_porosity(0.35), choice.source
('split_labels', 'boolean_model', 'validation on 6 synthetic membranes of known truth (predicted masks)')
>>> choose_estimators(None, None).for_porosity(0.1)
'split_labels'
>>> parse_band("20-40%")
(0.2, 0.4)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from porescope.report.formatting import finite_or_none, lookup

__all__ = ["ESTIMATORS", "ESTIMATOR_LABELS", "estimator_label", "parse_band", "EstimatorChoice",
           "choose_estimators"]

#: The practical counting estimators, in the order the analysis writes them.
ESTIMATORS: tuple[str, ...] = ("median_area", "split_labels", "boolean_model")
#: Readable names of the estimators (validation adds the Boolean model with a known E[A]).
ESTIMATOR_LABELS: dict[str, str] = {
    "median_area": "median-area rule",
    "split_labels": "watershed split",
    "boolean_model": "Boolean model",
    "boolean_model_known_area": "Boolean model, known E[A]",
}


def estimator_label(est: str) -> str:
    """The readable name of estimator ``est`` (``est`` itself when unknown)."""
    return ESTIMATOR_LABELS.get(est, est)


_BAND_LE = re.compile(r"^<=\s*([0-9.]+)%$")
_BAND_GT = re.compile(r"^>\s*([0-9.]+)%$")
_BAND_RANGE = re.compile(r"^([0-9.]+)-([0-9.]+)%$")


def parse_band(name: str) -> tuple[float, float]:
    """``(lo, hi]`` porosity fractions of a band label (``"<=20%"``, ``"20-40%"``, ``">40%"``,
    ``"all"``), the labels of :func:`porescope.analysis.membrane.band_names`."""
    name = str(name).strip()
    if name == "all":
        return -math.inf, math.inf
    if m := _BAND_LE.match(name):
        return -math.inf, float(m.group(1)) / 100.0
    if m := _BAND_GT.match(name):
        return float(m.group(1)) / 100.0, math.inf
    if m := _BAND_RANGE.match(name):
        return float(m.group(1)) / 100.0, float(m.group(2)) / 100.0
    raise ValueError(f"porosity band label {name!r}: expected '<=A%', 'A-B%', '>A%' or 'all'")


@dataclass(frozen=True)
class EstimatorChoice:
    """The estimator to use per porosity band, and the evidence.

    bands: ``(label, lo, hi, estimator, {estimator: mean |count error| %})`` in band order.
    source: where the errors come from (a sentence fragment); default: used outside every band
    and when there is no evidence.
    """

    bands: tuple[tuple[str, float, float, str, dict[str, float]], ...]
    source: str
    default: str = "split_labels"

    def for_porosity(self, porosity: Any) -> str:
        """The estimator for an image of measured porosity ``porosity`` (fraction)."""
        p = finite_or_none(porosity)
        if p is not None:
            for _, lo, hi, est, _ in self.bands:
                if lo < p <= hi:
                    return est
        return self.default


def _band_errors(per_est: Mapping[str, Mapping[str, Any]]) -> EstimatorChoice | None:
    """Pick the lowest mean |count error| per band from ``{estimator: {band: stats}}``."""
    labels: list[str] = []
    for est in ESTIMATORS:
        for band in (per_est.get(est) or {}):
            if band != "all" and band not in labels:
                labels.append(band)
    bands = []
    for band in labels:
        try:
            lo, hi = parse_band(band)
        except ValueError:
            continue
        maes = {e: float(v) for e in ESTIMATORS
                if (v := finite_or_none(lookup(per_est, e, band, "count_mae_pct"))) is not None}
        if maes:
            best = min(maes, key=lambda e: (maes[e], e))
            bands.append((band, lo, hi, best, maes))
    if not bands:
        return None
    bands.sort(key=lambda b: b[1])
    return EstimatorChoice(tuple(bands), "")


def choose_estimators(validate: Mapping[str, Any] | None,
                      analyze: Mapping[str, Any] | None) -> EstimatorChoice:
    """The count estimator to trust per porosity band, from the measured errors.

    Uses ``validate["errors"]["predicted"]`` (segmentation + measurement on fresh synthetic
    membranes; ``ground_truth`` when validation ran without a model), else the test images'
    ``analyze["estimators"][e]["pred"]["bands"]``; within a band the estimator with the lowest
    mean absolute count error wins (ties by name). Without either: the watershed split count.
    """
    for mask, what in (("predicted", "predicted masks"), ("ground_truth", "ground-truth masks")):
        errs = lookup(validate, "errors", mask)
        if isinstance(errs, Mapping):
            choice = _band_errors(errs)
            if choice is not None:
                n = lookup(validate, "n_images")
                return EstimatorChoice(choice.bands, f"validation on {n if n is not None else '?'} "
                                       f"synthetic membranes of known truth ({what})")
    ests = lookup(analyze, "estimators")
    if isinstance(ests, Mapping):
        for key, what in (("pred", "predicted masks"), ("gt_mask", "ground-truth masks")):
            per = {e: lookup(ests, e, key, "bands") or {} for e in ESTIMATORS}
            choice = _band_errors(per)
            if choice is not None:
                return EstimatorChoice(choice.bands, f"the test images against "
                                       f"the {lookup(analyze, 'reference') or 'reference'} ({what})")
    return EstimatorChoice((), "")
