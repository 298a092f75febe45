"""One writer at a time: a lock file that a running stage holds for its workspace.

Two stages writing in the same workspace at once (a ``train`` left running after ``dvc repro``
was killed, and the ``train`` of the next ``dvc repro``) overwrite each other's resume files
and outputs, and nothing tells. While a stage runs it holds the workspace's lock file:

* an exclusive ``flock`` on the file (released by the kernel when the process dies, however it
  dies), and
* in the file, one JSON line naming the holder: process id and start time (see
  :mod:`porescope.parallel.liveness`), what it is (``"stage train"``) and since when.

A second process that finds the ``flock`` taken, or the file naming another live process (on a
file system without ``flock``), gets :class:`WorkspaceBusyError` naming the holder. A lock
whose holder is dead is stale and is taken over. The caller chooses the lock file (one per
workspace).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from porescope.errors import PorescopeError
from porescope.parallel.liveness import current_process, process_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the recorded process id is the only check
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger("porescope")

_held: dict[str, int] = {}  # lock files this process holds -> nesting depth


class WorkspaceBusyError(PorescopeError):
    """Another live process holds the workspace lock; ``holder`` is its record (may be empty)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def read_holder(lock_file: str | os.PathLike) -> dict[str, Any]:
    """The record in a lock file (``pid``, ``start``, ``what``, ``since``), ``{}`` if none."""
    try:
        text = Path(lock_file).read_text()
    except OSError:
        return {}
    try:
        record = json.loads(text.strip() or "{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _holder_alive(record: dict[str, Any]) -> bool:
    try:
        return process_alive(int(record["pid"]), record.get("start"))
    except (KeyError, TypeError, ValueError):
        return False


def _busy(lock_file: Path, record: dict[str, Any]) -> WorkspaceBusyError:
    pid = record.get("pid", "?")
    who = f"{record.get('what', 'another process')} (pid {pid}"
    who += f", running since {record['since']})" if record.get("since") else ")"
    return WorkspaceBusyError(
        f"this workspace is in use by {who}: two writers in one workspace overwrite each "
        f"other's files. Wait for it to finish, or stop it (kill {pid}) if it is left over from "
        f"a killed run (lock file {lock_file})", record)


@contextmanager
def workspace_lock(lock_file: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``lock_file`` for this process while the block runs; ``what`` describes the holder
    in the message another process gets (e.g. ``"stage train"``).

    Raises :class:`WorkspaceBusyError` when another live process holds it; a lock left by a
    dead process is taken over. Nests within one process. On exit the record is cleared (the
    file stays: removing a lock file races with a process that has just opened it).

    Examples
    --------
    >>> import tempfile
    >>> lock = Path(tempfile.mkdtemp()) / "stage.lock"
    >>> with workspace_lock(lock, "stage demo"):
    ...     read_holder(lock)["pid"] == os.getpid()
    True
    >>> read_holder(lock)
    {}
    """
    path = Path(lock_file).absolute()
    key = str(path)
    if _held.get(key):
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(path, read_holder(path)) from None
            except OSError:  # no flock on this file system: the record alone decides
                pass
        old = read_holder(path)
        if old and old.get("pid") != os.getpid() and _holder_alive(old):
            raise _busy(path, old)
        if old:
            LOG.info("%s: took over the lock of %s (pid %s), which is no longer running",
                     path, old.get("what", "a process"), old.get("pid"))
        pid, start = current_process()
        since = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        record = {"pid": pid, "start": start, "what": what, "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        _held[key] = 1
        try:
            yield path
        finally:
            _held.pop(key, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
