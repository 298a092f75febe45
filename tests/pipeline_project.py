"""Build a throwaway porescope project (the real dvc.yaml and stages, tiny params) for tests.

Shared by the end-to-end, remote, rebuild and lineage tests. Only the standard library, yaml
and the dvc/git command lines are used, exactly as a user would run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Small enough to run in well under a minute on 2 CPU cores, large enough that every stage
#: has real work (several images per split, an object per image).
TINY = {
    "synthesize": {"n_images": 6, "height": 160, "width": 160, "diameter_min_px": 14.0, "diameter_max_px": 20.0,
                   "porosity_min": 0.1, "porosity_max": 0.25},
    "ingest": {"tile_size": 64},
    "split": {"val_fraction": 0.34, "test_fraction": 0.34},
    "augment": {"size": 24, "workers": 1},
    "train": {"encoder": "resnet18", "decoder_channels": [16, 16, 16, 16, 16], "epochs": 2, "batch_size": 8},
    "evaluate": {"tile": 64, "overlap": 16},
    "validate": {"n_images": 2, "height": 128, "width": 128, "tile": 64, "overlap": 16},
    "analyze": {"spatial": {"n_sim": 19}},
}


def deep_update(base: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment with this checkout on ``PYTHONPATH``: ``stages`` is not an installed
    package, so ``python -m stages.<name>`` in a folder without its own copy needs it (a project
    made by :func:`make_project` has its copy, which ``-m`` finds first, in its working folder)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run(cmd: list[str], cwd: Path) -> str:
    env = checkout_env(TQDM_DISABLE="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                       GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def run_module(repo: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in ``repo`` with this checkout's code (not the copy in ``repo``),
    output captured; for the command-line tools (``porescope.provenance.lineage``, ``porescope.provenance.compare``)."""
    return subprocess.run([sys.executable, "-P", "-m", module, *args], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def stages_run(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


def make_project(repo: Path, overrides: dict | None = None, *, commit: bool = True) -> Path:
    """Copy dvc.yaml, params.yaml (with TINY and ``overrides`` applied), .dvc config and the
    ``stages`` and ``porescope`` packages into ``repo``, ``git init`` + ``dvc init`` there and commit."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    for package in ("stages", "porescope"):
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / "data" / "measure").is_dir():
        shutil.copytree(ROOT / "data" / "measure", repo / "data" / "measure")
    params = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params = deep_update(params, overrides or {})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    if commit:
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "tiny pipeline"], repo)
    return repo


def build_stage_inputs(folder: Path, overrides: dict | None = None) -> Path:
    """Run synthesize -> ingest -> split -> augment (tiny params) with ``python -m`` in
    ``folder``, without DVC; returns ``folder`` holding params.yaml and data/ like a project."""
    folder.mkdir(parents=True, exist_ok=True)
    params = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params = deep_update(params, overrides or {})
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    py = [sys.executable, "-m"]
    run(py + ["stages.synthesize", "--params", "params.yaml", "--out", "data/synthetic"], folder)
    run(py + ["stages.ingest", "--params", "params.yaml", "--source", "data/synthetic", "--out", "data/ingested"],
        folder)
    run(py + ["stages.split", "--params", "params.yaml", "--ingested", "data/ingested", "--out", "data/split"],
        folder)
    run(py + ["stages.augment", "--params", "params.yaml", "--ingested", "data/ingested", "--split", "data/split",
              "--out", "data/augmented"], folder)
    return folder


def train_command(model: str = "models/model.pt", resume: str = "models/checkpoints/train.resume.pt",
                  live: str = "plots/train", metrics: str = "metrics/train.json") -> list[str]:
    """The train stage command line as dvc.yaml runs it, for a folder from build_stage_inputs."""
    return [sys.executable, "-m", "stages.train", "--params", "params.yaml", "--augmented", "data/augmented",
            "--ingested", "data/ingested", "--split", "data/split", "--model", model, "--resume", resume,
            "--live", live, "--metrics", metrics]
