"""``porescope lineage --verify``: is every file of a chain still what ``dvc.lock`` recorded?

:func:`verify_lineage` re-hashes every dep and out of the chain of a :func:`~porescope.provenance.lineage.lineage`
report in the workspace with DVC's own hashing (``dvc_data``: file MD5, and for folders the
``.dir`` hash built exactly as DVC builds it, ``.dvcignore`` applied), every object of those
outputs in the DVC cache (an object's name is its MD5), and the raw source files against the
manifest's SHA-256. Each file whose content differs is named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from porescope.provenance.hashes import (
    dvc_dir_hash,
    dvc_file_md5,
    dvc_listing_hash,
    lock_hash_name,
    sha256_file,
)
from porescope.provenance.pipeline import producer_of
from porescope.provenance.repo_view import LineageError, RepoView, find_repo_root


@dataclass
class Problem:
    """A file whose content differs from the record (``kind``: workspace, cache, source)."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail} [{self.kind}]"


def _listing_in_output(view: RepoView, path: str, md5: str, hash_name: str) -> dict[str, str] | None:
    """``{relpath: md5}`` of the folder ``path`` that lies inside an output folder (a dep such as
    ``data/ingested/images``; DVC caches no listing of its own for it), taken from that output's
    cached listing when those files give the recorded hash ``md5``; else ``None``."""
    where = view.locate(path)
    if where is None or not where[2]:
        return None
    outer = view.listing(str(where[1].get("md5", "")))
    prefix = where[2] + "/"
    files = {rel[len(prefix):]: m for rel, m in (outer or {}).items() if rel.startswith(prefix)}
    return files if files and dvc_listing_hash(files, hash_name) == md5 else None


def verify_lineage(report: Mapping[str, Any], root: str | os.PathLike | None = None,
                   *, check_cache: bool = True) -> tuple[list[Problem], list[str], int]:
    """Re-hash everything a :func:`lineage` report (of the workspace) names.

    Every dep and out of every stage in the chain: the workspace file (DVC MD5) or folder (DVC
    ``.dir`` hash; on a mismatch each differing, added or removed file is named using the
    ``.dir`` listing in the cache, for a folder inside an output folder the listing of that
    output); with ``check_cache``, every cache object of those outputs
    (its MD5 must equal its name); and the raw source files that feed the target against the
    manifest's SHA-256 (image and mask).

    Returns ``(problems, absent, n_checked)``: ``absent`` lists what could not be checked (not
    in the workspace / not in the cache).
    """
    root = find_repo_root(root or ".")
    if report.get("revision") != "workspace":
        raise LineageError("--verify checks the workspace; run it without --rev")
    view = RepoView(root)
    problems: list[Problem] = []
    absent: list[str] = []
    checked = 0
    entries: dict[tuple[str, str], tuple[str, bool]] = {}
    declared_cache = {o.path: o.cache for s in view.declared.values() for o in s.outs}
    for stage in report["stages"]:
        lock_entry = view.lock[stage["stage"]]
        for item in [*lock_entry.get("deps", []), *lock_entry.get("outs", [])]:
            if item.get("md5"):
                # cache objects belong to whole outputs: a dep inside an output folder is covered
                # by that output's listing, a dep no stage produces is not in the cache
                hit = producer_of(item["path"], view.stages)
                cached = bool(hit and hit[1].path == item["path"] and declared_cache.get(item["path"], True))
                entries[(item["path"], item["md5"])] = (lock_hash_name(item), cached)
    seen_objects: set[str] = set()
    for (path, md5), (hash_name, cached) in sorted(entries.items()):
        full = root / path
        listing = (view.listing(md5) or _listing_in_output(view, path, md5, hash_name)) \
            if md5.endswith(".dir") else None
        if md5.endswith(".dir"):
            if full.is_dir():
                checked += 1
                got = dvc_dir_hash(full, root, hash_name)
                if got.md5 != md5:
                    if listing is None:
                        problems.append(Problem(path, "workspace", f"folder hash {got.md5} != recorded {md5} "
                                                "(its .dir listing is not in the cache, so files cannot be named)"))
                    else:
                        for rel in sorted(set(listing) | set(got.files)):
                            old, new = listing.get(rel), got.files.get(rel)
                            if old != new:
                                what = ("added" if old is None else "removed" if new is None
                                        else f"content differs (md5 {new} != recorded {old})")
                                problems.append(Problem(f"{path}/{rel}", "workspace", what))
            else:
                absent.append(f"{path} (workspace)")
            if check_cache and cached:
                if listing is None:
                    absent.append(f"{path} (.dir listing {md5} not in the cache)")
                else:
                    dir_obj = view.cache_object(md5)
                    if md5 not in seen_objects:
                        seen_objects.add(md5)
                        if dvc_file_md5(dir_obj) + ".dir" != md5:
                            problems.append(Problem(path, "cache", f"the .dir listing {dir_obj} is corrupt"))
                    for rel, obj_md5 in sorted(listing.items()):
                        if obj_md5 in seen_objects:
                            continue
                        seen_objects.add(obj_md5)
                        obj = view.cache_object(obj_md5)
                        if not obj.is_file():
                            absent.append(f"{path}/{rel} (cache)")
                            continue
                        checked += 1
                        if dvc_file_md5(obj, hash_name) != obj_md5:
                            problems.append(Problem(f"{path}/{rel}", "cache",
                                                    f"cache object {obj} does not hash to its name"))
        else:
            if full.is_file():
                checked += 1
                got_md5 = dvc_file_md5(full, hash_name)
                if got_md5 != md5:
                    problems.append(Problem(path, "workspace", f"content differs (md5 {got_md5} != recorded {md5})"))
            else:
                absent.append(f"{path} (workspace)")
            if check_cache and cached and md5 not in seen_objects:
                seen_objects.add(md5)
                obj = view.cache_object(md5)
                if obj.is_file():
                    checked += 1
                    if dvc_file_md5(obj, hash_name) != md5:
                        problems.append(Problem(path, "cache", f"cache object {obj} does not hash to its name"))
                else:
                    absent.append(f"{path} (cache)")
    sources = report.get("sources") or {}
    for row in sources.get("files", []):
        if not row.get("feeds"):
            continue
        for key in ("image", "mask"):
            if not row.get(key) or not row.get(f"{key}_sha256"):
                continue
            full = root / row[key]
            if not full.is_file():
                absent.append(f"{row[key]} (source)")
                continue
            checked += 1
            got = sha256_file(full)
            if got != row[f"{key}_sha256"]:
                problems.append(Problem(row[key], "source", f"sha256 {got} != {sources.get('manifest')} "
                                                            f"{row[f'{key}_sha256']}"))
    # a file dep inside an output folder (train's data/ingested/tiles/images.npy) is checked as
    # the dep and again within the output's listing: name it once
    problems = list({(p.path, p.kind, p.detail): p for p in problems}.values())
    return problems, absent, checked
