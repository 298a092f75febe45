"""What every stage module shares: reading its params group, its path arguments, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from porescope.config import ParamsError, load_params  # noqa: F401  (re-exported for the stages)
from porescope.logs import setup_logging

LOG = logging.getLogger("porescope")


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


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
    """
    setup_logging()
    from porescope.provenance.dep_guard import guard_dependencies

    from porescope.errors import PorescopeError

    try:
        with guard_dependencies(name):
            status = main()
            if status:
                sys.exit(status)  # a failed stage is not checked: it records nothing anyway
    except PorescopeError as exc:  # bad input or parameter: one line naming it, no traceback
        print(f"stage {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
