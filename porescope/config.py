"""Parameters: reading a params file and the error every parameter check raises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


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
