"""``porescope compare`` / ``porescope plots-diff`` on a tiny project with three revisions:

* ``empty``: the pipeline committed without any result (every metrics file and plot missing);
* ``v1``: results of ``dvc repro evaluate`` committed (analyze / validate / measure never run,
  so their metrics files and plots are missing everywhere);
* experiment ``h1``: ``evaluate.objects.h=1.0`` (only ``evaluate`` reruns).

Expected values are read independently from the metrics files of each revision (``git show``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_project import dvc, make_project, run, run_module

from porescope.report.offline_html import find_remote_resources

pytestmark = pytest.mark.slow

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

EXP = "h1"


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """``porescope compare|plots-diff ARGS`` in ``repo`` (this checkout's code)."""
    return run_module(repo, "porescope.cli.main", *args)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path_factory.mktemp("compare") / "repo")
    run(["git", "tag", "empty"], repo)
    dvc("repro", "evaluate", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    run(["git", "tag", "v1"], repo)
    dvc("exp", "run", "--temp", "-n", EXP, "-S", "evaluate.objects.h=1.0", "evaluate", cwd=repo)
    return repo


def _flat(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: value}


def _metrics_at(repo: Path, rev: str, path: str) -> dict | None:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True)
    return _flat(json.loads(proc.stdout)) if proc.returncode == 0 else None


def _exp_sha(repo: Path) -> str:
    refs = run(["git", "for-each-ref", "refs/exps", "--format=%(objectname) %(refname)"], repo)
    return next(line.split()[0] for line in refs.splitlines() if line.endswith(f"/{EXP}"))


def _rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("metrics/"):
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_compare_revision_with_experiment(project: Path) -> None:
    proc = cli(project, "compare", "v1", EXP)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    sha = _exp_sha(project)
    for file in ("metrics/train.json", "metrics/evaluate.json"):
        old, new = _metrics_at(project, "v1", file), _metrics_at(project, sha, file)
        assert old and new
        for key in old:
            cells = rows[(file, key)]
            if isinstance(old[key], float) and isinstance(new[key], (int, float)):
                assert float(cells[0]) == pytest.approx(old[key], rel=1e-5, abs=1e-12)
                assert float(cells[1]) == pytest.approx(new[key], rel=1e-5, abs=1e-12)
                change = new[key] - old[key]
                assert float(cells[2]) == pytest.approx(change, rel=1e-3, abs=1e-12)
                if old[key]:
                    assert float(cells[3].rstrip(" %")) == pytest.approx(100 * change / abs(old[key]), abs=0.06)
    # train did not rerun: its metrics are unchanged
    assert all(cells[2] in ("+0", "") for (file, _), cells in rows.items() if file == "metrics/train.json")
    assert "| params.yaml | evaluate.objects.h | 2.0 | 1.0 |" in proc.stdout
    assert f"`{EXP} ({sha[:7]})`" in proc.stdout


def test_missing_metrics_files_are_reported_not_fatal(project: Path) -> None:
    proc = cli(project, "compare", "empty", "v1")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    v1 = _metrics_at(project, "v1", "metrics/evaluate.json")
    for key, value in v1.items():
        assert rows[("metrics/evaluate.json", key)][0] == "missing"
    # declared, never produced at either revision (stages not run in this project)
    for file in ("metrics/analyze.json", "metrics/validate.json"):
        if file in (project / "dvc.yaml").read_text():
            assert rows[(file, "(all)")][:2] == ["missing", "missing"]
    js = json.loads(cli(project, "compare", "empty", "v1", "--json").stdout)
    assert "metrics/evaluate.json" in js["missing_files"]


def test_compare_against_the_workspace_and_changed_only(project: Path) -> None:
    proc = cli(project, "compare", "v1", "--changed-only")
    assert proc.returncode == 0, proc.stderr
    assert "No metrics changed." in proc.stdout and "`workspace`" in proc.stdout


def test_unknown_revision_is_a_clear_error(project: Path) -> None:
    proc = cli(project, "compare", "v1", "no-such-exp")
    assert proc.returncode == 2 and "no-such-exp" in proc.stderr and "Traceback" not in proc.stderr


def test_plots_diff_draws_the_common_plots_offline(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "pd"
    proc = cli(project, "plots-diff", "v1", EXP, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = (out / "index.html").read_text()
    assert find_remote_resources(page) == []
    assert "<img" in page and 'src="static' not in page  # images embedded as data: URIs
    drawn = next(line for line in proc.stdout.splitlines() if line.startswith("plots drawn"))
    assert "Training loss" in drawn and "plots/evaluate/boxplot.png" in drawn
    left_out = [line for line in proc.stdout.splitlines() if line.startswith("left out")]
    if "plots/validate/count_error.png" in (project / "dvc.yaml").read_text():
        assert any("plots/validate/count_error.png" in line for line in left_out)


def test_plots_diff_with_nothing_in_common_names_what_is_missing(project: Path, tmp_path: Path) -> None:
    proc = cli(project, "plots-diff", "empty", "v1", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "no plot" in proc.stderr and "plots/train/plots/metrics/train_loss.tsv at empty" in proc.stderr
