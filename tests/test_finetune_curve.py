"""``bench/finetune_curve.py`` (fine-tuning learning curve) and ``bench/quality_run.py``: the draw of
training images, the summary table and its Markdown, the argument checks, and one tiny end-to-end
run (1 epoch, 4 samples, 2 ISBI images) that skips when the shared real data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench_scripts import load_bench

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


_load = load_bench


@pytest.fixture(scope="module")
def fc():
    return _load("finetune_curve")


def test_draws_are_nested_disjoint_and_reproducible(fc):
    ids = [str(i) for i in range(12)]
    a = fc.draw_train_sets(ids, [1, 2, 4], fixed_test=0, draw=0, seed=42)
    assert a == fc.draw_train_sets(ids, [1, 2, 4], fixed_test=0, draw=0, seed=42)
    assert a[1][0] != fc.draw_train_sets(ids, [1, 2, 4], fixed_test=0, draw=1, seed=42)[1][0]
    for n, (train, test) in a.items():
        assert len(train) == n and not set(train) & set(test)
        assert sorted(train + test, key=int) == ids  # leave the rest out: every other image is tested
    assert set(a[1][0]) < set(a[2][0]) < set(a[4][0])
    fixed = fc.draw_train_sets(ids, [1, 4], fixed_test=5, draw=3, seed=0)
    for train, test in fixed.values():
        assert test == ["7", "8", "9", "10", "11"]  # numeric order, the last five
        assert set(train) <= {str(i) for i in range(7)}
    with pytest.raises(SystemExit, match="no image to test"):
        fc.draw_train_sets(ids[:4], [4], fixed_test=0, draw=0, seed=0)


def test_summary_table_and_markdown(fc):
    rows = []
    for draw, (d_ft, d_sc) in enumerate([(0.9, 0.4), (0.8, 0.6)]):
        for init, dice in (("synthetic", d_ft), ("scratch", d_sc)):
            rows.append({"dataset": "track", "n_train_images": 2, "init": init, "draw": draw, "dice": dice,
                         "iou": dice - 0.1, "object_f1_0.5": np.nan, "object_ap_0.5": np.nan,
                         "count_error": 0.5, "train_s": 30.0 + draw, "n_test_images": 3})
    rows.append({**rows[0], "init": "synthetic, no training", "dice": 0.7, "train_s": 0.0})
    table = fc.summary_table(pd.DataFrame(rows))
    assert table["init"].tolist() == ["synthetic, no training", "synthetic", "scratch"]
    ft = table[table["init"] == "synthetic"].iloc[0]
    assert (ft["draws"], ft["dice"], ft["dice_min"], ft["dice_max"]) == (2, 0.85, 0.8, 0.9)
    text = fc.markdown(table, "settings here")
    assert text.startswith("settings here\n")
    line = next(x for x in text.splitlines() if "| scratch |" in x)
    assert "0.500 (0.400–0.600)" in line and "| — |" in line  # NaN object scores shown as a dash


def test_arguments(fc, tmp_path):
    with pytest.raises(SystemExit):
        fc.parse_args(["--shared-data", str(tmp_path), "--out", str(tmp_path), "--datasets", "track"])
    args = fc.parse_args(["--shared-data", str(tmp_path), "--out", str(tmp_path), "--datasets", "isbi",
                          "--n-train", "4", "1", "1"])
    assert args.n_train == [1, 4] and args.model is None


def test_quality_overrides_merge():
    q = _load("quality_run")
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quality = yaml.safe_load((ROOT / "examples" / "params_quality.yaml").read_text())
    merged = q.merge(params, q.merge(quality, q.dotted(["train.epochs=3"])))
    assert merged["train"]["epochs"] == 3 and merged["train"]["encoder"] == quality["train"]["encoder"]
    assert merged["train"]["optimizer"] == params["train"]["optimizer"]  # untouched keys kept
    from porescope.config import parse_group
    from porescope.segmentation.train_model import TrainParams

    from porescope.evaluation.evaluate_model import EvaluateParams
    from porescope.measure.params import parse_measure_params
    from porescope.preprocessing.augmentation import AugmentParams
    from porescope.preprocessing.ingest import parse_ingest_params

    # every group the quality file touches still parses (values in bounds, rules such as overlap)
    parse_group(TrainParams, merged["train"], group="train")
    parse_group(AugmentParams, merged["augment"], group="augment")
    parse_group(EvaluateParams, merged["evaluate"], group="evaluate")
    assert parse_ingest_params(merged["ingest"]).tile_size == quality["ingest"]["tile_size"]
    parse_measure_params({**merged["measure"], "seed": merged["seed"]})
    unknown = {g: set(v) - set(params[g]) for g, v in quality.items()}
    assert not any(unknown.values()), unknown


def test_tiny_curve_run(fc, tmp_path):
    isbi = DATA / "isbi2012-em-membranes"
    if not isbi.is_dir():
        pytest.skip(f"shared ISBI data not found under {DATA} (set PORESCOPE_SHARED_DATA)")
    from porescope.segmentation import models
    from porescope.segmentation.train_model import TrainParams

    config = TrainParams().model_config(2)
    import torch

    torch.manual_seed(0)
    init = tmp_path / "init.pt"
    models.save_model_file(init, models.build_model(config), config, {"0": "background", "1": "pore"},
                           {"threshold": 0.5})
    out = tmp_path / "results"
    fc.main(["--model", str(init), "--shared-data", str(DATA), "--datasets", "isbi", "--limit-images", "2",
             "--test-images", "1", "--n-train", "1", "--draws", "1", "--epochs", "1", "--samples", "4",
             "--batch-size", "4", "--threads", "1", "--out", str(out), "--work", str(tmp_path / "work")])
    runs = pd.read_csv(out / "finetune_curve_isbi.csv", dtype={"train_images": str})
    assert runs["init"].tolist() == ["synthetic, no training", "synthetic", "scratch"]
    assert runs["n_test_images"].eq(1).all() and runs["train_images"].fillna("").tolist()[1:] == ["0", "0"]
    assert runs["dice"].between(0, 1).all() and runs["object_f1_0.5"].isna().all()
    assert (out / "finetune_curve.png").stat().st_size > 0
    assert "| isbi | 1 | scratch |" in (out / "finetune_curve.md").read_text()
    assert not (tmp_path / "work").exists()  # scratch work removed


def test_seed_h_chosen_on_validation_not_test():
    q = _load("quality_run")
    sweep = pd.DataFrame({"split": ["val", "val", "val", "test", "test", "test"],
                          "seed_h": [1.0, 2.0, 5.0, 1.0, 2.0, 5.0],
                          "object_ap_0.5": [0.7, 0.9, 0.9, 0.95, 0.6, 0.5]})
    got = q.chosen_seed_h(sweep)
    # best on validation (2 and 5 tie: the smaller), whatever the test scores say
    assert got["seed_h"] == 2.0 and got["test"]["object_ap_0.5"] == 0.6 and got["val"]["object_ap_0.5"] == 0.9


def test_tiny_quality_run_with_seed_h_sweep(tmp_path):
    au = DATA / "au-nanoparticles-tem" / "tetrahedra"
    if not au.is_dir():
        pytest.skip(f"shared Au tetrahedra data not found under {DATA} (set PORESCOPE_SHARED_DATA)")
    import json

    q = _load("quality_run")
    out = tmp_path / "out"
    q.main(["--params", str(ROOT / "params.yaml"), "--dataset", "au", "--shared-data", str(DATA),
            "--set", "train.epochs=1", "--set", "augment.size=8", "--set", "evaluate.objects.truth_seed_h=2",
            "--set", "evaluate.objects.seed_h=2", "--threads", "1", "--sweep-seed-h", "2", "5", "--out", str(out)])
    sweep = pd.read_csv(out / "seed_h_sweep.csv")
    assert sweep[["split", "seed_h"]].values.tolist() == [["val", 2.0], ["val", 5.0], ["test", 2.0], ["test", 5.0]]
    result = json.loads((out / "scores.json").read_text())
    chosen = result["seed_h_sweep"]
    assert chosen["seed_h"] in (2.0, 5.0)
    row = sweep[(sweep["split"] == "test") & (sweep["seed_h"] == chosen["seed_h"])].iloc[0]
    assert chosen["test"]["object_ap_0.5"] == pytest.approx(row["object_ap_0.5"])
    # the sweep re-scores saved predictions: at seed_h 2 it equals the run's own evaluation
    at_2 = sweep[(sweep["split"] == "test") & (sweep["seed_h"] == 2.0)].iloc[0]
    for key in ("dice", "object_f1_0.5", "object_ap_0.5", "count_error"):
        assert at_2[key] == pytest.approx(result["test"][key]), key
    assert len(result["val_images"]) == 3 and len(result["test_images"]) == 6
