"""The per-specimen section of the certificate: figures with 95 % intervals and the systematic
error beside them, and how they were computed.

Input: the long table of :func:`porescope.analysis.specimens.specimen_statistics` and,
optionally, each specimen's :func:`porescope.analysis.error_budget.error_budget` (from the
``validate`` table). :func:`specimen_blocks` gives an overview table (one row per specimen),
then per specimen a table of every quantity (value, interval, interval method, systematic
error) and, for a single image, what can and cannot be claimed; the method paragraph states
the interval rules.

Examples
--------
>>> import pandas as pd
>>> from porescope.analysis.specimens import specimen_statistics
>>> summary = pd.DataFrame({"image_id": ["a", "b", "c"], "analysed_px": [10000] * 3,
...     "analysed_area_cm2": [6.25e-6] * 3, "porosity": [0.20, 0.22, 0.18],
...     "count_split_labels": [40.0, 44.0, 37.0]})
>>> stats = specimen_statistics(summary, {"a": "S1", "b": "S1", "c": "S2"}, n_boot=200)
>>> blocks = specimen_blocks(stats)
>>> [type(b).__name__ for b in blocks][:4]
['Heading', 'Paragraph', 'Table', 'Heading']
>>> overview = blocks[2]
>>> overview.rows[0][:3]
('S1', '2', '21.00 [8.29, 33.71]')
>>> any("one image" in b.text for b in blocks if type(b).__name__ == "Note")
True
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from porescope.analysis.error_budget import recommended_estimator, systematic_text
from porescope.report.document import Block, Heading, Note, Paragraph, Table
from porescope.report.estimator_choice import estimator_label
from porescope.report.formatting import NA, finite_or_none, format_porosity, format_sci, format_sig

__all__ = ["METHOD_TEXT", "specimen_blocks", "quantity_label", "format_value"]

#: How the intervals were computed (the report's method paragraph).
METHOD_TEXT = (
    "Each specimen's figure pools its micrographs: porosity = total pore area / total analysed "
    "area, density = total count / total analysed area, mean size = size sum / number of pores "
    "(pores not touching the border), median size = median of the pooled pores. "
    "**Between-image interval**: ratio estimator over the images with its linearised standard "
    "error and a Student t with n − 1 degrees of freedom; it covers everything that varies from "
    "field to field (heterogeneity, Poisson scatter, segmentation). **Bootstrap**: the same "
    "figure on resamples of the images (fixed seed), shown as a cross-check and used for the "
    "medians; with few images it is too narrow. **Poisson**: exact Garwood interval of the "
    "total count, for the frame counts. **Density interval stated** = the union of the "
    "between-image and Poisson intervals (the between-image variance already contains the "
    "Poisson scatter, so they are not added in quadrature; the Poisson interval is a floor "
    "when few images agree by chance). **Systematic**: the bias ± spread of the same "
    "measurement on validation membranes of known truth (predicted masks) at this porosity "
    "and pore size; it is not included in the interval. With one image only the Poisson "
    "interval of the density can be stated: the field-to-field variability, and so the "
    "uncertainty of porosity and sizes, is unknown.")

_LABELS = {"porosity": "porosity (%)", "ecd_mean": "ECD mean", "ecd_median": "ECD median",
           "feret_mean": "Feret mean", "feret_median": "Feret median",
           "analysed_area": "analysed area", "n_images": "images"}
_UNITS = {"um": "µm", "nm": "nm", "px": "px", "cm^-2": "cm⁻²", "px^-2": "px⁻²", "cm^2": "cm²",
          "px^2": "px²"}


def quantity_label(quantity: str, unit: str) -> str:
    """Readable name of a quantity with its unit: ``density_split_labels`` ->
    ``pore density, watershed split (cm⁻²)``."""
    u = _UNITS.get(unit, unit)
    for prefix, name in (("density_", "pore density"), ("count_", "pore count")):
        if quantity.startswith(prefix):
            label = f"{name}, {estimator_label(quantity[len(prefix):])}"
            return label if prefix == "count_" else f"{label} ({u})"
    label = _LABELS.get(quantity, quantity)
    if quantity in ("porosity", "n_images"):
        return label
    return f"{label} ({u})"


def format_value(quantity: str, value) -> str:
    """A value in the report's format: porosity in %, densities and areas in scientific
    notation, counts as integers (Boolean model 1 decimal), lengths 3 significant digits."""
    v = finite_or_none(value)
    if v is None:
        return NA
    if quantity == "porosity":
        return format_porosity(v)
    if quantity.startswith("density_") or quantity == "analysed_area":
        return format_sci(v)
    if quantity.startswith("count_"):
        return f"{v:.1f}" if quantity.endswith("boolean_model") else f"{v:.0f}"
    if quantity == "n_images":
        return f"{v:.0f}"
    return format_sig(v)


def _interval(quantity: str, lo, hi) -> str:
    if finite_or_none(lo) is None or finite_or_none(hi) is None:
        return NA
    return f"[{format_value(quantity, lo)}, {format_value(quantity, hi)}]"


def _systematic(quantity: str, budget: pd.DataFrame | None) -> str:
    """Validation measures porosity and counts (the density shares the count's relative error)."""
    if not quantity.startswith(("porosity", "density_", "count_")):
        return "not validated"
    if budget is None:
        return "not available (no validation table)"
    if quantity == "porosity":
        return systematic_text(budget, "porosity")
    return systematic_text(budget, "count", quantity.split("_", 1)[1])


def _with_interval(quantity: str, row: pd.Series) -> str:
    value = format_value(quantity, row["value"])
    ci = _interval(quantity, row["ci_low"], row["ci_high"])
    return value if ci == NA else f"{value} {ci}"


def _one_image_note(specimen: str) -> Note:
    return Note(f"Specimen {specimen} has one image: the pore density is stated with its "
                "Poisson counting interval only; the porosity and the pore sizes are the values "
                "of this one field, with **no interval** — how much they vary across the "
                "specimen cannot be claimed from one micrograph. Measure several fields for a "
                "certificate.")


def specimen_blocks(stats: pd.DataFrame, budgets: Mapping[str, pd.DataFrame] | None = None, *,
                    level: int = 2, density_estimator: str = "split_labels",
                    confidence: float = 0.95) -> list[Block]:
    """The blocks of the specimens section.

    Parameters
    ----------
    stats : :func:`~porescope.analysis.specimens.specimen_statistics` table.
    budgets : ``{specimen: error budget}`` (:func:`~porescope.analysis.error_budget.error_budget`);
        ``None`` = no validation table (the systematic column says so).
    level : heading level of the section (the specimens get ``level + 1``).
    density_estimator : the estimator of the overview's density column (the recommended one
        of a specimen's budget, when there is one, is named in its table caption).
    confidence : the level of the intervals (for the headers).
    """
    pct = f"{100 * confidence:g} %"
    blocks: list[Block] = [Heading(level, "Specimens"), Paragraph(METHOD_TEXT)]
    if stats is None or stats.empty:
        return blocks + [Paragraph("No specimens.")]
    by = {s: t.set_index("quantity") for s, t in stats.groupby("specimen", sort=True)}
    dens = f"density_{density_estimator}"
    over = []
    dunit = ""
    for s, t in by.items():
        cells = [str(s), format_value("n_images", t.loc["n_images", "value"])]
        for q in ("porosity", dens, "ecd_mean"):
            cells.append(_with_interval(q, t.loc[q]) if q in t.index else NA)
        if dens in t.index:
            dunit = _UNITS.get(t.loc[dens, "unit"], t.loc[dens, "unit"])
        over.append(tuple(cells))
    ecd_unit = next((_UNITS.get(t.loc["ecd_mean", "unit"], "") for t in by.values()
                     if "ecd_mean" in t.index), "")
    blocks.append(Table(
        ("specimen", "images", f"porosity % [{pct} CI]",
         f"pore density, {estimator_label(density_estimator)} ({dunit}) [{pct} CI]",
         f"ECD mean ({ecd_unit}) [{pct} CI]"),
        tuple(over), ("l", "r", "r", "r", "r"), f"Specimens ({pct} confidence intervals)"))
    for s, t in by.items():
        budget = None if budgets is None else budgets.get(str(s))
        blocks.append(Heading(level + 1, f"Specimen {s}"))
        rows = []
        for q, r in t.iterrows():
            if q == "n_images":
                continue
            rows.append((quantity_label(str(q), str(r["unit"])), format_value(str(q), r["value"]),
                         _interval(str(q), r["ci_low"], r["ci_high"]), str(r["ci_method"]),
                         _interval(str(q), r["bootstrap_low"], r["bootstrap_high"]),
                         _systematic(str(q), budget), str(r["note"] or "")))
        best = recommended_estimator(budget) if budget is not None else None
        cap = f"Specimen {s}: {int(t.loc['n_images', 'value'])} image(s) ({t.loc['n_images', 'note']})"
        if best is not None:
            cap += f"; recommended count estimator at this porosity and size: {estimator_label(best)}"
        blocks.append(Table(("quantity", "value", f"{pct} CI", "interval method",
                             "bootstrap (check)", "systematic (validation)", "note"),
                            tuple(rows), ("l", "r", "r", "l", "r", "l", "l"), cap))
        if int(t.loc["n_images", "value"]) == 1:
            blocks.append(_one_image_note(str(s)))
    return blocks
