"""Systematic error budget: the measured bias and spread of each estimator near a specimen's
porosity and pore size, from the ``validate`` table.

``validate`` measures fresh synthetic membranes with exact truth, on the ground-truth masks and
on the masks the model predicts (:mod:`porescope.analysis.validation`; its per-image table is
``plots/validate/table.csv``: ``image_id``, ``porosity_target``, ``mean_diameter_px``,
``mask``, ``estimator``, ``porosity_true``, ``porosity_error_pp``, ``count_error_pct``, ...).
The confidence intervals of :mod:`porescope.analysis.specimens` are *statistical* (what would
change with other fields of the same specimen); a biased segmentation or count rule moves every
field the same way and does not show in them. :func:`error_budget` gives that *systematic*
part: among the validation images whose true porosity and pore diameter lie in a band around
the specimen's (``|porosity_true - porosity| <= porosity_halfwidth`` and diameter within a
factor ``diameter_factor``), per estimator

* ``bias`` = mean error (porosity in percentage points, counts / densities in % of the truth),
* ``spread`` = standard deviation of the error over those images (``ddof=1``),
* ``n_images`` = how many validation images support it.

With fewer than ``min_images`` images in the band the bias and spread are NaN and the note says
the validation does not cover that porosity and size (no extrapolation). The recommended
estimator is the count estimator with the lowest ``|bias| + spread`` in the band
(:func:`recommended_estimator`); porosity does not depend on the estimator.

Pore diameters are compared in the pixels the model saw (the validation images' pixels): for a
micrograph resized before inference, pass its diameter in px times the resize factor.

Examples
--------
>>> import pandas as pd
>>> v = pd.DataFrame({"image_id": ["v0", "v0", "v1", "v1", "v2", "v2"],
...     "mask": ["predicted"] * 6, "estimator": ["split_labels", "median_area"] * 3,
...     "porosity_true": [0.10, 0.10, 0.12, 0.12, 0.14, 0.14], "mean_diameter_px": [20.0] * 6,
...     "porosity_error_pp": [0.5, 0.5, 0.3, 0.3, 0.4, 0.4],
...     "count_error_pct": [-2.0, -10.0, 1.0, -12.0, 0.0, -11.0]})
>>> b = error_budget(v, porosity=0.12, diameter_px=21.0)
>>> b[["quantity", "estimator", "bias", "n_images"]].round(2).values.tolist()
[['porosity', '', 0.4, 3], ['count', 'median_area', -11.0, 3], ['count', 'split_labels', -0.33, 3]]
>>> recommended_estimator(b)
'split_labels'
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from porescope.errors import PorescopeError

__all__ = ["BUDGET_COLUMNS", "ErrorBudgetError", "read_validation_table", "error_budget",
           "recommended_estimator",
           "systematic_text", "specimen_diameters_px", "specimen_budgets"]

#: Columns of :func:`error_budget`, in order.
BUDGET_COLUMNS: tuple[str, ...] = (
    "quantity", "estimator", "unit", "bias", "spread", "n_images", "mask", "porosity_low",
    "porosity_high", "diameter_low_px", "diameter_high_px", "recommended", "note")

_NEEDED = ("image_id", "mask", "estimator", "porosity_true", "mean_diameter_px",
           "porosity_error_pp", "count_error_pct")


class ErrorBudgetError(PorescopeError, ValueError):
    """The validation table cannot give an error budget (missing columns or mask kind)."""


def read_validation_table(path: str | os.PathLike) -> pd.DataFrame:
    """The validate stage's per-image table (``plots/validate/table.csv``), checked.

    Raises
    ------
    ErrorBudgetError
        The file is missing, not a CSV table, or lacks a column the error budget needs.
    """
    path = Path(path)
    if not path.is_file():
        raise ErrorBudgetError(f"{path}: validation table not found (the validate stage writes "
                               "plots/validate/table.csv)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ErrorBudgetError(f"{path}: not a readable CSV table ({exc})") from None
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ErrorBudgetError(f"{path}: not a validate table; missing column(s) "
                               f"{', '.join(missing)} (the validate stage writes "
                               "plots/validate/table.csv)")
    return table


def _stats(errors: np.ndarray, min_images: int) -> tuple[float, float, str]:
    errors = errors[np.isfinite(errors)]
    if errors.size < min_images:
        return (math.nan, math.nan,
                f"only {errors.size} validation image(s) at this porosity and pore size "
                f"(need {min_images}): not covered by the validation, no systematic estimate")
    return float(errors.mean()), float(errors.std(ddof=1)), ""


def error_budget(validation: pd.DataFrame, porosity: float, diameter_px: float | None, *,
                 mask: str = "predicted", porosity_halfwidth: float = 0.10,
                 diameter_factor: float = 1.5, min_images: int = 3) -> pd.DataFrame:
    """Bias and spread of porosity and of each count estimator near ``porosity`` / ``diameter_px``.

    Parameters
    ----------
    validation : the per-image validate table (columns ``image_id``, ``mask``, ``estimator``,
        ``porosity_true``, ``mean_diameter_px``, ``porosity_error_pp``, ``count_error_pct``).
    porosity : the specimen's porosity (fraction).
    diameter_px : its mean pore diameter (ECD) in the model's pixels; ``None`` or NaN = any size.
    mask : ``"predicted"`` (segmentation + measurement, the default) or ``"ground truth"``.
    porosity_halfwidth : half-width of the porosity band (fraction, e.g. 0.05 = +-5 pp).
    diameter_factor : the diameter band is ``[d / factor, d * factor]`` (> 1).
    min_images : fewest validation images for a bias and spread (>= 2).

    Returns
    -------
    DataFrame with :data:`BUDGET_COLUMNS`: one ``porosity`` row (unit ``pp``, estimator ``""``)
    and one ``count`` row per estimator in the table (unit ``%``; the same relative error
    applies to the density), sorted by estimator; ``recommended`` is True on the count row of
    :func:`recommended_estimator`.
    """
    missing = [c for c in _NEEDED if c not in validation.columns]
    if missing:
        raise ErrorBudgetError(f"validation table: missing column(s) {', '.join(missing)}")
    if not porosity_halfwidth > 0 or not diameter_factor > 1 or int(min_images) < 2:
        raise ErrorBudgetError("error_budget: need porosity_halfwidth > 0, diameter_factor > 1 "
                               f"and min_images >= 2 (got {porosity_halfwidth}, "
                               f"{diameter_factor}, {min_images})")
    v = validation[validation["mask"] == mask]
    if v.empty:
        kinds = sorted(set(validation["mask"].astype(str)))
        raise ErrorBudgetError(f"validation table: no rows with mask {mask!r} (has: {kinds}); "
                               "run validate with a model for predicted masks")
    p_lo, p_hi = porosity - porosity_halfwidth, porosity + porosity_halfwidth
    band = (v["porosity_true"] >= p_lo) & (v["porosity_true"] <= p_hi)
    d_lo = d_hi = math.nan
    if diameter_px is not None and math.isfinite(diameter_px):
        d_lo, d_hi = diameter_px / diameter_factor, diameter_px * diameter_factor
        band &= (v["mean_diameter_px"] >= d_lo) & (v["mean_diameter_px"] <= d_hi)
    v = v[band]
    common = {"mask": mask, "porosity_low": p_lo, "porosity_high": p_hi,
              "diameter_low_px": d_lo, "diameter_high_px": d_hi, "recommended": False}
    per_image = v.drop_duplicates("image_id")
    bias, spread, note = _stats(per_image["porosity_error_pp"].to_numpy(float), min_images)
    rows = [dict(quantity="porosity", estimator="", unit="pp", bias=bias, spread=spread,
                 n_images=int(per_image["porosity_error_pp"].notna().sum()), note=note, **common)]
    for est in sorted(set(validation["estimator"].astype(str))):
        err = v.loc[v["estimator"] == est, "count_error_pct"].to_numpy(float)
        bias, spread, note = _stats(err, min_images)
        rows.append(dict(quantity="count", estimator=est, unit="%", bias=bias, spread=spread,
                         n_images=int(np.isfinite(err).sum()), note=note, **common))
    out = pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))
    best = recommended_estimator(out)
    if best is not None:
        out.loc[(out["quantity"] == "count") & (out["estimator"] == best), "recommended"] = True
    return out


def recommended_estimator(budget: pd.DataFrame,
                          candidates: tuple[str, ...] = ("median_area", "split_labels",
                                                         "boolean_model")) -> str | None:
    """The count estimator with the lowest ``|bias| + spread`` in ``budget`` among
    ``candidates`` (the practical ones: not the Boolean model with a known mean area), or None
    when none has a finite budget. Ties: first in ``candidates`` order."""
    rows = budget[(budget["quantity"] == "count") & budget["estimator"].isin(candidates)]
    score = rows["bias"].abs() + rows["spread"]
    ok = np.isfinite(score.to_numpy(float))
    if not ok.any():
        return None
    order = {e: k for k, e in enumerate(candidates)}
    ranked = sorted(zip(score[ok], rows["estimator"][ok]), key=lambda t: (t[0], order[t[1]]))
    return str(ranked[0][1])


def systematic_text(budget: pd.DataFrame, quantity: str, estimator: str = "") -> str:
    """``"bias +0.40 ± 0.10 pp (n=3)"`` for one row of ``budget``, or why there is none.

    Examples
    --------
    >>> b = pd.DataFrame([{"quantity": "porosity", "estimator": "", "unit": "pp", "bias": 0.4,
    ...                    "spread": 0.1, "n_images": 3, "note": ""}])
    >>> systematic_text(b, "porosity"), systematic_text(b, "count", "split_labels")
    ('bias +0.40 ± 0.10 pp (n=3)', 'n/a (not in the validation table)')
    """
    rows = budget[(budget["quantity"] == quantity) & (budget["estimator"] == estimator)]
    if rows.empty:
        return "n/a (not in the validation table)"
    r = rows.iloc[0]
    if not (math.isfinite(r["bias"]) and math.isfinite(r["spread"])):
        return f"n/a ({int(r['n_images'])} validation image(s) in the band)"
    dec = 2 if r["unit"] == "pp" else 1
    return f"bias {r['bias']:+.{dec}f} ± {r['spread']:.{dec}f} {r['unit']} (n={int(r['n_images'])})"


def specimen_diameters_px(summary: pd.DataFrame, groups, scale: float = 1.0) -> dict[str, float]:
    """Mean pore ECD per specimen in px (per-image ``ecd_px_mean`` weighted by the number of
    interior objects, ``n_objects - n_border``), times ``scale`` (the resize factor before
    inference, to compare with the validation images' pixels); NaN without sizes.

    Examples
    --------
    >>> s = pd.DataFrame({"image_id": ["a", "b"], "ecd_px_mean": [10.0, 20.0],
    ...                   "n_objects": [4, 2], "n_border": [1, 1]})
    >>> specimen_diameters_px(s, {"a": "S", "b": "S"})
    {'S': 12.5}
    """
    g = pd.Series(groups) if not isinstance(groups, pd.Series) else groups
    spec = summary["image_id"].astype(str).map(lambda i: str(g[i]))
    n = (pd.to_numeric(summary["n_objects"], errors="coerce")
         - pd.to_numeric(summary["n_border"], errors="coerce")).to_numpy(float)
    d = pd.to_numeric(summary["ecd_px_mean"], errors="coerce").to_numpy(float)
    out = {}
    for s in sorted(spec.unique()):
        sel = (spec == s).to_numpy() & np.isfinite(d) & (n > 0)
        out[s] = float((d[sel] * n[sel]).sum() / n[sel].sum()) * scale if sel.any() else math.nan
    return out


def specimen_budgets(stats: pd.DataFrame, validation: pd.DataFrame,
                     diameters_px: dict[str, float], **kw) -> dict[str, pd.DataFrame]:
    """:func:`error_budget` of every specimen of a :func:`porescope.analysis.specimens.specimen_statistics`
    table at its porosity and its diameter from ``diameters_px`` (:func:`specimen_diameters_px`);
    ``kw`` go to :func:`error_budget`."""
    out = {}
    por = stats[stats["quantity"] == "porosity"].set_index("specimen")["value"]
    for s, p in por.items():
        out[str(s)] = error_budget(validation, float(p), diameters_px.get(str(s)), **kw)
    return out
