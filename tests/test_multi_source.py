"""Several datasets at once (ingest.sources): ingest with per-dataset encodings and pixel sizes,
unique source ids, role train in the split, per-dataset sampling weights in augment and
per-dataset scores in evaluate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from porescope.config import ParamsError, parse_group
from porescope.evaluation import metrics
from porescope.evaluation.evaluate_model import per_dataset_scores
from porescope.preprocessing.augmentation import AugmentParams, run_augment
from porescope.preprocessing.datasets import dataset_shares
from porescope.preprocessing.ingest import parse_ingest_params, run_ingest
from porescope.preprocessing.splitting import SplitParams, run_split

LAB_MAP = {"255,0,0": 1, "0,0,0": 0}


def _png(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)


def _objects(rng: np.random.Generator, shape=(64, 64)) -> np.ndarray:
    m = np.zeros(shape, bool)
    for _ in range(4):
        y, x = rng.integers(8, shape[0] - 8, 2)
        m[y - 5:y + 5, x - 5:x + 5] = True
    return m


def make_datasets(root: Path, n_synth: int = 4, n_lab: int = 3) -> tuple[Path, Path]:
    """'synth': 0/255 binary masks; 'lab': red-on-black RGB masks. Both use the stems img_0..
    (so only the dataset prefix keeps the ids apart)."""
    rng = np.random.default_rng(0)
    synth, lab = root / "synth", root / "lab"
    for i in range(n_synth):
        m = _objects(rng)
        _png(synth / "images" / f"img_{i}.png", rng.integers(0, 256, m.shape, dtype=np.uint8))
        _png(synth / "masks" / f"img_{i}.png", m.astype(np.uint8) * 255)
    for i in range(n_lab):
        m = _objects(rng)
        rgb = np.zeros((*m.shape, 3), np.uint8)
        rgb[m] = (0, 0, 255)  # BGR on disk: red
        _png(lab / "images" / f"img_{i}.png", rng.integers(0, 256, m.shape, dtype=np.uint8))
        _png(lab / "masks" / f"img_{i}.png", rgb)
    return synth, lab


def sources_param(synth: Path, lab: Path, w_synth: float = 1.0, w_lab: float = 3.0,
                  role_synth: str = "any") -> list[dict]:
    return [{"name": "synth", "path": str(synth), "weight": w_synth, "role": role_synth},
            {"name": "lab", "path": str(lab), "weight": w_lab, "mask_format": "rgb",
             "colour_map": LAB_MAP, "pixel_size_nm": 2.5}]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    synth, lab = make_datasets(root)
    params = parse_ingest_params({"tile_size": 32, "sources": sources_param(synth, lab)})
    run_ingest(root / "unused", root / "ingested", params)
    return root


def test_ingest_prefixes_ids_and_keeps_each_datasets_encoding(project: Path) -> None:
    sources = pd.read_csv(project / "ingested" / "sources.csv")
    assert sources["source_id"].tolist() == [f"lab__img_{i}" for i in range(3)] + \
        [f"synth__img_{i}" for i in range(4)]
    assert set(sources["dataset"]) == {"lab", "synth"}
    assert sources.groupby("dataset")["weight"].first().to_dict() == {"lab": 3.0, "synth": 1.0}
    assert sources.groupby("dataset")["pixel_size_nm"].first().to_dict() == {"lab": 2.5, "synth": 25.0}
    # both decoded to the same classes: 0 background, 1 object
    for sid in sources["source_id"]:
        mask = cv2.imread(str(project / "ingested" / "masks" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask).tolist()) == {0, 1}
    tiles = pd.read_csv(project / "ingested" / "tiles.csv")
    assert tiles["source_id"].str.split("__").str[0].isin(["lab", "synth"]).all()
    assert json.loads((project / "ingested" / "classes.json").read_text()) == {"0": "background", "1": "pore"}


def test_without_sources_the_output_is_unchanged(tmp_path: Path) -> None:
    synth, _ = make_datasets(tmp_path)
    run_ingest(synth, tmp_path / "a", parse_ingest_params({"tile_size": 32}))
    run_ingest(synth, tmp_path / "b", parse_ingest_params({"tile_size": 32, "sources": None}))
    a = _hashes(tmp_path / "a")
    assert a == _hashes(tmp_path / "b")
    assert "dataset" not in pd.read_csv(tmp_path / "a" / "sources.csv").columns


@pytest.mark.parametrize("change, match", [
    (lambda s: s + [dict(s[0])], "given twice"),
    (lambda s: [s[0], {**s[1], "class_names": ["background", "particle"]}], "same class"),
    (lambda s: [s[0], {**s[1], "mask_fromat": "rgb"}], "did you mean"),
    (lambda s: [{**d, "weight": 0.0} for d in s], "weight 0"),
    (lambda s: [{**s[0], "name": "a__b"}], "ingest.sources.name"),
    (lambda s: [s[0], {**s[1], "colour_map": None}], "ingest.sources.lab.colour_map"),
])
def test_bad_sources_are_clear_errors(tmp_path: Path, change, match: str) -> None:
    with pytest.raises(ParamsError, match=match):
        parse_ingest_params({"sources": change(sources_param(tmp_path / "s", tmp_path / "l"))})


def _split(project: Path, out: str, **params) -> pd.DataFrame:
    raw = {"val_fraction": 0.2, "test_fraction": 0.2, **params}
    sources, _ = run_split(parse_group(SplitParams, raw, group="split"), 0, project / "ingested",
                           project / out)
    return sources


def test_role_train_keeps_a_dataset_out_of_val_and_test(tmp_path: Path) -> None:
    synth, lab = make_datasets(tmp_path, n_synth=4, n_lab=5)
    params = parse_ingest_params({"tile_size": 32, "sources": sources_param(synth, lab, role_synth="train")})
    run_ingest(tmp_path / "unused", tmp_path / "ingested", params)
    for seed_params in ({}, {"method": "kfold", "n_folds": 2, "fold": 1}):
        sources = _split(tmp_path, "split", **seed_params)
        assert (sources.loc[sources["dataset"] == "synth", "split"] == "train").all()
        lab_splits = set(sources.loc[sources["dataset"] == "lab", "split"])
        assert {"val", "test"} <= lab_splits
    # group_by keys are per dataset: img_<k> of synth and img_<k> of lab are not joined (else
    # lab's img_0..3 would follow synth into train)
    sources = _split(tmp_path, "split2", group_by={"rule": "pattern", "pattern": "^(img_[0-9]+)$"})
    key = sources.set_index("source_id")
    assert key.loc["lab__img_0", "group_key"] == "lab/img_0"
    assert key.loc["lab__img_0", "group"] != key.loc["synth__img_0", "group"]
    assert {"val", "test"} <= set(sources.loc[sources["dataset"] == "lab", "split"])


def test_augment_shares_samples_by_dataset_weight(project: Path) -> None:
    sources = _split(project, "split", method="lists", lists={
        "train": ["lab__img_0", "lab__img_1", "synth__img_0", "synth__img_1", "synth__img_2"],
        "val": ["synth__img_3"], "test": ["lab__img_2"]})
    assert len(sources) == 7
    params = parse_group(AugmentParams, {"ops": "F", "size": 40, "workers": 1}, group="augment")
    info = run_augment(params, 0, project / "ingested", project / "split", project / "aug", progress=False)
    # weights 1 (synth, 3 train images) and 3 (lab, 2 train images): 10 and 30 samples
    assert info["dataset_samples"] == {"lab": 30, "synth": 10} == dataset_shares({"lab": 3, "synth": 1}, 40)
    samples = pd.read_csv(project / "aug" / "samples.csv")
    per_tile = samples.groupby("tile_id").size()
    lab_tiles = per_tile[per_tile.index.str.startswith("lab__")]
    assert lab_tiles.sum() == 30 and lab_tiles.max() - lab_tiles.min() <= 1  # even within a dataset
    # the same again: deterministic
    run_augment(params, 0, project / "ingested", project / "split", project / "aug2", progress=False)
    assert _hashes(project / "aug") == _hashes(project / "aug2")


def test_per_dataset_scores_match_scoring_each_dataset_alone() -> None:
    rng = np.random.default_rng(5)
    items = []
    for sid in ("lab__a", "lab__b", "synth__a", "synth__b", "synth__c"):
        t = _objects(rng).astype(np.uint8)
        p = np.roll(t, int(rng.integers(0, 3)), axis=1)
        items.append((sid, t, p))
    pixel = metrics.pixel_scores_table(items)
    objects = metrics.object_scores_table((i, metrics_labels(t), metrics_labels(p)) for i, t, p in items)
    table = per_dataset_scores(pixel, objects, {i: i.split("__")[0] for i, _, _ in items}, {1: "pore"})
    assert table["dataset"].tolist() == ["lab", "synth"] and table["n_images"].tolist() == [2, 3]
    for name in ("lab", "synth"):
        own = [it for it in items if it[0].startswith(name)]
        alone = metrics.summarise_pixel_scores(metrics.pixel_scores_table(own)).set_index("metric")
        row = table[table["dataset"] == name].iloc[0]
        assert row["dice_mean"] == pytest.approx(alone.loc["dice", "mean"], abs=1e-6)
        assert row["iou_pooled"] == pytest.approx(alone.loc["iou", "pooled"], abs=1e-6)
    assert table["dice_mean"].nunique() == 2  # the datasets were scored differently


def metrics_labels(mask: np.ndarray) -> np.ndarray:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[1]


def test_evaluate_writes_per_dataset_scores_and_skips_ignore(tmp_path: Path) -> None:
    """run_evaluate end to end with a tiny random model: a per-dataset table for two datasets,
    and scores that do not move when not-annotated pixels are predicted differently."""
    import torch

    from porescope.evaluation.evaluate_model import EvaluateParams, run_evaluate
    from porescope.segmentation import models

    synth, lab = make_datasets(tmp_path, n_synth=3, n_lab=3)
    # lab masks: paint the right half "not annotated" (yellow)
    for f in sorted((lab / "masks").glob("*.png")):
        m = cv2.imread(str(f))
        m[:, 32:] = (0, 255, 255)
        cv2.imwrite(str(f), m)
    srcs = sources_param(synth, lab)
    srcs[1]["ignore_value"] = "255,255,0"
    run_ingest(tmp_path / "unused", tmp_path / "ingested",
               parse_ingest_params({"tile_size": 32, "sources": srcs}))
    _split(tmp_path, "split", method="lists", lists={
        "train": ["synth__img_0", "lab__img_0"], "val": ["synth__img_1"],
        "test": ["synth__img_2", "lab__img_1", "lab__img_2"]})
    cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3, decoder_channels=[16, 8, 4])
    torch.manual_seed(0)
    models.save_model_file(tmp_path / "m.pt", models.build_model(cfg), cfg, {"0": "background", "1": "pore"}, None)
    params = parse_group(EvaluateParams, {"tile": 64, "overlap": 16, "device": "cpu", "threads": 1,
                                          "backend": "torch", "n_worst": 1}, group="evaluate")
    summary = run_evaluate(params, model=tmp_path / "m.pt", ingested=tmp_path / "ingested",
                           split=tmp_path / "split", predictions=tmp_path / "pred",
                           metrics=tmp_path / "metrics.json", plots=tmp_path / "plots")
    assert set(summary["datasets"]) == {"lab", "synth"}
    table = pd.read_csv(tmp_path / "plots" / "per_dataset.csv")
    assert table["n_images"].tolist() == [2, 1]
    per_image = pd.read_csv(tmp_path / "plots" / "per_image.csv")
    for sid in ("lab__img_1", "lab__img_2"):
        truth = cv2.imread(str(tmp_path / "ingested" / "masks" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        pred = cv2.imread(str(tmp_path / "pred" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        assert (truth[:, 32:] == 255).all()
        want = metrics.pixel_counts(truth[:, :32], pred[:, :32])
        row = per_image[per_image["image_id"] == sid].iloc[0]
        assert (row["tp"], row["fp"], row["fn"]) == tuple(want.loc[0, ["tp", "fp", "fn"]])
    assert json.loads((tmp_path / "metrics.json").read_text())["datasets"]["lab"]["pore"]["n_images"] == 2
