"""``kill -9`` of ``dvc repro`` during ``train``, then ``dvc repro`` again (issue 14).

Two copies of one tiny project whose upstream stages have run: in the first ``train`` runs
uninterrupted (the reference model); in the second ``dvc repro train`` is killed with SIGKILL (the
dvc process only, as a crashed terminal or an OOM kill would) once training has written its resume
file. Then: the orphaned stage stops by itself within seconds (it watches its parent), the stale
dvc and porescope locks do not block the next run, the next ``dvc repro`` runs exactly one train
process, that process continues from the resume file, and the model it writes is byte-identical to
the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from pipeline_project import dvc, make_project, stages_run

from porescope.io.atomic import TEMPORARY_NAME

pytestmark = pytest.mark.slow

#: Enough epochs that the kill lands mid-training (an epoch of the tiny data takes 1-3 s).
EPOCHS = 4
RESUME = Path("models/checkpoints/train.resume.pt")
MODEL_FILES = ("models/model.pt", "models/model.onnx")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_processes(project: Path) -> set[int]:
    """Ids of live ``python -m stages.train`` processes whose working folder is ``project``,
    not counting their own children: a child forked to run ``git`` or another tool carries the
    train command line until it execs, and a loaded machine can show it in that moment."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"stages.train" in argv and os.readlink(entry / "cwd") == str(project):
                stat = (entry / "stat").read_text()
                found[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):  # ended while we looked, or not ours to inspect
            continue
    return {pid for pid, parent in found.items() if parent not in found}


class TrainWatch:
    """Collects, in a background thread, every train process seen in ``project``."""

    def __init__(self, project: Path) -> None:
        self.project, self.seen, self.most_at_once = project, set(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = train_processes(self.project)
            self.seen |= now
            self.most_at_once = max(self.most_at_once, len(now))

    def __enter__(self) -> TrainWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture()
def projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two identical tiny projects (``reference``, ``killed``) with every stage before train run."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if not Path("/proc/self/cwd").exists():
        pytest.skip("finding the stage processes needs Linux /proc")
    # dvc.yaml calls a bare `python`: the one running the tests, with torch and dvc installed
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    reference = make_project(tmp_path / "reference", {"train": {"epochs": EPOCHS}})
    dvc("repro", "augment", cwd=reference)
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed, symlinks=True)
    return reference, killed


def start_repro(project: Path, log: Path) -> subprocess.Popen:
    """``dvc repro train`` in its own process group, output to ``log`` (a file: it outlives dvc)."""
    env = {**os.environ, "TQDM_DISABLE": "1", "DVC_NO_ANALYTICS": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=project, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(condition, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def finished_epochs(resume: Path) -> int:
    """Epochs recorded in the resume file (0 when it is absent)."""
    if not resume.is_file():
        return 0
    return int(torch.load(resume, map_location="cpu", weights_only=True)["epoch"]) + 1


def test_kill_9_of_dvc_repro_during_train_resumes_to_the_same_model(projects: tuple[Path, Path]) -> None:
    reference, killed = projects

    # the uninterrupted run
    assert stages_run(dvc("repro", "train", cwd=reference)) == {"train"}
    expected = {name: sha256(reference / name) for name in MODEL_FILES}
    assert not (reference / RESUME).exists()  # a finished run removes its resume file

    # the killed run: SIGKILL to dvc alone once the first epoch is saved
    first_log = killed / "killed_repro.log"
    proc = start_repro(killed, first_log)
    try:
        wait_for(lambda: (killed / RESUME).is_file() or proc.poll() is not None, 240,
                 "the first resume file")
        assert proc.poll() is None, f"dvc repro ended before it could be killed:\n{first_log.read_text()}"
        stage_pids = train_processes(killed)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert len(stage_pids) == 1, f"expected one train process under dvc, saw {stage_pids}"
    assert not (killed / "models/model.pt").exists(), "training finished before the kill: raise EPOCHS"

    # the orphaned stage notices that dvc died and stops by itself (it checks every second)
    wait_for(lambda: not train_processes(killed), 30, "the orphaned train process to stop", poll=0.2)
    done_before = finished_epochs(killed / RESUME)
    assert 1 <= done_before < EPOCHS
    assert "stopping" in first_log.read_text()

    # again: the stale locks of the dead processes do not block, one train process resumes
    with TrainWatch(killed) as watch:
        log = dvc("repro", "train", cwd=killed)
    assert stages_run(log) == {"train"}
    assert log.count("Running stage 'train'") == 1
    assert len(watch.seen) == 1 and watch.most_at_once == 1, watch.seen
    resumed = [int(n) for n in re.findall(r"resumed after epoch (\d+)", log)]
    assert resumed == [done_before], log[-3000:]
    assert {name: sha256(killed / name) for name in MODEL_FILES} == expected
    assert not (killed / RESUME).exists()
    leftovers = [p for p in (killed / "models").rglob(".*") if TEMPORARY_NAME.match(p.name)]
    assert not leftovers, leftovers
