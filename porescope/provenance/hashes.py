"""Content hashes: SHA-256 of a file, and DVC's own file and folder (``.dir``) hashes.

:func:`dvc_file_md5` / :func:`dvc_dir_hash` compute, with ``dvc_data`` (imported on first use),
exactly what ``dvc.lock`` records, so a workspace file or folder can be checked against it.
This module imports only the standard library at import time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def lock_hash_name(entry: Mapping[str, Any]) -> str:
    """The hash a ``dvc.lock`` dep / out entry was written with: ``md5`` (``hash: md5``, DVC 3)
    or ``md5-dos2unix`` (DVC 2 entries, which have no ``hash`` field).

    Examples
    --------
    >>> lock_hash_name({"path": "a", "hash": "md5", "md5": "..."}), lock_hash_name({"path": "a"})
    ('md5', 'md5-dos2unix')
    """
    return "md5" if entry.get("hash") == "md5" else "md5-dos2unix"


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


def dvc_listing_hash(files: Mapping[str, str], hash_name: str = "md5") -> str:
    """DVC's ``.dir`` hash (``<hex>.dir``) of a folder whose files are ``files`` (relative POSIX
    path -> MD5), as :func:`dvc_dir_hash` gives it for the folder itself (sizes do not enter it)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for rel, md5 in sorted(files.items()):
        tree.add(tuple(rel.split("/")), None, HashInfo(hash_name, md5))
    tree.digest()
    return tree.hash_info.value
