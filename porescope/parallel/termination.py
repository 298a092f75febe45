"""Ending a process cleanly: SIGTERM handled like Ctrl-C, and stopping when the parent dies.

* :func:`exit_on_sigterm`: while active, SIGTERM raises :class:`Terminated` (a ``SystemExit``
  with status 143 = 128 + 15) in the main thread, so ``finally`` blocks and context managers run
  (temporary outputs are removed, locks released) before the process exits non-zero, as they do
  for Ctrl-C. Python's default is to die on the spot and leave everything behind.
* :func:`watch_parent`: a daemon thread that notices, within about a second, that the process
  that started this one has died (``kill -9`` of ``dvc repro``), and then sends SIGTERM to this
  process. Nobody is left to record its result, and the next run would otherwise find it still
  writing the same files. When the parent is a shell running the command (``sh -c``), the
  shell's parent is watched as well.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from porescope.parallel.liveness import process_alive, process_name, process_parent, process_start

LOG = logging.getLogger("porescope")

#: Shells that DVC (or a user) may run a command under; their parent is watched too.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish"})


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while :func:`exit_on_sigterm` is active."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + int(signum))


_state_lock = threading.Lock()
_depth = 0
_previous: object = None
_owner_pid = 0


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _owner_pid:  # a forked child inherited the handler: die as by default
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated(signum)


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (exit status 143) in the main thread.

    Nests; the previous handler comes back when the outermost block ends. Does nothing outside
    the main thread or when another SIGTERM handler than the default is installed (the program
    has its own plan).

    Examples
    --------
    >>> with exit_on_sigterm():
    ...     signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    True
    >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    True
    """
    global _depth, _previous, _owner_pid
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _state_lock:
        current = signal.getsignal(signal.SIGTERM)
        installed = _depth > 0 or current in (signal.SIG_DFL, None)
        if installed:
            if _depth == 0:
                _previous, _owner_pid = current, os.getpid()
                signal.signal(signal.SIGTERM, _on_sigterm)
            _depth += 1
    try:
        yield
    finally:
        if installed:
            with _state_lock:
                _depth -= 1
                if _depth == 0:
                    signal.signal(signal.SIGTERM, _previous or signal.SIG_DFL)


def watched_ancestors(pid: int | None = None) -> list[tuple[int, int | None]]:
    """``(pid, start)`` of the processes :func:`watch_parent` watches for ``pid`` (default:
    this process): its parent, and the parent's parent too when the parent is a shell.

    Examples
    --------
    >>> ancestors = watched_ancestors()
    >>> os.getppid() <= 1 or ancestors[0][0] == os.getppid()
    True
    """
    pid = os.getpid() if pid is None else pid
    parent = os.getppid() if pid == os.getpid() else process_parent(pid)
    out: list[tuple[int, int | None]] = []
    if not parent or parent <= 1:
        return out
    out.append((parent, process_start(parent)))
    if process_name(parent) in SHELLS:
        grand = process_parent(parent)
        if grand and grand > 1:
            out.append((grand, process_start(grand)))
    return out


def watch_parent(interval: float = 1.0, grace: float = 30.0) -> Callable[[], None]:
    """Stop this process when the process that started it dies. Returns a function that stops
    the watching.

    Every ``interval`` seconds a daemon thread checks that the parent id is unchanged and that
    the watched ancestors (:func:`watched_ancestors`) still run. When one has died it logs why
    and sends SIGTERM to this process (which :func:`exit_on_sigterm` turns into a clean
    exit); if the process still runs ``grace``
    seconds later (the main thread is stuck in a long native call), it exits at once with
    status 143, leaving temporary outputs for the next run to remove.

    Examples
    --------
    >>> stop = watch_parent(interval=0.5)   # the parent of this process is alive: nothing happens
    >>> stop()                              # and the thread ends at its next check
    """
    ppid = os.getppid()
    ancestors = watched_ancestors()
    stop = threading.Event()

    def dead() -> str | None:
        if os.getppid() != ppid:
            return f"parent process {ppid} has exited"
        for pid, start in ancestors:
            if not process_alive(pid, start):
                return f"process {pid} that started this one has exited"
        return None

    def loop() -> None:
        while not stop.wait(interval):
            why = dead()
            if why is None:
                continue
            LOG.error("%s; stopping (no one is left to record the result, and a new run would "
                      "write the same files)", why)
            os.kill(os.getpid(), signal.SIGTERM)
            if not stop.wait(grace):
                os._exit(128 + signal.SIGTERM)
            return

    if ancestors or ppid > 1:
        threading.Thread(target=loop, name="porescope-parent-watch", daemon=True).start()
    return stop.set
