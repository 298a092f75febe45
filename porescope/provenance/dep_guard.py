"""The pipeline as declared in ``dvc.yaml``, and a guard that refuses results from changed inputs.

Three things live here because the guard, the model card and ``porescope lineage`` share them:

* :func:`load_pipeline` / :func:`resolve_stage`: every stage's deps, outs (with their
  ``metrics`` / ``plots`` role), params and command, with DVC's ``${...}`` templating resolved
  from ``params.yaml`` (DVC loads ``params.yaml`` beside ``dvc.yaml`` as default variables) and
  from the top-level ``vars:``; :func:`producer_of` / :func:`ancestors` walk the graph. The model
  card and ``porescope lineage`` use them; this module imports only the standard library and
  ``yaml`` at import time so every stage can afford it.
* :func:`dvc_file_md5` / :func:`dvc_dir_hash`: DVC's own file and folder (``.dir``) hashes,
  computed with ``dvc_data`` (imported on first use) exactly as ``dvc.lock`` records them.
* :func:`guard_dependencies`: DVC hashes a stage's dependencies *after* its command finishes
  and records those hashes in ``dvc.lock``. An input edited while the stage ran (a training
  image replaced, ``params.yaml`` changed by hand during a long ``dvc repro``) is therefore
  recorded with its *new* hash next to a result computed from the *old* content: the lock
  file then certifies something that never happened. The guard hashes the stage's declared
  deps and params on entry and checks them again on exit; when anything differs it raises
  :class:`DependencyChangedError` naming every changed file / key, the stage exits non-zero and
  DVC records nothing (the stage stays "changed" in ``dvc status``, so the next ``dvc repro``
  reruns it on the new inputs)::

      with guard_dependencies("train"):
          main()

Cost. Each dependency file is read once on entry (SHA-256, threads, ~1.4 GB/s per core with
SHA-NI). On exit each file is ``stat``-ed; only files whose ``(size, mtime_ns, ctime_ns, inode,
device)`` changed, and "racy" files (modified within :data:`RACY_WINDOW_NS` before they were
hashed, when a same-size rewrite in the same timestamp tick would not show in ``stat``; the
rule git uses for its index) are read again. ``ctime`` cannot be set from user space, so an
edit that restores ``mtime`` (``touch -d``) is still noticed. Files added to or removed from a
directory dependency count as changes.

Limits: a change made after the exit check and before DVC hashes (microseconds) is not seen;
a dependency that is absent on entry and on exit is "unchanged" (DVC itself refuses to run a
stage with a missing dependency).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat as stat_mod
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from porescope.errors import PorescopeError

LOG = logging.getLogger("porescope.dep_guard")

#: Files modified less than this long before they were hashed are re-hashed on exit.
RACY_WINDOW_NS = 2_000_000_000

_TEMPLATE = re.compile(r"(?<!\\)\$\{\s*([^}]*?)\s*\}")
_INDEX = re.compile(r"\[(\d+)\]")


class StageSpecError(PorescopeError, ValueError):
    """``dvc.yaml`` (or a file it names) cannot be read, or a stage / variable is not there."""


class DependencyChangedError(PorescopeError, RuntimeError):
    """A stage's declared inputs differ between its start and its end; nothing may be recorded."""

    def __init__(self, stage: str, changes: list[str]) -> None:
        self.stage = stage
        self.changes = list(changes)
        lines = "\n  ".join(self.changes)
        super().__init__(
            f"stage '{stage}': {len(self.changes)} input(s) changed while it ran, so its result "
            f"must not be recorded (DVC would store the new hashes next to a result computed from "
            f"the old content):\n  {lines}\nRerun `dvc repro` once the inputs are final.")


# --------------------------------------------------------------------------------------------
# dvc.yaml
# --------------------------------------------------------------------------------------------

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
    default = root / (params if params is not None else "params.yaml")
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


def load_pipeline(dvc_yaml: str | os.PathLike = "dvc.yaml",
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
                          params_file=str(params or "params.yaml"))


def parse_pipeline(doc: Mapping[str, Any], context: Mapping[str, Any], where: str = "dvc.yaml", *,
                   params_file: str = "params.yaml") -> dict[str, StageSpec]:
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


def resolve_stage(stage_name: str, dvc_yaml: str | os.PathLike = "dvc.yaml",
                  params: str | os.PathLike | None = None) -> StageSpec:
    """One stage of :func:`load_pipeline`; :class:`StageSpecError` naming the file if absent."""
    stages = load_pipeline(dvc_yaml, params)
    if stage_name not in stages:
        raise StageSpecError(f"{dvc_yaml}: no stage '{stage_name}' (stages: {', '.join(stages)})")
    return stages[stage_name]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def producer_of(path: str, stages: Mapping[str, StageSpec]) -> tuple[str, Out] | None:
    """The stage whose out is ``path``, contains it (a file in an output folder) or lies inside
    it (a dependency on a folder that holds an output); ``None`` for a source file."""
    path = PurePosixPath(path).as_posix()
    best: tuple[str, Out] | None = None
    for name, spec in stages.items():
        for out in spec.outs:
            if _inside(path, out.path) or _inside(out.path, path):
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


# --------------------------------------------------------------------------------------------
# params values
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# file hashing with a stat shortcut
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileState:
    """What is known of one file: its ``stat`` signature, its SHA-256 and whether it was racy."""

    signature: tuple[int, int, int, int, int]
    sha256: str
    racy: bool


def _signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _hash_state(path: str) -> FileState:
    for _ in range(5):
        before = os.stat(path)
        digest = sha256_file(path)
        after = os.stat(path)
        if _signature(before) == _signature(after):
            now = time.time_ns()
            racy = max(after.st_mtime_ns, after.st_ctime_ns) >= now - RACY_WINDOW_NS
            return FileState(_signature(after), digest, racy)
    raise RuntimeError(f"{path}: kept changing while it was being hashed (5 attempts)")


def _list_files(path: str) -> list[str]:
    """``path`` itself when a file; every file below it (sorted) when a folder; [] when absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    if not stat_mod.S_ISDIR(st.st_mode):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files))
    return found


def _workers() -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n))


def snapshot(paths: list[str], root: str | os.PathLike = ".") -> dict[str, FileState]:
    """Hash every file of ``paths`` (files or folders, relative to ``root``); keys are the
    files' POSIX paths relative to ``root``."""
    root = os.fspath(root)
    files = sorted({f for p in paths for f in _list_files(os.path.join(root, p))})
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        states = list(pool.map(_hash_state, files))
    return {Path(os.path.relpath(f, root)).as_posix(): s for f, s in zip(files, states)}


def changed_files(before: Mapping[str, FileState], paths: list[str],
                  root: str | os.PathLike = ".") -> list[str]:
    """Files of ``paths`` whose content differs from ``before`` (or that were added/removed),
    as messages ``"<file>: content changed"``; only changed-``stat`` and racy files are read."""
    root = os.fspath(root)
    now = {Path(os.path.relpath(f, root)).as_posix(): f
           for p in paths for f in _list_files(os.path.join(root, p))}
    changes = [f"{rel}: removed" for rel in sorted(set(before) - set(now))]
    changes += [f"{rel}: added" for rel in sorted(set(now) - set(before))]
    suspects = []
    for rel in sorted(set(now) & set(before)):
        old = before[rel]
        try:
            sig = _signature(os.stat(now[rel]))
        except FileNotFoundError:
            changes.append(f"{rel}: removed")
            continue
        if old.racy or sig != old.signature:
            suspects.append(rel)
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        digests = list(pool.map(lambda r: sha256_file(now[r]), suspects))
    changes += [f"{rel}: content changed" for rel, d in zip(suspects, digests) if d != before[rel].sha256]
    return sorted(changes)


# --------------------------------------------------------------------------------------------
# DVC's own hashes (dvc_data, exactly as `dvc add` / `dvc repro` compute them; imported lazily)
# --------------------------------------------------------------------------------------------

def dvc_file_md5(path: str | os.PathLike, hash_name: str = "md5") -> str:
    """DVC's hash of one file (``md5``; ``md5-dos2unix`` for DVC 2 lock entries)."""
    from dvc_data.hashfile.hash import file_md5

    return file_md5(os.fspath(path), name=hash_name)


@dataclass
class DirHash:
    """DVC's hash of a folder: ``md5`` (``<hex>.dir``) and every file's MD5 by relative path."""

    md5: str
    files: dict[str, str]
    size: int


def dvc_dir_hash(path: str | os.PathLike, repo_root: str | os.PathLike, hash_name: str = "md5") -> DirHash:
    """Hash folder ``path`` as DVC does: walk it with the project's ``.dvcignore`` rules, MD5
    each file, build a ``dvc_data`` :class:`~dvc_data.hashfile.tree.Tree` and digest it (the
    ``.dir`` object is the JSON list of ``{md5, relpath}`` sorted by path; its MD5 + ``.dir``
    is what ``dvc.lock`` records)."""
    from dvc.fs import LocalFileSystem
    from dvc.ignore import DvcIgnoreFilter
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    fs = LocalFileSystem()
    top = os.path.abspath(path)
    ignore = DvcIgnoreFilter(fs, os.path.abspath(repo_root))
    tree, files, size = Tree(), {}, 0
    for folder, _, names in ignore.walk(fs, top):
        for name in names:
            full = os.path.join(folder, name)
            rel = Path(os.path.relpath(full, top)).as_posix()
            md5 = dvc_file_md5(full, hash_name)
            nbytes = os.path.getsize(full)
            tree.add(tuple(rel.split("/")), Meta(size=nbytes), HashInfo(hash_name, md5))
            files[rel] = md5
            size += nbytes
    tree.digest()
    return DirHash(md5=tree.hash_info.value, files=files, size=size)


# --------------------------------------------------------------------------------------------
# the guard
# --------------------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def guard_dependencies(stage_name: str, dvc_yaml: str | os.PathLike = "dvc.yaml",
                       params: str | os.PathLike = "params.yaml", *,
                       required: bool = False) -> Iterator[StageSpec]:
    """Refuse to finish a stage whose declared deps or params changed while it ran.

    Parameters
    ----------
    stage_name
        The stage's name in ``dvc_yaml``.
    dvc_yaml, params
        The pipeline file (its folder is the repository root that dep paths are relative to)
        and the default params / variables file, relative to that folder.
    required
        When ``dvc_yaml`` does not exist (a stage module run by hand outside a project):
        ``False`` logs a warning and runs unguarded, ``True`` raises :class:`StageSpecError`.

    Yields the resolved :class:`StageSpec`. On a normal exit (also ``SystemExit`` with status
    0, i.e. ``sys.exit(main())`` inside the block), raises :class:`DependencyChangedError`
    listing every changed dependency file (content, added, removed) and params key (old ->
    new value). Any other exception from the body, a non-zero ``SystemExit`` included,
    propagates unchanged (the stage failed anyway; nothing is checked).

    Usage in a stage module (``sys.exit(main())`` works the same)::

        if __name__ == "__main__":
            with guard_dependencies("train"):
                main()
    """
    path = Path(dvc_yaml)
    if not path.is_file():
        if required:
            raise StageSpecError(f"{path}: pipeline file not found; cannot guard stage '{stage_name}'")
        LOG.warning("%s not found: stage '%s' runs without the dependency guard", path, stage_name)
        yield StageSpec(name=stage_name, cmd="")
        return
    spec = resolve_stage(stage_name, path, params)
    root = path.parent
    t0 = time.perf_counter()
    files_before = snapshot(spec.deps, root)
    params_before = params_values(spec, root)
    LOG.info("dep guard: %d dependency file(s) of stage '%s' hashed in %.1f s", len(files_before),
             stage_name, time.perf_counter() - t0)
    try:
        yield spec
    except SystemExit as exc:  # `sys.exit(main())` inside the block: a zero status is a success
        if exc.code not in (None, 0):
            raise
        _check(stage_name, spec, root, files_before, params_before)
        raise
    _check(stage_name, spec, root, files_before, params_before)


def _check(stage_name: str, spec: StageSpec, root: Path, files_before: Mapping[str, FileState],
           params_before: Mapping[str, Any]) -> None:
    """Raise :class:`DependencyChangedError` when deps or params differ from the snapshot."""
    changes = changed_files(files_before, spec.deps, root)
    try:
        params_after = params_values(spec, root)
    except StageSpecError as exc:
        changes.append(f"params: {exc}")
        params_after = params_before
    for key in params_before:
        if params_after.get(key) != params_before[key]:
            old, new = params_before[key], params_after.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                detail = ", ".join(f"{key}.{k}: {_describe(old.get(k))} -> {_describe(new.get(k))}"
                                   for k in keys)
            else:
                detail = f"{key}: {_describe(old)} -> {_describe(new)}"
            changes.append(f"params {detail}")
    if changes:
        raise DependencyChangedError(stage_name, changes)
