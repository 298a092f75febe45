"""Tests of the ``validate`` stage with tiny images and a tiny (untrained) smp model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from stages import validate
from porescope import synthesize_membrane
from porescope.analysis import validation as va
from porescope.analysis.comparison import summarise_errors
from porescope.config import ParamsError
from porescope.segmentation import models
from porescope.synthetic import membranes as syn

SMALL = {"n_images": 3, "height": 96, "width": 96, "porosity_min": 0.05, "porosity_max": 0.35,
         "diameter_min_px": 10.0, "diameter_max_px": 14.0, "seed_offset": 1000,
         "targets": {"porosity_abs_pp": 0.5, "count_abs_pct": [[0.2, 2.0], [0.4, 5.0]]},
         "tile": 64, "overlap": 16, "batch_size": 4, "tta": False, "device": "cpu", "threads": 1}
SYNTH = {**syn.DEFAULT_PARAMS, "supersample": 2}
ANALYZE = {"spatial": {"n_sim": 0}}


def write_params(path: Path, **validate_overrides) -> Path:
    path.write_text(yaml.safe_dump({"seed": 42, "synthesize": SYNTH, "analyze": ANALYZE,
                                    "validate": {**SMALL, **validate_overrides}}))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    models.save_model_file(path, models.build_model(cfg), cfg, {"0": "background", "1": "pore"})
    return path


def run(tmp: Path, params: Path, model: Path | None):
    argv = ["--params", str(params), "--metrics", str(tmp / "m.json"), "--plots", str(tmp / "plots")]
    if model is not None:
        argv += ["--model", str(model)]
    return validate.main(argv)


def test_outputs_with_model(tmp_path, tiny_model):
    assert run(tmp_path, write_params(tmp_path / "params.yaml"), tiny_model) == 0
    table = pd.read_csv(tmp_path / "plots" / "table.csv")
    assert list(table.columns) == [
        "image_id", "porosity_target", "mean_diameter_px", "mask", "estimator", "porosity_true",
        "porosity_measured", "porosity_error_pp", "count_true", "count_convention",
        "count_measured", "count_error_pct", "density_true_cm2", "density_measured_cm2",
        "edge_px_per_pp", "edge_shift_px"]
    assert len(table) == 3 * 2 * 4                      # images x masks x estimators
    assert set(table["mask"]) == {"ground truth", "predicted"}
    gt = table[table["mask"] == "ground truth"]
    assert (gt["porosity_error_pp"] == 0).all()         # exact masks: exact porosity
    assert (gt["porosity_true"] >= 0.0).all() and gt["porosity_true"].max() < 0.6
    conv = dict(zip(gt["estimator"], gt["count_convention"]))
    assert conv == {"median_area": "guard frame", "split_labels": "guard frame",
                    "boolean_model": "centres inside", "boolean_model_known_area": "centres inside"}
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n_images"] == 3 and set(m["errors"]) == {"ground_truth", "predicted"}
    assert set(m["errors"]["ground_truth"]) == {"median_area", "split_labels", "boolean_model",
                                                "boolean_model_known_area"}
    t = m["targets"]["ground_truth"]
    assert t["porosity_met"] is True and t["porosity_max_abs_pp"] == 0.0
    # what the segmentation adds: the Boolean count on predicted vs exact masks, image by image
    eff = m["segmentation_effect"]["boolean_model"]
    pred = table[(table["mask"] == "predicted") & (table["estimator"] == "boolean_model")].set_index("image_id")
    exact = gt[gt["estimator"] == "boolean_model"].set_index("image_id")
    diff = (100 * (pred["count_measured"] / exact["count_measured"] - 1)).abs()
    assert sum(b["n_images"] for b in eff.values()) == 3
    assert sum(b["n_undefined"] for b in eff.values()) == diff.isna().sum()
    if diff.notna().any():
        assert max(b["max_abs_pct"] or 0 for b in eff.values()) == pytest.approx(diff.max(), abs=1e-3)
    # the porosity error as an edge shift: per predicted image, error x the image's px per pp,
    # that factor from the exact mask of the regenerated image
    pred = table[(table["mask"] == "predicted") & (table["estimator"] == "boolean_model")].set_index("image_id")
    assert (gt["edge_shift_px"] == 0).all()
    assert np.allclose(pred["edge_shift_px"], pred["porosity_error_pp"] * pred["edge_px_per_pp"], atol=1e-3)
    vp = va.ValidateParams.from_mapping(SMALL)
    spec = va.validation_specs(vp, SYNTH, 42)[0]
    truth = syn.synthesize_image(spec, syn.image_rng(42 + SMALL["seed_offset"], 0)).mask_opening
    assert pred.loc["val_000", "edge_px_per_pp"] == pytest.approx(
        truth.size / va.pore_edge_length_px(truth) / 100, rel=1e-4)
    es = m["edge_shift_px"]
    assert es["all"]["n_images"] == 3
    assert es["all"]["bias_px"] == pytest.approx(pred["edge_shift_px"].mean(), abs=1e-3)
    assert es["all"]["tolerance_min_px"] == pytest.approx(0.5 * pred["edge_px_per_pp"].min(), abs=1e-3)
    centred = (pred["edge_shift_px"] - pred["edge_shift_px"].mean()).abs()
    assert es["all"]["share_over_bias_removed"] == pytest.approx(
        (centred > 0.5 * pred["edge_px_per_pp"]).mean(), abs=1e-4)
    split = m["segmentation_effect"]["split_labels"]        # defined wherever the exact count is > 0
    pred = table[(table["mask"] == "predicted") & (table["estimator"] == "split_labels")].set_index("image_id")
    exact = gt[gt["estimator"] == "split_labels"].set_index("image_id")
    diff = (100 * (pred["count_measured"] / exact["count_measured"] - 1)).abs()
    assert max(b["max_abs_pct"] for b in split.values()) == pytest.approx(diff.max(), abs=1e-3)
    for name, band in t["count"].items():
        assert band["best_estimator"] in ("median_area", "split_labels", "boolean_model")
        # the band's worst image of the best estimator, read back from the written table
        rows = gt[(gt["estimator"] == band["best_estimator"])
                  & ((gt["porosity_true"] <= 0.2) == (name == "<=20%"))]
        assert len(rows) == band["n_images"] > 0
        assert band["best_max_abs_pct"] == pytest.approx(rows["count_error_pct"].abs().max(), abs=1e-3)
        assert band["n_true_pores"] == rows["count_true"].sum()
    assert {p.name for p in (tmp_path / "plots").glob("*.png")} == {
        "count_error.png", "porosity_error.png", "porosity_scatter.png"}


def test_ground_truth_only_and_deterministic(tmp_path):
    params = write_params(tmp_path / "params.yaml")
    run(tmp_path / "a", params, None)
    run(tmp_path / "b", params, None)
    a = (tmp_path / "a" / "plots" / "table.csv").read_bytes()
    assert a == (tmp_path / "b" / "plots" / "table.csv").read_bytes()
    assert (tmp_path / "a" / "m.json").read_bytes() == (tmp_path / "b" / "m.json").read_bytes()
    assert set(pd.read_csv(tmp_path / "a" / "plots" / "table.csv")["mask"]) == {"ground truth"}


def test_validation_images_are_not_the_training_images():
    seed = 42
    synth = {**SYNTH, "n_images": 3, "height": 96, "width": 96, "seed": seed}
    vparams = va.ValidateParams.from_mapping({**SMALL, "height": 96, "width": 96,
                                              "porosity_min": 0.03, "porosity_max": 0.35,
                                              "diameter_min_px": 15.0, "diameter_max_px": 40.0})
    train_specs = syn.dataset_specs({**synth, "diameter_min_px": 15.0, "diameter_max_px": 40.0}, seed)
    val_specs = va.validation_specs(vparams, synth, seed)
    # same ranges, different draws: no validation image equals a training image
    for v in val_specs:
        assert all(v != t for t in train_specs)
    img_t = syn.synthesize_image(train_specs[0], syn.image_rng(seed, 0)).image
    img_v = syn.synthesize_image(val_specs[0], syn.image_rng(seed + SMALL["seed_offset"], 0)).image
    assert not np.array_equal(img_t, img_v)


def test_accuracy_targets_on_a_hand_computed_case():
    """Three images, true counts 100 / 200 / 50, bands <=20 % (tolerance 2 %) and >20 % (5 %).

    Count errors (%) by hand: image a (porosity 0.10): median_area +1, split_labels -3,
    boolean_model +3; image c (0.15): -3, +1, 0; image b (0.30): +6, +4, -6. Band <=20 %:
    mean |error| 2.0, 2.0, 1.5 -> best boolean_model, worst image 3 % > 2 % (not met), pooled
    (103 + 200) / 300 - 1 = +1 % (met); band >20 %: best split_labels, 4 % <= 5 % (met). Porosity
    errors 0.3, 0.1, -0.6 pp: max 0.6 > 0.5 pp (not met), 1 image of 3 beyond it; images beyond the
    count tolerance: a (3 %) of a and c, none of b.
    """
    counts = {"a": (0.10, 0.3, 100, (101, 97, 103)), "c": (0.15, 0.1, 200, (194, 202, 200)),
              "b": (0.30, -0.6, 50, (53, 52, 47))}
    rows = [{"image_id": iid, "mask": "predicted", "estimator": est, "porosity_true": por,
             "porosity_error_pp": err, "count_true": float(true), "count_measured": float(meas),
             "count_error_pct": 100.0 * (meas - true) / true}
            for iid, (por, err, true, measured) in counts.items()
            for est, meas in zip(("median_area", "split_labels", "boolean_model"), measured)]
    table = pd.DataFrame(rows)
    targets = va.TargetsParams(porosity_abs_pp=0.5, count_abs_pct=((0.2, 2.0), (0.4, 5.0)))
    got = va.accuracy_targets(summarise_errors(table, bands=[0.2]), table, targets)
    assert got == {"predicted": {
        "porosity_max_abs_pp": 0.6, "porosity_met": False, "porosity_share_over": round(1 / 3, 4),
        "all_met": False,
        "count": {
            "<=20%": {"tolerance_pct": 2.0, "best_estimator": "boolean_model", "best_mae_pct": 1.5,
                      "best_max_abs_pct": 3.0, "best_pooled_pct": 1.0, "met": False,
                      "met_pooled": True, "share_over": 0.5, "n_images": 2, "n_true_pores": 300,
                      "estimators_meeting": []},
            ">20%": {"tolerance_pct": 5.0, "best_estimator": "split_labels", "best_mae_pct": 4.0,
                     "best_max_abs_pct": 4.0, "best_pooled_pct": 4.0, "met": True,
                     "met_pooled": True, "share_over": 0.0, "n_images": 1, "n_true_pores": 50,
                     "estimators_meeting": ["split_labels"]}}}}


def test_params_defaults_are_those_of_params_yaml():
    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "params.yaml").read_text())["validate"]
    assert va.ValidateParams.from_mapping(raw) == va.ValidateParams()
    assert set(raw) == {f for f in va.ValidateParams.__dataclass_fields__}


def test_disabled_writes_skipped_metrics_and_generates_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("validate_on_truth must not run when validate.enabled is false")

    monkeypatch.setattr(validate, "validate_on_truth", boom)
    assert run(tmp_path, write_params(tmp_path / "params.yaml", enabled=False), None) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["skipped"] is True and "validate.enabled" in m["reason"] and set(m) == {"skipped", "reason"}
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["README.md"]
    # a disabled group is still checked: a typo is an error, not silently ignored
    with pytest.raises(ParamsError, match=r"validate\.n_imagez.*did you mean 'validate\.n_images'"):
        run(tmp_path / "x", write_params(tmp_path / "p2.yaml", enabled=False, n_imagez=3), None)


@pytest.mark.parametrize("override, key", [
    ({"n_imagez": 3}, r"validate\.n_imagez"),
    ({"enabled": "no"}, r"validate\.enabled"),
    ({"device": "tpu"}, r"validate\.device"),
    ({"overlap": 40}, r"validate\.overlap"),
    ({"porosity_max": 0.01}, r"validate\.porosity_max"),
    ({"targets": {"count_abs_pct": [[0.4, 5.0], [0.2, 2.0]]}}, r"validate\.targets\.count_abs_pct"),
])
def test_bad_params(tmp_path, override, key):
    with pytest.raises(ParamsError, match=key):
        run(tmp_path, write_params(tmp_path / "params.yaml", **override), None)
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "plots").exists()


def test_bad_model_file_names_it_and_writes_nothing(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(models.ModelFileError, match="broken.pt"):
        run(tmp_path, write_params(tmp_path / "params.yaml"), bad)
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "plots").exists()


def test_validation_images_leave_the_synthesize_artefacts_out_unless_asked():
    """validate.artefacts false: the validation specs are those of a synthesize group without
    artefacts, whatever synthesize.artefacts says; true: they carry them."""
    from porescope.analysis.validation import ValidateParams, validation_specs
    from porescope.synthetic.membranes import DEFAULT_PARAMS

    synth = {**DEFAULT_PARAMS, "artefacts": {**DEFAULT_PARAMS["artefacts"],
                                             "text_probability": 1.0, "frame_probability": 1.0}}
    clean = validation_specs(ValidateParams(n_images=2), DEFAULT_PARAMS, 42)
    off = validation_specs(ValidateParams(n_images=2), synth, 42)
    on = validation_specs(ValidateParams(n_images=2, artefacts=True), synth, 42)
    assert off == clean
    assert on != clean


@pytest.mark.parametrize("porosity", [0.05, 0.35])
def test_edge_shift_of_a_mask_eroded_or_dilated_by_r_px_is_about_r(porosity):
    """A porosity error converted to an edge shift: the true mask grown or shrunk by a disc of
    radius r px moves every edge by r (less where a pore's curvature or a neighbour takes area)."""
    mask = synthesize_membrane(384, 384, porosity=porosity, mean_diameter_px=24.0,
                                   seed=0).mask_opening.astype(np.uint8)
    px_per_pp = mask.size / va.pore_edge_length_px(mask) / 100
    for r in (1, 2):
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        for op, sign in ((cv2.erode, -1), (cv2.dilate, 1)):
            moved = op(mask, disc, borderType=cv2.BORDER_REPLICATE)
            shift = 100 * (moved.mean() - mask.mean()) * px_per_pp
            assert shift == pytest.approx(sign * r, rel=0.2), (r, sign, shift)


def test_edge_shift_of_an_image_without_pores_is_undefined_not_an_error():
    """An empty truth mask has no edge: the image's edge figures are NaN, left out of the summary."""
    assert va.pore_edge_length_px(np.zeros((32, 32), bool)) == 0.0
    rows = [{"image_id": i, "mask": "predicted", "estimator": "boolean_model", "porosity_true": p,
             "edge_shift_px": s, "edge_px_per_pp": k}
            for i, p, s, k in [("a", 0.1, -0.2, 0.6), ("b", 0.0, np.nan, np.nan)]]
    e = va.edge_shift(pd.DataFrame(rows), va.TargetsParams())
    assert e["all"]["n_images"] == 1 and e["all"]["bias_px"] == -0.2
