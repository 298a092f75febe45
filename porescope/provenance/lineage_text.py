"""Text of ``porescope lineage``: the chain report, the ``--verify`` summary and the ``--uses`` table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _short(md5: Any) -> str:
    text = str(md5 or "")
    return text[:12] + (".dir" if text.endswith(".dir") else "") if text else "-"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, sub in value.items():
            flat.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def format_lineage(report: Mapping[str, Any], *, max_params: int = 200) -> str:
    """Human-readable text of a :func:`porescope.provenance.lineage.lineage` report."""
    lines = []
    prod = report["produced_by"]
    git = report["git"]
    lines.append(f"{report['target']}  ({prod['kind']}, md5 {prod['md5'] or '?'})")
    lines.append(f"  produced by stage '{prod['stage']}'"
                 + (f" inside its out {prod['out']}" if prod.get("inside_out") else ""))
    state = "clean" if not git.get("dirty") else "modified: " + ", ".join(git["dirty"])
    lines.append(f"  revision: {report['revision']}; git commit {git.get('commit') or '(none)'}"
                 + (f" (work tree {state})" if report["revision"] == "workspace" else ""))
    for stage in report["stages"]:
        lines.append("")
        lines.append(f"stage {stage['stage']}")
        lines.append(f"  cmd: {stage['cmd']}")
        for file, values in (stage.get("params") or {}).items():
            flat = _flatten(values)
            shown = list(flat.items())[:max_params]
            lines.append(f"  params ({file}): " + ", ".join(f"{k}={json.dumps(v)}" for k, v in shown)
                         + (" ..." if len(flat) > max_params else ""))
        width = max([len(d["path"]) for d in stage["deps"] + stage["outs"]] + [10])
        lines.append("  deps:")
        for dep in stage["deps"]:
            files = f" {dep['nfiles']} files" if dep.get("nfiles") else ""
            src = f"  <- {dep['produced_by']}" if dep.get("produced_by") else ""
            lines.append(f"    {dep['path']:<{width}}  {_short(dep.get('md5'))}{files}{src}")
        lines.append("  outs:")
        for out in stage["outs"]:
            files = f" {out['nfiles']} files" if out.get("nfiles") else ""
            lines.append(f"    {out['path']:<{width}}  {_short(out.get('md5'))}{files}  [{out['kind']}]")
    lines.append("")
    feeds = report.get("feeding_splits")
    src = report.get("sources")
    if src:
        if feeds is None:
            how = "all splits (no stage in the chain selects one)"
        else:
            how = "; ".join(f"{s} (selected by {', '.join(st)})" for s, st in feeds.items())
        lines.append(f"raw source files: {src['manifest']} (written by '{src['manifest_stage']}', files under "
                     f"{', '.join(src['roots']) or '?'}); feeding {report['target']}: {how}")
        rows = [r for r in src["files"] if r["feeds"]]
        width = max([len(r["image"]) for r in rows] + [4])
        lines.append(f"  {'split':<6} {'source_id':<20} {'file':<{width}}  sha256")
        for r in rows:
            lines.append(f"  {str(r['split']):<6} {str(r['source_id']):<20} {r['image']:<{width}}  {r['image_sha256']}")
        skipped = len(src["files"]) - len(rows)
        if skipped:
            lines.append(f"  ({skipped} source(s) of other splits do not feed it)")
    else:
        lines.append("raw source files: no sources.csv manifest upstream")
    if report.get("raw_inputs"):
        lines.append("other raw inputs (deps no stage produces):")
        for r in report["raw_inputs"]:
            state = ""
            if "matches_lock" in r:
                state = "; " + {True: "workspace matches dvc.lock", False: "WORKSPACE DIFFERS from dvc.lock",
                                None: "not in the workspace"}[r["matches_lock"]]
            lines.append(f"  {r['path']}  {_short(r['md5'])}  (dep of {r['stage']}{state})")
            for f in r.get("files", []):
                lines.append(f"    {f['path']}  sha256 {f['sha256']}")
    return "\n".join(lines) + "\n"


def format_verify(verify: Mapping[str, Any], *, max_absent: int = 50) -> str:
    """The ``--verify`` summary: counts, each file that differs, and (up to ``max_absent``) the
    files that could not be checked; ``verify`` holds ``checked``, ``differs`` and ``absent``.

    Examples
    --------
    >>> print(format_verify({"checked": 3, "differs": ["a.png: content differs [workspace]"], "absent": []}), end="")
    <BLANKLINE>
    verify: 3 file(s) re-hashed, 1 differ, 0 absent
      DIFFERS a.png: content differs [workspace]
    """
    text = (f"\nverify: {verify['checked']} file(s) re-hashed, {len(verify['differs'])} differ, "
            f"{len(verify['absent'])} absent\n")
    text += "".join(f"  DIFFERS {p}\n" for p in verify["differs"])
    text += "".join(f"  absent  {a}\n" for a in verify["absent"][:max_absent])
    if len(verify["absent"]) > max_absent:
        text += f"  ... {len(verify['absent']) - max_absent} more absent\n"
    return text


def format_uses(rows: Sequence[Mapping[str, str]], item: str) -> str:
    """A Markdown table: revision | output | kind | md5 | how it was reached."""
    if not rows:
        return f"{item}: fed no tracked model, metrics, plot or report (workspace, history, experiments)\n"
    lines = [f"Outputs fed by {item}:", "", "| revision | output | kind | md5 | how it was reached |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['revision']} | {r['output']} | {r['kind']} | {_short(r['md5'])} | {r['how']} |")
    return "\n".join(lines) + "\n"
