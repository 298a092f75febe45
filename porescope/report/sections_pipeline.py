"""The sections of the pipeline report: the certificate-style document of a pipeline run.

:func:`build_report` turns :class:`porescope.report.inputs.ReportInputs` (what the other stages
wrote; nothing is recomputed, every number printed comes from them) into a
:class:`porescope.report.output.Report`. Sections: key results; 1. what was measured, and with
which model; 2. segmentation quality; 3. the certificate (measurements per test image) and the
comparison with the reference; 4. size, shape and spatial distributions; 5. validation against
exact truth; 6. new micrographs (``measure``); an appendix of every input file with its
SHA-256. A missing input gives a short "Not available" note in its section.

Determinism: the same inputs give the same bytes (no clock, no random numbers, sorted
iteration; figures see :mod:`porescope.report.figures`).

Examples
--------
>>> from porescope.report.inputs import ReportInputs
>>> report = build_report(ReportInputs(params={"seed": 1}))
>>> report.markdown.splitlines()[:3]
['# porescope membrane report', '', '> No results are available yet: none of the metrics files was found.']
>>> report.figures
{}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from porescope.report.certificate import (
    certificate_table,
    choice_sentence,
    density_table,
    guard_frame_sentence,
    no_choice_sentence,
)
from porescope.report.document import Block, Bullets, Figure, Heading, Note, Paragraph, Table
from porescope.report.estimator_choice import (
    ESTIMATORS,
    EstimatorChoice,
    choose_estimators,
    estimator_label,
    parse_band,
)
from porescope.report.figures import figure_png, fit_png, training_curves_figure
from porescope.report.formatting import (
    NA,
    format_count,
    format_number,
    format_plain,
    format_porosity,
    format_signed,
    lookup,
)
from porescope.report.inputs import ReportInputs
from porescope.report.output import Report, render_report
from porescope.report.params import ReportParams
from porescope.report.section_parts import cut_rows, figure_blocks, not_available, records
from porescope.report.sections_measure import distribution_blocks, measured_blocks
from porescope.report.setup_rows import card_rows, param_rows

__all__ = ["build_report"]


def _key_results(inp: ReportInputs) -> list[Block]:
    items = []
    ev = inp.evaluate
    if ev:
        cls = [k for k in ev if isinstance(ev[k], Mapping) and "dice" in ev[k]]
        for c in cls:
            items.append(f"Segmentation ({c}), {ev.get('n_images')} test images: Dice mean "
                         f"{format_number(lookup(ev, c, 'dice', 'mean'))} (pooled "
                         f"{format_number(lookup(ev, c, 'dice', 'pooled'))}), IoU mean "
                         f"{format_number(lookup(ev, c, 'iou', 'mean'))}.")
        if lookup(ev, "objects", "map") is not None:
            items.append(f"Objects: mAP@0.5:0.95 {format_number(lookup(ev, 'objects', 'map'))}, "
                         f"AP@0.5 {format_number(lookup(ev, 'objects', 'ap@0.5'))}.")
    an = inp.analyze
    if an and lookup(an, "porosity", "pred") is not None:
        items.append(f"Porosity of the test images against the {an.get('reference')}: mean |error| "
                     f"{format_number(lookup(an, 'porosity', 'pred', 'mae_pp'), '.3f')} pp, max "
                     f"{format_number(lookup(an, 'porosity', 'pred', 'max_abs_pp'), '.3f')} pp.")
    va = inp.validate
    for key, what in (("predicted", "model + measurement"), ("ground_truth", "measurement alone")):
        t = lookup(va, "targets", key)
        if isinstance(t, Mapping) and "porosity_met" in t:
            bands = "; ".join(f"count {b}: {'met' if v.get('met') else 'not met'} "
                              f"(best {estimator_label(v.get('best_estimator'))}, max |error| "
                              f"{format_number(v.get('best_max_abs_pct'), '.2f')} % vs "
                              f"{format_number(v.get('tolerance_pct'), 'g')} %)"
                              for b, v in (t.get("count") or {}).items())
            beyond = _share(t.get("porosity_share_over"))
            items.append(f"Validation targets, {what}: porosity "
                         f"{'met' if t.get('porosity_met') else 'not met'} (max |error| "
                         f"{format_number(t.get('porosity_max_abs_pp'), '.3f')} pp vs "
                         f"{format_number(lookup(va, 'targets', 'porosity_abs_pp'), 'g')} pp"
                         + (f", {beyond} of {va.get('n_images')} images beyond it" if beyond else "")
                         + f"); {bands}.")
    ms = inp.measured_summary
    if ms is not None:
        items.append(f"New micrographs measured: {len(ms)}.")
    if not items:
        return [Note("No results are available yet: none of the metrics files was found.")]
    return [Heading(2, "Key results"), Bullets(tuple(items))]



def _setup(inp: ReportInputs, settings: ReportParams) -> list[Block]:
    p = inp.params
    blocks: list[Block] = [Heading(2, "1. What was measured, and with which model")]
    if inp.model_card:
        rows = card_rows(inp.model_card)
        cut = rows[:settings.max_rows]
        blocks.append(Table(("field", "value"), tuple(cut), ("l", "l"),
                            f"Model card (`{inp.path('model_card')}`)"
                            + (f", first {len(cut)} of {len(rows)} fields" if len(rows) > len(cut) else "")))
    elif "model_card" in inp.paths:
        blocks.append(Note(f"No model card (`{inp.path('model_card')}` not found); the model is "
                           "identified by its training parameters below."))
    else:
        blocks.append(Note("No model card was given; the model is identified by its training "
                           "parameters below."))
    aug = p.get("augment") if isinstance(p.get("augment"), Mapping) else {}
    dataset = []
    ingest = p.get("ingest") if isinstance(p.get("ingest"), Mapping) else {}
    if ingest:
        dataset.append(f"Source dataset `{ingest.get('source')}`; tiles of {ingest.get('tile_size')} px; "
                       f"pixel size {format_plain(ingest.get('pixel_size_nm'))} nm.")
    if aug:
        dataset.append(f"Training set: the train split augmented to `{aug.get('ops', '')}{aug.get('size', '')}` "
                       f"(operations `{aug.get('ops') or 'none'}`, {aug.get('size')} samples).")
    tr = inp.train
    if not tr:
        dataset.append(f"Training summary not available (`{inp.path('train')}` not found; run the "
                       "`train` stage).")
    else:
        dataset.append(f"Training: {tr.get('train_samples')} augmented samples, {tr.get('val_tiles')} "
                       f"validation tiles; {tr.get('epochs_run')} epochs run, the weights of epoch "
                       f"{tr.get('best_epoch')} (0-based, as in the curves) kept (val IoU "
                       f"{format_number(tr.get('val_iou'))}, Dice {format_number(tr.get('val_dice'))}); "
                       f"decision threshold {format_number(tr.get('threshold'))}.")
    n_test = lookup(inp.evaluate, "n_images")
    if n_test is None and inp.analysis_summary is not None:
        n_test = len(inp.analysis_summary)
    dataset.append(f"Test split: {n_test if n_test is not None else 'n/a'} whole images "
                   "(never augmented, never seen in training).")
    blocks.append(Bullets(tuple(dataset)))
    rows = (param_rows(p, "train", ("arch", "encoder", "encoder_depth", "decoder_channels",
                                     "encoder_weights", "init_from", "loss", "epochs", "batch_size",
                                     "lr", "optimizer", "scheduler", "calibrate_threshold"))
            + param_rows(p, "split", ("method", "val_fraction", "test_fraction"))
            + param_rows(p, "evaluate", ("tile", "overlap", "tta", "objects"))
            + param_rows(p, "analyze", ("objects", "connectivity", "include_edges", "length_unit",
                                         "counting", "split", "spatial")))
    if p.get("seed") is not None:
        rows.insert(0, ("`seed`", format_plain(p.get("seed"))))
    if rows:
        blocks.append(Table(("parameter", "value"), tuple(rows), ("l", "l"),
                            "Key parameters (params.yaml)"))
    else:
        blocks.append(Note("Not available: the parameters (params.yaml has none of the train / "
                           "split / evaluate / analyze groups)."))
    return blocks


def _segmentation(inp: ReportInputs, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(2, "2. Segmentation quality on the test images")]
    ev = inp.evaluate
    if not ev:
        blocks.append(not_available("the segmentation scores", inp.path("evaluate"), "evaluate"))
    else:
        rows = []
        for cls in ev:
            if not (isinstance(ev[cls], Mapping) and "dice" in ev[cls]):
                continue
            for m, name in (("dice", "Dice"), ("iou", "IoU"), ("precision", "precision"),
                            ("recall", "recall")):
                rows.append((cls, name, *(format_number(lookup(ev, cls, m, s)) for s in
                                          ("mean", "median", "min", "max", "pooled"))))
        blocks.append(Table(("class", "score", "mean", "median", "min", "max", "pooled"), tuple(rows),
                            ("l", "l", "r", "r", "r", "r", "r"),
                            f"Pixel scores over {ev.get('n_images')} test images (per-image statistics "
                            "and the pooled score over all pixels)"))
        o = ev.get("objects") or {}
        if o:
            blocks.append(Table(
                ("mAP@0.5:0.95", "mAP pooled", "AP@0.5", "AP@0.75", "precision@0.5", "recall@0.5",
                 "F1@0.5", "true objects", "predicted objects"),
                ((format_number(o.get("map")), format_number(o.get("map_pooled")),
                  format_number(o.get("ap@0.5")), format_number(o.get("ap@0.75")),
                  format_number(o.get("precision@0.5")), format_number(o.get("recall@0.5")),
                  format_number(o.get("f1@0.5")), format_number(o.get("n_true"), ".0f"),
                  format_number(o.get("n_pred"), ".0f")),),
                ("r",) * 9, "Object scores (one-to-one matching by IoU; AP = TP / (TP + FP + FN))"))
    pi = inp.eval_per_image
    if pi is not None and len(pi):
        t, cut = cut_rows(pi.sort_values(["dice", "image_id"]), settings.max_rows)
        blocks.append(Table(("image", "class", "Dice", "IoU", "precision", "recall"),
                            tuple((str(r["image_id"]), str(r.get("class_name", "")),
                                   *(format_number(r.get(c)) for c in ("dice", "iou", "precision", "recall")))
                                  for r in records(t)),
                            ("l", "l", "r", "r", "r", "r"),
                            f"Per-image pixel scores, worst Dice first{cut}"))
    ob = inp.eval_objects
    if ob is not None and len(ob):
        blocks.append(Table(("IoU threshold", "TP", "FP", "FN", "precision", "recall", "F1", "AP"),
                            tuple((format_number(r.get("threshold"), ".2f"),
                                   *(format_number(r.get(c), ".0f") for c in ("tp", "fp", "fn")),
                                   *(format_number(r.get(c)) for c in ("precision", "recall", "f1", "ap")))
                                  for r in records(ob)),
                            ("r",) * 8, "Object matching per IoU threshold (all test images)"))
    blocks += figure_blocks(inp.figures, "evaluate/boxplot.png", "evaluate_boxplot.png",
                            "Per-image scores on the test images.", settings)
    blocks += figure_blocks(inp.figures, "evaluate/worst.png", "evaluate_worst.png",
                            "Worst test images by Dice (left: truth outline yellow, prediction red; right: "
                            "prediction filled).", settings)
    if inp.train_curves:
        fig = training_curves_figure(inp.train_curves, lookup(inp.train, "best_epoch"))
        blocks.append(Figure("train_curves.png", fit_png(figure_png(fig), settings.max_figure_width_px),
                             "Training curves (DVCLive): losses, validation scores, learning rate; "
                             "dotted: the epoch kept."))
    else:
        blocks.append(not_available("the training curves", inp.path("train_curves"), "train"))
    return blocks


def _certificate(inp: ReportInputs, choice: EstimatorChoice, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(2, "3. Certificate: measurements per test image")]
    s = inp.analysis_summary
    if s is None or not len(s):
        return blocks + [not_available("the per-image measurements", inp.path("analysis_summary"), "analyze")]
    t, cut = cut_rows(s.sort_values("image_id"), settings.max_rows)
    split = str(s["split_method"].iloc[0]) if "split_method" in s.columns else ""
    objects = str(s["objects"].iloc[0]) if "objects" in s.columns else "pores"
    blocks.append(Paragraph(f"Measured on the model's predicted masks of the test images. Objects: "
                            f"{objects}" + (f" (touching pores separated by {split})" if split else "")
                            + ". " + guard_frame_sentence(lookup(inp.params, "analyze", "include_edges"))))
    blocks.append(Paragraph(choice_sentence(choice)))
    blocks.append(certificate_table(t, choice, caption=f"Certificate table{cut}"))
    blocks.append(density_table(t, f"Pore density by estimator{cut}"))
    blocks += _truth_comparison(inp, settings)
    return blocks


def _truth_comparison(inp: ReportInputs, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Comparison with the reference")]
    c = inp.analyze_summary
    if c is None or not len(c):
        return blocks + [not_available("the comparison with the truth", inp.path("analyze_summary"),
                                       "analyze")]
    ref = str(c["reference"].iloc[0]) if "reference" in c.columns else "reference"
    blocks.append(Paragraph(
        f"Reference: **{ref}**. Each estimator is compared with the truth in its own counting "
        "convention (frame counts: true pores kept by the guard-frame rule; Boolean model: pores "
        "whose centre lies in the image). Cells: measured / true (error %)."))
    t, cut = cut_rows(c.sort_values("image_id"), settings.max_rows)
    rows = []
    for r in records(t):
        cells = []
        for e in ESTIMATORS:
            cells.append(f"{format_count(r.get(f'count_pred_{e}'), e)} / "
                         f"{format_count(r.get(f'count_true_{e}'), e)} "
                         f"({format_signed(r.get(f'count_error_pred_{e}_pct'))} %)")
        rows.append((str(r["image_id"]), format_porosity(r.get("porosity_true")),
                     format_porosity(r.get("porosity_gt_mask")), format_porosity(r.get("porosity_pred")),
                     format_signed(r.get("porosity_error_pred_pp"), 2), *cells))
    blocks.append(Table(("image", "porosity true (%)", "porosity GT mask (%)", "porosity predicted (%)",
                         "porosity error (pp)", *(f"pores: {estimator_label(e)}" for e in ESTIMATORS)),
                        tuple(rows), ("l",) + ("r",) * 7, f"Predicted masks against the {ref}{cut}"))
    an = inp.analyze
    ests = lookup(an, "estimators")
    if isinstance(ests, Mapping):
        bands: list[str] = []
        for e in ESTIMATORS:
            for b in (lookup(ests, e, "pred", "bands") or {}):
                if b not in bands:
                    bands.append(b)
        rows = []
        for key, mask in (("pred", "predicted"), ("gt_mask", "ground truth")):
            for e in ESTIMATORS:
                st = lookup(ests, e, key)
                if not isinstance(st, Mapping):
                    continue
                rows.append((mask, estimator_label(e), format_number(st.get("porosity_mae_pp"), ".3f"),
                             format_number(st.get("count_mae_pct"), ".2f"),
                             format_signed(st.get("count_bias_pct"), 2),
                             format_signed(st.get("count_pooled_pct"), 2),
                             *(format_number(lookup(st, "bands", b, "count_mae_pct"), ".2f") for b in bands)))
        if rows:
            blocks.append(Table(("mask", "estimator", "porosity MAE (pp)", "count MAE (%)",
                                 "count bias (%)", "count pooled (%)",
                                 *(f"count MAE {b} (%)" for b in bands)),
                                tuple(rows), ("l", "l") + ("r",) * (4 + len(bands)),
                                f"Errors over {an.get('n_images')} test images (`{inp.path('analyze')}`)"))
    blocks += figure_blocks(inp.figures, "analyze/porosity_scatter.png", "analyze_porosity_scatter.png",
                            f"Test images: measured against {ref} porosity.", settings)
    blocks += figure_blocks(inp.figures, "analyze/count_error.png", "analyze_count_error.png",
                            "Test images: count error per estimator against the true porosity.", settings)
    return blocks


def _distributions(inp: ReportInputs, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(2, "4. Size, shape and spatial distributions (test images)")]
    figs = distribution_blocks(inp.figures, "analyze/", "analyze_", settings)
    return blocks + (figs or [not_available("the distribution figures", inp.path("analyze_figures"),
                                            "analyze")])


def _share(fraction: float | None) -> str:
    """``"12 %"`` of a fraction of the images; empty when the metrics predate the field."""
    return "" if fraction is None else f"{format_number(100 * fraction, '.0f')} %"


def _segmentation_effect(effect: Mapping[str, Any]) -> list[Block]:
    """The count error the segmentation adds (``metrics/validate.json`` ``segmentation_effect``)."""
    rows = [(estimator_label(est), band, str(v.get("n_images")),
             format_number(v.get("mae_pct"), ".2f") + " %", format_number(v.get("max_abs_pct"), ".2f") + " %",
             format_number(v.get("tolerance_pct"), "g") + " %", _share(v.get("share_over")),
             str(v.get("n_undefined", 0)))
            for est, per_band in effect.items() for band, v in per_band.items()]
    if not rows:
        return []
    return [Table(("estimator", "porosity", "images", "mean |difference|", "max |difference|", "target",
                   "images beyond", "no estimate"), tuple(rows), ("l", "l", "r", "r", "r", "r", "r", "r"),
                  "What the segmentation adds: each estimator's count on the predicted mask against its "
                  "count on the exact mask of the same image (the rest of the count error is the "
                  "estimator's own, present on the exact masks too)")]


def _edge_shift(shift: Mapping[str, Any]) -> list[Block]:
    """The porosity error as a shift of the pore edges (``metrics/validate.json`` ``edge_shift_px``)."""
    rows = [(band, str(v.get("n_images")), format_signed(v.get("bias_px"), 3) + " px",
             format_number(v.get("mae_px"), ".3f") + " px", format_number(v.get("max_abs_px"), ".3f") + " px",
             format_number(v.get("tolerance_median_px"), ".3f") + " px",
             format_number(v.get("tolerance_min_px"), ".3f") + " px", _share(v.get("share_over")),
             _share(v.get("share_over_bias_removed")))
            for band, v in shift.items()]
    if not rows:
        return []
    return [Table(("porosity", "images", "mean shift", "mean |shift|", "max |shift|",
                   "tolerance, median image", "tolerance, strictest image", "images beyond",
                   "beyond without the mean shift"),
                  tuple(rows), ("l", "r", "r", "r", "r", "r", "r", "r", "r"),
                  "The porosity error on the predicted masks as the mean distance between predicted and "
                  "true pore edges (+ = outside, - = inside; porosity error x area / true edge length), "
                  "and the porosity tolerance as the edge accuracy it asks of each image")]


def _validation(inp: ReportInputs, choice: EstimatorChoice, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(2, "5. Validation against exact truth")]
    va = inp.validate
    if not va:
        return blocks + [not_available("the validation on synthetic truth", inp.path("validate"), "validate")]
    tg = va.get("targets") or {}
    steps = tg.get("count_abs_pct") or []
    blocks.append(Paragraph(
        f"{va.get('n_images')} fresh synthetic membranes (never used in training; mask convention "
        f"`{va.get('mask_convention')}`), analysed on their exact ground-truth masks (the "
        "measurement alone) and on the masks the model predicts (segmentation + measurement). "
        f"Targets: porosity |error| ≤ {format_number(tg.get('porosity_abs_pp'), 'g')} pp for every "
        "image; count |error| " + ", ".join(
            f"≤ {format_number(tol, 'g')} % up to {format_number(100 * up, 'g')} % porosity"
            for up, tol in steps) + " for every image (best estimator of the band)."))
    rows = []
    for key, mask in (("ground_truth", "ground truth"), ("predicted", "predicted")):
        t = tg.get(key)
        if not isinstance(t, Mapping):
            continue
        rows.append((mask, "porosity", "", format_number(t.get("porosity_max_abs_pp"), ".3f") + " pp",
                     format_number(tg.get("porosity_abs_pp"), "g") + " pp",
                     "met" if t.get("porosity_met") else "**not met**",
                     _share(t.get("porosity_share_over")), "", ""))
        for band, v in (t.get("count") or {}).items():
            rows.append((mask, f"count, porosity {band}", estimator_label(v.get("best_estimator")),
                         format_number(v.get("best_max_abs_pct"), ".2f") + " %",
                         format_number(v.get("tolerance_pct"), "g") + " %",
                         "met" if v.get("met") else "**not met**", _share(v.get("share_over")),
                         f"{format_signed(v.get('best_pooled_pct'), 2)} % "
                         f"({'met' if v.get('met_pooled') else 'not met'})",
                         ", ".join(estimator_label(e) for e in v.get("estimators_meeting") or []) or "none"))
    if rows:
        blocks.append(Table(("mask", "criterion", "best estimator", "max |error|", "tolerance",
                             "every image", "images beyond", "pooled error", "estimators meeting it"),
                            tuple(rows), ("l", "l", "l", "r", "r", "l", "r", "r", "l"),
                            f"Targets (`{inp.path('validate')}`)"))
    blocks += _segmentation_effect(va.get("segmentation_effect") or {})
    blocks += _edge_shift(va.get("edge_shift_px") or {})
    errors = va.get("errors") or {}
    rows = []
    bands: list[str] = []
    for per_est in errors.values():
        for st in per_est.values():
            for b in st:
                if b not in bands:
                    bands.append(b)
    bands.sort(key=lambda b: (b == "all", parse_band(b)[0] if b != "all" else 0.0))
    for key in ("ground_truth", "predicted"):
        for e in (*ESTIMATORS, "boolean_model_known_area"):
            st = lookup(errors, key, e)
            if not isinstance(st, Mapping):
                continue
            rows.append((key.replace("_", " "), estimator_label(e),
                         *(f"{format_number(lookup(st, b, 'count_mae_pct'), '.2f')} "
                           f"({format_number(lookup(st, b, 'count_max_abs_pct'), '.2f')})" for b in bands),
                         format_signed(lookup(st, "all", "count_bias_pct"), 2),
                         format_signed(lookup(st, "all", "count_pooled_pct"), 2),
                         format_number(lookup(st, "all", "porosity_mae_pp"), ".3f")))
    if rows:
        blocks.append(Table(("mask", "estimator", *(f"count error {b}: mean (max) %" for b in bands),
                             "bias (%)", "pooled (%)", "porosity MAE (pp)"),
                            tuple(rows), ("l", "l") + ("r",) * (len(bands) + 3),
                            "Count errors per estimator and porosity band (mean |error|, in brackets "
                            "the largest |error|); the Boolean model with a known E[A] separates the "
                            "model's error from that of estimating E[A]"))
        blocks.append(Paragraph("**Which estimator to trust.** " + _trust_sentence(choice)))
    vt = inp.validate_table
    if vt is not None and len(vt):
        blocks += _validation_images(vt, settings)
    else:
        blocks.append(not_available("the per-image validation table", inp.path("validate_table"), "validate"))
    blocks += figure_blocks(inp.figures, "validate/count_error.png", "validate_count_error.png",
                            "Validation: count error per estimator against the true porosity (grey: "
                            "tolerance).", settings)
    blocks += figure_blocks(inp.figures, "validate/porosity_error.png", "validate_porosity_error.png",
                            "Validation: porosity error against the true porosity (grey: tolerance).",
                            settings)
    blocks += figure_blocks(inp.figures, "validate/porosity_scatter.png", "validate_porosity_scatter.png",
                            "Validation: measured against true porosity.", settings)
    return blocks


def _trust_sentence(choice: EstimatorChoice) -> str:
    if not choice.bands:
        return no_choice_sentence(choice)
    parts = []
    for band, _, _, est, maes in choice.bands:
        ranked = sorted(maes, key=lambda e: (maes[e], e))
        rest = ", then ".join(f"{estimator_label(e)} ({maes[e]:.2f} %)" for e in ranked[1:])
        parts.append(f"at porosity {band} the **{estimator_label(est)}** has the smallest mean |count error| "
                     f"({maes[est]:.2f} %)" + (f", then {rest}" if rest else ""))
    return f"From {choice.source}: " + "; ".join(parts) + ". The certificate's densities follow this choice."


def _validation_images(vt: pd.DataFrame, settings: ReportParams) -> list[Block]:
    ests = [e for e in (*ESTIMATORS, "boolean_model_known_area") if e in set(vt["estimator"])]
    masks = [m for m in ("ground truth", "predicted") if m in set(vt["mask"])]
    rows = []
    ids = (vt.drop_duplicates("image_id").sort_values(["porosity_true", "image_id"])["image_id"].tolist())
    by = {(r["image_id"], r["mask"], r["estimator"]): r for r in records(vt)}
    for iid in ids[:settings.max_rows]:
        any_row = next(r for k, r in by.items() if k[0] == iid)
        pred = by.get((iid, "predicted", ests[0])) if "predicted" in masks else None
        guard = by.get((iid, masks[0], "split_labels"))
        centres = by.get((iid, masks[0], "boolean_model"))
        cells = [f"{format_signed(lookup(by, (iid, m, e), 'count_error_pct'))}" for e in ests for m in masks]
        rows.append((str(iid), format_porosity(any_row.get("porosity_true")),
                     format_number(any_row.get("mean_diameter_px"), ".1f"),
                     format_signed(pred.get("porosity_error_pp"), 2) if pred else NA,
                     format_number(guard.get("count_true") if guard else None, ".0f"),
                     format_number(centres.get("count_true") if centres else None, ".0f"), *cells))
    short = {"ground truth": "GT", "predicted": "pred."}
    cols = ("image", "true porosity (%)", "mean diameter (px)", "porosity error, pred. (pp)",
            "true pores (guard frame)", "true pores (centres inside)",
            *(f"{estimator_label(e)}, {short[m]} (%)" for e in ests for m in masks))
    cut = f" (first {settings.max_rows} of {len(ids)})" if len(ids) > settings.max_rows else ""
    return [Table(cols, tuple(rows), ("l",) + ("r",) * (len(cols) - 1),
                  f"Per validation image: count error per estimator on the ground-truth (GT) and "
                  f"predicted masks, by true porosity{cut}")]


def _measured(inp: ReportInputs, choice: EstimatorChoice, settings: ReportParams) -> list[Block]:
    blocks: list[Block] = [Heading(2, "6. New micrographs (measure)")]
    if inp.measured_summary is None:
        return blocks + [not_available("measurements of new micrographs", inp.path("measured_summary"),
                                       "measure")]
    return blocks + measured_blocks(
        inp.measured_summary, inp.measured_run, inp.figures, choice, settings, level=2,
        fig_key="measured/figures/", fig_prefix="measured_", overlay_key="measured/overlays/",
        empty_text="No micrographs were measured (the measure input folder held none).")


def _appendix(inp: ReportInputs) -> list[Block]:
    if not inp.sources:
        return []
    return [Heading(2, "Inputs of this report"),
            Table(("file", "SHA-256"), tuple((f"`{p}`", f"`{h}`") for p, h in inp.sources),
                  ("l", "l"), "Every file the report was built from")]


def build_report(inp: ReportInputs, settings: ReportParams | None = None) -> Report:
    """The pipeline report (Markdown, HTML, figure files) from loaded inputs; missing inputs
    give a 'Not available' note in their section."""
    settings = settings or ReportParams()
    choice = choose_estimators(inp.validate, inp.analyze)
    blocks: list[Block] = [Heading(1, settings.title)]
    blocks += _key_results(inp)
    blocks += _setup(inp, settings)
    blocks += _segmentation(inp, settings)
    blocks += _certificate(inp, choice, settings)
    blocks += _distributions(inp, settings)
    blocks += _validation(inp, choice, settings)
    blocks += _measured(inp, choice, settings)
    blocks += _appendix(inp)
    return render_report(blocks, settings.title)
