"""Process pools that are safe to start from any parent process.

A plain ``fork`` copies the parent's memory but not its threads: once the parent has used
OpenCV's or torch's thread pools (as any test session or notebook has), a forked child that
touches those pools can wait forever on a lock held by a thread that no longer exists. This was
seen as a hang of ``cv2.setNumThreads`` in a forked augmentation worker. Workers therefore
start from a ``forkserver`` (a clean single-threaded process that imports the worker modules once
and forks the workers from there), or by ``spawn`` where forkserver is unavailable.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from multiprocessing.context import BaseContext


def worker_context(preload: Sequence[str] = ()) -> BaseContext:
    """Multiprocessing context for worker pools (pass it as ``mp_context``/use its ``Pool``).

    ``preload`` names modules the fork server imports before forking workers, so each worker
    does not pay for the imports again; it only takes effect before the server first starts.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        return ctx
    return multiprocessing.get_context("spawn")
