"""``porescope lineage --uses``: what did this micrograph / dataset feed?

:func:`uses` lists every model, metrics file, plot and report, in the workspace, in every git
commit that changed ``dvc.lock`` and in every experiment (``dvc exp list -A``), that a given
source file (path or SHA-256) or dataset (folder, ``.dir`` hash or dataset name such as
``RDZF800``) fed, following which splits each stage selects
(:data:`porescope.provenance.lineage.DEFAULT_SPLIT_USE`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from porescope.provenance.hashes import dvc_dir_hash, dvc_file_md5, sha256_file
from porescope.provenance.lineage import feeding_splits, find_manifest
from porescope.provenance.pipeline import LOCK_FILE, PIPELINE_FILE, StageSpec, downstream, path_between, producer_of, stage_chain
from porescope.provenance.repo_view import (
    LineageError,
    RepoView,
    cache_dir_of,
    experiment_refs,
    find_repo_root,
    git,
    repo_relpath,
)

#: Output kinds shown by ``--uses`` unless ``--all-outs``.
REPORTED_KINDS = ("model", "metrics", "plots", "report")

_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass
class Item:
    """What ``--uses`` looks for: a file (sha256 / md5 / path) or a dataset (.dir md5 / name)."""

    text: str
    sha256: str | None = None
    md5: str | None = None
    path: str | None = None
    name: str | None = None

    @property
    def by_reference(self) -> bool:
        """Neither an existing file / folder nor a hash: a repository path or dataset name
        that only a revision can make sense of."""
        return self.sha256 is None and self.md5 is None


def identify(text: str, root: Path) -> Item:
    """Turn ``--uses`` input into what to match: an existing file (its SHA-256, DVC MD5 and
    path), an existing folder (its DVC ``.dir`` hash and path), a 64-hex SHA-256, a 32-hex MD5
    (``.dir`` allowed), or else a dataset name (``dataset.json`` ``name``) / repository path."""
    candidate = Path(text)
    full = candidate if candidate.is_absolute() else Path.cwd() / candidate
    if full.is_file():
        # a file outside the project (compared by path components) is matched by content only
        rel = repo_relpath(full, root) if full.resolve().is_relative_to(root) else None
        return Item(text, sha256=sha256_file(full), md5=dvc_file_md5(full), path=rel)
    if full.is_dir():
        rel = repo_relpath(full, root)
        return Item(text, md5=dvc_dir_hash(full, root).md5, path=rel)
    bare = text.removesuffix(".dir")
    if _HEX.match(bare) and len(bare) == 64:
        return Item(text, sha256=bare.lower())
    if _HEX.match(bare) and len(bare) == 32:
        return Item(text, md5=text.lower())
    if "/" in text:
        return Item(text, path=PurePosixPath(text).as_posix())
    return Item(text, name=text)


def _uses_in_view(view: RepoView, item: Item) -> tuple[list[dict[str, str]], bool]:
    """Outputs of one revision that ``item`` fed: ``{output, kind, md5, how}``, and whether the
    revision knows ``item`` at all (a manifest row, an output or a dependency matched it)."""
    stages = view.stages
    hits: list[dict[str, str]] = []

    def emit(stage: str, how: str) -> None:
        for out in view.lock[stage].get("outs", []):
            hits.append({"output": out["path"], "kind": view.kind_of(out["path"], stage),
                         "md5": str(out.get("md5", "")), "stage": stage, "how": how})

    # 1. a source file listed in a manifest: split-aware
    manifest = None
    if item.sha256 or item.path:
        manifest = find_manifest(view, list(stages))
    matched_rows = []
    if manifest is not None:
        for row in manifest.rows:
            paths = {manifest.source_path(view, row.get(k, "")) for k in ("image_file", "mask_file") if row.get(k)}
            if (item.sha256 and item.sha256 in (row.get("image_sha256"), row.get("mask_sha256"))) or \
                    (item.path and item.path in paths and not item.sha256):
                matched_rows.append(row)
    for row in matched_rows:
        split = row.get("split") or ""
        for name in downstream([manifest.stage], stages):
            chain = stage_chain(name, stages)
            if manifest.stage not in chain:
                continue
            feeds = feeding_splits(chain, stages)
            if feeds is not None and split not in feeds:
                continue
            selectors = feeds.get(split, []) if feeds else []
            route = [manifest.stage]
            for sel in sorted(selectors, key=lambda s: len(stage_chain(s, stages))):
                step = path_between(route[-1], sel, stages)
                if step:
                    route += step[1:]
            step = path_between(route[-1], name, stages)
            route += step[1:] if step else []
            label = f"{row.get('source_id')} [{split or 'no split'}]"
            emit(name, f"source {label} -> " + " -> ".join(route))
    if matched_rows:
        return _ordered(hits, stages), True
    known = False
    # 2. a dataset (an out) or a raw dependency file / folder
    seeds: dict[str, str] = {}
    for name, spec in stages.items():
        for out in view.lock[name].get("outs", []):
            md5 = str(out.get("md5", ""))
            by_hash = item.md5 and md5 == item.md5
            by_path = item.path and not item.md5 and out["path"] == item.path
            by_name = False
            if item.name and md5.endswith(".dir"):
                listing = view.listing(md5) or {}
                if "dataset.json" in listing:
                    data = view.read_bytes(f"{out['path']}/dataset.json")
                    try:
                        by_name = data is not None and json.loads(data).get("name") == item.name
                    except ValueError:
                        by_name = False
            if by_hash or by_path or by_name:
                known = True
                for consumer in downstream([name], stages) - {name}:
                    route = path_between(name, consumer, stages)
                    seeds.setdefault(consumer, f"dataset {out['path']} [{md5[:8]}] of {route[0]} -> "
                                     + " -> ".join(route[1:]))
        for dep in view.lock[name].get("deps", []):
            if producer_of(dep["path"], stages) is not None:
                continue
            md5 = str(dep.get("md5", ""))
            inside = None
            if md5.endswith(".dir") and (item.md5 or item.path):
                listing = view.listing(md5) or {}
                for rel, file_md5 in listing.items():
                    full = f"{dep['path']}/{rel}"
                    if (item.md5 and file_md5 == item.md5) or (item.path and not item.md5 and full == item.path):
                        inside = full
                        break
            if (item.md5 and md5 == item.md5) or inside or (item.path and dep["path"] == item.path):
                known = True
                for consumer in downstream([name], stages):
                    route = path_between(name, consumer, stages)
                    seeds.setdefault(consumer, f"input {inside or dep['path']} of {name} -> " + " -> ".join(route))
    for consumer, how in seeds.items():
        emit(consumer, how)
    return _ordered(hits, stages), known


def _ordered(hits: list[dict[str, str]], stages: Mapping[str, StageSpec]) -> list[dict[str, str]]:
    order = list(stages)
    return sorted(hits, key=lambda h: (order.index(h["stage"]) if h["stage"] in order else len(order), h["output"]))


def revisions(root: Path, *, history: bool = True, experiments: bool = True) -> list[tuple[str, str | None]]:
    """``(label, sha)``: the workspace, each commit (branches and tags) that changed ``dvc.lock``,
    newest first, and each experiment."""
    revs: list[tuple[str, str | None]] = [("workspace", None)]
    if history:
        log = git(root, "log", "--branches", "--tags", "--format=%H%x09%s", "--", LOCK_FILE, check=False) or ""
        for line in log.splitlines():
            sha, _, subject = line.partition("\t")
            revs.append((f"{sha[:7]} {subject[:40]}", sha))
    if experiments:
        for name, sha, _ in experiment_refs(root):
            revs.append((f"exp {name} ({sha[:7]})", sha))
    return revs


def uses(item_text: str, root: str | os.PathLike | None = None, *, history: bool = True,
         experiments: bool = True, all_outs: bool = False) -> list[dict[str, str]]:
    """Every output (model, metrics, plots, report; all kinds with ``all_outs``) fed by a source
    file or dataset, across the workspace, git history and experiments (see :func:`identify`).
    Rows: ``revision``, ``commit``, ``output``, ``kind``, ``md5``, ``how``.

    A path that is neither a file / folder here nor known to any revision searched (a typo, a
    missing file) raises :class:`LineageError` naming it, instead of "fed nothing"."""
    root = find_repo_root(root or ".")
    item = identify(item_text, root)
    cache_dir = cache_dir_of(root)
    rows: list[dict[str, str]] = []
    memo: dict[str, tuple[list[dict[str, str]], bool]] = {}
    known = not item.by_reference
    searched = 0
    for label, sha in revisions(root, history=history, experiments=experiments):
        view = RepoView(root, sha, cache_dir=cache_dir)
        lock_bytes = view.git_bytes(LOCK_FILE)
        if lock_bytes is None:
            continue
        key = hashlib.sha256(lock_bytes + (view.git_bytes(PIPELINE_FILE) or b"")).hexdigest()
        try:
            if key not in memo:
                memo[key] = _uses_in_view(view, item)
            hits, in_view = memo[key]
            known = known or in_view or bool(item.path and view.exists(item.path))
        except LineageError:
            continue
        searched += 1
        for hit in hits:
            if all_outs or hit["kind"] in REPORTED_KINDS:
                rows.append({"revision": label, "commit": sha or "", **hit})
    if not known:
        raise LineageError(f"{item_text}: no such file or folder (in {Path.cwd()}), and none of the {searched} "
                           "revision(s) searched has a source, output or dataset by that path or name")
    return rows
