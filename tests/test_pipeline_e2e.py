"""End to end: the real dvc.yaml, tiny params, a throwaway git repository.

Runs ``dvc repro`` from nothing, checks every output, checks that a second ``dvc repro`` does
nothing, that changing one parameter reruns exactly the stages downstream of it, that
``dvc exp run -S`` works and ``dvc exp show`` / ``dvc metrics diff`` report the metrics.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_project import TINY, dvc, make_project, run, stages_run

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path_factory.mktemp("porescope") / "repo")
    log = dvc("repro", cwd=repo)
    (repo / "first_repro.log").write_text(log)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first results"], repo)
    return repo


def test_cold_repro_runs_every_stage_and_writes_outputs(project: Path) -> None:
    ran = stages_run((project / "first_repro.log").read_text())
    assert ran == set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    truth = (project / "data/synthetic/truth.csv").read_text().splitlines()
    assert len(truth) == 1 + TINY["synthesize"]["n_images"]
    samples = np.load(project / "data/augmented/images.npy", mmap_mode="r")
    assert samples.shape[0] == TINY["augment"]["size"] == len(pd.read_csv(project / "data/augmented/samples.csv"))
    assert (project / "models/model.pt").stat().st_size > 0
    ev = json.loads((project / "metrics/evaluate.json").read_text())
    assert ev["n_images"] >= 1 and 0.0 <= ev["pore"]["dice"]["mean"] <= 1.0
    assert "map" in ev["objects"]
    curves = (project / "plots/train/plots/metrics/val_iou.tsv").read_text().splitlines()
    assert len(curves) == 1 + TINY["train"]["epochs"]  # header + one row per epoch
    check_plots_render(json.loads(dvc("plots", "show", "--json", cwd=project)),
                       yaml.safe_load((project / "dvc.yaml").read_text())["plots"], project)


def check_plots_render(shown: dict, declared: list, folder: Path) -> None:
    """Every plot declared in dvc.yaml rendered from data (``dvc plots show --json`` output):
    no load error, a data table with rows for each vega plot, a non-empty file for each image."""
    assert not shown.get("errors"), shown.get("errors")
    for plot in declared:
        name = next(iter(plot)) if isinstance(plot, dict) else plot
        renders = shown["data"].get(name)
        assert renders, f"plot {name!r} rendered nothing"
        for render in renders:
            if render["type"] == "vega":
                assert render["content"]["data"]["values"], f"plot {name!r} has no data rows"
            else:
                assert (folder / render["url"]).stat().st_size > 0, f"plot {name!r}: empty image"


def md_cell(md: str, row: str, column: str) -> str:
    """The cell of ``dvc exp show --md`` in the first row whose name contains ``row`` and the
    column named ``column`` (or ``<file>:<column>`` when DVC qualifies it)."""
    lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()
             if line.strip().startswith("|")]
    header = lines[0]
    index = [i for i, c in enumerate(header) if c == column or c.endswith(f":{column}")]
    assert len(index) == 1, f"no single column {column!r} in {header}"
    rows = [cells for cells in lines[2:] if row in cells[0]]
    assert rows, f"no row {row!r} in the table"
    return rows[0][index[0]]


def test_second_repro_is_a_no_op(project: Path) -> None:
    log = dvc("repro", cwd=project)
    assert stages_run(log) == set()
    assert "up to date" in dvc("status", cwd=project).lower()


@pytest.mark.parametrize("module", ["porescope/analysis/truth.py", "porescope/evaluation/figures.py"])
def test_editing_one_module_reruns_exactly_the_stages_that_import_it(project: Path, module: str) -> None:
    """The code fingerprints keep reruns as precise as per-file code deps: the ``code`` stage
    reruns, then only the stages whose fingerprint lists the edited file (a comment changes no
    output, so nothing downstream of them reruns)."""
    users = {p.stem for p in (project / "data/code").glob("*.json")
             if module in json.loads(p.read_text())["files"]}
    assert users and "train" not in users
    path = project / module
    original = path.read_text()
    path.write_text(original + "# an edit that changes no behaviour\n")
    try:
        assert stages_run(dvc("repro", cwd=project)) == {"code"} | users
    finally:
        path.write_text(original)
        # back to the recorded code: DVC may restore the code stage from its run cache
        assert stages_run(dvc("repro", cwd=project)) <= {"code"} | users
    assert "up to date" in dvc("status", cwd=project).lower()


def _declaring(stages: dict, key: str) -> set[str]:
    """Stages that declare the parameter ``key`` (its group or the key itself) as a dependency."""
    return {name for name, spec in stages.items()
            if any(key == p or key.startswith(f"{p}.") for p in spec.get("params", []))}


@pytest.mark.parametrize("key, value", [("analyze.spatial.n_sim", 29), ("evaluate.n_worst", 2)])
def test_changing_one_param_reruns_only_the_stages_that_read_it(project: Path, key: str, value) -> None:
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        ran = stages_run(dvc("repro", cwd=project))
        expected = _declaring(stages, key)
        # the readers, plus whatever consumes an output they changed; never the expensive stages upstream
        assert expected <= ran
        assert not ran & {"synthesize", "ingest", "split", "augment", "train"}
        if key.startswith("analyze"):
            assert ran <= expected | {"report"}
    finally:
        run(["git", "checkout", "--", "params.yaml"], project)
        dvc("repro", cwd=project)


def test_experiment_run_and_metrics_comparison(project: Path) -> None:
    dvc("exp", "run", "-n", "more-epochs", "-S", "train.epochs=3", cwd=project)
    shown = json.loads(dvc("exp", "show", "--json", cwd=project))
    names = json.dumps(shown)
    assert "more-epochs" in names and "metrics/evaluate.json" in names
    md = dvc("exp", "show", "--md", cwd=project)
    dvc("exp", "apply", "more-epochs", cwd=project)
    # the experiment's row reports the test Dice that its evaluate stage wrote
    applied = json.loads((project / "metrics/evaluate.json").read_text())["pore"]["dice"]["mean"]
    assert float(md_cell(md, "more-epochs", "pore.dice.mean")) == pytest.approx(applied, rel=1e-3, abs=1e-5)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "3 epochs"], project)
    diff = json.loads(dvc("metrics", "diff", "HEAD~1", "--json", cwd=project))
    assert "metrics/train.json" in diff and "epochs_run" in diff["metrics/train.json"]
    assert diff["metrics/train.json"]["epochs_run"]["diff"] == 1
