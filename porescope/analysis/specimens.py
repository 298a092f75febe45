"""Per-specimen statistics with 95 % confidence intervals, from the per-image measurements.

A membrane certificate states porosity, pore density and pore size per *specimen*: several
micrographs of one membrane. :func:`specimen_statistics` pools the images of each specimen
(the ``measure`` summary table, one row per image, and the group of each image from
:func:`porescope.io.grouping.group_keys`) and gives every figure with an interval.

Estimates (pooled over the specimen's images)
---------------------------------------------
* porosity = sum of pore area / sum of analysed area (the area-weighted mean of the images'
  porosities, weights = analysed area in cm^2, or in px when a pixel size is unknown);
* density of each count estimator = total count / total analysed area (per cm^2, or per px^2
  when a pixel size is unknown); count = total count;
* mean ECD / Feret = sum over images of the pores' sizes / number of pores (objects not
  touching the border, as in the per-image summary); median ECD / Feret = median of the
  pooled pores (needs the per-object table);
* analysed area = the sum; number of images.

Intervals (``confidence``, default 95 %)
----------------------------------------
``between-image t``
    Every pooled figure is a ratio ``R = sum y_i / sum x_i`` over images ``i = 1..n`` (pore area
    / analysed area, count / area, size sum / pore number). Its standard error is the
    ratio-estimator (linearisation) one, ``se^2 = n / (n - 1) * sum (y_i - R x_i)^2 /
    (sum x_i)^2``, and the interval ``R +- t_{n-1} se`` (Student t, ``n - 1`` degrees of
    freedom). The images are treated as a random sample of fields of the specimen, so this
    captures everything that varies from field to field: the membrane's own heterogeneity, the
    Poisson scatter of the pores and the segmentation's image-to-image errors. Needs n >= 2.
``bootstrap``
    The same ratio recomputed on ``n_boot`` resamples of the images (with replacement, a
    generator seeded by ``seed`` and the specimen name, images sorted by id, so the result does
    not depend on the order of the rows); percentile interval. Reported beside the t interval as a cross-
    check; it is the primary interval of the medians, which have no simple standard error.
    With few images it is too narrow (it cannot see more spread than the n images show).
``Poisson (Garwood)``
    For the frame counts (``median_area``, ``split_labels``): the exact Garwood interval of a
    Poisson mean given the total count ``N``, ``[chi2_{a/2}(2N) / 2, chi2_{1-a/2}(2N + 2) / 2]``,
    divided by the total area. It holds for one image too. The Boolean-model "count" is a
    model estimate from porosity and mean pore area, not a count, so it gets none.

Combination for densities: the **union of the between-image and the Poisson intervals**
(lowest lower bound, highest upper bound). Not a quadrature sum: the between-image variance
already *contains* the Poisson scatter (each image's count is Poisson around its field's
intensity), so adding the Poisson variance again would count it twice. The Poisson interval is
kept as a floor because with few images the sample variance is itself very uncertain and can
by chance come out below the Poisson variance that a random pattern of pores must have;
where the images agree better than Poisson (rare for etched tracks) the union is conservative.
With one image only the Poisson interval exists; porosity and sizes then get **no interval**
(a single field says nothing about how much the specimen varies from field to field), and the
``note`` column says so.

Output: a long table, one row per (specimen, quantity): ``specimen``, ``quantity``, ``unit``,
``n_images``, ``value``, ``ci_low``, ``ci_high`` (the interval to state), ``ci_method``,
``between_low`` / ``between_high`` (t), ``bootstrap_low`` / ``bootstrap_high``,
``poisson_low`` / ``poisson_high``, ``note``. Nothing is written to disk.

Examples
--------
>>> import pandas as pd
>>> summary = pd.DataFrame({"image_id": ["a", "b", "c"], "analysed_px": [10000] * 3,
...     "analysed_area_cm2": [6.25e-6] * 3, "porosity": [0.20, 0.22, 0.18],
...     "count_split_labels": [40.0, 44.0, 37.0]})
>>> t = specimen_statistics(summary, {"a": "S1", "b": "S1", "c": "S1"}, n_boot=200)
>>> row = t.set_index("quantity").loc["porosity"]
>>> [round(float(row[k]), 4) for k in ("value", "ci_low", "ci_high")], row["ci_method"]
([0.2, 0.1503, 0.2497], 'between-image t')
>>> d = t.set_index("quantity").loc["density_split_labels"]
>>> d["unit"], f"{d['value']:.4g}", d["ci_method"]
('cm^-2', '6.453e+06', 'union of between-image t and Poisson (Garwood)')
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from porescope.errors import PorescopeError

__all__ = ["COUNT_ESTIMATORS", "FRAME_COUNTS", "STAT_COLUMNS", "SpecimenError",
           "ratio_interval", "bootstrap_ratio_interval", "garwood_interval",
           "specimen_statistics"]

#: Count estimators of the summary (``count_<estimator>`` columns).
COUNT_ESTIMATORS: tuple[str, ...] = ("median_area", "split_labels", "boolean_model")
#: Those that count pores (integer counts), so that the Poisson interval applies.
FRAME_COUNTS: tuple[str, ...] = ("median_area", "split_labels")
#: Columns of :func:`specimen_statistics`, in order.
STAT_COLUMNS: tuple[str, ...] = (
    "specimen", "quantity", "unit", "n_images", "value", "ci_low", "ci_high", "ci_method",
    "between_low", "between_high", "bootstrap_low", "bootstrap_high", "poisson_low",
    "poisson_high", "note")

_NAN = math.nan
_ONE_IMAGE = ("one image: no between-image interval; the spread between fields of this "
              "specimen is unknown")


class SpecimenError(PorescopeError, ValueError):
    """The per-image table and the groups do not fit together (the message names the image)."""


def ratio_interval(y: np.ndarray, x: np.ndarray, confidence: float = 0.95
                   ) -> tuple[float, float, float]:
    """Ratio ``R = sum y / sum x`` over images and its between-image Student-t interval.

    Parameters
    ----------
    y, x : (n,) per-image numerator and denominator (e.g. pore area and analysed area).
    confidence : two-sided level.

    Returns
    -------
    ``(R, low, high)``; ``low = high = NaN`` with fewer than 2 images. The standard error is
    the linearisation one, ``sqrt(n / (n - 1) * sum (y - R x)^2) / sum x``.

    Examples
    --------
    >>> r, lo, hi = ratio_interval(np.array([2.0, 4.0]), np.array([10.0, 10.0]))
    >>> r, round(lo, 3), round(hi, 3)   # se = 0.1, t(0.975, 1 df) = 12.71
    (0.3, -0.971, 1.571)
    """
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    n = y.size
    sx = float(x.sum())
    if n == 0 or not sx > 0:
        return _NAN, _NAN, _NAN
    r = float(y.sum()) / sx
    if n < 2:
        return r, _NAN, _NAN
    se = math.sqrt(n / (n - 1) * float(np.sum((y - r * x) ** 2))) / sx
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return r, r - half, r + half


def _rng(seed: int, specimen: str, quantity: str) -> np.random.Generator:
    key = zlib.crc32(f"{specimen}:{quantity}".encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def _resamples(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ratio_interval(y: np.ndarray, x: np.ndarray, rng: np.random.Generator, *,
                             n_boot: int = 2000, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum y / sum x``, resampling the images.

    ``(NaN, NaN)`` with fewer than 2 images.

    Examples
    --------
    >>> lo, hi = bootstrap_ratio_interval(np.array([1.0, 2.0, 3.0]), np.ones(3),
    ...                                   np.random.default_rng(0), n_boot=500)
    >>> 1.0 <= lo < 2.0 < hi <= 3.0
    True
    """
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    if y.size < 2:
        return _NAN, _NAN
    idx = _resamples(y.size, n_boot, rng)
    sx = x[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = y[idx].sum(axis=1) / sx
    r = r[np.isfinite(r)]
    if r.size == 0:
        return _NAN, _NAN
    a = (1 - confidence) / 2
    lo, hi = np.quantile(r, [a, 1 - a])
    return float(lo), float(hi)


def garwood_interval(count: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean given an observed count.

    ``[chi2.ppf(a/2, 2N) / 2, chi2.ppf(1 - a/2, 2N + 2) / 2]`` with ``a = 1 - confidence``;
    the lower bound is 0 for ``N = 0``. Its coverage is at least ``confidence`` for every mean.

    Examples
    --------
    >>> [round(v, 3) for v in garwood_interval(10)]
    [4.795, 18.39]
    >>> garwood_interval(0)[0]
    0.0
    """
    if not (math.isfinite(count) and count >= 0):
        return _NAN, _NAN
    a = 1 - confidence
    lo = 0.0 if count == 0 else float(stats.chi2.ppf(a / 2, 2 * count)) / 2
    hi = float(stats.chi2.ppf(1 - a / 2, 2 * count + 2)) / 2
    return lo, hi


def _row(specimen: str, quantity: str, unit: str, n: int, value: float, **kw: Any) -> dict[str, Any]:
    row = {c: _NAN for c in STAT_COLUMNS}
    row.update(specimen=specimen, quantity=quantity, unit=unit, n_images=n, value=value,
               ci_method="none", note="")
    row.update(kw)
    return row


def _few(n_used: int, n_images: int) -> str:
    """Why a quantity has no between-image interval."""
    if n_used == 0:
        return "not measured on any image"
    if n_images == 1:
        return _ONE_IMAGE
    return (f"measured on only {n_used} of the {n_images} images: no between-image interval")


def _ratio_row(specimen: str, quantity: str, unit: str, y: np.ndarray, x: np.ndarray,
               confidence: float, n_boot: int, seed: int, n_images: int,
               note: str = "") -> dict[str, Any]:
    """A ratio quantity (``y``, ``x``: the images that have it) with its t interval (primary)
    and bootstrap cross-check; ``n_images`` = the specimen's images."""
    n = y.size
    r, lo, hi = ratio_interval(y, x, confidence)
    blo, bhi = bootstrap_ratio_interval(y, x, _rng(seed, specimen, quantity), n_boot=n_boot,
                                        confidence=confidence)
    if n < 2:
        return _row(specimen, quantity, unit, n_images, r, note=_few(n, n_images))
    return _row(specimen, quantity, unit, n_images, r, ci_low=lo, ci_high=hi,
                ci_method="between-image t",
                between_low=lo, between_high=hi, bootstrap_low=blo, bootstrap_high=bhi, note=note)


def _median_row(specimen: str, quantity: str, unit: str, per_image: list[np.ndarray],
                confidence: float, n_boot: int, seed: int, n_images: int) -> dict[str, Any]:
    """Median of the pooled objects with a bootstrap over images (primary: no simple se)."""
    n = len(per_image)
    pooled = np.concatenate(per_image) if per_image else np.empty(0)
    value = float(np.median(pooled)) if pooled.size else _NAN
    if n < 2:
        return _row(specimen, quantity, unit, n_images, value, note=_few(n, n_images))
    idx = _resamples(n, n_boot, _rng(seed, specimen, quantity))
    meds = []
    for b in idx:
        v = np.concatenate([per_image[i] for i in b])
        if v.size:
            meds.append(np.median(v))
    a = (1 - confidence) / 2
    lo, hi = (np.quantile(meds, [a, 1 - a]) if meds else (_NAN, _NAN))
    return _row(specimen, quantity, unit, n_images, value, ci_low=float(lo), ci_high=float(hi),
                ci_method="bootstrap over images", bootstrap_low=float(lo),
                bootstrap_high=float(hi),
                note="median: bootstrap percentile interval (no between-image t interval)")


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table.columns:
        return np.full(len(table), _NAN)
    return pd.to_numeric(table[name], errors="coerce").to_numpy(float)


def _areas(images: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Analysed area per image in cm^2 when every image has it, else in px^2."""
    cm2 = _col(images, "analysed_area_cm2")
    if cm2.size and np.all(np.isfinite(cm2) & (cm2 > 0)):
        return cm2, "cm^2"
    return _col(images, "analysed_px"), "px^2"


def _length(objects: pd.DataFrame, summary_unit: str, base: str) -> tuple[str, str]:
    """(column, unit) of a length in the objects table: ``<base>_<unit>`` when present and
    finite, else the pixel column."""
    col = f"{base}_{summary_unit}"
    if col in objects.columns and np.isfinite(_col(objects, col)).all():
        return col, summary_unit
    return base, "px"


def _size_rows(specimen: str, images: pd.DataFrame, objects: pd.DataFrame | None, unit: str,
               confidence: float, n_boot: int, seed: int) -> list[dict[str, Any]]:
    ids = images["image_id"].astype(str).tolist()
    n = len(ids)
    rows = []
    if objects is None:
        # the summary's per-image means, weighted by the number of interior objects
        interior = _col(images, "n_objects") - _col(images, "n_border")
        mean = _col(images, f"ecd_{unit}_mean")
        u = unit
        if not np.isfinite(mean).all():
            mean, u = _col(images, "ecd_px_mean"), "px"
        ok = np.isfinite(mean) & (interior > 0)
        rows.append(_ratio_row(specimen, "ecd_mean", u, (mean * interior)[ok], interior[ok],
                               confidence, n_boot, seed, n))
        for q in ("ecd_median", "feret_mean", "feret_median"):
            rows.append(_row(specimen, q, u, n, _NAN,
                             note="needs the per-object table (objects.csv)"))
        return rows
    obj = objects[objects["image_id"].astype(str).isin(ids)]
    if "touches_border" in obj.columns:
        obj = obj[~obj["touches_border"].astype(bool)]
    for base, name in (("ECD", "ecd"), ("Feret", "feret")):
        col, u = _length(obj, unit, base)
        values = pd.to_numeric(obj[col], errors="coerce") if col in obj.columns else None
        if values is None:
            rows.append(_row(specimen, f"{name}_mean", u, n, _NAN, note=f"no {base} column"))
            rows.append(_row(specimen, f"{name}_median", u, n, _NAN, note=f"no {base} column"))
            continue
        by_image = {i: values[obj["image_id"].astype(str) == i].dropna().to_numpy(float)
                    for i in ids}
        per_image = [v for v in by_image.values() if v.size]
        sums = np.array([v.sum() for v in per_image])
        counts = np.array([float(v.size) for v in per_image])
        rows.append(_ratio_row(specimen, f"{name}_mean", u, sums, counts, confidence, n_boot, seed, n))
        rows.append(_median_row(specimen, f"{name}_median", u, per_image, confidence, n_boot,
                                seed, n))
    return rows


def _density_rows(specimen: str, images: pd.DataFrame, area: np.ndarray, area_unit: str,
                  confidence: float, n_boot: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    n = len(images)
    dens_unit = "cm^-2" if area_unit == "cm^2" else "px^-2"
    total_area = float(area.sum())
    for est in COUNT_ESTIMATORS:
        counts = _col(images, f"count_{est}")
        if not np.isfinite(counts).all():
            continue
        total = float(counts.sum())
        if est in FRAME_COUNTS:
            plo, phi = garwood_interval(total, confidence)
            rows.append(_row(specimen, f"count_{est}", "pores", n, total, ci_low=plo, ci_high=phi,
                             ci_method="Poisson (Garwood)", poisson_low=plo, poisson_high=phi,
                             note="total count over the specimen's images"))
        else:
            rows.append(_row(specimen, f"count_{est}", "pores", n, total,
                             note="Boolean-model estimate, not a count: no Poisson interval"))
        row = _ratio_row(specimen, f"density_{est}", dens_unit, counts, area, confidence, n_boot,
                         seed, n)
        if est in FRAME_COUNTS:
            plo, phi = plo / total_area, phi / total_area
            row.update(poisson_low=plo, poisson_high=phi)
            if n < 2:
                row.update(ci_low=plo, ci_high=phi, ci_method="Poisson (Garwood)",
                           note=_ONE_IMAGE + "; Poisson counting interval only")
            else:
                row.update(ci_low=min(plo, row["between_low"]), ci_high=max(phi, row["between_high"]),
                           ci_method="union of between-image t and Poisson (Garwood)")
        elif n < 2:
            row["note"] = _ONE_IMAGE + "; no Poisson interval for a model estimate"
        rows.append(row)
    return rows


def _groups_of(summary: pd.DataFrame, groups: Mapping[str, str] | pd.Series) -> list[str]:
    groups = dict(groups.items()) if isinstance(groups, pd.Series) else dict(groups)
    out = []
    for i in summary["image_id"].astype(str):
        if i not in groups:
            raise SpecimenError(f"image {i!r} of the summary has no specimen (not in the groups)")
        out.append(str(groups[i]))
    return out


def specimen_statistics(summary: pd.DataFrame, groups: Mapping[str, str] | pd.Series, *,
                        objects: pd.DataFrame | None = None, confidence: float = 0.95,
                        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per-specimen porosity, density, counts, sizes and area, each with an interval.

    Parameters
    ----------
    summary : the per-image table of ``measure`` / ``analyze`` (``summary.csv``): ``image_id``,
        ``porosity``, ``analysed_px``, ``analysed_area_cm2`` (NaN without a pixel size),
        ``count_<estimator>``, ``n_objects``, ``n_border``, ``ecd_<unit>_mean`` and
        ``length_unit``; missing count columns are skipped.
    groups : ``{image_id: specimen}`` (or a Series indexed by image id), e.g. from
        :func:`porescope.io.grouping.group_keys` with the ids as index.
    objects : the per-object table (``objects.csv``: ``image_id``, ``ECD``, ``Feret``,
        ``ECD_<unit>``, ``Feret_<unit>``, ``touches_border``); without it only the mean ECD
        (from the summary) is given and the medians and Feret rows say they need it.
    confidence : two-sided level of every interval, in (0, 1).
    n_boot : bootstrap resamples (>= 100).
    seed : bootstrap seed (with the specimen and quantity names).

    Returns
    -------
    DataFrame with :data:`STAT_COLUMNS`, one row per (specimen, quantity); specimens sorted by
    name. Quantities: ``porosity`` (fraction), ``count_<estimator>`` and
    ``density_<estimator>`` (``cm^-2``, or ``px^-2`` when a pixel size is missing),
    ``ecd_mean``, ``ecd_median``, ``feret_mean``, ``feret_median`` (length unit of the summary,
    or px), ``analysed_area`` (cm^2 or px^2), ``n_images``. See the module docstring for the
    intervals and the combination rule.
    """
    if not 0 < confidence < 1:
        raise SpecimenError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(n_boot) < 100:
        raise SpecimenError(f"n_boot must be >= 100 bootstrap resamples, got {n_boot!r}")
    if "image_id" not in summary.columns:
        raise SpecimenError("summary: no 'image_id' column")
    if summary["image_id"].astype(str).duplicated().any():
        dup = summary.loc[summary["image_id"].astype(str).duplicated(), "image_id"].tolist()
        raise SpecimenError(f"summary: image_id listed twice: {dup}")
    spec = pd.Series(_groups_of(summary, groups), index=summary.index)
    rows: list[dict[str, Any]] = []
    for specimen in sorted(spec.unique()):
        # sorted by id: the bootstrap then does not depend on the order of the rows
        images = summary[spec == specimen]
        images = images.iloc[np.argsort(images["image_id"].astype(str).to_numpy(), kind="stable")]
        n = len(images)
        area, area_unit = _areas(images)
        porosity = _col(images, "porosity")
        rows.append(_ratio_row(specimen, "porosity", "fraction", porosity * area, area,
                               confidence, n_boot, seed, n))
        rows += _density_rows(specimen, images, area, area_unit, confidence, n_boot, seed)
        unit = str(images["length_unit"].iloc[0]) if "length_unit" in images.columns else "um"
        rows += _size_rows(specimen, images, objects, unit, confidence, n_boot, seed)
        rows.append(_row(specimen, "analysed_area", area_unit, n, float(area.sum()),
                         note="sum over the images"))
        rows.append(_row(specimen, "n_images", "images", n, float(n),
                         note=", ".join(images["image_id"].astype(str))))
    return pd.DataFrame(rows, columns=list(STAT_COLUMNS))
