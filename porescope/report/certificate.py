"""The per-image measurement tables: the certificate table and the densities by estimator,
with the sentences that explain how they were counted.

Both the pipeline report (test images) and the measure report (new micrographs) show them;
the columns are those of the analysis summary (:func:`porescope.analysis.membrane.analyse_mask`).

Examples
--------
>>> import pandas as pd
>>> from porescope.report.estimator_choice import choose_estimators
>>> row = {"image_id": "a", "pixel_size_nm": 25.0, "porosity": 0.205, "count_split_labels": 61,
...        "density_cm2_split_labels": 37231445.3, "length_unit": "um", "ecd_um_mean": 0.51}
>>> t = certificate_table(pd.DataFrame([row]), choose_estimators(None, None))
>>> cells = dict(zip(t.columns, t.rows[0]))
>>> cells["pore density (cm⁻²)"], cells["ECD mean (µm)"], cells["density from"]
('3.72×10⁷', '0.510', 'watershed split')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from porescope.report.document import Table
from porescope.report.estimator_choice import ESTIMATORS, EstimatorChoice, estimator_label
from porescope.report.formatting import (
    NA,
    finite_or_none,
    format_count,
    format_number,
    format_porosity,
    format_sci,
    format_sig,
    format_text,
)
from porescope.report.section_parts import records

__all__ = ["certificate_table", "density_table", "choice_sentence", "no_choice_sentence",
           "guard_frame_sentence"]

_UNIT_TEXT = {"um": "µm", "nm": "nm", "px": "px"}


def _unit_columns(values: Sequence[tuple[float | None, str]], fmt) -> tuple[str, list[str]]:
    """(header unit suffix, cells): the unit goes in the header when every row shares it."""
    units = {u for v, u in values if v is not None}
    if len(units) <= 1:
        unit = next(iter(units), "")
        return (f" ({unit})" if unit else ""), [fmt(v) for v, _ in values]
    return "", [NA if v is None else f"{fmt(v)} {u}" for v, u in values]


def _length_unit(row: Mapping[str, Any]) -> str:
    return str(row.get("length_unit") or "um")


def _ecd(row: Mapping[str, Any], stat: str) -> tuple[float | None, str]:
    unit = _length_unit(row)
    v = finite_or_none(row.get(f"ecd_{unit}_{stat}"))
    if v is not None:
        return v, _UNIT_TEXT.get(unit, unit)
    return finite_or_none(row.get(f"ecd_px_{stat}")), "px"


def _density(row: Mapping[str, Any], est: str) -> tuple[float | None, str]:
    v = finite_or_none(row.get(f"density_cm2_{est}"))
    if v is not None:
        return v, "cm⁻²"
    return finite_or_none(row.get(f"density_px2_{est}")), "px⁻²"


def certificate_table(summary: pd.DataFrame, choice: EstimatorChoice, *,
                      caption: str = "") -> Table:
    """The per-image certificate table from an analysis summary (``data/analysis/summary.csv``
    or ``data/measured/summary.csv`` columns): image, pixel size, porosity, pore density with
    the estimator used, the three counts, ECD mean and sd, Clark-Evans R and verdict, the
    Monte-Carlo CSR verdict."""
    rows = records(summary)
    used = [choice.for_porosity(r.get("porosity")) for r in rows]
    d_unit, d_cells = _unit_columns([_density(r, e) for r, e in zip(rows, used)], format_sci)
    m_unit, m_cells = _unit_columns([_ecd(r, "mean") for r in rows], format_sig)
    s_unit, s_cells = _unit_columns([_ecd(r, "sd") for r in rows], format_sig)
    cols = ("image", "pixel size (nm)", "porosity (%)", f"pore density{d_unit}", "density from",
            *(f"pores: {estimator_label(e)}" for e in ESTIMATORS), f"ECD mean{m_unit}", f"ECD sd{s_unit}",
            "Clark-Evans R", "Clark-Evans verdict", "CSR test (Monte-Carlo)")
    guarded = "certified" in summary.columns   # measured micrographs carry the quality verdict
    out = []
    for k, r in enumerate(rows):
        image = str(r.get("image_id"))
        if guarded and r.get("certified") != "yes":
            # an uncertified number never appears without its flag
            image += " ⚠ NOT CERTIFIED"
        out.append((image, format_number(r.get("pixel_size_nm"), ".4g"),
                    format_porosity(r.get("porosity")), d_cells[k], estimator_label(used[k]),
                    *(format_count(r.get(f"count_{e}"), e) for e in ESTIMATORS),
                    m_cells[k], s_cells[k], format_number(r.get("ce_R"), ".3f"),
                    format_text(r.get("ce_verdict")), format_text(r.get("mc_verdict"))))
    return Table(cols, tuple(out), ("l", "r", "r", "r", "l", "r", "r", "r", "r", "r", "r", "l", "l"),
                 caption)


def density_table(summary: pd.DataFrame, caption: str) -> Table:
    """Per image: the pore density by each estimator, the pore, region and border-object counts
    and the mean area of one pore."""
    rows = records(summary)
    per_est = {e: _unit_columns([_density(r, e) for r in rows], format_sci) for e in ESTIMATORS}
    cols = ("image", *(f"density: {estimator_label(e)}{per_est[e][0]}" for e in ESTIMATORS),
            "pores (split)", "regions", "border objects", "E[A] of one pore (px)")
    out = []
    for k, r in enumerate(rows):
        out.append((str(r.get("image_id")), *(per_est[e][1][k] for e in ESTIMATORS),
                    format_number(r.get("n_pores"), ".0f"), format_number(r.get("n_regions"), ".0f"),
                    format_number(r.get("n_border"), ".0f"),
                    format_number(r.get("mean_pore_area_px"), ".1f")))
    return Table(cols, tuple(out), ("l",) + ("r",) * (len(cols) - 1), caption)


_NO_CHOICE = ("no validation results were available to choose a count estimator, so pore "
              "density uses the {label} count (`{est}`), a direct count of the separated pores")


def no_choice_sentence(choice: EstimatorChoice) -> str:
    """The sentence for a choice without evidence: the default estimator is used."""
    text = _NO_CHOICE.format(label=estimator_label(choice.default), est=choice.default)
    return text[0].upper() + text[1:] + "."


def choice_sentence(choice: EstimatorChoice) -> str:
    """Which estimator the pore densities use per porosity band, with the errors behind it."""
    if not choice.bands:
        return no_choice_sentence(choice)
    parts = []
    for band, _, _, est, maes in choice.bands:
        others = ", ".join(f"{estimator_label(e)} {maes[e]:.2f} %" for e in ESTIMATORS if e in maes and e != est)
        parts.append(f"porosity {band}: **{estimator_label(est)}** (`{est}`, mean |count error| "
                     f"{maes[est]:.2f} %" + (f"; {others}" if others else "") + ")")
    return ("Pore density uses, per image, the count estimator with the lowest mean absolute count "
            f"error in the image's porosity band, from {choice.source}: " + "; ".join(parts) + ".")


def guard_frame_sentence(include_edges: Sequence[str] | None) -> str:
    """How objects are counted and densities computed; ``include_edges``: the analysis's
    ``include_edges`` (default top and left)."""
    edges = list(include_edges) if include_edges else ["top", "left"]
    excluded = [e for e in ("top", "bottom", "left", "right") if e not in edges]
    return ("Counts use the guard-frame rule (objects touching the "
            f"{' or '.join(excluded) or 'no'} edge are not counted); the Boolean-model count is "
            "λ × analysed area with λ = −ln(1 − porosity) / E[A], E[A] the mean area of one pore. "
            "ECD statistics exclude objects touching the image border. Densities per cm² need the "
            "pixel size; without it they are per px².")
