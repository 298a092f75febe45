"""The report section comparing a measure run with a lab's manual reference.

Input: :func:`porescope.measure.reference.reference_errors`' table and metrics.

Examples
--------
>>> import pandas as pd
>>> from porescope.measure.reference import reference_errors
>>> summary = pd.DataFrame({"image_id": ["a"], "porosity": [0.21], "count_median_area": [90],
...     "count_split_labels": [104], "count_boolean_model": [101.0]})
>>> table, metrics = reference_errors(summary, pd.DataFrame({"image": ["a"], "count": [100.0]}))
>>> blocks = reference_blocks(table, metrics)
>>> blocks[0].text, blocks[2].rows[0]
('Against the manual reference', ('a', '100', '90 (-10.0 %)', '104 (+4.0 %)', '101 (+1.0 %)', '-', '-'))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from porescope.measure.reference import COUNT_COLUMNS
from porescope.report.document import Block, Heading, Paragraph, Table
from porescope.report.estimator_choice import estimator_label

__all__ = ["reference_blocks"]


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _count_cell(count: Any, err: Any) -> str:
    c, e = _num(count), _num(err)
    if not math.isfinite(c):
        return "-"
    return f"{c:.0f}" + (f" ({e:+.1f} %)" if math.isfinite(e) else "")


def reference_blocks(table: pd.DataFrame, metrics: Mapping[str, Any], *, level: int = 2) -> list[Block]:
    """Heading, a pooled-error paragraph and the per-image table (counts with their errors)."""
    blocks: list[Block] = [Heading(level, "Against the manual reference")]
    parts = []
    for name, m in (metrics.get("count") or {}).items():
        parts.append(f"{estimator_label(name)}: mean |error| {m['mean_abs_pct']:.1f} %, "
                     f"max {m['max_abs_pct']:.1f} %, pooled {m['pooled_pct']:+.1f} %")
    if metrics.get("porosity"):
        m = metrics["porosity"]
        parts.append(f"porosity: mean |error| {m['mean_abs_pp']:.2f} pp, max {m['max_abs_pp']:.2f} pp")
    missing = metrics.get("missing") or []
    text = (f"{metrics.get('n_images', 0)} image(s) in both the run and the reference. "
            + "; ".join(parts) + ".")
    best = metrics.get("recommended_count")
    if best:
        text += (f" Closest to the manual counts: {estimator_label(best)}; for micrographs like "
                 "these, report that count (the synthetic validation's recommendation is for "
                 "membranes like the training images).")
    if missing:
        text += f" In the reference but not measured: {', '.join(missing)}."
    blocks.append(Paragraph(text))
    rows = []
    for r in table.to_dict(orient="records"):
        manual_p, p, e = _num(r.get("manual_porosity")), _num(r.get("porosity")), _num(r.get("porosity_error_pp"))
        rows.append((str(r["image"]), _count_cell(r.get("manual_count"), math.nan),
                     *(_count_cell(r.get(col), r.get(f"{name}_error_pct")) for name, col in COUNT_COLUMNS.items()),
                     f"{100 * manual_p:.2f}" if math.isfinite(manual_p) else "-",
                     f"{100 * p:.2f} ({e:+.2f} pp)" if math.isfinite(e) else "-"))
    cols = ("image", "manual count", *(f"pores: {estimator_label(n)}" for n in COUNT_COLUMNS),
            "manual porosity (%)", "porosity (%)")
    blocks.append(Table(cols, tuple(rows), ("l",) + ("r",) * (len(cols) - 1),
                        "Measured against the manual reference (error in % of the manual count)"))
    return blocks
