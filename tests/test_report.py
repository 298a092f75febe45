"""Tests of the ``report`` stage and the :mod:`porescope.report` modules.

Fixtures are small pipeline folders written with the column names the stages write: the
per-image analysis summary comes from :func:`porescope.analysis.membrane.analyse_mask` on
masks of separate discs (so its columns are exactly the analyze stage's), the other tables and
metrics follow ``stages/evaluate.py``, ``stages/analyze.py`` and ``stages/validate.py``.
Expected cells are formatted here from the fixture values with the documented rules.
"""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from stages import report as report_stage
from porescope.config import ParamsError, parse_group
from porescope.analysis import membrane as ma
from porescope.report import estimator_choice as ec
from porescope.report import figures as rf
from porescope.report import formatting as fmt
from porescope.report import output as report_output
from porescope.report.output import Report
from porescope.report.params import ReportParams
from porescope.io.atomic import write_csv, write_json
from porescope.io.tables import PipelineDataError

FAST = ma.AnalysisParams.from_mapping({"spatial": {"n_sim": 0}})
PARAMS = {"seed": 7,
          "train": {"arch": "Unet", "encoder": "tu-mobilenetv3_small_100", "loss": "bce+dice",
                    "epochs": 3, "lr": 0.003},
          "augment": {"ops": "RDZF", "size": 40},
          "ingest": {"source": "data/synthetic", "tile_size": 64, "pixel_size_nm": 25.0},
          "split": {"method": "fraction", "val_fraction": 0.2, "test_fraction": 0.2},
          "evaluate": {"tile": 256, "overlap": 64, "tta": False},
          "analyze": {"include_edges": ["top", "left"], "objects": "pores"},
          "report": {"title": "Test membrane report", "max_figure_width_px": 300}}
ESTS = ("median_area", "split_labels", "boolean_model")


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

def disc_mask(size: int, spacing: int, r: float) -> np.ndarray:
    """Separate discs of radius ``r`` on a square grid (pixel centres within r)."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    for cy in range(spacing // 2, size, spacing):
        for cx in range(spacing // 2, size, spacing):
            mask[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1
    return mask


MASKS = {"img_a": (disc_mask(200, 40, 9.0), 25.0),      # porosity ~0.16, pixel size known
         "img_b": (disc_mask(192, 24, 9.0), None)}       # porosity ~0.44, pixel size unknown


def png(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def analysis_summary() -> pd.DataFrame:
    rows = []
    for iid, (mask, px) in MASKS.items():
        a = ma.analyse_mask(mask, pixel_size_nm=px, params=FAST, rng=np.random.default_rng(0),
                            image_id=iid)
        rows.append(a.summary)
    return pd.DataFrame(rows)


def band_stats(mae: float) -> dict:
    return {"n_images": 3, "porosity_mae_pp": 0.2, "porosity_max_abs_pp": 0.4, "porosity_bias_pp": -0.1,
            "count_mae_pct": mae, "count_max_abs_pct": 2 * mae, "count_bias_pct": -mae / 2,
            "count_pooled_pct": -mae / 3}


def validate_metrics(low: dict[str, float], high: dict[str, float]) -> dict:
    """metrics/validate.json as stages/validate.py writes it, with the given count MAEs."""
    errors = {e: {"<=20%": band_stats(low[e]), ">20%": band_stats(high[e]),
                  "all": band_stats((low[e] + high[e]) / 2)} for e in ESTS}
    errors["boolean_model_known_area"] = {"<=20%": band_stats(9.0), ">20%": band_stats(9.0),
                                          "all": band_stats(9.0)}
    target = {"porosity_max_abs_pp": 0.4, "porosity_met": True, "porosity_share_over": 0.0,
              "all_met": False, "count": {
        "<=20%": {"tolerance_pct": 2.0, "best_estimator": min(low, key=low.get), "best_mae_pct": min(low.values()),
                  "best_max_abs_pct": 2 * min(low.values()), "best_pooled_pct": -0.3, "met": True,
                  "met_pooled": True, "n_images": 3, "n_true_pores": 100, "estimators_meeting": ["split_labels"]},
        ">20%": {"tolerance_pct": 5.0, "best_estimator": min(high, key=high.get), "best_mae_pct": min(high.values()),
                 "best_max_abs_pct": 2 * min(high.values()), "best_pooled_pct": 0.5, "met": False,
                 "met_pooled": True, "share_over": 1 / 3, "n_images": 3, "n_true_pores": 400, "estimators_meeting": []}}}
    return {"n_images": 6, "mask_convention": "opening", "model": "models/model.pt",
            "errors": {"ground_truth": errors, "predicted": errors},
            "targets": {"porosity_abs_pp": 0.5, "count_abs_pct": [[0.2, 2.0], [0.4, 5.0]],
                        "ground_truth": target, "predicted": target},
            "segmentation_effect": {"boolean_model": {
                "<=20%": {"n_images": 3, "n_undefined": 0, "mae_pct": 0.5, "max_abs_pct": 2.5,
                          "tolerance_pct": 2.0, "share_over": 1 / 3},
                ">20%": {"n_images": 3, "n_undefined": 1, "mae_pct": 1.0, "max_abs_pct": 1.5,
                         "tolerance_pct": 5.0, "share_over": 1 / 3}}},
            "edge_shift_px": {
                "<=20%": {"n_images": 3, "bias_px": -0.1234, "mae_px": 0.15, "max_abs_px": 0.4,
                          "tolerance_median_px": 0.3, "tolerance_min_px": 0.16, "share_over": 1 / 3,
                          "share_over_bias_removed": 0.0},
                "all": {"n_images": 6, "bias_px": 0.02, "mae_px": 0.2, "max_abs_px": 0.6,
                        "tolerance_median_px": 0.2, "tolerance_min_px": 0.07, "share_over": 0.5}}}


LOW = {"median_area": 5.0, "split_labels": 1.0, "boolean_model": 3.0}
HIGH = {"median_area": 20.0, "split_labels": 10.0, "boolean_model": 2.0}


def write_pipeline(root: Path, *, validate: bool = True, measured: str = "two") -> dict[str, Path]:
    """A pipeline folder with every input of the report (``measured``: two | empty | none)."""
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    metrics, plots, analysis = root / "metrics", root / "plots", root / "data" / "analysis"
    write_json(metrics / "train.json", {"best_epoch": 1, "epochs_run": 3, "stopped_early": False,
                                        "val_iou": 0.81, "val_dice": 0.89, "threshold": 0.47,
                                        "train_samples": 40, "val_tiles": 6})
    live = plots / "train" / "plots" / "metrics"
    live.mkdir(parents=True)
    for name, vals in {"train_loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.45, 0.44],
                       "val_iou": [0.7, 0.81, 0.8], "val_dice": [0.8, 0.89, 0.88],
                       "lr": [0.003, 0.0015, 0.0]}.items():
        (live / f"{name}.tsv").write_text("step\t" + name + "\n"
                                          + "".join(f"{k}\t{v}\n" for k, v in enumerate(vals)))
    ids = list(MASKS)
    write_json(metrics / "evaluate.json", {
        "n_images": 2,
        "pore": {m: {"mean": 0.9, "median": 0.91, "min": 0.85, "max": 0.95, "pooled": 0.92}
                 for m in ("dice", "iou", "precision", "recall")},
        "objects": {"map": 0.7, "map_pooled": 0.72, "map_min": 0.6, "ap@0.5": 0.9, "ap@0.75": 0.8,
                    "precision@0.5": 0.95, "recall@0.5": 0.93, "f1@0.5": 0.94, "precision@0.75": 0.9,
                    "recall@0.75": 0.88, "f1@0.75": 0.89, "n_true": 60, "n_pred": 58}})
    write_csv(plots / "evaluate" / "per_image.csv", pd.DataFrame({
        "image_id": ids, "class_name": "pore", "dice": [0.95, 0.85], "iou": [0.9, 0.74],
        "precision": [0.96, 0.9], "recall": [0.94, 0.81], "tp": [100, 90], "fp": [4, 10], "fn": [6, 21]}))
    write_csv(plots / "evaluate" / "objects.csv", pd.DataFrame({
        "threshold": [0.5, 0.75], "n_images": 2, "tp": [55, 50], "fp": [3, 8], "fn": [5, 10],
        "precision": [0.95, 0.86], "recall": [0.92, 0.83], "f1": [0.93, 0.85], "ap": [0.87, 0.74],
        "ap_mean": [0.87, 0.74], "ap_median": [0.87, 0.74], "ap_min": [0.8, 0.7], "ap_max": [0.9, 0.8]}))
    (plots / "evaluate" / "boxplot.png").write_bytes(png(120, 80, 1))
    (plots / "evaluate" / "worst.png").write_bytes(png(900, 200, 2))      # wider than the max

    summary = analysis_summary()
    write_csv(analysis / "summary.csv", summary)
    rows = []
    for r in summary.to_dict("records"):
        row = {"image_id": r["image_id"], "reference": "synthetic truth",
               "porosity_true": r["porosity"] + 0.001, "porosity_gt_mask": r["porosity"] + 0.001,
               "porosity_pred": r["porosity"], "porosity_error_pred_pp": -0.1}
        for e in ESTS:
            row.update({f"count_true_{e}": 25.0, f"count_gt_mask_{e}": 24.0,
                        f"count_pred_{e}": r[f"count_{e}"], f"count_error_gt_mask_{e}_pct": -4.0,
                        f"count_error_pred_{e}_pct": 100 * (r[f"count_{e}"] - 25) / 25,
                        f"density_pred_{e}_cm2": r[f"density_cm2_{e}"]})
        rows.append(row)
    write_csv(plots / "analyze" / "summary.csv", pd.DataFrame(rows))
    for name in ("area_histogram.png", "ecd_violin.png", "correlation.png", f"ripley_{ids[0]}.png"):
        (plots / "analyze" / name).write_bytes(png(200, 120, 3))
    write_json(metrics / "analyze.json", {
        "reference": "synthetic truth", "n_images": 2,
        "estimators": {e: {k: {"porosity_mae_pp": 0.1, "count_mae_pct": 4.0, "count_bias_pct": -1.0,
                               "count_pooled_pct": -1.5, "bands": {"<=20%": band_stats(4.0)}}
                           for k in ("pred", "gt_mask")} for e in ESTS},
        "porosity": {"pred": {"mae_pp": 0.1, "max_abs_pp": 0.1, "bias_pp": -0.1},
                     "gt_mask": {"mae_pp": 0.0, "max_abs_pp": 0.0, "bias_pp": 0.0}}})
    if validate:
        write_json(metrics / "validate.json", validate_metrics(LOW, HIGH))
        vrows = []
        for k, (por, diam) in enumerate(((0.05, 20.0), (0.3, 30.0))):
            for mask in ("ground truth", "predicted"):
                for e in (*ESTS, "boolean_model_known_area"):
                    vrows.append({"image_id": f"val_{k:03d}", "porosity_target": por,
                                  "mean_diameter_px": diam, "mask": mask, "estimator": e,
                                  "porosity_true": por, "porosity_measured": por - 0.002,
                                  "porosity_error_pp": -0.2, "count_true": 40.0 + k,
                                  "count_convention": "guard frame", "count_measured": 39.0,
                                  "count_error_pct": -2.5 - k, "density_true_cm2": 1e7,
                                  "density_measured_cm2": 0.98e7})
        write_csv(plots / "validate" / "table.csv", pd.DataFrame(vrows))
        (plots / "validate" / "count_error.png").write_bytes(png(300, 150, 4))
    meas = root / "data" / "measured"
    if measured != "none":
        meas.mkdir(parents=True)
        s = analysis_summary() if measured == "two" else analysis_summary().iloc[:0]
        s = s.assign(image_file=[f"{i}.tif" for i in s["image_id"]], format="tiff",
                     orig_height=200, orig_width=200, crop_bottom=0, pixel_size_source="given",
                     model_pixel_size_nm=25.0, scale=1.0, scale_source="none",
                     normalisation="none", warnings=["", "16 bit"][:len(s)])
        write_csv(meas / "summary.csv", s)
        write_json(meas / "run.json", {"model": "models/model.pt", "input": "data/measure",
                                       "n_images": len(s), "split": "watershed h_maxima h=0.5",
                                       "settings": {"analysis": FAST.to_dict()}})
        if measured == "two":
            (meas / "figures").mkdir()
            (meas / "figures" / "area_histogram.png").write_bytes(png(220, 100, 5))
            (meas / "overlays").mkdir()
            (meas / "overlays" / "img_a.png").write_bytes(png(600, 600, 6))
    return {"params": root / "params.yaml", "metrics": metrics, "plots": plots, "analysis": analysis,
            "measured": meas, "out": root / "report"}


def run_stage(paths: dict[str, Path], out: Path | None = None, **kw) -> Report:
    return report_stage.run(paths["params"], metrics=paths["metrics"], plots=paths["plots"],
                            analysis=paths["analysis"], out=out or paths["out"],
                            measured=kw.pop("measured", paths["measured"]), **kw)


@pytest.fixture()
def pipeline(tmp_path) -> dict[str, Path]:
    return write_pipeline(tmp_path)


# --------------------------------------------------------------------------------------------
# helpers to read the outputs
# --------------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_self_contained(page: str) -> int:
    """No script / link / remote reference; every <img> a data: URI decoding to a PNG.
    Returns the number of images."""
    parser = _Tags()
    parser.feed(page)
    n_img = 0
    for tag, attrs in parser.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for key in ("src", "href"):
            v = attrs.get(key) or ""
            assert not re.match(r"^\s*(https?:)?//", v, re.I), (tag, key, v[:80])
            if tag == "a" and key == "href" and v:
                assert v.startswith("#"), v                      # only in-page anchors
        if tag == "img":
            n_img += 1
            src = attrs["src"]
            assert src.startswith("data:image/png;base64,"), src[:40]
            data = base64.b64decode(src.split(",", 1)[1], validate=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            assert image is not None and image.size
            assert (int(attrs["width"]), int(attrs["height"])) == (image.shape[1], image.shape[0])
    assert not re.search(r"https?://", page), "a network address in the page"
    assert "@import" not in page and "url(" not in page
    return n_img


def md_table(md: str, caption: str) -> list[list[str]]:
    """Rows (header first) of the Markdown table under the italic ``caption`` line."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"*{caption}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return [rows[0]] + rows[2:]


def sci(v: float) -> str:
    """3 significant digits, a×10^e with superscript exponent (the documented format)."""
    e = math.floor(math.log10(abs(v)))
    m = v / 10 ** e
    if round(m, 2) >= 10:
        e, m = e + 1, m / 10
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{m:.2f}×10{str(e).translate(sup)}"


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------

def test_format_helpers_known_values():
    assert fmt.format_sci(37231445.3125) == "3.72×10⁷"
    assert fmt.format_sci(9.996e6) == "1.00×10⁷"          # rounding carries into the exponent
    assert fmt.format_sci(2.5e-4) == "2.50×10⁻⁴"
    assert fmt.format_sci(float("nan")) == "n/a" and fmt.format_sci(None) == "n/a"
    assert fmt.format_sig(0.51) == "0.510" and fmt.format_sig(0.0554) == "0.0554"
    assert fmt.format_sig(29.93) == "29.9" and fmt.format_sig(1234.5) == "1234"
    assert fmt.format_porosity(0.20501708984375) == "20.50"
    assert fmt.format_count(68.70340058937795, "boolean_model") == "68.7"
    assert fmt.format_count(61.0, "split_labels") == "61"
    assert fmt.format_signed(-4.6875) == "-4.7" and fmt.format_signed(5.7, 2) == "+5.70"
    assert ec.parse_band("<=20%") == (-math.inf, 0.2)
    assert ec.parse_band(">20%") == (0.2, math.inf)
    assert ec.parse_band("20-40%") == (0.2, 0.4)
    with pytest.raises(ValueError, match="band label"):
        ec.parse_band("low")


def test_estimator_choice_follows_the_numbers():
    choice = ec.choose_estimators(validate_metrics(LOW, HIGH), None)
    assert [b[3] for b in choice.bands] == ["split_labels", "boolean_model"]
    assert choice.for_porosity(0.10) == "split_labels" and choice.for_porosity(0.35) == "boolean_model"
    assert choice.for_porosity(0.20) == "split_labels"          # bands are (lo, hi]
    # swap the errors: the choice swaps too (nothing hard-coded)
    flipped = ec.choose_estimators(validate_metrics(HIGH, LOW), None)
    assert [b[3] for b in flipped.bands] == ["boolean_model", "split_labels"]
    # no validation: the test images' errors; neither: the watershed split
    an = {"reference": "synthetic truth", "estimators": {
        e: {"pred": {"bands": {"<=20%": {"count_mae_pct": v}}}}
        for e, v in zip(ESTS, (3.0, 9.0, 1.0))}}
    assert ec.choose_estimators(None, an).for_porosity(0.1) == "boolean_model"
    assert ec.choose_estimators(None, None).for_porosity(0.1) == "split_labels"


def test_html_is_self_contained_and_markdown_figures_exist(pipeline):
    report = run_stage(pipeline)
    out = pipeline["out"]
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md"]
    page = (out / "report.html").read_text(encoding="utf-8")
    n_img = assert_self_contained(page)
    files = sorted((out / "figures").iterdir())
    assert n_img == len(files) == len(report.figures) >= 9
    md = (out / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(figures/([^)]+)\)", md)
    assert sorted(links) == sorted(p.name for p in files)
    for p in files:
        w, h = rf.png_size(p.read_bytes())
        assert w <= PARAMS["report"]["max_figure_width_px"] or p.name.startswith("measured_overlay")
    # the 900x200 gallery was downscaled to the max width, aspect kept
    w, h = rf.png_size((out / "figures" / "evaluate_worst.png").read_bytes())
    assert (w, h) == (300, round(200 * 300 / 900))
    # the training curves were drawn from the TSVs
    assert "train_curves.png" in report.figures
    assert page.startswith("<!DOCTYPE html>") and "<title>Test membrane report</title>" in page


def test_certificate_table_one_row_per_image_with_the_fixture_numbers(pipeline):
    run_stage(pipeline)
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    table = md_table(md, "Certificate table")
    header, rows = table[0], table[1:]
    summary = pd.read_csv(pipeline["analysis"] / "summary.csv").set_index("image_id")
    assert [r[0] for r in rows] == sorted(MASKS)
    col = {name: k for k, name in enumerate(header)}
    # mixed pixel-size knowledge: units in the cells, not in the header
    assert "pore density" in col and "ECD mean" in col
    for r in rows:
        s = summary.loc[r[0]]
        mask, px = MASKS[r[0]]
        # porosity: the fixture value, which is the disc area fraction of the mask
        assert r[col["porosity (%)"]] == f"{100 * s['porosity']:.2f}"
        assert r[col["porosity (%)"]] == f"{100 * np.count_nonzero(mask) / mask.size:.2f}"
        assert r[col["pores: median-area rule"]] == f"{s['count_median_area']:.0f}"
        assert r[col["pores: watershed split"]] == f"{s['count_split_labels']:.0f}"
        assert r[col["pores: Boolean model"]] == f"{s['count_boolean_model']:.1f}"
        # the density estimator follows the validation numbers for the image's porosity band
        est = "split_labels" if s["porosity"] <= 0.2 else "boolean_model"
        assert r[col["density from"]] == ec.ESTIMATOR_LABELS[est]
        if px is None:
            assert r[col["pixel size (nm)"]] == "n/a"
            assert r[col["pore density"]] == f"{sci(s[f'density_px2_{est}'])} px⁻²"
            assert r[col["ECD mean"]] == f"{s['ecd_px_mean']:.{3 - 1 - math.floor(math.log10(s['ecd_px_mean']))}f} px"
        else:
            assert r[col["pixel size (nm)"]] == f"{px:g}"
            assert r[col["pore density"]] == f"{sci(s[f'density_cm2_{est}'])} cm⁻²"
            v = s["ecd_um_mean"]
            assert r[col["ECD mean"]] == f"{v:.{3 - 1 - math.floor(math.log10(v))}f} µm"
        assert r[col["Clark-Evans R"]] == f"{s['ce_R']:.3f}"
        assert r[col["Clark-Evans verdict"]] == s["ce_verdict"]
    # every disc is counted exactly by the frame counts on separate discs (guard frame:
    # discs touching bottom / right would be dropped; none touch an edge here)
    assert {r[col["pores: watershed split"]] for r in rows} == {"25", "64"}


def test_validation_section_and_trust_sentence(pipeline):
    run_stage(pipeline)
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    assert "at porosity <=20% the **watershed split** has the smallest mean |count error| (1.00 %)" in md
    assert "at porosity >20% the **Boolean model** has the smallest mean |count error| (2.00 %)" in md
    targets = md_table(md, "Targets")
    assert len(targets) == 1 + 2 * 3                 # per mask: porosity + two count bands
    beyond = targets[0].index("images beyond")
    # porosity 0 %; count <=20 %: metrics without the field (older runs) leave the cell empty
    assert [r[beyond] for r in targets[1:4]] == ["0 %", "", "33 %"]
    assert "porosity met (max |error| 0.400 pp vs 0.5 pp, 0 % of 6 images beyond it)" in md
    added = md_table(md, "What the segmentation adds")
    assert [r[1:] for r in added[1:]] == [["<=20%", "3", "0.50 %", "2.50 %", "2 %", "33 %", "0"],
                                          [">20%", "3", "1.00 %", "1.50 %", "5 %", "33 %", "1"]]
    edges = md_table(md, "The porosity error on the predicted masks as the mean distance")
    assert [r for r in edges[1:]] == [["<=20%", "3", "-0.123 px", "0.150 px", "0.400 px", "0.300 px",
                                       "0.160 px", "33 %", "0 %"],
                                      ["all", "6", "+0.020 px", "0.200 px", "0.600 px", "0.200 px",
                                       "0.070 px", "50 %", ""]]    # older metrics: empty cell
    per_image = md_table(md, "Per validation image")
    assert [r[0] for r in per_image[1:]] == ["val_000", "val_001"]
    assert per_image[1][1] == "5.00" and per_image[2][1] == "30.00"


def test_missing_inputs_give_not_available_notes(tmp_path):
    paths = write_pipeline(tmp_path, validate=False, measured="none")
    (paths["plots"] / "evaluate" / "worst.png").unlink()
    run_stage(paths)
    md = (paths["out"] / "report.md").read_text(encoding="utf-8")
    assert "Not available: the validation on synthetic truth (`" in md
    assert "metrics/validate.json` not found; run the `validate` stage)" in md
    assert "Not available: measurements of new micrographs" in md
    assert "No model card was given" in md
    assert "evaluate_worst.png" not in md
    # without validation, the density estimator comes from the test-image comparison
    assert "from the test images against the synthetic truth" in md
    assert_self_contained((paths["out"] / "report.html").read_text(encoding="utf-8"))

    # nothing at all but params: every section says so, no crash
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "params.yaml").write_text(yaml.safe_dump({"seed": 1}))
    report_stage.main(["--params", str(empty / "params.yaml"), "--metrics", str(empty / "m"),
                       "--plots", str(empty / "p"), "--analysis", str(empty / "a"),
                       "--measured", str(empty / "d"), "--out", str(empty / "r")])
    md = (empty / "r" / "report.md").read_text(encoding="utf-8")
    for what in ("the segmentation scores", "the training curves", "the per-image measurements",
                 "the distribution figures", "the validation on synthetic truth",
                 "measurements of new micrographs"):
        assert f"Not available: {what}" in md, what
    assert assert_self_contained((empty / "r" / "report.html").read_text(encoding="utf-8")) == 0


def test_empty_measure_folder_and_measured_micrographs(tmp_path, pipeline):
    run_stage(pipeline)
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, "Measurements per micrograph")
    assert [r[0] for r in rows[1:]] == sorted(MASKS)
    assert "img_b: 16 bit" in md                                 # the warnings list
    assert "measured_overlay_img_a.png" in md
    w, _ = rf.png_size((pipeline["out"] / "figures" / "measured_overlay_img_a.png").read_bytes())
    assert w == ReportParams().thumbnail_width_px
    (tmp_path / "e").mkdir()
    empty = write_pipeline(tmp_path / "e", measured="empty")
    run_stage(empty)
    md = (empty["out"] / "report.md").read_text(encoding="utf-8")
    assert "No micrographs were measured" in md


def test_model_card_is_shown_when_present(pipeline, tmp_path):
    card = tmp_path / "model_card.json"
    write_json(card, {"model": {"name": "porescope-unet", "sha256": "ab" * 32},
                      "training_data": {"dataset": "RDZF40", "sources": 12}})
    run_stage(pipeline, model_card=card)
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, "Model card")
    assert ["`model.name`", "porescope-unet"] in rows and ["`training_data.sources`", "12"] in rows
    # a porescope card (porescope.provenance.model_card layout): its identity fields
    write_json(card, {
        "format": "porescope-model-card/1",
        "model": {"file": "models/model.pt", "config": {"arch": "Unet", "encoder": "resnet18", "classes": 1},
                  "class_names": {"0": "background", "1": "pore"}},
        "training": {"stage": "train", "epochs_run": 3, "best_epoch": 1, "stopped_early": False,
                     "validation": {"val_iou": 0.81}},
        "params": {"train": {"epochs": 3}},
        "data": {"manifest": "data/split/sources.csv",
                 "splits": {"train": {"n_sources": 4, "sources": [], "sources_digest": "c" * 64,
                                      "n_tiles": 36, "tiles_digest": "d" * 64}},
                 "augmented": {"name": "RDZF40", "size": 40, "ops": "RDZF", "n_samples": 40,
                               "n_source_tiles": 30, "n_files": 82, "files_digest": "e" * 64}},
        "git": {"commit": "f" * 40, "dirty": []}, "device": "cpu",
        "libraries": {"torch": "2.13.0"}, "rebuild_expectation": "bit-identical", "warnings": []})
    run_stage(pipeline, model_card=card)
    rows = md_table((pipeline["out"] / "report.md").read_text(encoding="utf-8"), "Model card")
    assert ["model arch", "Unet"] in rows and ["model encoder", "resnet18"] in rows
    assert ["training dataset", "RDZF40 (40 samples from 30 tiles)"] in rows
    assert ["train split", "4 source images, 36 tiles"] in rows
    assert ["git commit", "f" * 40] in rows and ["validation val_iou", "0.8100"] in rows
    assert not any(r[0].startswith("`params") for r in rows)       # not the whole card
    run_stage(pipeline, model_card=tmp_path / "absent.json")
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    assert "No model card (`" in md and "absent.json` not found)" in md


def test_reruns_are_byte_identical(pipeline, tmp_path):
    run_stage(pipeline)
    first = {p.relative_to(pipeline["out"]): p.read_bytes() for p in pipeline["out"].rglob("*") if p.is_file()}
    run_stage(pipeline)                                           # in place
    again = {p.relative_to(pipeline["out"]): p.read_bytes() for p in pipeline["out"].rglob("*") if p.is_file()}
    assert first == again
    other = tmp_path / "elsewhere"
    run_stage(pipeline, out=other)
    assert {p.relative_to(other): p.read_bytes() for p in other.rglob("*") if p.is_file()} == first


def test_failing_run_leaves_no_partial_report(pipeline, monkeypatch):
    run_stage(pipeline)
    before = {p: p.read_bytes() for p in pipeline["out"].rglob("*") if p.is_file()}
    # a malformed input: an error naming the file, the previous report untouched
    (pipeline["metrics"] / "validate.json").write_text("{not json")
    with pytest.raises(PipelineDataError, match="validate.json"):
        run_stage(pipeline)
    assert {p: p.read_bytes() for p in pipeline["out"].rglob("*") if p.is_file()} == before
    # a failure while writing: no half-written folder, no temporary folder left behind
    write_json(pipeline["metrics"] / "validate.json", validate_metrics(LOW, HIGH))
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return Path(path).write_bytes(data)

    monkeypatch.setattr(report_output, "write_bytes", failing_write)
    fresh = pipeline["out"].parent / "fresh"
    with pytest.raises(OSError, match="disk full"):
        run_stage(pipeline, out=fresh)
    assert not fresh.exists()
    assert not [p for p in fresh.parent.iterdir() if p.name.startswith(".fresh")]
    with pytest.raises(OSError, match="disk full"):
        calls.clear()
        run_stage(pipeline)
    assert {p: p.read_bytes() for p in pipeline["out"].rglob("*") if p.is_file()} == before
    # a bad figure file is named too
    monkeypatch.undo()
    (pipeline["plots"] / "analyze" / "correlation.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(PipelineDataError, match="correlation.png"):
        run_stage(pipeline, out=fresh)
    assert not fresh.exists()


def test_report_params_defaults_are_those_of_params_yaml():
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["report"]
    assert parse_group(ReportParams, raw, group="report") == ReportParams()
    assert set(raw) == {f for f in ReportParams.__dataclass_fields__}
    with pytest.raises(ParamsError, match="report.title"):
        parse_group(ReportParams, {"title": "  "}, group="report")


def test_report_params_are_checked(pipeline):
    params = yaml.safe_load(pipeline["params"].read_text())
    params["report"] = {"max_rows": 0}
    pipeline["params"].write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="report.max_rows"):
        run_stage(pipeline)
    params["report"] = {"colour": "red"}
    pipeline["params"].write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="report.colour: unknown parameter"):
        run_stage(pipeline)
    assert not pipeline["out"].exists()


def test_max_rows_cuts_long_tables(pipeline):
    params = yaml.safe_load(pipeline["params"].read_text())
    params["report"]["max_rows"] = 1
    pipeline["params"].write_text(yaml.safe_dump(params))
    run_stage(pipeline)
    md = (pipeline["out"] / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, "Certificate table (first 1 of 2 rows)")
    assert len(rows) == 2


def test_fit_png_keeps_narrow_figures_and_downscales_wide_ones():
    narrow = png(100, 50)
    assert rf.fit_png(narrow, 100) is narrow
    wide = png(1000, 333)
    small = rf.fit_png(wide, 250)
    assert rf.png_size(small) == (250, 83)
    assert rf.fit_png(wide, 250) == small                       # deterministic bytes
    with pytest.raises(ValueError, match="not a PNG"):
        rf.png_size(b"JFIF....")


def test_measure_report_is_self_contained(tmp_path):
    import torch

    from porescope.measure.folder import run_measure
    from porescope.measure.params import MeasureParams
    from porescope.segmentation import models

    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    models.save_model_file(model, models.build_model(cfg), cfg, {"0": "background", "1": "pore"}, None)
    inp = tmp_path / "input"
    inp.mkdir()
    for k in range(2):
        cv2.imwrite(str(inp / f"m{k}.png"), np.where(disc_mask(96, 24, 6.0) > 0, 20, 140).astype(np.uint8))
    settings = MeasureParams(tile=64, overlap=16, device="cpu", threads=1, figures=True,
                                       analysis=ma.AnalysisParams.from_mapping({"spatial": {"n_sim": 9}}))
    out = tmp_path / "measured"
    summary = run_measure(inp, model, out, settings)
    page = (out / "report.html").read_text(encoding="utf-8")
    n_img = assert_self_contained(page)
    assert n_img == len(list((out / "figures").glob("*.png"))) > 0
    md = (out / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, "Measurements per micrograph")
    flagged = {i: " ⚠ NOT CERTIFIED" if c != "yes" else "" for i, c in zip(summary["image_id"], summary["certified"])}
    assert [r[0] for r in rows[1:]] == [f"{i}{flagged[i]}" for i in summary["image_id"]]
    assert list(summary["image_id"]) == ["m0", "m1"]
    # every figure file is linked from the Markdown (a loop over the links alone passes when none is)
    links = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert sorted(links) == sorted(f"figures/{p.name}" for p in (out / "figures").glob("*.png"))
    # an empty folder: the same two files, with the note
    empty = tmp_path / "empty"
    empty.mkdir()
    run_measure(empty, model, tmp_path / "m2", settings)
    assert "No micrographs were found in the input folder." in (tmp_path / "m2" / "report.md").read_text()
    assert assert_self_contained((tmp_path / "m2" / "report.html").read_text()) == 0
