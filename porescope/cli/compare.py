"""``porescope compare`` and ``porescope plots-diff``: two revisions or experiments side by side.

    porescope compare A [B] [--changed-only] [--json]
    porescope plots-diff A [B] [--out DIR]

The work is done by :mod:`porescope.provenance.compare`; this module parses the arguments and
prints. A revision that cannot be resolved or compared raises a
:class:`porescope.errors.PorescopeError`, printed by :mod:`porescope.cli.main` with status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from porescope.provenance.compare import (
    WORKSPACE,
    Rev,
    compare_metrics,
    compare_params,
    format_markdown,
    plots_diff,
    resolve,
)
from porescope.provenance.repo_view import find_repo_root


def add_compare_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``porescope compare`` and ``porescope plots-diff``; returns the compare parser."""
    p = subparsers.add_parser(
        "compare", help="Markdown table of metric and param changes between two revisions/experiments",
        description="Compare two git revisions, tags or experiment names (or 'workspace' as B): every "
                    "metric of the metrics files in dvc.yaml (old, new, change, %% change; 'missing' where "
                    "a revision lacks the file) and the params that differ, as Markdown for a pull request.")
    p.add_argument("a", help="baseline: git revision, tag or experiment name")
    p.add_argument("b", nargs="?", default=WORKSPACE, help="the other one (default: workspace)")
    p.add_argument("--changed-only", action="store_true", help="only metrics whose value differs")
    p.add_argument("--json", action="store_true", help="rows as JSON instead of Markdown")
    p.set_defaults(func=cmd_compare)
    q = subparsers.add_parser(
        "plots-diff", help="offline HTML of the plots two revisions both have",
        description="dvc plots diff restricted to the plots present at both revisions (the others are "
                    "listed), written as one self-contained offline HTML page.")
    q.add_argument("a", help="baseline: git revision, tag or experiment name")
    q.add_argument("b", nargs="?", default=WORKSPACE, help="the other one (default: workspace)")
    q.add_argument("--out", default="dvc_plots/compare", help="output folder (index.html inside)")
    q.set_defaults(func=cmd_plots_diff)
    return p


def _revs(args: argparse.Namespace) -> tuple[Path, Rev, Rev]:
    root = find_repo_root(".")
    return root, resolve(root, args.a), resolve(root, args.b)


def cmd_compare(args: argparse.Namespace) -> int:
    """``porescope compare``: print the Markdown (or JSON) comparison."""
    root, a, b = _revs(args)
    rows, missing = compare_metrics(a, b, root)
    params = compare_params(a, b, root)
    if args.json:
        print(json.dumps({"a": a.label, "b": b.label, "missing_files": missing,
                          "metrics": [{"file": r.file, "metric": r.metric, "old": r.old, "new": r.new,
                                       "change": r.change, "pct_change": r.pct} for r in rows],
                          "params": [{"file": f, "param": k, "old": o, "new": n} for f, k, o, n in params]},
                         indent=2))
    else:
        print(format_markdown(a, b, rows, params, changed_only=args.changed_only), end="")
    return 0


def cmd_plots_diff(args: argparse.Namespace) -> int:
    """``porescope plots-diff``: write the page, print its path and the plots left out."""
    root, a, b = _revs(args)
    out = Path(args.out)
    out = out if out.is_absolute() else Path.cwd() / out
    page, both, missing = plots_diff(a, b, root, out)
    print(f"{page}")
    print(f"plots drawn for {a.label} and {b.label}: {', '.join(both)}")
    for plot_id, reasons in missing.items():
        print(f"left out (missing): {plot_id}: {', '.join(reasons)}")
    return 0
