"""The measurement sections: what a ``measure`` run found on new micrographs.

:func:`measure_report` is the whole report of a ``measure`` run; :func:`measured_blocks` is
also section 6 of the pipeline report, and :func:`distribution_blocks` its section 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from porescope.report.certificate import (
    certificate_table,
    choice_sentence,
    density_table,
    guard_frame_sentence,
)
from porescope.report.document import Block, Bullets, Figure, Heading, Note, Paragraph, Table
from porescope.report.estimator_choice import EstimatorChoice, choose_estimators
from porescope.report.figures import fit_png
from porescope.report.formatting import format_number, lookup
from porescope.report.output import Report, render_report
from porescope.report.params import ReportParams
from porescope.report.section_parts import cut_rows, figure_blocks, records

__all__ = ["DIST_FIGURES", "distribution_blocks", "measured_blocks", "measure_report",
           "not_measured_blocks"]

#: the distribution figures of the analysis, ``(file name, caption)``, in report order
DIST_FIGURES = (
    ("area_histogram.png", "Pore area per image and pooled (objects not touching the border)."),
    ("ecd_histogram.png", "Equivalent circular diameter (ECD) per image and pooled."),
    ("area_violin.png", "Pore area: violins per image with medians and quartiles."),
    ("ecd_violin.png", "ECD: violins per image with medians and quartiles."),
    ("feret_angle_kde.png", "Feret angle, circular kernel density estimate (0-180°)."),
    ("correlation.png", "Correlation of the shape descriptors (Pearson)."),
)


def distribution_blocks(figs: Mapping[str, bytes], key_prefix: str, name_prefix: str,
                        settings: ReportParams) -> list[Block]:
    """The distribution figures (:data:`DIST_FIGURES`, then each ``ripley_<image>.png``) found
    in ``figs`` under ``key_prefix``, named ``<name_prefix><file name>``."""
    blocks: list[Block] = []
    for name, caption in DIST_FIGURES:
        blocks += figure_blocks(figs, f"{key_prefix}{name}", f"{name_prefix}{name}", caption, settings)
    ripley = sorted(k for k in figs if k.startswith(f"{key_prefix}ripley_") and k.endswith(".png"))
    for key in ripley:
        name = key[len(key_prefix):]
        image = name[len("ripley_"):-len(".png")]
        blocks += figure_blocks(figs, key, f"{name_prefix}{name}",
                                f"{image}: Ripley's L(r) − r with the Monte-Carlo CSR envelope "
                                "(outside the envelope: not random at that scale).", settings)
    return blocks


def not_measured_blocks(run: Mapping[str, Any] | None, level: int) -> list[Block]:
    """The "Not measured" section: the files a run left out (``run.json``'s ``not_measured``,
    ``[{"file": ..., "reason": ...}]``) with why; nothing when there are none.

    Examples
    --------
    >>> blocks = not_measured_blocks({"not_measured": [{"file": "b.png", "reason": "is empty"}]}, 2)
    >>> [type(b).__name__ for b in blocks]
    ['Heading', 'Paragraph', 'Table']
    >>> not_measured_blocks({}, 2)
    []
    """
    bad = (run or {}).get("not_measured") or []
    if not bad:
        return []
    rows = tuple((str(b.get("file", "")), str(b.get("reason", ""))) for b in bad)
    return [Heading(level, "Not measured"),
            Paragraph(f"{len(rows)} file(s) of the input folder were not measured; the numbers "
                      "below do not include them. Fix or remove them and run again."),
            Table(("file", "reason"), rows, ("l", "l"), "Files not measured")]


def measured_blocks(summary: pd.DataFrame | None, run: Mapping[str, Any] | None,
                    figs: Mapping[str, bytes], choice: EstimatorChoice, settings: ReportParams, *,
                    level: int, fig_key: str, fig_prefix: str, overlay_key: str | None,
                    empty_text: str) -> list[Block]:
    """The blocks of a measurement run: run facts, the certificate and density tables, image
    handling, warnings (heading level ``level + 1``), outline thumbnails (figures under
    ``overlay_key``; none when ``None``) and the distribution figures under ``fig_key``.

    ``summary``: the run's ``summary.csv`` (``None`` or empty: ``empty_text`` instead of
    tables); ``run``: its ``run.json``.
    """
    blocks: list[Block] = []
    run = run or {}
    info = []
    if run.get("model") is not None:
        info.append(f"Model: `{run.get('model')}`")
    if run.get("input") is not None:
        info.append(f"Input: `{run.get('input')}` ({0 if summary is None else len(summary)} image(s))")
    if run.get("split"):
        info.append(f"Pore objects: {run.get('split')}")
    if info:
        blocks.append(Bullets(tuple(info)))
    blocks += not_measured_blocks(run, level + 1)
    if summary is None or summary.empty:
        return blocks + [Paragraph(empty_text)]
    t, cut = cut_rows(summary.sort_values("image_id"), settings.max_rows)
    include = lookup(run, "settings", "analysis", "include_edges")
    blocks.append(Paragraph(guard_frame_sentence(include) + " " + choice_sentence(choice)))
    blocks.append(certificate_table(t, choice, caption=f"Measurements per micrograph{cut}"))
    blocks.append(density_table(t, f"Pore density by estimator{cut}"))
    rows = []
    for r in records(t):
        rows.append((str(r.get("image_id")), str(r.get("image_file", "")), str(r.get("format", "")),
                     f"{format_number(r.get('orig_width'), '.0f')}×{format_number(r.get('orig_height'), '.0f')}",
                     format_number(r.get("crop_bottom"), ".0f"),
                     format_number(r.get("pixel_size_nm"), ".4g") + f" ({r.get('pixel_size_source', '')})",
                     format_number(r.get("scale"), ".3g") + f" ({r.get('scale_source', '')})"))
    blocks.append(Table(("image", "file", "format", "size (px)", "data bar rows cropped",
                         "pixel size nm (source)", "resize before inference"),
                        tuple(rows), ("l", "l", "l", "r", "r", "r", "r"), f"Image handling{cut}"))
    if "certified" in t.columns:
        flagged = [(str(r["image_id"]), str(r.get("quality_flags") or "")) for r in records(t)
                   if r.get("certified") != "yes"]
        n_ok = sum(1 for r in records(t) if r.get("certified") == "yes")
        blocks.append(Heading(level + 1, "Quality: may these numbers be certified?"))
        blocks.append(Paragraph(
            f"{n_ok} of {len(t)} micrograph(s) certified. The out-of-distribution guard flags "
            "objects far below the pore sizes the model was trained on, a median pore size out of "
            "that range, objects brighter than the surface (edge fringes, debris), hesitant "
            "probabilities and objects on burned-in text, logos or frames; an image with any flag "
            "is not certified, and its numbers are marked ⚠ in every table."))
        if flagged:
            blocks.append(Bullets(tuple(f"{i}: NOT CERTIFIED - {why}" for i, why in flagged)))
    if "warnings" in t.columns:
        warn = [(str(r["image_id"]), str(r["warnings"])) for r in records(t)
                if isinstance(r.get("warnings"), str) and r["warnings"].strip()]
        if warn:
            blocks += [Heading(level + 1, "Warnings"), Bullets(tuple(f"{i}: {w}" for i, w in warn))]
    if overlay_key is not None:
        over = sorted(k for k in figs if k.startswith(overlay_key))
        for key in over[:settings.max_overlays]:
            stem = key[len(overlay_key):].rsplit(".", 1)[0]
            blocks.append(Figure(f"{fig_prefix}overlay_{stem}.png",
                                 fit_png(figs[key], settings.thumbnail_width_px),
                                 f"{stem}: pore outlines (red) on the analysed micrograph."))
        if len(over) > settings.max_overlays:
            blocks.append(Note(f"{len(over) - settings.max_overlays} more outline images are in the "
                               "measurement folder (`overlays/`)."))
    blocks += distribution_blocks(figs, fig_key, fig_prefix, settings)
    return blocks


def measure_report(summary: pd.DataFrame, run_info: Mapping[str, Any], figures: Mapping[str, bytes],
                   settings: ReportParams | None = None,
                   choice: EstimatorChoice | None = None,
                   extra_blocks: Sequence[Block] = ()) -> Report:
    """The report of a ``measure`` run: ``summary`` = its ``summary.csv`` table, ``run_info`` its
    ``run.json`` dict, ``figures`` = ``{file name: PNG}`` of its ``figures/`` folder (the
    Markdown links ``figures/<name>``). ``choice`` defaults to the watershed split count;
    ``extra_blocks`` (specimens, a reference comparison) come after the per-image sections.

    Examples
    --------
    >>> import pandas as pd
    >>> report = measure_report(pd.DataFrame(), {"input": "data/measure"}, {})
    >>> print(report.markdown, end="")
    # porescope measurement report
    <BLANKLINE>
    - Input: `data/measure` (0 image(s))
    <BLANKLINE>
    No micrographs were found in the input folder.
    """
    settings = settings or ReportParams(title="porescope measurement report")
    choice = choice or choose_estimators(None, None)
    figs = {f"figures/{k}": v for k, v in figures.items()}
    blocks: list[Block] = [Heading(1, settings.title)]
    blocks += measured_blocks(summary, run_info, figs, choice, settings, level=1,
                              fig_key="figures/", fig_prefix="", overlay_key=None,
                              empty_text="No micrographs were found in the input folder.")
    blocks += list(extra_blocks)
    if summary is not None and not summary.empty:
        blocks.append(Paragraph("Tables: `summary.csv` (per image), `objects.csv` (per object, ImageJ "
                                "column names; Fiji's X, Y = ours + 0.5 px). Masks: `masks/`, outlines: "
                                "`overlays/`."))
    return render_report(blocks, settings.title)
