"""Shared DVC remote: results pushed from one clone are pulled into a fresh one, complete.

The project gets the proposed default remote of ``.dvc/config`` (a folder beside the
repository, written as a path relative to the ``.dvc`` folder, which is how DVC resolves a
relative remote url), runs the whole pipeline, commits, ``dvc push``-es; a fresh ``git clone``
next to it resolves the same relative url to the same folder, ``dvc pull``-s, and then
``dvc status`` is clean and ``dvc repro`` runs no stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_project import dvc, make_project, run, stages_run

from porescope.provenance.pipeline import load_pipeline

pytestmark = pytest.mark.slow

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

#: Proposed for the repository's .dvc/config (see the report): storage beside the repository,
#: as ``dvc remote add -d shared ../porescope-dvc-storage`` (run at the root) writes it.
REMOTE_LINES = ("remote = shared", "['remote \"shared\"']", "url = ../../porescope-dvc-storage")

#: Keep the stages that TINY does not shrink (added after it) small as well.
SMALL = {"validate": {"n_images": 2, "height": 128, "width": 128, "tile": 64, "overlap": 16,
                      "diameter_min_px": 14.0, "diameter_max_px": 20.0},
         "analyze": {"spatial": {"n_sim": 19}}}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("remote")
    repo = make_project(base / "repo", SMALL, commit=False)
    if "remote =" not in (repo / ".dvc" / "config").read_text():
        dvc("remote", "add", "-d", "shared", "../porescope-dvc-storage", cwd=repo)
        config = (repo / ".dvc" / "config").read_text()
        assert all(line in config for line in REMOTE_LINES), config
    else:  # the repository's config carries a default remote: never push test data to a real one
        name = dvc("remote", "default", cwd=repo).strip()
        # a relative url given on the command line is relative to the working directory
        dvc("remote", "modify", "--local", name, "url", "../porescope-dvc-storage", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny pipeline"], repo)
    dvc("repro", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    dvc("push", cwd=repo)
    return repo


def _remote_odb(repo: Path, cwd: Path | None = None) -> Path:
    """The default remote's object folder as DVC resolves it (run from ``cwd``)."""
    code = ("import os; from dvc.repo import Repo; r = Repo(os.environ['REPO']); "
            "print(r.cloud.get_remote_odb().path)")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd or repo, capture_output=True, text=True,
                         env={**os.environ, "REPO": str(repo)})
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


def test_push_fills_the_folder_beside_the_repository(pushed: Path) -> None:
    odb = _remote_odb(pushed)
    assert odb.parent.parent == pushed.parent.resolve() / "porescope-dvc-storage"
    objects = {p.relative_to(odb) for p in odb.rglob("*") if p.is_file()}
    # every object of every cached output (cache: false outputs stay in git; DVC's run-cache
    # keeps copies of those locally, which `dvc push` rightly leaves out)
    cached = {o.path for s in load_pipeline(pushed / "dvc.yaml").values() for o in s.outs if o.cache}
    expected = set()
    for stage in yaml.safe_load((pushed / "dvc.lock").read_text())["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] not in cached:
                continue
            md5 = out["md5"]
            expected.add(Path(md5[:2]) / md5[2:])
            if md5.endswith(".dir"):
                listing = json.loads((pushed / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
                expected |= {Path(i["md5"][:2]) / i["md5"][2:] for i in listing}
    model_md5 = hashlib.md5((pushed / "models/model.pt").read_bytes()).hexdigest()
    assert Path(model_md5[:2]) / model_md5[2:] in expected
    assert expected - objects == set()
    assert "in sync" in dvc("status", "--cloud", cwd=pushed).lower()


def test_fresh_clone_pulls_everything_and_has_nothing_to_rerun(pushed: Path) -> None:
    clone = pushed.parent / "clone"
    run(["git", "clone", "-q", str(pushed), str(clone)], pushed.parent)
    if (pushed / ".dvc" / "config.local").is_file():  # the test's override of a real remote
        shutil.copy2(pushed / ".dvc" / "config.local", clone / ".dvc" / "config.local")
    assert not (clone / "models/model.pt").exists()
    dvc("pull", cwd=clone)
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    for stage in lock.values():
        for out in stage.get("outs", []):
            assert (clone / out["path"]).exists(), out["path"]
    assert (clone / "models/model.pt").read_bytes() == (pushed / "models/model.pt").read_bytes()
    status = dvc("status", cwd=clone)
    assert "up to date" in status.lower(), status
    log = dvc("repro", cwd=clone)
    assert stages_run(log) == set(), log[-2000:]


def test_relative_url_resolves_against_the_dvc_folder(pushed: Path) -> None:
    """DVC joins a relative remote url to the folder of the config file (.dvc/), whatever the
    working directory: from a sub-folder it is still the same folder."""
    assert _remote_odb(pushed, cwd=pushed / "stages") == _remote_odb(pushed)
    clone = pushed.parent / "clone"
    if clone.is_dir():  # a sibling clone shares the folder beside both
        assert _remote_odb(clone) == _remote_odb(pushed)
