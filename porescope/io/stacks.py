"""Tile stacks: many same-shaped uint8 tiles in one ``.npy`` file, row ``k`` = row ``k`` of a table.

The ingest tiles (``tiles/images.npy`` and ``tiles/masks.npy``, rows in the order of
``tiles.csv``) and the augmented samples (``images.npy`` and ``masks.npy``, rows in the order of
``samples.csv``) are stored this way rather than as one PNG per tile: DVC hashes, stats and links
every file of an output folder on each ``dvc status`` / ``dvc repro``, and thousands of tile
PNGs made that the larger part of a no-op ``dvc repro``.

A stack is a plain NumPy ``.npy`` file (format 1.0, C order, dtype uint8, shape
``(N, H, W)``): exactly the bytes of ``np.save(path, stack)``, which hold no timestamp, so equal
tiles give equal files. :class:`StackWriter` writes one row at a time (the whole stack is never
in memory) through a temporary file renamed into place when complete; :func:`open_stack` maps
a stack read-only (``np.load(..., mmap_mode="r")``) so a reader touches only the rows it uses;
:func:`table_rows` turns ids into row numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from porescope.io import atomic as atomic_io
from porescope.io.tables import PipelineDataError


class StackWriter:
    """Write an ``(n, *shape)`` uint8 ``.npy`` stack row by row, atomically.

    Use as a context manager; :meth:`append` each row in order. On leaving the block normally
    exactly ``n`` rows must have been appended; the file is then renamed into place. On an
    exception nothing is left behind (an older ``path`` stays as it was).

    Examples
    --------
    >>> import tempfile
    >>> rows = [np.full((2, 3), k, np.uint8) for k in range(4)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with StackWriter(Path(tmp, "a.npy"), 4, (2, 3)) as out:
    ...         for row in rows:
    ...             out.append(row)
    ...     np.save(Path(tmp, "b.npy"), np.stack(rows))
    ...     same = Path(tmp, "a.npy").read_bytes() == Path(tmp, "b.npy").read_bytes()
    ...     back = open_stack(Path(tmp, "a.npy"), n_rows=4)
    ...     print(same, back.shape, back[3, 0].tolist())
    True (4, 2, 3) [3, 3, 3]
    """

    def __init__(self, path: str | os.PathLike, n: int, shape: Sequence[int]) -> None:
        self.path = Path(path)
        self.n = int(n)
        self.shape = tuple(int(s) for s in shape)
        self.written = 0
        self._replacing = None
        self._fh = None

    def __enter__(self) -> StackWriter:
        self._replacing = atomic_io.replacing(self.path)
        tmp = self._replacing.__enter__()
        self._fh = open(tmp, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                  "fortran_order": False, "shape": (self.n, *self.shape)}
        np.lib.format.write_array_header_1_0(self._fh, header)  # what np.save writes
        return self

    def append(self, row: np.ndarray) -> None:
        """Write the next row (shape ``shape``, uint8)."""
        row = np.asarray(row)
        if row.shape != self.shape or row.dtype != np.uint8:
            raise ValueError(f"{self.path}: row {self.written} is {row.dtype} {row.shape}, the stack "
                             f"holds uint8 {self.shape}")
        if self.written >= self.n:
            raise ValueError(f"{self.path}: more than the {self.n} rows declared")
        self._fh.write(np.ascontiguousarray(row).tobytes())
        self.written += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        self._fh.close()
        if exc is None and self.written != self.n:
            short = ValueError(f"{self.path}: {self.written} rows written, {self.n} declared")
            self._replacing.__exit__(ValueError, short, None)  # removes the temporary file
            raise short
        return self._replacing.__exit__(kind, exc, tb)


def open_stack(path: str | os.PathLike, n_rows: int | None = None,
               shape: Sequence[int] | None = None) -> np.ndarray:
    """The stack at ``path``, memory-mapped read-only: ``(N, H, W)`` uint8.

    ``n_rows`` (the rows of the table it belongs to) and ``shape`` (of one row) are checked
    when given. Raises :class:`~porescope.io.tables.PipelineDataError` naming the file when it
    is missing, not a ``.npy`` file, or not as expected.
    """
    path = Path(path)
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise PipelineDataError(f"{path}: missing; rerun the stage that writes it (dvc repro)") from None
    except (ValueError, OSError) as exc:
        raise PipelineDataError(f"{path}: not a readable .npy tile stack ({exc}); rerun the stage "
                                "that writes it") from None
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise PipelineDataError(f"{path}: expected a uint8 stack of 2-D tiles, got {stack.dtype} "
                                f"{stack.shape}")
    if n_rows is not None and len(stack) != n_rows:
        raise PipelineDataError(f"{path}: holds {len(stack)} tiles but its table has {n_rows} rows; "
                                "rerun the stage that writes them")
    if shape is not None and stack.shape[1:] != tuple(shape):
        raise PipelineDataError(f"{path}: tiles are {stack.shape[1:]}, expected {tuple(shape)}")
    return stack


def table_rows(ids: Iterable[str], wanted: Iterable[str], table: str | os.PathLike) -> np.ndarray:
    """Row numbers in ``ids`` (a table's id column, in its order) of the ids ``wanted``, in the
    order wanted. Raises :class:`~porescope.io.tables.PipelineDataError` naming ``table`` for
    an id it lacks.

    Examples
    --------
    >>> table_rows(["a", "b", "c"], ["c", "a"], "tiles.csv").tolist()
    [2, 0]
    """
    row_of = {str(k): i for i, k in enumerate(ids)}
    wanted = [str(k) for k in wanted]
    missing = [k for k in wanted if k not in row_of]
    if missing:
        raise PipelineDataError(f"{table}: has no row for id(s) {missing[:5]}; rerun the stage "
                                "that writes it")
    return np.array([row_of[k] for k in wanted], dtype=np.int64)
