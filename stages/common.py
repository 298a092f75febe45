"""What every stage module shares: reading its params group, its path arguments, logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

LOG = logging.getLogger("porescope")


class ParamsError(ValueError):
    """A value in params.yaml is missing or invalid; the message names the key."""


def load_params(path: str | os.PathLike = "params.yaml", group: str | None = None) -> dict[str, Any]:
    """Read ``params.yaml`` with ``yaml.safe_load``.

    With ``group``, return that group's mapping with the shared top-level ``seed`` added under
    ``"seed"`` (a group may not define its own ``seed``).
    """
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter groups at the top level")
    if group is None:
        return params
    if not isinstance(params.get(group), dict):
        raise ParamsError(f"{path}: missing parameter group '{group}'")
    out = dict(params[group])
    if "seed" in out:
        raise ParamsError(f"{path}: '{group}.seed' is not allowed; set the shared top-level 'seed'")
    if "seed" not in params:
        raise ParamsError(f"{path}: missing the shared top-level 'seed'")
    out["seed"] = int(params["seed"])
    return out


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def setup_logging() -> None:
    """Log INFO and above to stderr in a compact format (DVC shows it while a stage runs)."""
    logging.basicConfig(level=os.environ.get("PORESCOPE_LOG", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")


def run_stage(name: str, main: Callable[[], int | None]) -> None:
    """Run a stage module's ``main`` as DVC runs it, under the dependency guard.

    DVC hashes a stage's dependencies only after its command finishes, so an input edited while
    the stage ran would be recorded with a result computed from the old one. The guard hashes
    the stage's declared deps and params (from dvc.yaml) before ``main`` and again after it, and
    fails the stage, naming what changed, so that DVC records nothing
    (:func:`stages.core.dep_guard.guard_dependencies`).
    """
    setup_logging()
    from stages.core.dep_guard import guard_dependencies

    with guard_dependencies(name):
        status = main()
        if status:
            sys.exit(status)  # a failed stage is not checked: it records nothing anyway
    sys.exit(0)
