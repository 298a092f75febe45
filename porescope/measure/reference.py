"""Measured against a lab's manual reference: per-image and pooled errors of every estimator.

A lab that counted pores by hand (or measured porosity on hand-checked masks) keeps a table of
one row per micrograph, like paper 000's model-vs-manual table. :func:`read_reference` reads it
(CSV; ``image`` = file stem, ``count`` = manual pore count, ``porosity`` = manual porosity as a
fraction; porescope's own reference columns ``manual_count_guard_frame`` / ``porosity_manual``
are understood too) and :func:`reference_errors` compares a measure run's ``summary.csv`` with it.

The comparison is only fair when both count the same thing in the same region: the manual
count must follow the guard-frame rule of ``analyze.include_edges`` and the analysed region
(``crop_bottom``, ``margin_px``) must match the one the counter used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.errors import PorescopeError

#: summary.csv count column of each estimator
COUNT_COLUMNS = {"median_area": "count_median_area", "split_labels": "count_split_labels",
                 "boolean_model": "count_boolean_model"}
_ALIASES = {"manual_count_guard_frame": "count", "porosity_manual": "porosity", "stem": "image"}


class ReferenceError(PorescopeError, ValueError):
    """The reference table cannot be read or does not fit the measured images."""


def read_reference(path: str | os.PathLike) -> pd.DataFrame:
    """The manual reference table: ``image`` (str) and ``count`` and / or ``porosity`` (float).

    Examples
    --------
    >>> import io, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "manual.csv"
    >>> _ = f.write_text("image,count,porosity\\nA,100,0.20\\nB,50,\\n")
    >>> read_reference(f)
      image  count  porosity
    0     A  100.0       0.2
    1     B   50.0       NaN
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"image": str, "stem": str})
    except FileNotFoundError:
        raise ReferenceError(f"{path}: reference table not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReferenceError(f"{path}: not a readable CSV table ({exc})") from None
    table = table.rename(columns={k: v for k, v in _ALIASES.items() if k in table and v not in table})
    if "image" not in table:
        raise ReferenceError(f"{path}: needs an 'image' column (the micrograph's file stem)")
    wanted = [c for c in ("count", "porosity") if c in table]
    if not wanted:
        raise ReferenceError(f"{path}: needs a 'count' and / or a 'porosity' column")
    out = table[["image", *wanted]].copy()
    out["image"] = out["image"].astype(str).map(lambda s: Path(s).stem if "." in s else s)
    for c in wanted:
        raw = out[c]
        out[c] = pd.to_numeric(raw, errors="coerce").astype(float)
        # an empty cell means "not counted"; anything else that is no number is a typo
        typo = out[c].isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if typo.any():
            bad = ", ".join(f"{i} ({v!r})" for i, v in zip(out.loc[typo, "image"], raw[typo]))
            raise ReferenceError(f"{path}: '{c}' is not a number for image(s) {bad}")
    if out["image"].duplicated().any():
        dup = sorted(set(out.loc[out["image"].duplicated(), "image"]))
        raise ReferenceError(f"{path}: image(s) listed twice: {', '.join(dup)}")
    if "porosity" in out and (out["porosity"] > 1).any():
        raise ReferenceError(f"{path}: 'porosity' must be a fraction in [0, 1] (got values > 1: "
                             "percent?)")
    return out.reset_index(drop=True)


def reference_errors(summary: pd.DataFrame, reference: pd.DataFrame
                     ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Errors of every count estimator and of porosity against the manual reference.

    Parameters
    ----------
    summary : DataFrame
        A measure run's ``summary.csv`` (``image_id``, ``porosity``, ``count_*`` columns).
    reference : DataFrame
        From :func:`read_reference`.

    Returns
    -------
    table : DataFrame
        One row per image in both: the manual values, each estimator's count and its error in
        percent of the manual count, the porosity and its error in percentage points.
    metrics : dict
        ``n_images``, ``missing`` (reference images not measured), per estimator
        ``{mean_abs_pct, max_abs_pct, pooled_pct}`` (pooled = sum of counts / sum of manual
        counts - 1), ``recommended_count``: the estimator closest to the manual counts (lowest
        mean |error|, then lowest max |error|), and for porosity ``{mean_abs_pp, max_abs_pp,
        pooled_pp}`` (pooled over the images' porosities, unweighted).

    Examples
    --------
    >>> summary = pd.DataFrame({"image_id": ["A", "B"], "porosity": [0.21, 0.10],
    ...     "count_median_area": [90, 50], "count_split_labels": [104, 49],
    ...     "count_boolean_model": [101.0, 51.0]})
    >>> ref = pd.DataFrame({"image": ["A", "B"], "count": [100.0, 50.0], "porosity": [0.20, 0.10]})
    >>> table, m = reference_errors(summary, ref)
    >>> m["count"]["split_labels"]
    {'mean_abs_pct': 3.0, 'max_abs_pct': 4.0, 'pooled_pct': 2.0}
    >>> m["recommended_count"]
    'boolean_model'
    >>> m["porosity"]
    {'mean_abs_pp': 0.5, 'max_abs_pp': 1.0, 'pooled_pp': 0.5}
    """
    ref = reference.rename(columns={"count": "manual_count", "porosity": "manual_porosity"})
    merged = ref.merge(summary, left_on="image", right_on="image_id", how="inner")
    missing = sorted(set(ref["image"]) - set(merged["image"]))
    rows = pd.DataFrame({"image": merged["image"]})
    metrics: dict[str, Any] = {"n_images": int(len(merged)), "missing": missing}
    if "manual_count" in merged:
        rows["manual_count"] = merged["manual_count"]
        has = (merged["manual_count"].notna() & (merged["manual_count"] > 0)).to_numpy()
        metrics["count"] = {}
        for name, col in COUNT_COLUMNS.items():
            if col not in merged:
                continue
            manual, counted = merged["manual_count"].to_numpy(float), merged[col].to_numpy(float)
            err = np.full(len(merged), np.nan)
            err[has] = 100.0 * (counted[has] - manual[has]) / manual[has]
            rows[col], rows[f"{name}_error_pct"] = counted, err
            pooled = 100.0 * (counted[has].sum() / manual[has].sum() - 1) if has.any() else np.nan
            metrics["count"][name] = _stats(err[has], pooled, "pct")
        ranked = sorted((m["mean_abs_pct"], m["max_abs_pct"], name)
                        for name, m in metrics["count"].items() if np.isfinite(m["mean_abs_pct"]))
        # what the lab's own counts say, which may differ from the synthetic validation's choice
        metrics["recommended_count"] = ranked[0][2] if ranked else None
    if "manual_porosity" in merged:
        has = merged["manual_porosity"].notna().to_numpy()
        manual, measured = merged["manual_porosity"].to_numpy(float), merged["porosity"].to_numpy(float)
        err = np.full(len(merged), np.nan)
        err[has] = 100.0 * (measured[has] - manual[has])
        rows["manual_porosity"], rows["porosity"], rows["porosity_error_pp"] = manual, measured, err
        metrics["porosity"] = _stats(err[has], float(np.mean(err[has])) if has.any() else np.nan, "pp")
    return rows.reset_index(drop=True), metrics


def _stats(errors: np.ndarray, pooled: float, unit: str) -> dict[str, float]:
    if errors.size == 0:
        return {f"mean_abs_{unit}": float("nan"), f"max_abs_{unit}": float("nan"),
                f"pooled_{unit}": float("nan")}
    r = lambda x: round(float(x), 4)  # noqa: E731  (metrics JSON: 4 decimals)
    return {f"mean_abs_{unit}": r(np.mean(np.abs(errors))), f"max_abs_{unit}": r(np.max(np.abs(errors))),
            f"pooled_{unit}": r(pooled)}

