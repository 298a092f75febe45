"""Tests of the ``analyze`` stage on a tiny synthetic pipeline folder (files, columns, errors)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from stages import analyze
from stages import synthesize as synth_stage
from porescope.synthetic import membranes as syn
from porescope.synthetic.params import artefacts_off
from porescope.io.tables import PipelineDataError

ANALYZE = {"connectivity": 8, "length_unit": "um", "include_edges": ["top", "left"],
           "counting": {"small_factor": 0.5, "large_factor": 1.5, "mean_pore_area_px": None,
                        "single_pore_min_solidity": 0.9, "single_pore_area_band": [0.6, 1.4],
                        "split_min_area_px": 1},
           "split": {"method": "h_maxima", "h": 2.0},
           "spatial": {"alpha": 0.05, "n_sim": 19, "nnd_edge_correction": "donnelly",
                       "k_edge_correction": "translation", "n_radii": 20}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """synthetic/ (truth), ingested/ (class-id masks, classes.json), split/, predictions/."""
    root = tmp_path_factory.mktemp("pipe")
    p = dict(syn.DEFAULT_PARAMS, artefacts=artefacts_off())
    p.update(n_images=3, height=128, width=160, diameter_min_px=10.0, diameter_max_px=14.0,
             porosity_min=0.05, porosity_max=0.3, supersample=2, seed=3)
    synth_stage.run(synth_stage.validate_params(p), root / "synthetic")
    truth = pd.read_csv(root / "synthetic" / "truth.csv")
    (root / "ingested" / "masks").mkdir(parents=True)
    (root / "predictions").mkdir()
    rows = []
    for i, iid in enumerate(truth["image_id"]):
        m = (cv2.imread(str(root / "synthetic" / "masks" / f"{iid}.png"), 0) > 0).astype(np.uint8)
        cv2.imwrite(str(root / "ingested" / "masks" / f"{iid}.png"), m)
        pred = m if i == 0 else cv2.erode(m, np.ones((3, 3), np.uint8))   # exact, then too small
        cv2.imwrite(str(root / "predictions" / f"{iid}.png"), pred)
        rows.append({"source_id": iid, "split": "test", "pixel_size_nm": 25.0, "crop_bottom": 0})
    rows.append({"source_id": "not_tested", "split": "train", "pixel_size_nm": 25.0, "crop_bottom": 0})
    (root / "split").mkdir()
    pd.DataFrame(rows).to_csv(root / "split" / "sources.csv", index=False)
    (root / "ingested" / "classes.json").write_text(json.dumps({"0": "background", "1": "pore"}))
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 42, "analyze": ANALYZE}))
    (root / "nothing").mkdir()
    return root


@pytest.fixture(scope="module")
def result(pipeline, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze_out")
    assert run_stage(pipeline, out) == 0
    return out


def run_stage(root: Path, out: Path, truth: str = "synthetic", predictions: str = "predictions"):
    return analyze.main(["--params", str(root / "params.yaml"), "--predictions",
                         str(root / predictions), "--ingested", str(root / "ingested"),
                         "--split", str(root / "split"), "--truth", str(root / truth),
                         "--metrics", str(out / "metrics.json"), "--plots", str(out / "plots"),
                         "--tables", str(out / "tables")])


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_outputs_against_synthetic_truth(pipeline, result):
    tmp_path = result
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["reference"] == "synthetic truth" and metrics["n_images"] == 3
    for est in ("median_area", "split_labels", "boolean_model"):
        assert set(metrics["estimators"][est]) == {"pred", "gt_mask"}
        assert {"porosity_mae_pp", "count_mae_pct", "count_bias_pct"} <= set(
            metrics["estimators"][est]["pred"])
    # the ground-truth masks are the generator's masks: zero porosity error
    assert metrics["porosity"]["gt_mask"]["max_abs_pp"] == 0.0
    # erosion removes pixels: predicted porosity too low
    assert metrics["porosity"]["pred"]["bias_pp"] < 0

    summary = pd.read_csv(tmp_path / "plots" / "summary.csv")
    truth = pd.read_csv(pipeline / "synthetic" / "truth.csv").set_index("image_id")
    assert list(summary["image_id"]) == list(truth.index)            # test images only
    assert np.allclose(summary["porosity_true"], truth.loc[summary["image_id"], "porosity"])
    assert np.allclose(summary["porosity_gt_mask"], summary["porosity_true"])
    first = summary.iloc[0]      # its prediction is the exact mask
    assert first["porosity_pred"] == pytest.approx(first["porosity_true"])
    for est in ("median_area", "split_labels", "boolean_model"):
        assert first[f"count_pred_{est}"] == first[f"count_gt_mask_{est}"]
    # Boolean reference = pores with the centre inside (n_true)
    assert np.array_equal(summary["count_true_boolean_model"],
                          truth.loc[summary["image_id"], "n_true"])

    objects = pd.read_csv(tmp_path / "tables" / "objects.csv")
    assert {"image_id", "Area", "Perim.", "Circ.", "Feret", "FeretAngle", "MinFeret", "Solidity",
            "ECD", "Area_um2", "counted", "region"} <= set(objects.columns)
    assert set(objects["image_id"]) == set(truth.index)
    per_image = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert {"porosity", "count_split_labels", "density_cm2_boolean_model", "ce_R",
            "mc_verdict"} <= set(per_image.columns)
    comp = pd.read_csv(tmp_path / "tables" / "comparison.csv")
    assert len(comp) == 3 * 2 * 3     # images x masks x estimators
    pngs = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {"area_histogram.png", "ecd_histogram.png", "area_violin.png", "feret_angle_kde.png",
            "correlation.png", "porosity_scatter.png", "count_error.png"} <= pngs
    assert any(n.startswith("ripley_") for n in pngs)


def test_deterministic_bytes(pipeline, result, tmp_path):
    run_stage(pipeline, tmp_path)
    assert digest(tmp_path) == digest(result)


def test_without_truth_compares_with_ground_truth_masks(pipeline, tmp_path):
    assert run_stage(pipeline, tmp_path, truth="nothing") == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["reference"] == "ground-truth mask"
    assert set(metrics["estimators"]["split_labels"]) == {"pred"}
    summary = pd.read_csv(tmp_path / "plots" / "summary.csv")
    assert summary["porosity_true"].isna().all()
    row = summary.iloc[0]
    assert row["porosity_error_pred_pp"] == 0.0 and row["count_error_pred_split_labels_pct"] == 0.0


def test_bad_prediction_names_the_file_and_writes_nothing(pipeline, tmp_path):
    bad = pipeline / "bad_predictions"
    bad.mkdir()
    for f in (pipeline / "predictions").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    name = sorted(bad.iterdir())[1].name
    cv2.imwrite(str(bad / name), np.zeros((10, 10), np.uint8))       # wrong size
    with pytest.raises(PipelineDataError, match=name):
        run_stage(pipeline, tmp_path, predictions="bad_predictions")
    assert not any(tmp_path.iterdir())
    (bad / name).unlink()                                               # missing
    with pytest.raises(PipelineDataError, match=name):
        run_stage(pipeline, tmp_path, predictions="bad_predictions")
    assert not any(tmp_path.iterdir())


def test_bad_params_name_the_key(pipeline, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "analyze": {**ANALYZE, "split": {"h": -1}}}))
    from porescope.config import ParamsError

    with pytest.raises(ParamsError, match=r"analyze\.split\.h"):
        analyze.main(["--params", str(params), "--predictions", str(pipeline / "predictions"),
                      "--ingested", str(pipeline / "ingested"), "--split", str(pipeline / "split"),
                      "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p"),
                      "--tables", str(tmp_path / "t")])
    assert not (tmp_path / "m.json").exists()
