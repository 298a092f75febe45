"""``porescope lineage`` (chain, --verify, --uses) and the dependency guard.

The lineage tests run the real ``dvc.yaml`` on a tiny throwaway project once (module fixture)
and compare what ``lineage`` reports with answers obtained independently: DVC's own ``dvc dag``
for the chain, ``dvc.lock`` for params and hashes, ``hashlib`` on the files for SHA-256 / MD5,
the split manifest read with ``csv`` for which sources feed what. Tampering is done on a copy
of the bytes and undone after each test.

The guard tests use a hand-written ``dvc.yaml`` (templating included) in a temporary folder,
and one end-to-end run under ``dvc repro`` in which the stage edits its own input.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pipeline_project import dvc, make_project, run, run_module

from porescope.provenance.dep_guard import DependencyChangedError, guard_dependencies
from porescope.provenance.hashes import dvc_dir_hash
from porescope.provenance.pipeline import StageSpecError, load_pipeline, resolve_stage

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

EXP = "worst2"


ROOT = Path(__file__).resolve().parents[1]


def lineage_cli(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """``porescope lineage ARGS`` run in ``repo`` (this checkout's code, the project's files)."""
    return run_module(repo, "porescope.cli.main", "lineage", *args)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path_factory.mktemp("lineage") / "repo")
    dvc("repro", "evaluate", cwd=repo)  # the chain of a model and of test metrics is enough here
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    # an experiment that reruns only evaluate (in a temp copy; the workspace stays)
    dvc("exp", "run", "--temp", "-n", EXP, "-S", "evaluate.n_worst=2", "evaluate", cwd=repo)
    return repo


def _sources(repo: Path) -> list[dict[str, str]]:
    with open(repo / "data/split/sources.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _dag_ancestors(repo: Path, stage: str) -> set[str]:
    """Stages in ``dvc dag STAGE`` (DVC's own ancestor computation)."""
    dot = dvc("dag", "--dot", stage, cwd=repo)
    names = set()
    for line in dot.splitlines():
        for part in line.replace("->", " ").replace(";", " ").split():
            part = part.strip('"')
            if part and part.isidentifier() and part not in ("strict", "digraph", "node", "edge"):
                names.add(part)
    return names & set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


@pytest.fixture()
def restore(project: Path):
    """Undo byte edits (and permission changes) made by a test."""
    saved: list[tuple[Path, bytes, int]] = []

    def keep(path: Path) -> Path:
        saved.append((path, path.read_bytes(), path.stat().st_mode))
        return path

    yield keep
    for path, data, mode in reversed(saved):
        os.chmod(path, mode | stat.S_IWUSR)
        path.write_bytes(data)
        os.chmod(path, mode)


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_model_chain_params_hashes_and_sources(project: Path) -> None:
    proc = lineage_cli(project, "models/model.pt", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert report["produced_by"]["stage"] == "train"
    assert report["produced_by"]["md5"] == hashlib.md5((project / "models/model.pt").read_bytes()).hexdigest()
    chain = [s["stage"] for s in report["stages"]]
    assert chain[0] == "train" and set(chain) == _dag_ancestors(project, "train")
    for stage in report["stages"]:
        assert stage["params"] == lock[stage["stage"]].get("params", {})  # the code stage has none
        assert {d["path"]: d["md5"] for d in stage["deps"]} == {d["path"]: d["md5"] for d in lock[stage["stage"]]["deps"]}
        assert {o["path"]: o["md5"] for o in stage["outs"]} == {o["path"]: o["md5"] for o in lock[stage["stage"]]["outs"]}
    # a model is fed by the train and val sources only, each with the sha256 of its raw file
    expected = {r["source_id"] for r in _sources(project) if r["split"] in ("train", "val")}
    fed = [r for r in report["sources"]["files"] if r["feeds"]]
    assert {r["source_id"] for r in fed} == expected
    assert set(report["feeding_splits"]) == {"train", "val"}
    for row in fed:
        assert hashlib.sha256((project / row["image"]).read_bytes()).hexdigest() == row["image_sha256"]
    head = run(["git", "rev-parse", "HEAD"], project).strip()
    assert report["git"]["commit"] == head and report["git"]["dirty"] == []
    # the code the chain ran: exactly the files its stages' fingerprints list, with their MD5s
    # (not the code stage's deps, which are every stage's code)
    listed: dict[str, str] = {}
    for name in chain:
        if name != "code":
            listed.update(json.loads((project / f"data/code/{name}.json").read_text())["files"])
    assert {r["path"]: r["md5"] for r in report["code"]} == listed
    assert all(hashlib.md5((project / f).read_bytes()).hexdigest() == m for f, m in listed.items())
    assert not [r for r in report["code"] if r["stage"] == "code"]
    assert "porescope/report/document.py" not in listed  # the report's code did not feed the model
    assert "porescope/segmentation/train_model.py" in {r["path"] for r in report["code"] if r["stage"] == "train"}


@pytest.mark.slow
def test_model_code_is_what_train_ran_not_a_newer_fingerprint(project: Path) -> None:
    """After an edit, ``dvc repro code`` rewrites train's fingerprint while the model stays the
    one trained on the old code: lineage reports the MD5s train recorded, not the workspace's."""
    path = project / "stages/train.py"
    original = path.read_bytes()
    old_md5 = hashlib.md5(original).hexdigest()
    try:
        path.write_bytes(original + b"# edited after training\n")
        dvc("repro", "code", cwd=project)
        assert json.loads((project / "data/code/train.json").read_text())["files"]["stages/train.py"] != old_md5
        report = json.loads(lineage_cli(project, "models/model.pt", "--json").stdout)
        assert {r["path"]: r["md5"] for r in report["code"]}["stages/train.py"] == old_md5
    finally:
        path.write_bytes(original)
        dvc("repro", "code", cwd=project)
    assert json.loads((project / "data/code/train.json").read_text())["files"]["stages/train.py"] == old_md5


@pytest.mark.slow
def test_evaluate_metrics_are_fed_by_test_directly_and_train_val_through_the_model(project: Path) -> None:
    report = json.loads(lineage_cli(project, "metrics/evaluate.json", "--json").stdout)
    assert report["produced_by"] == {**report["produced_by"], "stage": "evaluate", "kind": "metrics"}
    assert report["feeding_splits"]["test"] == ["evaluate"]
    assert "train" in report["feeding_splits"]["train"] and "train" in report["feeding_splits"]["val"]
    text = lineage_cli(project, "metrics/evaluate.json").stdout
    assert "test (selected by evaluate)" in text and "stage train" in text


@pytest.mark.slow
def test_file_inside_an_output_folder(project: Path) -> None:
    image = project / "data/augmented/images.npy"
    report = json.loads(lineage_cli(project, str(image.relative_to(project)), "--json").stdout)
    assert report["produced_by"]["stage"] == "augment"
    assert report["produced_by"]["out"] == "data/augmented"
    assert report["produced_by"]["md5"] == hashlib.md5(image.read_bytes()).hexdigest()
    assert set(report["feeding_splits"]) == {"train"}


@pytest.mark.slow
def test_unknown_path_is_a_clear_error(project: Path) -> None:
    proc = lineage_cli(project, "stages/train.py")
    assert proc.returncode == 2 and "no stage" in proc.stderr and "stages/train.py" in proc.stderr


@pytest.mark.slow
def test_lineage_at_an_experiment(project: Path) -> None:
    report = json.loads(lineage_cli(project, "metrics/evaluate.json", "--rev", EXP, "--json").stdout)
    evaluate = next(s for s in report["stages"] if s["stage"] == "evaluate")
    assert evaluate["params"]["params.yaml"]["evaluate"]["n_worst"] == 2


# --------------------------------------------------------------------------------------------
# --verify
# --------------------------------------------------------------------------------------------

#: The ingest tiles, training tiles among them: one stack file (rows = data/ingested/tiles.csv).
TILES = "data/ingested/tiles/images.npy"


@pytest.mark.slow
def test_verify_passes_on_an_untouched_project(project: Path) -> None:
    proc = lineage_cli(project, "models/model.pt", "--verify")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert " 0 differ" in proc.stdout


@pytest.mark.slow
def test_verify_names_a_tampered_training_tile_in_the_workspace(project: Path, restore) -> None:
    path = restore(project / TILES)
    path.write_bytes(path.read_bytes() + b"\0")
    proc = lineage_cli(project, "models/model.pt", "--verify")
    assert proc.returncode == 1
    differs = [line for line in proc.stdout.splitlines() if "DIFFERS" in line]
    assert len(differs) == 1 and TILES in differs[0] and "[workspace]" in differs[0]


@pytest.mark.slow
def test_verify_names_a_tampered_file_of_a_folder_dep_inside_an_output(project: Path, restore) -> None:
    # evaluate depends on data/ingested/images, a folder inside ingest's output: DVC caches no
    # listing of its own for it, the file is named from data/ingested's listing
    test_id = next(r["source_id"] for r in _sources(project) if r["split"] == "test")
    rel = f"data/ingested/images/{test_id}.png"
    path = restore(project / rel)
    path.write_bytes(path.read_bytes() + b"\0")
    proc = lineage_cli(project, "metrics/evaluate.json", "--verify")
    assert proc.returncode == 1
    differs = [line for line in proc.stdout.splitlines() if "DIFFERS" in line]
    assert len(differs) == 1 and rel in differs[0] and "[workspace]" in differs[0], differs


@pytest.mark.slow
def test_verify_names_a_tampered_augmented_image(project: Path, restore) -> None:
    image = project / "data/augmented/images.npy"
    restore(image).write_bytes(image.read_bytes()[:-1] + bytes([image.read_bytes()[-1] ^ 1]))
    proc = lineage_cli(project, "models/model.pt", "--verify")
    assert proc.returncode == 1 and str(image.relative_to(project)) in proc.stdout


@pytest.mark.slow
def test_verify_names_a_tampered_training_tile_in_the_cache(project: Path, restore) -> None:
    rel = TILES
    md5 = hashlib.md5((project / rel).read_bytes()).hexdigest()
    obj = project / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    assert obj.is_file() and not (obj.stat().st_ino == (project / rel).stat().st_ino and obj.stat().st_nlink > 1)
    restore(obj)
    os.chmod(obj, obj.stat().st_mode | stat.S_IWUSR)
    obj.write_bytes(obj.read_bytes() + b"\0")
    proc = lineage_cli(project, "models/model.pt", "--verify")
    assert proc.returncode == 1
    differs = [line for line in proc.stdout.splitlines() if "DIFFERS" in line]
    assert len(differs) == 1 and rel in differs[0] and "[cache]" in differs[0]
    # the workspace copy is intact: without the cache check nothing differs
    assert lineage_cli(project, "models/model.pt", "--verify", "--no-cache-check").returncode == 0


@pytest.mark.slow
def test_verify_names_a_tampered_raw_source(project: Path, restore) -> None:
    row = next(r for r in _sources(project) if r["split"] == "val")
    rel = f"data/synthetic/{row['image_file']}"
    path = restore(project / rel)
    path.write_bytes(path.read_bytes() + b"\0")
    proc = lineage_cli(project, "models/model.pt", "--verify")
    assert proc.returncode == 1
    assert any(rel in line and "[source]" in line for line in proc.stdout.splitlines())


# --------------------------------------------------------------------------------------------
# --uses
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_uses_of_a_train_source_lists_models_everywhere(project: Path) -> None:
    row = next(r for r in _sources(project) if r["split"] == "train")
    sha = hashlib.sha256((project / "data/synthetic" / row["image_file"]).read_bytes()).hexdigest()
    rows = json.loads(lineage_cli(project, "--uses", sha, "--json").stdout)
    models = {(r["revision"].split()[0], r["output"]) for r in rows if r["kind"] == "model"}
    head = run(["git", "rev-parse", "--short=7", "HEAD"], project).strip()
    assert ("workspace", "models/model.pt") in models and (head, "models/model.pt") in models
    assert any(r["revision"].startswith(f"exp {EXP}") and r["output"] == "metrics/evaluate.json" for r in rows)
    assert all(row["source_id"] in r["how"] and "[train]" in r["how"] for r in rows)
    table = lineage_cli(project, "--uses", f"data/synthetic/{row['image_file']}").stdout
    assert "| workspace | models/model.pt | model |" in table


@pytest.mark.slow
def test_uses_of_a_test_source_skips_the_model(project: Path) -> None:
    row = next(r for r in _sources(project) if r["split"] == "test")
    rows = json.loads(lineage_cli(project, "--uses", f"data/synthetic/{row['image_file']}", "--json",
                                  "--no-experiments").stdout)
    outputs = {r["output"] for r in rows}
    assert "metrics/evaluate.json" in outputs and "models/model.pt" not in outputs
    assert "metrics/train.json" not in outputs


@pytest.mark.slow
def test_uses_of_the_augmented_dataset_by_name(project: Path) -> None:
    name = json.loads((project / "data/augmented/dataset.json").read_text())["name"]
    rows = json.loads(lineage_cli(project, "--uses", name, "--json", "--no-history").stdout)
    assert {"models/model.pt", "metrics/train.json", "metrics/evaluate.json"} <= {r["output"] for r in rows}
    assert all("data/augmented" in r["how"] for r in rows)


def _tiny_locked_project(root: Path) -> str:
    """A project without git: one stage reading ``raw.txt`` into ``models/model.pt``, as
    ``dvc.lock`` would record it; returns the bytes' MD5."""
    root.mkdir(parents=True)
    data = b"raw input\n"
    md5 = hashlib.md5(data).hexdigest()
    (root / "raw.txt").write_bytes(data)
    (root / "dvc.yaml").write_text("stages:\n  fit:\n    cmd: python fit.py\n    deps: [raw.txt]\n"
                                   "    outs: [models/model.pt]\n")
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"fit": {
        "cmd": "python fit.py", "deps": [{"path": "raw.txt", "hash": "md5", "md5": md5, "size": len(data)}],
        "outs": [{"path": "models/model.pt", "hash": "md5", "md5": "0" * 32, "size": 1}]}}}))
    return md5


def test_uses_of_a_file_in_a_sibling_folder_is_matched_by_content(tmp_path: Path, monkeypatch, capsys) -> None:
    """``/x/p_sibling/f`` is not inside the project ``/x/p`` (a string-prefix test said it was,
    and the file was then refused as "not inside the project")."""
    from porescope.cli.main import main

    _tiny_locked_project(tmp_path / "p")
    sibling = tmp_path / "p_sibling"
    sibling.mkdir()
    shutil.copy2(tmp_path / "p" / "raw.txt", sibling / "copy.txt")
    monkeypatch.chdir(tmp_path / "p")
    status = main(["lineage", "--uses", str(sibling / "copy.txt"), "--json", "--no-history", "--no-experiments"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = json.loads(captured.out)
    assert [(r["revision"], r["output"], r["kind"]) for r in rows] == [("workspace", "models/model.pt", "model")]


def test_uses_of_a_missing_file_is_an_error_naming_it(tmp_path: Path, monkeypatch, capsys) -> None:
    from porescope.cli.main import main

    _tiny_locked_project(tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    for missing in ("data/nope.png", "nope.png"):
        status = main(["lineage", "--uses", missing, "--no-history", "--no-experiments"])
        captured = capsys.readouterr()
        assert status != 0 and missing in captured.err and "fed no" not in captured.out


# --------------------------------------------------------------------------------------------
# the pipeline reader and the dependency guard
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resolved_deps_and_outs_equal_what_dvc_recorded(project: Path) -> None:
    """``${ingest.source}`` etc. resolve exactly as DVC resolved them (dvc.lock paths)."""
    stages = load_pipeline(project / "dvc.yaml")
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert {"ingest", "train", "evaluate"} <= set(lock) <= set(stages)
    for name in lock:
        spec = stages[name]
        assert sorted(spec.deps) == sorted(d["path"] for d in lock[name]["deps"]), name
        assert sorted(spec.out_paths) == sorted(o["path"] for o in lock[name]["outs"]), name


@pytest.mark.slow
def test_dvc_dir_hash_equals_the_recorded_one(project: Path) -> None:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage, path in (("augment", "data/augmented"), ("split", "data/split")):
        recorded = next(o["md5"] for o in lock[stage]["outs"] if o["path"] == path)
        assert dvc_dir_hash(project / path, project).md5 == recorded


GUARD_YAML = textwrap.dedent("""\
    stages:
      work:
        cmd: python work.py
        deps:
          - ${data.folder}
          - ${data.folder}/../extra_${data.tag}.txt
          - work.py
        params:
          - seed
          - data
        outs:
          - out.txt
    """)


@pytest.fixture()
def guarded(tmp_path: Path) -> Path:
    (tmp_path / "dvc.yaml").write_text(GUARD_YAML)
    (tmp_path / "params.yaml").write_text("seed: 1\ndata: {folder: inputs, tag: a}\nother: 5\n")
    (tmp_path / "inputs").mkdir()
    for i in range(3):
        (tmp_path / "inputs" / f"f{i}.txt").write_text(f"content {i}\n")
    (tmp_path / "extra_a.txt").write_text("extra\n")
    (tmp_path / "work.py").write_text("print('work')\n")
    return tmp_path


def test_guard_resolves_templated_deps(guarded: Path) -> None:
    spec = resolve_stage("work", guarded / "dvc.yaml")
    assert spec.deps == ["inputs", "extra_a.txt", "work.py"]
    assert spec.params == {"params.yaml": ["seed", "data"]}


def test_guard_passes_when_nothing_changes(guarded: Path) -> None:
    with guard_dependencies("work", guarded / "dvc.yaml"):
        (guarded / "out.txt").write_text("result\n")  # writing outputs is fine
        os.utime(guarded / "inputs" / "f0.txt")  # touching without a content change is fine


@pytest.mark.parametrize("edit, named", [
    (lambda d: (d / "inputs" / "f1.txt").write_text("CHANGED 1\n"), "inputs/f1.txt: content changed"),
    (lambda d: (d / "inputs" / "new.txt").write_text("new\n"), "inputs/new.txt: added"),
    (lambda d: (d / "inputs" / "f2.txt").unlink(), "inputs/f2.txt: removed"),
    (lambda d: (d / "work.py").write_text("print('other')\n"), "work.py: content changed"),
    (lambda d: (d / "params.yaml").write_text("seed: 1\ndata: {folder: inputs, tag: a, x: 2}\nother: 5\n"),
     "params.yaml:data.x"),
    (lambda d: (d / "params.yaml").write_text("seed: 2\ndata: {folder: inputs, tag: a}\nother: 5\n"),
     "params.yaml:seed: 1 -> 2"),
])
def test_guard_names_what_changed_while_the_stage_ran(guarded: Path, edit, named: str) -> None:
    with pytest.raises(DependencyChangedError) as info:
        with guard_dependencies("work", guarded / "dvc.yaml"):
            edit(guarded)
    assert named in str(info.value) and "'work'" in str(info.value)
    assert len(info.value.changes) == 1


def test_guard_ignores_params_the_stage_does_not_use(guarded: Path) -> None:
    with guard_dependencies("work", guarded / "dvc.yaml"):
        (guarded / "params.yaml").write_text("seed: 1\ndata: {folder: inputs, tag: a}\nother: 6\n")


def test_guard_sees_a_same_size_edit_with_restored_mtime(guarded: Path) -> None:
    """``stat``-preserving tampering: same size, mtime put back; ctime still moves."""
    path = guarded / "inputs" / "f0.txt"
    old = path.stat()
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10_000_000_000))  # not racy
    before = path.stat()
    with pytest.raises(DependencyChangedError, match="inputs/f0.txt: content changed"):
        with guard_dependencies("work", guarded / "dvc.yaml"):
            path.write_text("content X\n")
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_guard_checks_on_sys_exit_zero_only(guarded: Path) -> None:
    """Stage modules end with ``sys.exit(main())``: status 0 is checked, others pass through."""
    with pytest.raises(DependencyChangedError, match="work.py: content changed"):
        with guard_dependencies("work", guarded / "dvc.yaml"):
            (guarded / "work.py").write_text("changed\n")
            sys.exit(0)
    with pytest.raises(SystemExit) as info:
        with guard_dependencies("work", guarded / "dvc.yaml"):
            (guarded / "work.py").write_text("changed again\n")
            sys.exit(3)
    assert info.value.code == 3
    with pytest.raises(SystemExit) as info:
        with guard_dependencies("work", guarded / "dvc.yaml"):
            sys.exit(None)
    assert info.value.code is None


def test_guard_lets_the_stage_error_through(guarded: Path) -> None:
    with pytest.raises(KeyError):
        with guard_dependencies("work", guarded / "dvc.yaml"):
            (guarded / "work.py").write_text("changed\n")
            raise KeyError("the stage's own failure")


def test_guard_unknown_stage_and_missing_pipeline(guarded: Path) -> None:
    with pytest.raises(StageSpecError, match="no stage 'nope'"):
        with guard_dependencies("nope", guarded / "dvc.yaml"):
            pass
    with guard_dependencies("work", guarded / "absent.yaml"):  # unguarded, with a warning
        pass
    with pytest.raises(StageSpecError, match="not found"):
        with guard_dependencies("work", guarded / "absent.yaml", required=True):
            pass


def test_the_guard_and_the_pipeline_reader_import_only_the_standard_library_and_yaml() -> None:
    """Every stage imports the guard: it must stay cheap (no dvc, numpy, torch at import time)."""
    code = ("import sys, porescope.provenance.dep_guard, porescope.provenance.pipeline; "
            "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    loaded = set(proc.stdout.split()) - set(sys.stdlib_module_names)
    # cython_runtime: yaml's C loader
    assert {m for m in loaded if not m.startswith("_")} <= {"porescope", "yaml", "cython_runtime"}, loaded


def test_dvc_records_nothing_when_an_input_changes_mid_run(tmp_path: Path) -> None:
    """End to end: a guarded stage whose input is edited while it runs exits non-zero, and
    ``dvc.lock`` gets no entry for it."""
    repo = tmp_path / "g"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    (repo / "params.yaml").write_text("n: 1\n")
    (repo / "input.txt").write_text("original\n")
    (repo / "work.py").write_text(textwrap.dedent("""\
        from pathlib import Path
        from porescope.provenance.dep_guard import guard_dependencies
        with guard_dependencies("work"):
            data = Path("input.txt").read_text()
            Path("input.txt").write_text("edited while running\\n")  # someone else's edit
            Path("out.txt").write_text(data.upper())
        """))
    (repo / "dvc.yaml").write_text("stages:\n  work:\n    cmd: python work.py\n    deps: [input.txt, work.py]\n"
                                   "    params: [n]\n    outs: [out.txt]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "input.txt: content changed" in proc.stdout + proc.stderr
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else {}
    assert "work" not in (lock or {}).get("stages", {})
