"""The model card: contents checked against independent reads of the inputs, and determinism.

One tiny project is reproduced up to ``train`` (module fixture). Its ``train`` command is
prefixed with a copy of ``dvc.lock`` taken at the moment the stage starts, which shows what the
card can rely on: the upstream stages' entries are already recorded when ``train`` runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_project import dvc, make_project, run

from porescope.provenance import model_card as mc
from porescope.provenance.code_fingerprint import import_closure

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

UPSTREAM = ("synthesize", "ingest", "split", "augment")
SNAPSHOT = "lock_at_train_start.yaml"
#: What the train stage passes (the card module has no pipeline paths of its own).
PATHS = {"stage": "train", "params": "params.yaml", "split_dir": "data/split", "augmented_dir": "data/augmented",
         "dvc_yaml": "dvc.yaml", "dvc_lock": "dvc.lock", "model_file": "models/model.pt",
         "code_inputs": ("pyproject.toml", "stages/", "porescope/")}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path_factory.mktemp("card") / "repo", commit=False)
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    probe = f"python -c \"import shutil; shutil.copy('dvc.lock', '{SNAPSHOT}')\" && "
    pipeline["stages"]["train"]["cmd"] = probe + pipeline["stages"]["train"]["cmd"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    with open(repo / ".gitignore", "a") as fh:
        fh.write(f"/{SNAPSHOT}\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny pipeline"], repo)
    dvc("repro", "train", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "trained"], repo)
    return repo


def _card(repo: Path, **kw) -> dict:
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        return mc.build_model_card(
            model_config={"arch": "Unet", "encoder": "resnet18", "classes": 1}, class_names={1: "pore", 0: "background"},
            epochs_run=2, best_epoch=1, val_metrics={"val_iou": 0.5, "val_dice": 2 / 3}, device="cpu", threads=2,
            **{**PATHS, **kw})
    finally:
        os.chdir(cwd)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_upstream_stages_are_recorded_before_train_runs(project: Path) -> None:
    at_start = yaml.safe_load((project / SNAPSHOT).read_text())["stages"]
    final = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(UPSTREAM) <= set(at_start) and "train" not in at_start
    for stage in UPSTREAM:
        assert at_start[stage]["outs"] == final[stage]["outs"]


@pytest.mark.slow
def test_card_records_the_exact_training_inputs(project: Path) -> None:
    card = _card(project)
    sources = _csv(project / "data/split/sources.csv")
    tiles = _csv(project / "data/split/tiles.csv")
    for split in ("train", "val"):
        got = card["data"]["splits"][split]
        rows = sorted((r["source_id"], r["image_sha256"]) for r in sources if r["split"] == split)
        assert [(s["source_id"], s["image_sha256"]) for s in got["sources"]] == rows and rows
        # the digest convention, recomputed by hand
        text = "".join(sorted(f"{a}\t{b}\n" for a, b in rows))
        assert got["sources_digest"] == hashlib.sha256(text.encode()).hexdigest()
        tile_text = "".join(sorted(f"{r['tile_id']}\t{r['image_sha256']}\t{r['mask_sha256']}\n"
                                   for r in tiles if r["split"] == split))
        assert got["tiles_digest"] == hashlib.sha256(tile_text.encode()).hexdigest()
        # each source sha256 is that of the raw file
        for s, row in zip(got["sources"], sorted((r for r in sources if r["split"] == split), key=lambda r: r["source_id"])):
            raw = project / "data/synthetic" / row["image_file"]
            assert hashlib.sha256(raw.read_bytes()).hexdigest() == s["image_sha256"]
    assert "test" not in card["data"]["splits"]
    aug = card["data"]["augmented"]
    folder = project / "data/augmented"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    text = "".join(sorted(f"{p.relative_to(folder).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                          for p in files))
    assert aug["files_digest"] == hashlib.sha256(text.encode()).hexdigest() and aug["n_files"] == len(files)
    assert aug["name"] == json.loads((folder / "dataset.json").read_text())["name"]
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert aug["dvc_md5"] == lock["augment"]["outs"][0]["md5"]


@pytest.mark.slow
def test_card_params_hashes_code_git_and_environment(project: Path) -> None:
    card = _card(project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert card["params"]["train"] == params["train"] and card["params"]["seed"] == params["seed"]
    for stage in UPSTREAM:
        for key, value in lock[stage]["params"]["params.yaml"].items():
            assert card["params"][key] == value
        assert [o["md5"] for o in card["upstream_outs"][stage]] == [o["md5"] for o in lock[stage]["outs"]]
    used = {o["path"]: o.get("matches_workspace") for outs in card["upstream_outs"].values() for o in outs}
    assert used["data/augmented"] is True and used["data/ingested"] is True and used["data/split"] is True
    assert used["data/synthetic"] is None  # not read by train: not re-hashed
    for path, md5 in card["code"].items():
        assert hashlib.md5((project / path).read_bytes()).hexdigest() == md5
    # the code train ran: its fingerprint, i.e. the import closure of stages.train
    assert card["code"] == json.loads((project / "data/code/train.json").read_text())["files"]
    assert set(card["code"]) == set(import_closure("stages.train", project))
    assert card["git"]["commit"] == run(["git", "rev-parse", "HEAD"], project).strip()
    assert card["model"]["class_names"] == {"0": "background", "1": "pore"}
    env = card["environment"]
    assert env["threads"] == 2 and env["seed"] == params["seed"] and env["device_type"] == "cpu"
    assert env["libraries"]["torch"] and env["libraries"]["dvc"]
    assert card["warnings"] == []
    md = mc.render_model_card_md(card)
    assert card["data"]["splits"]["train"]["sources_digest"] in md and "RDZF" in md


@pytest.mark.slow
def test_card_is_deterministic_and_free_of_run_specific_values(project: Path, tmp_path: Path) -> None:
    first = json.dumps(_card(project), sort_keys=True)
    assert json.dumps(_card(project), sort_keys=True) == first
    copy = tmp_path / "elsewhere"
    shutil.copytree(project, copy, symlinks=True)
    assert json.dumps(_card(copy), sort_keys=True) == first  # no absolute paths
    assert str(project) not in first and str(tmp_path) not in first
    assert mc.render_model_card_md(json.loads(first)) == mc.render_model_card_md(json.loads(first))
    for word in ("seconds", "samples_per_s", "started", "host"):
        assert f'"{word}"' not in first


@pytest.mark.slow
def test_card_flags_inputs_that_differ_from_the_lock(project: Path) -> None:
    image = project / "data/augmented/images.npy"
    data = image.read_bytes()
    try:
        image.write_bytes(data + b"\0")
        card = _card(project)
    finally:
        image.write_bytes(data)
    aug = next(o for o in card["upstream_outs"]["augment"] if o["path"] == "data/augmented")
    assert aug["matches_workspace"] is False
    assert any("data/augmented" in w for w in card["warnings"])


def test_run_record_is_separate(tmp_path: Path) -> None:
    path = mc.write_run_record(tmp_path / "train_run.json", 12.5, 80.0, "2026-01-01T00:00:00+00:00", "lab-pc")
    assert json.loads(path.read_text()) == {"seconds": 12.5, "samples_per_s": 80.0,
                                            "started": "2026-01-01T00:00:00+00:00", "host": "lab-pc"}


def test_fingerprint_comparison_and_rebuild_expectation() -> None:
    base = mc.environment_fingerprint("cpu", threads=2, seed=1)
    assert mc.compare_fingerprints(base, dict(base)) == []
    det = {**base, "deterministic_algorithms": True, "deterministic_warn_only": False}
    assert mc.rebuild_expectation(det) == "bit-identical"
    assert mc.rebuild_expectation(det, dict(det)) == "bit-identical"
    other_threads = {**det, "threads": 8}
    assert mc.compare_fingerprints(det, other_threads) == ["threads: 2 != 8"]
    assert mc.rebuild_expectation(det, other_threads) == "within tolerance"
    newer = {**det, "libraries": {**det["libraries"], "numpy": "9.9"}}
    assert mc.compare_fingerprints(det, newer) == [f"libraries.numpy: {det['libraries']['numpy']} != 9.9"]
    assert mc.rebuild_expectation({**det, "deterministic_warn_only": True}) == "within tolerance"
    assert mc.rebuild_expectation({**det, "deterministic_algorithms": False}) == "within tolerance"
    assert mc.rebuild_expectation({**det, "amp": True}) == "within tolerance"


def test_digest_lines_sorts_and_tabs() -> None:
    expected = hashlib.sha256(b"a\t1\nb\t2\n").hexdigest()
    assert mc.digest_lines([("b", 2), ("a", 1)]) == expected
    assert mc.digest_lines([]) == hashlib.sha256(b"").hexdigest()


def test_missing_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(mc.ModelCardError, match="sources.csv"):
        mc.split_inputs(tmp_path)
    with pytest.raises(mc.ModelCardError, match="dataset.json"):
        mc.dataset_inputs(tmp_path)
