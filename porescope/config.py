"""Parameters: one mechanism for every params group.

A group of ``params.yaml`` (``train``, ``measure``, ...) is described by a frozen dataclass whose
field defaults are *the* defaults (``params.yaml`` repeats them; a test checks that they agree).
:func:`parse_group` builds it from the mapping read with :func:`load_params`:

* an unknown key is an error naming it and the closest valid key (``train.epoch`` ->
  "did you mean 'train.epochs'?"), so a typo never silently leaves a default in force;
* a missing key takes the field's default;
* each value is checked against the field's annotation (``int``, ``float``, ``bool``, ``str``,
  ``Literal[...]``, ``X | None``, ``tuple[...]``, ``list[...]``, ``dict``, a nested params
  dataclass) and converted (a YAML list becomes a tuple, an int a float);
* bounds come from field metadata (``ge``, ``gt``, ``le``, ``lt``), other rules from the
  dataclass's ``check(fail)`` method, where ``fail(key, why)`` returns the error to raise.

Every error is a :class:`ParamsError` whose message starts ``<source>: <group>.<key>:``.

Examples
--------
>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class FitParams:
...     epochs: int = field(default=6, metadata={"ge": 1})
...     lr: float = 0.003
>>> parse_group(FitParams, {"epochs": 10}, group="train")
FitParams(epochs=10, lr=0.003)
>>> parse_group(FitParams, {"epoch": 10}, group="train")
Traceback (most recent call last):
...
porescope.config.ParamsError: params.yaml: train.epoch: unknown parameter; did you mean 'train.epochs'? (valid: epochs, lr)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from porescope.errors import PorescopeError

T = TypeVar("T")


class ParamsError(PorescopeError, ValueError):
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


class _Mismatch(Exception):
    """A value does not fit an annotation; the text says what was expected."""


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        inner = _describe(args[0]) if args else "value"
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
        return f"a list of {inner}"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """``value`` converted to annotation ``tp``; raises :class:`_Mismatch`."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch("null")
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, where, source)
            except _Mismatch:
                continue
        raise _Mismatch(_describe(tp))
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool) or value is None and None in typing.get_args(tp):
            return value
        raise _Mismatch(_describe(tp))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch("a mapping")
        return parse_group(tp, value, group=where, source=source, extra=())
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("true/false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise _Mismatch("a finite number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("a string")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(_describe(tp))
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch(_describe(tp))
            items = [_convert(v, a, where, source) for v, a in zip(value, args)]
        else:
            inner = args[0] if args else Any
            items = [_convert(v, inner, where, source) for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
        raise _Mismatch("a mapping")
    raise TypeError(f"{where}: annotation {tp!r} is not supported by porescope.config")


def _bounds(value: Any, meta: Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks the field's ``ge`` / ``gt`` / ``le`` / ``lt`` bounds, or ``None``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                          ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        if key in meta and not ok(value, meta[key]):
            return f"expected a value {word} {meta[key]}"
    return None


def closest_key(key: str, valid: Collection[str]) -> str | None:
    """The valid key most like ``key`` (``difflib``), or ``None`` when none is close."""
    hits = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    return hits[0] if hits else None


def parse_group(cls: type[T], raw: Mapping[str, Any] | None, *, group: str,
                source: str = "params.yaml", extra: Collection[str] = ("seed",)) -> T:
    """Build the frozen params dataclass ``cls`` from one params group.

    Parameters
    ----------
    cls : dataclass type
        Field names are the group's keys, field defaults its defaults, annotations the types.
    raw : mapping or None
        The group as read from YAML (``None`` = every default).
    group : str
        Dotted name used in messages, e.g. ``"train"`` or ``"analyze.spatial"``.
    source : str
        What the mapping was read from (a file path), first in every message.
    extra : collection of str
        Keys that may be present and are ignored (the shared ``seed`` that
        :func:`load_params` adds).

    Returns
    -------
    cls instance

    Raises
    ------
    ParamsError
        Unknown key (with the closest valid key), value of the wrong type or out of bounds,
        or a rule of ``cls.check`` broken.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: {group}: expected a mapping of parameters, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key in fields or key in extra:
            continue
        near = closest_key(key, fields)
        hint = f"; did you mean '{group}.{near}'?" if near else ""
        raise ParamsError(f"{source}: {group}.{key}: unknown parameter{hint} "
                          f"(valid: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        where = f"{group}.{name}"
        try:
            value = _convert(raw[name], hints[name], where, source)
        except _Mismatch as exc:
            raise ParamsError(f"{source}: {where}: expected {exc}, got {raw[name]!r}") from None
        why = _bounds(value, f.metadata)
        if why:
            raise ParamsError(f"{source}: {where}: {why}, got {raw[name]!r}")
        values[name] = value
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):
        def fail(key: str, why: str) -> ParamsError:
            return ParamsError(f"{source}: {group}.{key}: {why} (got {getattr(obj, key, None)!r})")
        check(fail)
    return obj


def to_mapping(params: Any) -> dict[str, Any]:
    """A params dataclass as plain YAML/JSON types (tuples as lists), nested groups included."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(params)


Fail = Callable[[str, str], ParamsError]
