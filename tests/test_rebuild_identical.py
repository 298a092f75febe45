"""Bit-identical rebuilds: two cold ``dvc repro`` in two separate clones record the same hashes.

A tiny project (the real ``dvc.yaml`` and stages) is committed without results and cloned
twice; both clones run the whole pipeline at the same time, each with one torch thread (same
thread count on both sides, and no oversubscription of the 2 cores). Every dep and out hash
of every stage in the two ``dvc.lock`` files must agree; on a failure the message names the
stage, the output and, for folders, the files that differ (from the two ``.dir`` listings).
``bench/bench_rebuild.py`` runs the same check at the default params.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_project import make_project, run

pytestmark = pytest.mark.slow

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

SMALL = {"validate": {"n_images": 2, "height": 128, "width": 128, "tile": 64, "overlap": 16,
                      "diameter_min_px": 14.0, "diameter_max_px": 20.0, "threads": 1},
         "analyze": {"spatial": {"n_sim": 19}},
         "train": {"threads": 1}, "evaluate": {"threads": 1}}


def _entries(lock: dict, stage: str) -> dict[str, str]:
    st = lock.get(stage, {})
    return {f"{kind} {e['path']}": str(e.get("md5")) for kind in ("deps", "outs") for e in st.get(kind, [])}


def _listing(clone: Path, md5: str) -> dict[str, str]:
    obj = clone / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    return {i["relpath"]: i["md5"] for i in json.loads(obj.read_text())} if obj.is_file() else {}


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("rebuild")
    source = make_project(base / "source", SMALL)
    pair = (base / "a", base / "b")
    env = {**os.environ, "TQDM_DISABLE": "1", "DVC_NO_ANALYTICS": "1"}
    procs = []
    for clone in pair:
        run(["git", "clone", "-q", str(source), str(clone)], base)
        procs.append(subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for clone, proc in zip(pair, procs):
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"dvc repro in {clone.name} failed:\n{out[-4000:]}"
    return pair


def test_two_cold_rebuilds_record_identical_hashes(clones: tuple[Path, Path]) -> None:
    a, b = clones
    lock_a = yaml.safe_load((a / "dvc.lock").read_text())["stages"]
    lock_b = yaml.safe_load((b / "dvc.lock").read_text())["stages"]
    assert set(lock_a) == set(lock_b) == set(yaml.safe_load((a / "dvc.yaml").read_text())["stages"])
    problems = []
    for stage in lock_a:
        ea, eb = _entries(lock_a, stage), _entries(lock_b, stage)
        for key in sorted(set(ea) | set(eb)):
            if ea.get(key) != eb.get(key):
                problems.append(f"{stage}: {key}: {ea.get(key)} != {eb.get(key)}")
                if str(ea.get(key)).endswith(".dir"):
                    la, lb = _listing(a, ea[key]), _listing(b, str(eb.get(key)))
                    problems += [f"    {f}" for f in sorted(set(la) | set(lb)) if la.get(f) != lb.get(f)][:10]
    assert not problems, "rebuilds differ:\n" + "\n".join(problems)
    assert (a / "dvc.lock").read_bytes() == (b / "dvc.lock").read_bytes()


def test_git_tracked_outputs_are_identical_too(clones: tuple[Path, Path]) -> None:
    """Metrics and ``cache: false`` plots (hashed in dvc.lock too, but compared byte for byte here
    so a failure names the file)."""
    a, b = clones
    tracked = run(["git", "status", "--porcelain", "--untracked-files=all"], a)
    files = [line[3:] for line in tracked.splitlines() if line[3:].startswith(("metrics/", "plots/", "models/model_card"))]
    assert files
    differ = [f for f in files if (a / f).read_bytes() != (b / f).read_bytes()]
    assert differ == []
