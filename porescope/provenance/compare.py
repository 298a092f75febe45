"""``porescope compare`` and ``porescope plots-diff``: two configurations side by side.

``porescope compare A B`` prints a Markdown table, fit for a pull-request comment, of every
metric of every metrics file declared in ``dvc.yaml`` (at either revision): the value at ``A``,
at ``B``, the change and the relative change; and a second table of the params that differ.
``A`` / ``B`` are git revisions (branch, tag, sha, ``HEAD~1``), experiment names
(``dvc exp list -A``; ``dvc exp show --json`` as the fallback) or ``workspace``. The numbers come
from ``dvc metrics diff --json --all`` and ``dvc params diff --json``; a metrics file that one
revision lacks is shown as ``missing`` in its column instead of failing the comparison.

``porescope plots-diff A B [--out DIR]``: ``dvc plots diff`` over the plots of ``dvc.yaml``
that *both* revisions have (DVC fails or draws empty panels when a revision lacks a plot's
file), the missing ones listed; the page uses the offline vega template
(``plots.html_template`` in ``.dvc/config``) and its images are embedded as ``data:`` URIs
(:func:`porescope.report.offline_html.run_dvc_plots`), so ``DIR/index.html`` opens without network.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from porescope.errors import PorescopeError
from porescope.provenance.repo_view import LineageError, RepoView, resolve_revision

WORKSPACE = "workspace"


class CompareError(PorescopeError, ValueError):
    """A revision cannot be compared (unknown name, DVC failure); the message says which."""


@dataclass(frozen=True)
class Rev:
    """A revision to compare: the name the user gave, what DVC is given, and the commit."""

    name: str
    arg: str | None      # None = the workspace
    sha: str | None

    @property
    def label(self) -> str:
        if self.sha is None:
            return WORKSPACE
        return self.name if self.sha.startswith(self.name) else f"{self.name} ({self.sha[:7]})"


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env=env)


def _exp_show_names(root: Path) -> dict[str, str]:
    """Experiment name -> commit sha from ``dvc exp show --json -A``."""
    proc = _dvc(root, "exp", "show", "--json", "-A", "--no-fetch")
    if proc.returncode != 0:
        return {}
    names: dict[str, str] = {}
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        return {}
    for row in rows:
        for group in row.get("experiments") or []:
            for rev in group.get("revs") or []:
                if rev.get("name") and rev.get("rev"):
                    names[rev["name"]] = rev["rev"]
    return names


def resolve(root: Path, name: str) -> Rev:
    """A :class:`Rev` for ``name`` (``workspace``, a git revision or an experiment name)."""
    if name == WORKSPACE:
        return Rev(name, None, None)
    try:
        sha, _ = resolve_revision(root, name)
    except LineageError:
        sha = _exp_show_names(root).get(name)
        if sha is None:
            raise CompareError(f"{name}: not a git revision, an experiment name or 'workspace' "
                               f"(see `git log`, `dvc exp list -A`)") from None
    return Rev(name, sha, sha)


def _view(root: Path, rev: Rev) -> RepoView:
    return RepoView(root, rev.sha)


def metrics_files(root: Path, revs: Sequence[Rev]) -> list[str]:
    """Metrics files declared in ``dvc.yaml`` at any of ``revs``, in declaration order."""
    files: list[str] = []
    for rev in revs:
        for spec in _view(root, rev).declared.values():
            for out in spec.outs:
                if out.kind == "metrics" and out.path not in files:
                    files.append(out.path)
    return files


def _diff_args(a: Rev, b: Rev) -> list[str]:
    if a.arg is None and b.arg is None:
        raise CompareError("both revisions are the workspace; nothing to compare")
    if b.arg is None:
        return [a.arg]  # DVC: one revision = that revision vs the workspace
    if a.arg is None:
        raise CompareError("put the workspace second: porescope compare REV workspace")
    return [a.arg, b.arg]


def _json_cmd(root: Path, *args: str) -> dict[str, Any]:
    proc = _dvc(root, *args)
    if proc.returncode != 0:
        raise CompareError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    text = proc.stdout.strip()
    try:
        return json.loads(text) if text else {}
    except ValueError:
        raise CompareError(f"dvc {' '.join(args)}: output is not JSON: {text[:300]}") from None


def _present(view: RepoView, path: str) -> bool:
    try:
        return view.exists(path)
    except LineageError:  # no dvc.lock at that revision: only git can have it
        if view.rev is None:
            return (view.root / path).exists()
        return view.git_bytes(path) is not None


@dataclass
class MetricRow:
    file: str
    metric: str
    old: Any
    new: Any

    @property
    def change(self) -> float | None:
        if _number(self.old) and _number(self.new):
            return float(self.new) - float(self.old)
        return None

    @property
    def pct(self) -> float | None:
        change = self.change
        if change is None or float(self.old) == 0:
            return None
        return 100.0 * change / abs(float(self.old))


MISSING = "missing"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def compare_metrics(a: Rev, b: Rev, root: Path) -> tuple[list[MetricRow], list[str]]:
    """Rows for every metric of every declared metrics file, and the files DVC could not read.

    A file absent at a revision gives :data:`MISSING` in that column for each of its metrics
    (one row ``(all)`` when absent at both)."""
    diff = _json_cmd(root, "metrics", "diff", *_diff_args(a, b), "--json", "--all")
    files = metrics_files(root, [a, b])
    for extra in diff:
        if extra not in files:
            files.append(extra)
    views = (_view(root, a), _view(root, b))
    rows: list[MetricRow] = []
    for file in files:
        present = [_present(v, file) for v in views]
        values = diff.get(file) or {}
        if not values:
            rows.append(MetricRow(file, "(all)", MISSING if not present[0] else "no values",
                                  MISSING if not present[1] else "no values"))
            continue
        for metric in sorted(values):
            entry = values[metric]
            old = entry.get("old") if present[0] else MISSING
            new = entry.get("new") if present[1] else MISSING
            rows.append(MetricRow(file, metric, old, new))
    return rows, [f for f in files if not all(_present(v, f) for v in views)]


def compare_params(a: Rev, b: Rev, root: Path) -> list[tuple[str, str, Any, Any]]:
    """``(file, key, old, new)`` for each param that differs (``dvc params diff --json``)."""
    diff = _json_cmd(root, "params", "diff", *_diff_args(a, b), "--json")
    return [(file, key, entry.get("old"), entry.get("new"))
            for file, keys in sorted(diff.items()) for key, entry in sorted(keys.items())]


def _fmt(value: Any, digits: int | None = 6) -> str:
    """A table cell: floats to ``digits`` significant digits (``None``: as written)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).replace("|", "\\|")


def format_markdown(a: Rev, b: Rev, rows: Sequence[MetricRow], params: Sequence[tuple[str, str, Any, Any]],
                    *, changed_only: bool = False) -> str:
    """The pull-request comment: a metrics table and a params table."""
    lines = [f"### Metrics: `{a.label}` → `{b.label}`", ""]
    shown = [r for r in rows if not changed_only or r.old != r.new]
    if shown:
        lines += [f"| file | metric | {a.label} | {b.label} | change | % change |", "|---|---|---:|---:|---:|---:|"]
        for r in shown:
            change = "" if r.change is None else f"{r.change:+.4g}"
            if r.change is None and r.old != r.new and MISSING not in (r.old, r.new):
                change = "changed"
            pct = "" if r.pct is None else f"{r.pct:+.1f} %"
            lines.append(f"| {r.file} | {r.metric} | {_fmt(r.old)} | {_fmt(r.new)} | {change} | {pct} |")
    else:
        lines.append("No metrics" + (" changed." if changed_only and rows else " declared."))
    lines += ["", "### Params that differ", ""]
    if params:
        lines += [f"| file | param | {a.label} | {b.label} |", "|---|---|---|---|"]
        lines += [f"| {f} | {k} | {_fmt(o, None)} | {_fmt(n, None)} |" for f, k, o, n in params]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# plots diff
# --------------------------------------------------------------------------------------------

def plot_definitions(view: RepoView) -> dict[str, list[str]]:
    """Plot id -> the files it draws from: top-level ``plots:`` of ``dvc.yaml`` (an id with
    ``y: {file: ...}`` mappings, or a file path) and the stages' ``plots:`` outputs."""
    defs: dict[str, list[str]] = {}
    doc = view.declared_doc
    for item in doc.get("plots") or []:
        if isinstance(item, str):
            defs[item] = [item]
            continue
        if not isinstance(item, dict):
            continue
        for plot_id, spec in item.items():
            axes = [spec.get(a) for a in ("x", "y")] if isinstance(spec, dict) else []
            files = [str(f) for axis in axes if isinstance(axis, dict) for f in axis]
            defs[str(plot_id)] = sorted(set(files)) or [str(plot_id)]
    for spec in view.declared.values():
        for out in spec.outs:
            if out.kind == "plots":
                defs.setdefault(out.path, [out.path])
    return {k: [PurePosixPath(f).as_posix() for f in v] for k, v in defs.items()}


def plots_in_both(a: Rev, b: Rev, root: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Plot ids whose every file exists at both revisions, and for the others what is missing
    (``"file at REV"``)."""
    views = (_view(root, a), _view(root, b))
    defs: dict[str, list[str]] = {}
    for view in views:
        for plot_id, files in plot_definitions(view).items():
            defs.setdefault(plot_id, [])
            defs[plot_id] = sorted(set(defs[plot_id]) | set(files))
    both, missing = [], {}
    for plot_id, files in defs.items():
        lacks = [f"{f} at {rev.label}" for rev, view in zip((a, b), views) for f in files if not _present(view, f)]
        if lacks:
            missing[plot_id] = lacks
        else:
            both.append(plot_id)
    return both, missing


def plots_diff(a: Rev, b: Rev, root: Path, out_dir: str | os.PathLike) -> tuple[Path, list[str], dict[str, list[str]]]:
    """Run ``dvc plots diff`` on the plots both revisions have; returns ``(page, drawn ids,
    missing {id: reasons})``. :class:`CompareError` when no plot is in both."""
    from porescope.report.offline_html import run_dvc_plots

    both, missing = plots_in_both(a, b, root)
    if not both:
        raise CompareError("no plot of dvc.yaml exists at both revisions; missing: "
                           + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items()))
    revisions = [a.arg] if b.arg is None else [a.arg, b.arg]
    try:
        page = run_dvc_plots(root, revisions, targets=both, out_dir=out_dir, embed=True)
    except RuntimeError as exc:
        raise CompareError(str(exc)) from None
    return page, both, missing
