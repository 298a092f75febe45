"""A guard that refuses to record a stage's result when its inputs changed while it ran.

DVC hashes a stage's dependencies *after* its command finishes and records those hashes in
``dvc.lock``. An input edited while the stage ran (a training image replaced, ``params.yaml``
changed by hand during a long ``dvc repro``) is therefore recorded with its *new* hash next to a
result computed from the *old* content: the lock file then certifies something that never
happened. :func:`guard_dependencies` hashes the stage's declared deps and params (read with
:mod:`porescope.provenance.pipeline`) on entry and checks them again on exit; when anything
differs it raises :class:`DependencyChangedError` naming every changed file / key, the stage
exits non-zero and DVC records nothing (the stage stays "changed" in ``dvc status``, so the next
``dvc repro`` reruns it on the new inputs)::

    with guard_dependencies("train"):
        main()

Code fingerprints. A stage whose deps include a code fingerprint (``data/code/<stage>.json``,
written by the pipeline's ``code`` stage: :mod:`porescope.provenance.code_fingerprint`) runs the
files it lists, so the guard checks on entry that they still have the recorded MD5s (else
:class:`StaleCodeError`: the code was edited after the fingerprint was written, e.g. under
``dvc repro --single-item``) and watches them like declared deps while the stage runs.

Every stage runs under the guard, so this module imports only the standard library and
``yaml`` at import time.

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
import logging
import os
import stat as stat_mod
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from porescope.errors import PorescopeError
from porescope.provenance.code_fingerprint import read_fingerprint, stale_files
from porescope.provenance.hashes import sha256_file
from porescope.provenance.pipeline import (
    PARAMS_FILE,
    PIPELINE_FILE,
    StageSpec,
    StageSpecError,
    params_values,
    resolve_stage,
)

LOG = logging.getLogger("porescope.dep_guard")

#: Files modified less than this long before they were hashed are re-hashed on exit.
RACY_WINDOW_NS = 2_000_000_000


class _StageInputsError(PorescopeError, RuntimeError):
    """A stage's inputs are not what DVC would record next to its result: one line per item."""

    def __init__(self, stage: str, items: list[str], problem: str, advice: str) -> None:
        self.stage = stage
        lines = "\n  ".join(items)
        super().__init__(f"stage '{stage}': {problem}:\n  {lines}\n{advice}")


class DependencyChangedError(_StageInputsError):
    """A stage's declared inputs differ between its start and its end; nothing may be recorded."""

    def __init__(self, stage: str, changes: list[str]) -> None:
        self.changes = list(changes)
        super().__init__(stage, self.changes,
                         f"{len(self.changes)} input(s) changed while it ran, so its result must not be "
                         f"recorded (DVC would store the new hashes next to a result computed from the old "
                         f"content)", "Rerun `dvc repro` once the inputs are final.")


class StaleCodeError(_StageInputsError):
    """A stage's code differs from its code fingerprint (edited after the ``code`` stage ran)."""

    def __init__(self, stage: str, files: list[str]) -> None:
        self.files = list(files)
        super().__init__(stage, self.files,
                         "its code differs from the fingerprint the code stage wrote, so DVC would record "
                         "a result of other code",
                         "Run `dvc repro` (it reruns the code stage first), not `dvc repro --single-item`.")


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
# the guard
# --------------------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@contextlib.contextmanager
def guard_dependencies(stage_name: str, dvc_yaml: str | os.PathLike = PIPELINE_FILE,
                       params: str | os.PathLike = PARAMS_FILE, *,
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
    watched = [*spec.deps, *fingerprinted_code(stage_name, spec.deps, root)]
    files_before = snapshot(watched, root)
    params_before = params_values(spec, root)
    LOG.info("dep guard: %d dependency file(s) of stage '%s' hashed in %.1f s", len(files_before),
             stage_name, time.perf_counter() - t0)
    try:
        yield spec
    except SystemExit as exc:  # `sys.exit(main())` inside the block: a zero status is a success
        if exc.code not in (None, 0):
            raise
        _check(stage_name, spec, watched, root, files_before, params_before)
        raise
    _check(stage_name, spec, watched, root, files_before, params_before)


def fingerprinted_code(stage_name: str, deps: list[str], root: str | os.PathLike) -> list[str]:
    """The code files named by the code fingerprints among ``deps`` (files written by the
    pipeline's ``code`` stage, :mod:`porescope.provenance.code_fingerprint`).

    Raises :class:`StaleCodeError` when one of those files no longer has the MD5 its fingerprint
    records: the stage would run other code than the fingerprint DVC records next to its result.
    """
    files: dict[str, str] = {}
    for dep in deps:
        full = Path(root, dep)
        if full.suffix == ".json" and full.is_file():
            found = read_fingerprint(full.read_bytes())
            if found is not None:
                files.update(found)
    stale = stale_files(files, root)
    if stale:
        raise StaleCodeError(stage_name, stale)
    return sorted(files)


def _check(stage_name: str, spec: StageSpec, watched: list[str], root: Path,
           files_before: Mapping[str, FileState], params_before: Mapping[str, Any]) -> None:
    """Raise :class:`DependencyChangedError` when deps or params differ from the snapshot."""
    changes = changed_files(files_before, watched, root)
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
