"""``porescope lineage``: trace an output back to the raw micrographs, or a source forward.

    porescope lineage PATH [--json] [--rev REV] [--verify [--no-cache-check] [--strict]]
    porescope lineage --uses FILE [--json] [--no-history] [--no-experiments] [--all-outs]

The work is done by :func:`porescope.provenance.lineage.lineage`,
:func:`porescope.provenance.verify.verify_lineage` and :func:`porescope.provenance.uses.uses`;
this module only parses the arguments, prints and picks the exit status (1: ``--verify`` found a
difference; errors a user can fix are printed by :mod:`porescope.cli.main` with status 2).
"""

from __future__ import annotations

import argparse
import json
import sys

from porescope.provenance.lineage import lineage
from porescope.provenance.lineage_text import format_lineage, format_uses, format_verify
from porescope.provenance.repo_view import LineageError
from porescope.provenance.uses import uses
from porescope.provenance.verify import verify_lineage


def add_lineage_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``porescope lineage`` on the ``porescope`` sub-command parser."""
    p = subparsers.add_parser(
        "lineage", help="trace an output back to the raw micrographs (or a source forward with --uses)",
        description="Print the chain from an output (model, metrics file, measurement table, report, "
                    "plot, or a file inside an output folder) back to the raw source micrographs: each "
                    "stage with its params and dep/out hashes from dvc.lock, the source files with their "
                    "SHA-256 and split, and the git commit. --verify re-hashes everything (workspace, "
                    "DVC cache, sources) and exits 1 naming each file that differs.")
    p.add_argument("path", nargs="?", help="output to trace (repository path)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON instead of text")
    p.add_argument("--verify", action="store_true",
                   help="re-hash the chain's files (workspace + DVC cache) and the raw sources; exit 1 on a difference")
    p.add_argument("--no-cache-check", action="store_true", help="with --verify: skip the DVC cache objects")
    p.add_argument("--strict", action="store_true", help="with --verify: also fail when a file is absent")
    p.add_argument("--rev", default=None, help="git revision or experiment to trace instead of the workspace")
    p.add_argument("--uses", metavar="FILE", default=None,
                   help="reverse: outputs that a source micrograph (path or sha256) or a dataset (folder, "
                        ".dir md5 or name like RDZF800) fed, across the workspace, git history and experiments")
    p.add_argument("--no-history", action="store_true", help="with --uses: skip git history")
    p.add_argument("--no-experiments", action="store_true", help="with --uses: skip experiments")
    p.add_argument("--all-outs", action="store_true", help="with --uses: include intermediate data outputs")
    p.set_defaults(func=cmd_lineage)
    return p


def cmd_lineage(args: argparse.Namespace) -> int:
    """Run ``porescope lineage``; returns the exit status (1: --verify found differences). A path,
    revision or file that cannot be traced raises :class:`porescope.provenance.repo_view.LineageError`."""
    if (args.path is None) == (args.uses is None):
        raise LineageError("give exactly one of PATH or --uses FILE")
    if args.uses is not None:
        rows = uses(args.uses, history=not args.no_history, experiments=not args.no_experiments,
                    all_outs=args.all_outs)
        print(json.dumps(rows, indent=2) if args.json else format_uses(rows, args.uses), end="" if not args.json else "\n")
        return 0
    if args.verify and args.rev:
        raise LineageError("--verify checks the workspace; do not combine it with --rev")
    report = lineage(args.path, rev=args.rev)
    status = 0
    if args.verify:
        problems, absent, checked = verify_lineage(report, check_cache=not args.no_cache_check)
        report = {**report, "verify": {"checked": checked, "differs": [str(p) for p in problems], "absent": absent,
                                       "ok": not problems and not (args.strict and absent)}}
        status = 0 if report["verify"]["ok"] else 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        text = format_lineage(report)
        if args.verify:
            text += format_verify(report["verify"])
        print(text, end="")
    if status:
        print(f"porescope lineage: {len(report['verify']['differs'])} file(s) differ from what dvc.lock / "
              f"{(report.get('sources') or {}).get('manifest', 'the manifest')} recorded", file=sys.stderr)
    return status
