"""The pipeline as declared in ``dvc.yaml``: stages, their deps, outs and params, and the graph.

:func:`load_pipeline` / :func:`resolve_stage` read every stage's deps, outs (with their
``metrics`` / ``plots`` role), params and command, with DVC's ``${...}`` templating resolved
from the default params file (DVC loads ``params.yaml`` beside ``dvc.yaml`` as default
variables) and from the top-level ``vars:``; :func:`producer_of`, :func:`upstream`,
:func:`ancestors`, :func:`stage_chain`, :func:`downstream` and :func:`path_between` walk the
graph. The dependency guard, the model card and ``porescope lineage`` build on them.

Every DVC stage imports this module (through the guard), so it imports only the standard
library and ``yaml``.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from porescope.errors import PorescopeError

#: DVC's fixed file names: the pipeline, its lock file and the default params / variables file.
PIPELINE_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"

_TEMPLATE = re.compile(r"(?<!\\)\$\{\s*([^}]*?)\s*\}")
_INDEX = re.compile(r"\[(\d+)\]")


class StageSpecError(PorescopeError, ValueError):
    """``dvc.yaml`` (or a file it names) cannot be read, or a stage / variable is not there."""


@dataclass(frozen=True)
class Out:
    """One declared output: ``kind`` is ``out``, ``metrics`` or ``plots``; ``cache`` as declared."""

    path: str
    kind: str = "out"
    cache: bool = True
    persist: bool = False


@dataclass
class StageSpec:
    """A stage of ``dvc.yaml`` with templating resolved; paths are POSIX, relative to the
    repository root (the folder of ``dvc.yaml``)."""

    name: str
    cmd: str
    wdir: str = "."
    deps: list[str] = field(default_factory=list)
    outs: list[Out] = field(default_factory=list)
    #: params file (relative to the root) -> keys (``"train"``, ``"train.epochs"``, ``"seed"``);
    #: an empty list means every key of that file.
    params: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def out_paths(self) -> list[str]:
        return [o.path for o in self.outs]


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageSpecError(f"{path}: {what} not found") from None
    except yaml.YAMLError as exc:
        raise StageSpecError(f"{path}: not valid YAML: {exc}") from None


def _lookup(context: Mapping[str, Any], key: str, where: str) -> Any:
    value: Any = context
    for part in key.split("."):
        name, *indices = _INDEX.split(part)
        steps: list[Any] = ([name] if name else []) + [int(i) for i in indices if i != ""]
        for step in steps:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                raise StageSpecError(f"{where}: cannot resolve '${{{key}}}' (no '{step}')") from None
    return value


def interpolate(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Resolve DVC's ``${key.sub[0]}`` expressions in ``value`` (strings, lists and mappings).

    A string that is one expression keeps the variable's type; expressions inside text are
    formatted as DVC does (booleans as ``true``/``false``). ``\\${`` is left as it is.

    Examples
    --------
    >>> context = {"train": {"epochs": 3, "amp": True}, "dirs": ["data/a"]}
    >>> interpolate({"cmd": "fit --epochs ${train.epochs} --amp ${train.amp}", "deps": ["${dirs[0]}"]},
    ...             context, "dvc.yaml")
    {'cmd': 'fit --epochs 3 --amp true', 'deps': ['data/a']}
    >>> interpolate("${train.epochs}", context, "dvc.yaml")
    3
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value)
        if whole:
            return _lookup(context, whole.group(1), where)

        def fmt(match: re.Match) -> str:
            got = _lookup(context, match.group(1), where)
            if isinstance(got, bool):
                return str(got).lower()
            if isinstance(got, (dict, list)):
                raise StageSpecError(f"{where}: '${{{match.group(1)}}}' is a collection; cannot be put in text")
            return str(got)

        return _TEMPLATE.sub(fmt, value)
    if isinstance(value, list):
        return [interpolate(v, context, where) for v in value]
    if isinstance(value, dict):
        return {interpolate(k, context, where): interpolate(v, context, where) for k, v in value.items()}
    return value


def _context(root: Path, doc: Mapping[str, Any], params: str | os.PathLike | None) -> dict[str, Any]:
    context: dict[str, Any] = {}
    default = root / (params if params is not None else PARAMS_FILE)
    if default.is_file():
        loaded = _read_yaml(default, "params file")
        if isinstance(loaded, dict):
            context.update(loaded)
    for entry in doc.get("vars") or []:
        if isinstance(entry, dict):
            context.update(entry)
            continue
        name, _, keys = str(entry).partition(":")
        loaded = _read_yaml(root / name, "vars file") or {}
        if keys:
            loaded = {k: _lookup(loaded, k, str(root / name)) for k in keys.split(",")}
        context.update(loaded)
    return context


def _norm(path: str, wdir: str) -> str:
    joined = os.path.normpath(os.path.join(wdir, str(path)))
    return PurePosixPath(Path(joined).as_posix()).as_posix()


def _entries(items: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in items or []:
        if isinstance(item, dict):
            for path, opts in item.items():
                yield str(path), dict(opts or {})
        else:
            yield str(item), {}


def load_pipeline(dvc_yaml: str | os.PathLike = PIPELINE_FILE,
                  params: str | os.PathLike | None = None) -> dict[str, StageSpec]:
    """All stages of ``dvc_yaml`` in file order, templating resolved.

    ``params``: the default variables file, relative to the folder of ``dvc_yaml`` (DVC's rule:
    ``params.yaml`` there). Stages written with ``foreach`` / ``matrix`` are not supported
    (porescope does not use them) and raise :class:`StageSpecError`.
    """
    path = Path(dvc_yaml)
    doc = _read_yaml(path, "pipeline file")
    if not isinstance(doc, dict):
        raise StageSpecError(f"{path}: expected a mapping with 'stages'")
    return parse_pipeline(doc, _context(path.parent, doc, params), str(path),
                          params_file=str(params or PARAMS_FILE))


def parse_pipeline(doc: Mapping[str, Any], context: Mapping[str, Any], where: str = PIPELINE_FILE, *,
                   params_file: str = PARAMS_FILE) -> dict[str, StageSpec]:
    """Stages of an already loaded ``dvc.yaml`` document; ``context`` holds the variables for
    ``${...}`` (e.g. the ``params.yaml`` of the same revision)."""
    if not isinstance(doc.get("stages"), dict):
        raise StageSpecError(f"{where}: no 'stages' mapping")
    stages: dict[str, StageSpec] = {}
    for name, raw in doc["stages"].items():
        here = f"{where}: stage '{name}'"
        if not isinstance(raw, dict):
            raise StageSpecError(f"{here}: expected a mapping")
        if "foreach" in raw or "matrix" in raw:
            raise StageSpecError(f"{here}: foreach/matrix stages are not supported here")
        spec = interpolate(raw, context, here)
        wdir = str(spec.get("wdir", "."))
        cmd = spec.get("cmd", "")
        cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
        outs = [Out(_norm(p, wdir), kind, bool(o.get("cache", True)), bool(o.get("persist", False)))
                for kind in ("outs", "metrics", "plots") for p, o in _entries(spec.get(kind))]
        params_map: dict[str, list[str]] = {}
        default_params = _norm(params_file, wdir)
        for item in spec.get("params") or []:
            if isinstance(item, dict):
                for file, keys in item.items():
                    params_map.setdefault(_norm(file, wdir), []).extend(str(k) for k in (keys or []))
            else:
                params_map.setdefault(default_params, []).append(str(item))
        stages[name] = StageSpec(name=name, cmd=cmd, wdir=wdir,
                                 deps=[_norm(p, wdir) for p, _ in _entries(spec.get("deps"))],
                                 outs=outs, params=params_map, meta=dict(spec.get("meta") or {}))
    return stages


def resolve_stage(stage_name: str, dvc_yaml: str | os.PathLike = PIPELINE_FILE,
                  params: str | os.PathLike | None = None) -> StageSpec:
    """One stage of :func:`load_pipeline`; :class:`StageSpecError` naming the file if absent."""
    stages = load_pipeline(dvc_yaml, params)
    if stage_name not in stages:
        raise StageSpecError(f"{dvc_yaml}: no stage '{stage_name}' (stages: {', '.join(stages)})")
    return stages[stage_name]


def is_inside(path: str, folder: str) -> bool:
    """Whether normalized POSIX repository path ``path`` is ``folder`` or lies below it,
    compared by whole path components (``data/split2`` is not inside ``data/split``).

    Examples
    --------
    >>> is_inside("data/split/sources.csv", "data/split"), is_inside("data/split", "data/split")
    (True, True)
    >>> is_inside("data/split2/sources.csv", "data/split")
    False
    """
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def producer_of(path: str, stages: Mapping[str, StageSpec]) -> tuple[str, Out] | None:
    """The stage whose out is ``path``, contains it (a file in an output folder) or lies inside
    it (a dependency on a folder that holds an output); ``None`` for a source file.

    Examples
    --------
    >>> stages = {"split": StageSpec("split", "python -m stages.split", outs=[Out("data/split")]),
    ...           "train": StageSpec("train", "python -m stages.train", deps=["data/split/tiles.csv"])}
    >>> producer_of("data/split/tiles.csv", stages)[0], producer_of("data/split2/x.csv", stages)
    ('split', None)
    >>> stage_chain("train", stages), sorted(downstream(["split"], stages))
    (['train', 'split'], ['split', 'train'])
    """
    path = PurePosixPath(path).as_posix()
    best: tuple[str, Out] | None = None
    for name, spec in stages.items():
        for out in spec.outs:
            if is_inside(path, out.path) or is_inside(out.path, path):
                if best is None or len(out.path) > len(best[1].path):
                    best = (name, out)
    return best


def upstream(stage_name: str, stages: Mapping[str, StageSpec]) -> dict[str, set[str]]:
    """Direct upstream stages of ``stage_name``: producer -> the deps it provides."""
    found: dict[str, set[str]] = {}
    for dep in stages[stage_name].deps:
        hit = producer_of(dep, stages)
        if hit is not None and hit[0] != stage_name:
            found.setdefault(hit[0], set()).add(dep)
    return found


def ancestors(stage_name: str, stages: Mapping[str, StageSpec]) -> list[str]:
    """Every stage ``stage_name`` depends on, directly or not, in ``dvc.yaml`` order."""
    seen: set[str] = set()
    todo = [stage_name]
    while todo:
        for parent in upstream(todo.pop(), stages):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return [name for name in stages if name in seen]


def params_values(spec: StageSpec, root: str | os.PathLike = ".") -> dict[str, Any]:
    """The values of the stage's params, ``{"params.yaml:train": {...}, ...}``; a key absent
    from its file raises :class:`StageSpecError` (DVC refuses such a stage too)."""
    values: dict[str, Any] = {}
    for file, keys in spec.params.items():
        loaded = _read_yaml(Path(root) / file, "params file") or {}
        if not keys:
            values[f"{file}:*"] = loaded
        for key in keys:
            values[f"{file}:{key}"] = _lookup(loaded, key, f"{Path(root) / file} (stage '{spec.name}')")
    return values


def stage_chain(stage: str, stages: Mapping[str, StageSpec]) -> list[str]:
    """``stage`` then its ancestors, downstream first (reverse ``dvc.lock`` order, which DVC
    writes in pipeline order)."""
    seen, todo = {stage}, deque([stage])
    while todo:
        name = todo.popleft()
        for dep in stages[name].deps:
            hit = producer_of(dep, stages)
            if hit and hit[0] not in seen and hit[0] != name:
                seen.add(hit[0])
                todo.append(hit[0])
    order = list(stages)
    return [stage] + sorted(seen - {stage}, key=lambda n: -order.index(n))


def downstream(start: Iterable[str], stages: Mapping[str, StageSpec]) -> set[str]:
    """The stages of ``start`` and every stage that depends on them, directly or not."""
    result = set(start)
    changed = True
    while changed:
        changed = False
        for name, spec in stages.items():
            if name in result:
                continue
            for dep in spec.deps:
                hit = producer_of(dep, stages)
                if hit and hit[0] in result:
                    result.add(name)
                    changed = True
                    break
    return result


def path_between(src: str, dst: str, stages: Mapping[str, StageSpec]) -> list[str]:
    """Shortest stage path ``src -> ... -> dst`` following deps downstream ([] if none)."""
    children: dict[str, list[str]] = {n: [] for n in stages}
    for name, spec in stages.items():
        for dep in spec.deps:
            hit = producer_of(dep, stages)
            if hit and hit[0] != name and name not in children[hit[0]]:
                children[hit[0]].append(name)
    prev: dict[str, str | None] = {src: None}
    todo = deque([src])
    while todo:
        node = todo.popleft()
        if node == dst:
            path = [node]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for child in children[node]:
            if child not in prev:
                prev[child] = node
                todo.append(child)
    return []
