"""Is a process still running, and is it still the same process?

A process id alone is not an identity: after a process dies its id is given to a new one (soon,
in a container whose ids start at 1 on every restart). Where ``/proc`` exists (Linux), a process
is identified by its id *and* its start time (clock ticks after boot, ``/proc/<pid>/stat`` field
22), so a recorded ``(pid, start)`` pair that names a dead process is never taken for a live one
that reuses the id. Elsewhere only the id is checked (``os.kill(pid, 0)``), which errs on the
side of "alive".

Used to tell whether a temporary output, a workspace lock or a parent process belongs to a
process that is still running.
"""

from __future__ import annotations

import os
from pathlib import Path


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks after boot, or None (no such process, or
    no ``/proc``).

    Examples
    --------
    >>> start = process_start(os.getpid())
    >>> start is None or start > 0
    True
    """
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def process_parent(pid: int) -> int | None:
    """Parent id of process ``pid`` from ``/proc``, or None.

    Examples
    --------
    >>> process_parent(os.getpid()) in (os.getppid(), None)
    True
    """
    fields = _proc_stat(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def process_name(pid: int) -> str | None:
    """Command name of process ``pid`` (``/proc/<pid>/comm``, e.g. ``"bash"``), or None.

    Examples
    --------
    >>> isinstance(process_name(os.getpid()) or "", str)
    True
    """
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not), and, when ``start`` is given and
    ``/proc`` exists, is the process that started at ``start`` ticks.

    Examples
    --------
    >>> process_alive(os.getpid(), process_start(os.getpid()))
    True
    >>> process_alive(os.getpid(), -1) == (process_start(os.getpid()) is None)
    True
    """
    if pid <= 0:
        return False
    if _has_proc():
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return start is None or int(fields[19]) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def current_process() -> tuple[int, int | None]:
    """``(pid, start)`` of this process, the identity :func:`process_alive` checks.

    Examples
    --------
    >>> pid, start = current_process()
    >>> pid == os.getpid() and process_alive(pid, start)
    True
    """
    pid = os.getpid()
    return pid, process_start(pid)
