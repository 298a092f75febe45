"""Atomic file and folder writes: an output is either complete or absent.

Every writer builds its result beside the destination under a temporary name and renames it in
place only when finished, so an interrupted or failed stage never leaves a partial file that a
later stage (or DVC) could mistake for a result.

Temporary names are hidden siblings that carry the writer's identity:
``.<name>.pid<pid>-<start>-<random>.tmp`` (``<start>``: the process start time, see
:mod:`porescope.parallel.liveness`), and ``.<name>.old-pid<pid>-<start>`` for the output being
replaced. An exception, Ctrl-C or SIGTERM (handled like Ctrl-C while an output is built, see
:func:`porescope.parallel.termination.exit_on_sigterm`) removes them; a ``kill -9`` cannot,
so before writing into a folder the writer removes the temporaries there whose process is no
longer running (:func:`remove_stale_temporaries`). Temporaries of live writers, and hidden
files of any other name, are left alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from porescope.parallel.liveness import current_process, process_alive
from porescope.parallel.termination import exit_on_sigterm

LOG = logging.getLogger("porescope")

#: A temporary sibling written by this module: ``.<name>.pid<pid>-<start>-<random>.tmp<sfx>``
#: or ``.<name>.old-pid<pid>-<start>`` (``<start>`` is ``x`` where it is not known).
TEMPORARY_NAME = re.compile(r"^\..+\.(?:pid(?P<pid>\d+)-(?P<start>\d+|x)-[A-Za-z0-9_]+\.tmp.*"
                            r"|old-pid(?P<old_pid>\d+)-(?P<old_start>\d+|x))$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


_identities: dict[int, str] = {}


def _identity() -> str:
    """``pid<pid>-<start>`` of this process (cached per process id: forked children differ)."""
    pid = os.getpid()
    if pid not in _identities:
        start = current_process()[1]
        _identities[pid] = f"pid{pid}-{'x' if start is None else start}"
    return _identities[pid]


_swept: set[str] = set()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by writers that no longer run (killed with
    ``kill -9``, out of memory, power cut); returns what was removed.

    Only names of :data:`TEMPORARY_NAME`'s form whose process (id and start time) is dead are
    touched: a live writer's temporaries and any other file are left as they are.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / ".tiles.pid999999999-1-abc.tmp").mkdir()   # no such process
    >>> (d / ".notes.txt").write_text("kept")
    4
    >>> [p.name for p in remove_stale_temporaries(d)]
    ['.tiles.pid999999999-1-abc.tmp']
    >>> sorted(p.name for p in d.iterdir())
    ['.notes.txt']
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMPORARY_NAME.match(entry.name)
        if not m:
            continue
        pid, start = (m["pid"], m["start"]) if m["pid"] else (m["old_pid"], m["old_start"])
        if process_alive(int(pid), None if start == "x" else int(start)):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        LOG.info("removed %s, left by a run that was killed (process %s)", path, pid)
        removed.append(path)
    return removed


def _sweep_once(folder: Path) -> None:
    """:func:`remove_stale_temporaries` the first time this process writes into ``folder``."""
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temporaries(folder)


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    _sweep_once(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_identity()}-", suffix=f".tmp{suffix}",
                                dir=path.parent)
    os.close(fd)
    os.chmod(name, _FILE_MODE)  # mkstemp makes 0600; outputs get the usual umask-based mode
    return Path(name)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it is renamed to ``path`` when the block
    ends normally and removed on any exception, Ctrl-C or SIGTERM (``path`` is then unchanged)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exit_on_sigterm():
        tmp = _tmp_sibling(path)
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for stable hashes)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: str | os.PathLike, frame: "Any", **kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index, ``\\n`` line ends)."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    return write_text(path, frame.to_csv(**kwargs))


def encode_png(image: np.ndarray, name: str | os.PathLike = "image") -> bytes:
    """PNG bytes of a ``uint8``/``uint16`` grey or BGR image (OpenCV's encoder; ``name`` is
    for the error message)."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{name}: OpenCV could not encode an array of shape {image.shape}")
    return buf.tobytes()


def encode_png_palette(index: np.ndarray, palette: Sequence[tuple[int, int, int]],
                       name: str | os.PathLike = "image") -> bytes:
    """PNG bytes of a palette image: ``uint8`` indices into ``palette`` (RGB triples, at most
    256), one byte per pixel in memory and in the file (Pillow's encoder, fastest level)."""
    from PIL import Image

    index = np.ascontiguousarray(index)
    if index.dtype != np.uint8 or index.ndim != 2:
        raise ValueError(f"{name}: a palette image is a 2-D uint8 array, got {index.dtype} "
                         f"{index.shape}")
    im = Image.frombuffer("P", (index.shape[1], index.shape[0]), index, "raw", "P", 0, 1)
    im.putpalette([c for rgb in palette for c in rgb])
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode a ``uint8``/``uint16`` grey or BGR image as PNG and write it atomically."""
    return write_bytes(path, encode_png(image, path))


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in place of ``path``.

    Yields the temporary folder. On success an existing ``path`` is replaced (when ``overwrite``;
    otherwise a ``FileExistsError`` is raised before anything is written); on any exception,
    Ctrl-C or SIGTERM the temporary folder is removed and ``path`` is left as it was. Stale
    temporaries of killed runs beside ``path`` are removed first.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; choose another output or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    with exit_on_sigterm():
        remove_stale_temporaries(path.parent)
        _swept.add(os.path.abspath(path.parent))
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_identity()}-", suffix=".tmp",
                                    dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _swap_in(tmp: Path, path: Path) -> None:
    """Replace ``path`` by ``tmp`` (the old output is moved aside first, then deleted)."""
    old = None
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.old-{_identity()}")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)  # put the previous output back
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
