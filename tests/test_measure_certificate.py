"""A measure run with specimens, a manual reference, the quality guard and a PDF report."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from porescope.cli import main as cli
from porescope.measure.folder import run_measure
from porescope.measure.params import MeasureParams
from porescope.measure.specimens import SpecimenParams
from porescope.segmentation import models


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cert")
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    model = root / "model.pt"
    models.save_model_file(model, models.build_model(cfg), cfg, {"0": "background", "1": "pore"},
                           {"object_ecd_px": [10.0, 14.0, 20.0]})
    inp = root / "input"
    inp.mkdir()
    rng = np.random.default_rng(0)
    for name in ("S1_01", "S1_02", "S2_01", "S2_02"):
        img = np.full((96, 96), 140, np.uint8)
        for _ in range(6):
            cv2.circle(img, tuple(int(v) for v in rng.integers(12, 84, 2)), 6, 20, -1)
        cv2.imwrite(str(inp / f"{name}.png"), img)
    (root / "manual.csv").write_text("image,count\nS1_01,6\nS1_02,6\nS2_01,6\nS2_02,6\n")
    return {"root": root, "model": model, "input": inp, "reference": root / "manual.csv"}


PARAMS = MeasureParams(tile=64, overlap=16, device="cpu", threads=1, figures=False, scale_bar=False,
                       backend="torch")


def test_specimens_reference_and_quality_in_one_run(run_files, tmp_path):
    import dataclasses

    params = dataclasses.replace(PARAMS, reference=str(run_files["reference"]),
                                 specimens=SpecimenParams(rule="pattern", pattern=r"^(.+?)_\d+$",
                                                          n_boot=200))
    out = tmp_path / "out"
    summary = run_measure(run_files["input"], run_files["model"], out, params, metrics=tmp_path / "m.json")
    assert set(summary["certified"]) <= {"yes", "no"} and "quality_flags" in summary
    stats = pd.read_csv(out / "specimens.csv")
    assert sorted(stats["specimen"].unique()) == ["S1", "S2"]
    assert set(stats.loc[stats["quantity"] == "porosity", "n_images"]) == {2}
    ref = pd.read_csv(out / "reference.csv")
    assert list(ref["image"]) == ["S1_01", "S1_02", "S2_01", "S2_02"] and (ref["manual_count"] == 6).all()
    metrics = json.loads((tmp_path / "m.json").read_text())
    pooled = metrics["reference"]["count"]["split_labels"]["pooled_pct"]
    assert pooled == pytest.approx(100 * (summary["count_split_labels"].sum() / 24 - 1), abs=1e-3)
    md = (out / "report.md").read_text()
    assert "## Specimens" in md and "## Against the manual reference" in md
    assert "Quality: may these numbers be certified?" in md
    for image in summary.loc[summary["certified"] == "no", "image_id"]:
        assert f"{image} ⚠ NOT CERTIFIED" in md       # never an uncertified number without its flag


def test_sub_folders_are_specimens(run_files, tmp_path):
    import dataclasses

    inp = tmp_path / "specimens"
    for k, name in enumerate(("S1_01", "S1_02", "S2_01", "S2_02")):
        sub = inp / ("A" if k < 2 else "B")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_files["input"] / f"{name}.png", sub / f"{name}.png")
    params = dataclasses.replace(PARAMS, specimens=SpecimenParams(rule="folder", n_boot=200))
    summary = run_measure(inp, run_files["model"], tmp_path / "out", params)
    assert sorted(summary["image_id"]) == ["S1_01", "S1_02", "S2_01", "S2_02"]
    stats = pd.read_csv(tmp_path / "out" / "specimens.csv")
    assert sorted(stats["specimen"].unique()) == ["A", "B"]
    # without specimen grouping, sub-folders are not measured
    assert len(run_measure(inp, run_files["model"], tmp_path / "flat", PARAMS)) == 0


def test_an_untrained_model_on_these_images_is_not_certified(run_files, tmp_path):
    summary = run_measure(run_files["input"], run_files["model"], tmp_path / "o", PARAMS)
    # a random-init network: hesitant probabilities / objects unlike its training pores
    assert (summary["certified"] == "no").all()
    assert summary["quality_flags"].str.len().min() > 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium: apt-get install chromium")
def test_cli_writes_a_pdf_with_specimens(run_files, tmp_path):
    out = tmp_path / "pdf"
    rc = cli.main(["measure", "--model", str(run_files["model"]), "--input", str(run_files["input"]),
                   "--out", str(out), "--specimens", r"pattern:^(.+?)_\d+$", "--no-scale-bar",
                   "--reference", str(run_files["reference"]), "--pdf"])
    assert rc == 0
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    assert (out / "specimens.csv").is_file()


def test_bad_specimen_rule_is_named(run_files, tmp_path, capsys):
    rc = cli.main(["measure", "--model", str(run_files["model"]), "--input", str(run_files["input"]),
                   "--out", str(tmp_path / "x"), "--specimens", "colour:red"])
    assert rc == 2 and "--specimens: expected folder" in capsys.readouterr().err
