"""What every stage module shares: reading its params group, its path arguments, logging, and
how a stage runs (one writer per workspace, clean exit on SIGTERM or when dvc dies)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from porescope.config import ParamsError, load_params  # noqa: F401  (re-exported for the stages)
from porescope.logs import setup_logging

LOG = logging.getLogger("porescope")


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


#: The workspace lock, relative to the workspace root (DVC keeps its own locks there too, and
#: git ignores the folder).
LOCK_FILE = Path(".dvc/tmp/porescope-stage.lock")


def workspace_root(cwd: Path | None = None) -> Path | None:
    """The DVC workspace a stage runs in: the nearest folder at or above ``cwd`` (dvc runs a
    stage in its ``wdir``) holding a ``.dvc`` folder, so a queued experiment's temporary copy
    is a workspace of its own; else ``$DVC_ROOT``; None outside a DVC project."""
    here = (cwd or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return Path(os.environ["DVC_ROOT"]) if os.environ.get("DVC_ROOT") else None


def run_stage(name: str, main: Callable[[], int | None]) -> None:
    """Run a stage module's ``main`` as DVC runs it, under the dependency guard.

    The contract of every stage: ``main(argv) -> int`` (0 = success); a
    :class:`porescope.errors.PorescopeError` (bad file or parameter) is printed as one line
    ``stage <name>: error: <message>`` and the process exits with status 2.

    DVC hashes a stage's dependencies only after its command finishes, so an input edited while
    the stage ran would be recorded with a result computed from the old one. The guard hashes
    the stage's declared deps and params (from dvc.yaml) before ``main`` and again after it, and
    fails the stage, naming what changed, so that DVC records nothing
    (:func:`porescope.provenance.dep_guard.guard_dependencies`).

    One writer at a time: the stage holds the workspace lock (:data:`LOCK_FILE`, see
    :mod:`porescope.provenance.workspace_lock`) and refuses to start while another live stage
    of the same workspace holds it. SIGTERM exits cleanly with status 143 (temporary outputs
    removed), and a stage started by dvc stops itself within about a second when that dvc
    process dies (:func:`porescope.parallel.termination.watch_parent`), instead of running on
    as an orphan beside the next ``dvc repro``.
    """
    setup_logging()
    from porescope.errors import PorescopeError
    from porescope.parallel.termination import exit_on_sigterm, watch_parent
    from porescope.provenance.dep_guard import guard_dependencies
    from porescope.provenance.workspace_lock import workspace_lock

    root = workspace_root()
    try:
        with exit_on_sigterm(), contextlib.ExitStack() as stack:
            if root is not None:
                stack.enter_context(workspace_lock(root / LOCK_FILE, f"stage {name}"))
            if os.environ.get("DVC_STAGE"):  # started by dvc: its death leaves no one to record
                stack.callback(watch_parent())
            with guard_dependencies(name):
                status = main()
                if status:
                    sys.exit(status)  # a failed stage is not checked: it records nothing anyway
    except PorescopeError as exc:  # bad input or parameter: one line naming it, no traceback
        print(f"stage {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
