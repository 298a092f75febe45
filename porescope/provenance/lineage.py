"""Lineage: from any pipeline output back to the raw micrographs (``porescope lineage PATH``).

Three questions a certificate reviewer asks, answered from ``dvc.yaml`` / ``dvc.lock``, the
DVC cache and the split manifest (the ``sources.csv`` upstream, e.g. ``data/split/sources.csv``):

* **Where does this come from?** :func:`lineage` (this module): the stage that produced
  ``PATH`` (an out of a stage, or a file inside an output folder), recursively the stages
  producing its deps, each with its params (the values ``dvc.lock`` recorded) and its dep / out
  hashes, down to the raw source files listed in the manifest with their SHA-256 and the split
  each belongs to, and the git commit.
* **Is it still what was recorded?** :func:`porescope.provenance.verify.verify_lineage`
  (``--verify``): re-hashes every file of the chain, the DVC cache objects and the raw sources.
* **What did this micrograph / dataset feed?** :func:`porescope.provenance.uses.uses`
  (``--uses FILE``): every model, metrics file, plot and report, in the workspace, git history
  and experiments, that a source file or dataset fed.

Which split feeds what. A stage *selects* splits from the manifest: by default ``augment``
reads the train split, ``train`` the train (augmented) and val splits, ``evaluate`` and
``analyze`` the test split (:data:`DEFAULT_SPLIT_USE`); a stage can declare its own with
``meta: {splits: [train, val]}`` in ``dvc.yaml``. The splits feeding an output are those
selected by its stage and the stages upstream of it; when none of them selects, the whole
manifest feeds it. So a model is fed by train + val sources, ``metrics/evaluate.json`` by the
test sources directly and by the train + val sources through the model.

Reading any revision. :class:`~porescope.provenance.repo_view.RepoView` reads ``dvc.lock`` / ``dvc.yaml`` / git-tracked files
at a git revision (or the workspace) and DVC-tracked files from the workspace or the cache
(through the ``.dir`` listing of their output), so lineage works on a clone where nothing was
pulled as long as the cache holds the small manifests.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from porescope.provenance.code_fingerprint import read_fingerprint
from porescope.provenance.hashes import dvc_dir_hash, dvc_file_md5, sha256_file
from porescope.provenance.pipeline import StageSpec, producer_of, stage_chain
from porescope.provenance.repo_view import (
    LineageError,
    RepoView,
    find_repo_root,
    git_state,
    repo_relpath,
    resolve_revision,
)

SPLITS = ("train", "val", "test")

#: Splits a stage reads from the manifest, by stage name (overridden by ``meta: {splits: [...]}``).
DEFAULT_SPLIT_USE: dict[str, tuple[str, ...]] = {
    "augment": ("train",),
    "train": ("train", "val"),
    "evaluate": ("test",),
    "analyze": ("test",),
}


def split_use(stage: StageSpec) -> tuple[str, ...] | None:
    """Splits a stage selects (``meta.splits`` or :data:`DEFAULT_SPLIT_USE`); ``None`` = passes
    the manifest on without selecting (ingest, split, ...)."""
    meta = stage.meta.get("splits") if isinstance(stage.meta, dict) else None
    if meta is not None:
        return tuple(str(s) for s in meta)
    return DEFAULT_SPLIT_USE.get(stage.name)


def feeding_splits(chain: Sequence[str], stages: Mapping[str, StageSpec]) -> dict[str, list[str]] | None:
    """Split -> stages of ``chain`` that select it; ``None`` when no stage selects (all feed)."""
    feeds: dict[str, list[str]] = {}
    for name in chain:
        for split in split_use(stages[name]) or ():
            feeds.setdefault(split, []).append(name)
    if not feeds:
        return None
    return {s: sorted(feeds[s], key=list(stages).index) for s in sorted(feeds, key=_split_order)}


def _split_order(split: str) -> tuple[int, str]:
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def _is_code(path: str) -> bool:
    return path.endswith(".py") or path.startswith(("stages/", "porescope/"))


def _read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


@dataclass
class Manifest:
    """The source list that feeds a chain: the split manifest (or ingest's ``sources.csv``)."""

    path: str                 # e.g. data/split/sources.csv
    rows: list[dict[str, str]]
    roots: list[str]          # folders the rows' image_file / mask_file are relative to
    origin_stage: str         # the stage that first listed the sources (ingest)
    stage: str                # the stage that wrote ``path``

    def source_path(self, view: RepoView, rel: str) -> str:
        """Repository path of a manifest ``image_file`` / ``mask_file``."""
        for root in self.roots:
            candidate = PurePosixPath(root, rel).as_posix()
            if view.exists(candidate):
                return candidate
        return PurePosixPath(self.roots[0], rel).as_posix() if self.roots else rel


def find_manifest(view: RepoView, chain: Iterable[str]) -> Manifest | None:
    """The ``sources.csv`` among the outs of ``chain`` stages: the one with a ``split`` column
    nearest the target, else the first found; its file roots are the folder deps of the most
    upstream stage that lists sources (ingest's ``${ingest.source}``)."""
    chain = list(chain)
    found: list[tuple[str, str, list[dict[str, str]]]] = []
    for name in chain:
        for out in view.stages[name].outs:
            path = out.path if out.path.endswith("sources.csv") else f"{out.path}/sources.csv"
            if not view.exists(path):
                continue
            data = view.read_bytes(path)
            if data is not None:
                found.append((name, path, _read_csv(data)))
    if not found:
        return None
    with_split = [f for f in found if f[2] and "split" in f[2][0]]
    stage, path, rows = (with_split or found)[0]
    order = list(view.stages)
    origin = max((f[0] for f in found), key=lambda n: -order.index(n))  # most upstream
    roots = [d["path"] for d in view.lock[origin].get("deps", [])
             if str(d.get("md5", "")).endswith(".dir") and not _is_code(d["path"])]
    return Manifest(path=path, rows=rows, roots=roots, origin_stage=origin, stage=stage)


def lineage(path: str | os.PathLike, root: str | os.PathLike | None = None, rev: str | None = None) -> dict[str, Any]:
    """The chain from output ``path`` back to the raw source files (see the module docstring).

    ``path``: repository-relative, or relative to the current folder, or absolute; ``rev``: a
    git revision or experiment name (``None``: the workspace's ``dvc.lock``). Returns a JSON-able
    dict: ``target``, ``revision``, ``git``, ``produced_by``, ``stages`` (target's stage first,
    then upstream, each with ``cmd``, ``params``, ``deps``, ``outs``), ``feeding_splits``,
    ``sources`` (manifest, roots, rows with paths, SHA-256 and split, ``feeds`` flag),
    ``raw_inputs`` (non-code deps no stage produces) and ``code``.
    """
    root = find_repo_root(root or ".")
    sha, label = resolve_revision(root, rev) if rev else (None, "workspace")
    view = RepoView(root, sha)
    target = repo_relpath(path, root) if rev is None or Path(path).is_absolute() else PurePosixPath(path).as_posix()
    where = view.locate(target)
    if where is None:
        outs = ", ".join(o for s in view.stages.values() for o in s.out_paths)
        raise LineageError(f"{target}: no stage in dvc.lock ({label}) produces it (outs: {outs}); "
                           f"for what a source file fed, use --uses")
    stage_name, out_entry, inner = where
    chain = stage_chain(stage_name, view.stages)
    stages_out = []
    for name in chain:
        entry = view.lock[name]
        deps = []
        for dep in entry.get("deps", []):
            hit = producer_of(dep["path"], view.stages)
            deps.append({k: dep.get(k) for k in ("path", "md5", "size", "nfiles") if dep.get(k) is not None}
                        | {"produced_by": hit[0] if hit and hit[0] != name else None})
        params = {file: values for file, values in (entry.get("params") or {}).items()}
        stages_out.append({
            "stage": name, "cmd": entry.get("cmd"), "params": params,
            "deps": deps,
            "outs": [{k: o.get(k) for k in ("path", "md5", "size", "nfiles") if o.get(k) is not None}
                     | {"kind": view.kind_of(o["path"], name)} for o in entry.get("outs", [])],
        })
    feeds = feeding_splits(chain, view.stages)
    manifest = find_manifest(view, chain)
    sources: dict[str, Any] | None = None
    if manifest is not None:
        rows = []
        for row in manifest.rows:
            split = row.get("split")
            fed = feeds is None or split in feeds
            item = {"source_id": row.get("source_id"), "split": split, "feeds": fed,
                    "image": manifest.source_path(view, row.get("image_file", "")),
                    "image_sha256": row.get("image_sha256")}
            if row.get("mask_file"):
                item |= {"mask": manifest.source_path(view, row["mask_file"]), "mask_sha256": row.get("mask_sha256")}
            rows.append(item)
        sources = {"manifest": manifest.path, "manifest_stage": manifest.stage, "origin_stage": manifest.origin_stage,
                   "roots": manifest.roots, "files": rows}
    raw, code, declared_code = [], [], []
    fingerprinting: set[str] = set()  # stages that write code fingerprints: their deps are every stage's code
    for name in chain:
        for dep in view.lock[name].get("deps", []):
            hit = producer_of(dep["path"], view.stages)
            if hit is not None:
                files = read_fingerprint(_recorded_bytes(view, dep) or b"") \
                    if dep["path"].endswith(".json") else None
                if files is not None:  # the exact code this stage ran
                    fingerprinting.add(hit[0])
                    code.extend({"path": p, "md5": m, "stage": name} for p, m in files.items())
                continue
            record = {"path": dep["path"], "md5": dep.get("md5"), "stage": name}
            (declared_code if _is_code(dep["path"]) else raw).append(record)
    code += [r for r in declared_code if r["stage"] not in fingerprinting]
    raw = _unique(raw)
    if sha is None:  # list the files of raw inputs the manifest does not already list
        for record in raw:
            if manifest is None or record["path"] not in manifest.roots:
                record.update(_raw_files(root, record))
    target_md5 = out_entry.get("md5") if not inner else view.md5_of(target)
    git = git_state(root) if sha is None else {"commit": sha, "dirty": []}
    return {
        "target": target, "revision": label, "git": git,
        "produced_by": {"stage": stage_name, "out": out_entry["path"], "inside_out": inner or None,
                        "md5": target_md5, "kind": view.kind_of(out_entry["path"], stage_name)},
        "stages": stages_out,
        "feeding_splits": feeds,
        "sources": sources,
        "raw_inputs": raw,
        "code": _unique(code),
    }


def _recorded_bytes(view: RepoView, dep: Mapping[str, Any]) -> bytes | None:
    """A dependency file's content as its stage recorded it: the cache object of the MD5 in
    ``dvc.lock`` (the workspace copy may be newer, e.g. a code fingerprint rewritten since),
    else the file as ``view`` has it."""
    md5 = str(dep.get("md5") or "")
    if md5 and not md5.endswith(".dir") and view.cache_object(md5).is_file():
        return view.cache_object(md5).read_bytes()
    return view.read_bytes(dep["path"])


def _raw_files(root: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """For a raw folder / file input in the workspace: whether it still has the recorded hash
    and its files with MD5 and SHA-256 (DVC does not keep listings of dependency folders)."""
    full = root / record["path"]
    md5 = str(record.get("md5") or "")
    if full.is_dir() and md5.endswith(".dir"):
        got = dvc_dir_hash(full, root)
        files = [{"path": f"{record['path']}/{rel}", "md5": m, "sha256": sha256_file(full / rel)}
                 for rel, m in sorted(got.files.items())]
        return {"matches_lock": got.md5 == md5, "files": files}
    if full.is_file():
        return {"matches_lock": dvc_file_md5(full) == md5,
                "files": [{"path": record["path"], "md5": dvc_file_md5(full), "sha256": sha256_file(full)}]}
    return {"matches_lock": None, "files": []}


def _unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for rec in records:
        key = (rec["path"], rec["md5"])
        if key not in seen:
            seen.add(key)
            out.append(rec)
    return sorted(out, key=lambda r: r["path"])
