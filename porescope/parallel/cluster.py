"""Mapping a function over many items in this process or on a Dask cluster, results in order.

Used to measure large collections of micrographs: one task per image, each a pure function of
its arguments, so the results are the same whatever the scheduler, the number of workers or the
order in which tasks finish. ``scheduler``:

* ``None`` with ``workers <= 1``: a plain loop in this process (no Dask);
* ``None`` with ``workers > 1``, or ``"local"``: a ``dask.distributed.LocalCluster`` of ``workers``
  single-threaded processes on this machine, closed afterwards;
* an address such as ``tcp://10.0.0.5:8786``: an existing cluster (``dask scheduler`` on one
  machine, ``dask worker tcp://10.0.0.5:8786`` on each of the others; every worker needs porescope
  installed and the input files and model reachable under the same paths, e.g. a shared mount).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from porescope.errors import PorescopeError

T = TypeVar("T")


class SchedulerError(PorescopeError, ConnectionError):
    """The Dask scheduler address is malformed or nothing answers there."""


def map_ordered(fn: Callable[..., T], items: Sequence[Any], *args: Any, scheduler: str | None = None,
                workers: int = 1) -> list[T]:
    """``[fn(item, *args) for item in items]``, possibly on Dask (see the module docstring)."""
    if not items:
        return []
    if scheduler is None and workers <= 1:
        return [fn(item, *args) for item in items]
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler in (None, "local"):
        # one thread per worker process: the work inside (torch, OpenCV) is itself threaded
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler)
        except (OSError, ValueError, TypeError) as exc:
            raise SchedulerError(f"scheduler {scheduler!r}: cannot connect ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); give the address "
                                 "of a running `dask scheduler` (tcp://HOST:8786) or 'local'") from None
    try:
        futures = client.map(functools.partial(_call, fn, args), list(items), pure=False)
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _call(fn: Callable[..., T], args: tuple[Any, ...], item: Any) -> T:
    return fn(item, *args)
