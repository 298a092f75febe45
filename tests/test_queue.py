"""Scale-out: experiments queued with ``dvc exp run --queue`` and run by ``dvc queue start -j 2``.

Two experiments (``train.epochs=1`` and ``=2``, target ``train`` so that each runs the five
stages up to training in its own temporary workspace) are queued on a tiny project and run by
two DVC queue workers at once. The test polls ``dvc queue status`` until both are done; on a
failure or a timeout its message carries the queue status and the tails of the Celery worker logs in
``.dvc/tmp/exps/celery/`` and of the experiments' own logs in ``.dvc/tmp/exps/run/``. Both experiments must then appear in ``dvc exp show --json`` with
their ``metrics/train.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_project import dvc, make_project

pytestmark = pytest.mark.slow

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

TIMEOUT_S = 420
NAMES = {"ep1": 1, "ep2": 2}


def _celery_logs(repo: Path, tail: int = 3000) -> str:
    """Tails of the queue workers' logs (``celery/dvc-exp-worker-N.out``) and of each
    experiment's own output (``run/<id>/<id>.out``)."""
    folder = repo / ".dvc" / "tmp" / "exps"
    parts = []
    files = [*sorted((folder / "celery").glob("*.out")), *sorted((folder / "run").glob("*/*.out"))]
    for path in files:
        if path.is_file():
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"--- {path.relative_to(repo)} ---\n{text[-tail:]}")
    return "\n".join(parts) or f"(no logs under {folder})"


def _dvc_raw(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TQDM_DISABLE": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path_factory.mktemp("queue") / "repo", {"train": {"threads": 1}})
    for name, epochs in NAMES.items():
        dvc("exp", "run", "--queue", "-n", name, "-S", f"train.epochs={epochs}", "train", cwd=repo)
    dvc("queue", "start", "--jobs", "2", cwd=repo)
    deadline = time.monotonic() + TIMEOUT_S
    restart_after = time.monotonic() + 30
    restarts: list[str] = []
    status = ""
    try:
        while time.monotonic() < deadline:
            status = _dvc_raw(repo, "queue", "status").stdout
            rows = [line.split() for line in status.splitlines()
                    if len(line.split()) > 2 and line.split()[0] not in ("Task", "Worker")]
            states = {r[1]: r[-1] for r in rows}  # Task Name Created Status; Created may hold spaces
            if any(s == "Failed" for s in states.values()):
                pytest.fail(f"a queued experiment failed:\n{status}\n{_celery_logs(repo)}")
            if len([s for s in states.values() if s == "Success"]) >= len(NAMES):
                break
            idle = "Worker status: 0 active, 0 idle" in status
            if idle and any(s == "Queued" for s in states.values()) and time.monotonic() > restart_after:
                # known DVC stall (treeverse/dvc#10562): workers exit with tasks still queued
                restarts.append(status)
                dvc("queue", "start", "--jobs", "2", cwd=repo)
                restart_after = time.monotonic() + 30
            time.sleep(3)
        else:
            pytest.fail(f"queue not done after {TIMEOUT_S} s ({len(restarts)} worker restart(s)):\n"
                        f"{status}\n{_celery_logs(repo)}")
    finally:
        _dvc_raw(repo, "queue", "stop")
    return repo


def test_both_queued_experiments_have_metrics(queued: Path) -> None:
    shown = json.loads(dvc("exp", "show", "--json", cwd=queued))
    found = {}
    for row in shown:
        for group in row.get("experiments") or []:
            for rev in group.get("revs") or []:
                metrics = ((rev.get("data") or {}).get("metrics") or {}).get("metrics/train.json", {}).get("data")
                if rev.get("name") in NAMES and metrics:
                    found[rev["name"]] = metrics
    assert set(found) == set(NAMES), f"experiments with metrics: {sorted(found)}\n{_celery_logs(queued)}"
    for name, epochs in NAMES.items():
        assert found[name]["epochs_run"] == epochs
        assert 0.0 <= found[name]["val_iou"] <= 1.0


def test_queue_is_empty_afterwards(queued: Path) -> None:
    status = _dvc_raw(queued, "queue", "status").stdout
    assert "Queued" not in status and "Running" not in status
