"""``porescope lineage``: from any pipeline output back to the raw micrographs, and the reverse.

Three questions a certificate reviewer asks, answered from ``dvc.yaml`` / ``dvc.lock``, the
DVC cache and the split manifest (``data/split/sources.csv``):

* **Where does this come from?** :func:`lineage` (``porescope lineage PATH``): the stage that
  produced ``PATH`` (an out of a stage, or a file inside an output folder), recursively the
  stages producing its deps, each with its params (the values ``dvc.lock`` recorded) and its
  dep / out hashes, down to the raw source files listed in the manifest with their SHA-256 and
  the split each belongs to, and the git commit.
* **Is it still what was recorded?** :func:`verify_lineage` (``--verify``): re-hashes every
  dep and out of the chain in the workspace with DVC's own hashing (``dvc_data``: file MD5,
  and for folders the ``.dir`` hash built exactly as DVC builds it, ``.dvcignore`` applied),
  every object of those outputs in the DVC cache (an object's name is its MD5), and the raw
  source files against the manifest's SHA-256. Each file whose content differs is named; the
  command exits with status 1.
* **What did this micrograph / dataset feed?** :func:`uses` (``--uses FILE``): every model,
  metrics file, plot and report, in the workspace, in every git commit that changed
  ``dvc.lock`` and in every experiment (``dvc exp list -A``), that a given source file (path or
  SHA-256) or dataset (folder, ``.dir`` hash or dataset name such as ``RDZF800``) fed.

Which split feeds what. A stage *selects* splits from the manifest: by default ``augment``
reads the train split, ``train`` the train (augmented) and val splits, ``evaluate`` and
``analyze`` the test split (:data:`DEFAULT_SPLIT_USE`); a stage can declare its own with
``meta: {splits: [train, val]}`` in ``dvc.yaml``. The splits feeding an output are those
selected by its stage and the stages upstream of it; when none of them selects, the whole
manifest feeds it. So a model is fed by train + val sources, ``metrics/evaluate.json`` by the
test sources directly and by the train + val sources through the model.

Reading any revision. :class:`RepoView` reads ``dvc.lock`` / ``dvc.yaml`` / git-tracked files
at a git revision (or the workspace) and DVC-tracked files from the workspace or the cache
(through the ``.dir`` listing of their output), so lineage works on a clone where nothing was
pulled as long as the cache holds the small manifests.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from porescope.provenance.dep_guard import (
    Out,
    StageSpec,
    StageSpecError,
    dvc_dir_hash,
    dvc_file_md5,
    parse_pipeline,
    producer_of,
    sha256_file,
)
from porescope.errors import PorescopeError

SPLITS = ("train", "val", "test")

#: Splits a stage reads from the manifest, by stage name (overridden by ``meta: {splits: [...]}``).
DEFAULT_SPLIT_USE: dict[str, tuple[str, ...]] = {
    "augment": ("train",),
    "train": ("train", "val"),
    "evaluate": ("test",),
    "analyze": ("test",),
}

#: Output kinds shown by ``--uses`` unless ``--all-outs``.
REPORTED_KINDS = ("model", "metrics", "plots", "report")

_MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".ckpt", ".safetensors")
_REPORT_SUFFIXES = (".md", ".html", ".pdf", ".docx", ".tex")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class LineageError(PorescopeError, ValueError):
    """A path, revision or file cannot be traced; the message names it and what is missing."""


# --------------------------------------------------------------------------------------------
# git / repository helpers
# --------------------------------------------------------------------------------------------

def find_repo_root(start: str | os.PathLike = ".") -> Path:
    """The nearest folder at or above ``start`` holding ``dvc.yaml`` or ``.dvc``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() or (folder / ".dvc").is_dir():
            return folder
    raise LineageError(f"{Path(start)}: not inside a DVC project (no dvc.yaml or .dvc above it)")


def _git(root: Path, *args: str, check: bool = True) -> str | None:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        if check:
            raise LineageError(f"git {' '.join(args)} (in {root}) failed: {proc.stderr.strip()}")
        return None
    return proc.stdout


def git_state(root: str | os.PathLike) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": [tracked paths modified vs HEAD]}`` (``git status``)."""
    root = Path(root)
    commit = _git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    status = _git(root, "status", "--porcelain", "--untracked-files=no", check=False) or ""
    dirty = sorted(line[3:].strip() for line in status.splitlines() if line.strip())
    return {"commit": commit.strip() if commit else None, "dirty": dirty}


def experiment_refs(root: str | os.PathLike) -> list[tuple[str, str, str]]:
    """All experiments as ``(name, commit sha, baseline sha)``: ``dvc exp list --all-commits``
    through DVC's API; when DVC's repository lock is held (a run in progress), the same refs
    read with ``git for-each-ref refs/exps``."""
    root = Path(root)
    found: list[tuple[str, str, str]] = []
    try:
        from dvc.repo import Repo

        with Repo(os.fspath(root)) as repo:
            listed = repo.experiments.ls(all_commits=True)
        for baseline, items in listed.items():
            found += [(name, sha, baseline) for name, sha in items if sha]
        return sorted(found)
    except Exception:  # lock held, or no git: fall back to the refs themselves
        pass
    out = _git(root, "for-each-ref", "refs/exps", "--format=%(objectname) %(refname)", check=False) or ""
    for line in out.splitlines():
        sha, ref = line.split(" ", 1)
        parts = ref.split("/")
        if len(parts) >= 5 and parts[2] != "celery" and not ref.endswith("stash"):
            found.append((parts[-1], sha, parts[2] + parts[3]))
    return sorted(found)


def resolve_revision(root: str | os.PathLike, name: str) -> tuple[str, str]:
    """``(commit sha, label)`` of a git revision (branch, tag, sha, ``HEAD~1``) or an experiment
    name (``dvc exp list -A``); :class:`LineageError` when it is neither."""
    root = Path(root)
    sha = _git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    if sha:
        return sha.strip(), name
    matches = [(n, s) for n, s, _ in experiment_refs(root) if n == name]
    if len(matches) == 1:
        return matches[0][1], f"exp {name}"
    if matches:
        raise LineageError(f"{name}: several experiments have this name ({', '.join(s[:7] for _, s in matches)}); "
                           "give the commit sha")
    raise LineageError(f"{name}: not a git revision or an experiment name of {root}")


# --------------------------------------------------------------------------------------------
# DVC hashing: dvc_file_md5 / dvc_dir_hash live in dep_guard (shared with the model card)
# --------------------------------------------------------------------------------------------

def _hash_name(entry: Mapping[str, Any]) -> str:
    return "md5" if entry.get("hash") == "md5" else "md5-dos2unix"


# --------------------------------------------------------------------------------------------
# a revision of the repository
# --------------------------------------------------------------------------------------------

def _cache_dir(root: Path) -> Path:
    try:
        from dvc.repo import Repo

        with Repo(os.fspath(root)) as repo:
            return Path(repo.cache.local.path)
    except Exception:
        return root / ".dvc" / "cache" / "files" / "md5"


class RepoView:
    """``dvc.lock``, ``dvc.yaml`` and files of one revision (``rev=None``: the workspace)."""

    def __init__(self, root: str | os.PathLike, rev: str | None = None, *, cache_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.rev = rev
        self._cache_dir = cache_dir
        self._listings: dict[str, dict[str, str] | None] = {}

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = _cache_dir(self.root)
        return self._cache_dir

    def cache_object(self, md5: str) -> Path:
        return self.cache_dir / md5[:2] / md5[2:]

    def git_bytes(self, path: str) -> bytes | None:
        """A file as git (``rev``) or the workspace (``rev=None``) has it; ``None`` if absent."""
        if self.rev is None:
            full = self.root / path
            return full.read_bytes() if full.is_file() else None
        proc = subprocess.run(["git", "show", f"{self.rev}:{path}"], cwd=self.root, capture_output=True)
        return proc.stdout if proc.returncode == 0 else None

    def _yaml(self, path: str) -> Any:
        data = self.git_bytes(path)
        if data is None:
            return None
        try:
            return yaml.safe_load(data.decode("utf-8"))
        except yaml.YAMLError as exc:
            raise LineageError(f"{path} ({self.label}): not valid YAML: {exc}") from None

    @property
    def label(self) -> str:
        return "workspace" if self.rev is None else self.rev[:10]

    @cached_property
    def lock(self) -> dict[str, Any]:
        doc = self._yaml("dvc.lock")
        if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
            raise LineageError(f"dvc.lock ({self.label}): absent or without stages; run `dvc repro` first")
        return doc["stages"]

    @cached_property
    def declared(self) -> dict[str, StageSpec]:
        """``dvc.yaml`` of this revision (for output kinds and ``meta``); {} if unreadable."""
        doc = self._yaml("dvc.yaml")
        if not isinstance(doc, dict):
            return {}
        context = self._yaml("params.yaml") or {}
        for entry in doc.get("vars") or []:
            if isinstance(entry, dict):
                context.update(entry)
        try:
            return parse_pipeline(doc, context, f"dvc.yaml ({self.label})")
        except StageSpecError:
            return {}

    @cached_property
    def declared_doc(self) -> dict[str, Any]:
        doc = self._yaml("dvc.yaml")
        return doc if isinstance(doc, dict) else {}

    @cached_property
    def stages(self) -> dict[str, StageSpec]:
        """Stages as ``dvc.lock`` recorded them (resolved paths), outs typed from ``dvc.yaml``."""
        declared_outs = {o.path: o for spec in self.declared.values() for o in spec.outs}
        stages = {}
        for name, entry in self.lock.items():
            outs = [declared_outs.get(o["path"], Out(o["path"])) for o in entry.get("outs", [])]
            stages[name] = StageSpec(name=name, cmd=str(entry.get("cmd", "")),
                                     deps=[d["path"] for d in entry.get("deps", [])], outs=outs,
                                     meta=self.declared[name].meta if name in self.declared else {})
        return stages

    def entry(self, stage: str, path: str) -> dict[str, Any] | None:
        """The ``dvc.lock`` out entry of ``stage`` for ``path`` (or ``None``)."""
        for out in self.lock.get(stage, {}).get("outs", []):
            if out["path"] == path:
                return out
        return None

    def listing(self, dir_md5: str) -> dict[str, str] | None:
        """``{relpath: md5}`` of a ``.dir`` object in the cache; ``None`` when not cached."""
        if dir_md5 not in self._listings:
            obj = self.cache_object(dir_md5)
            try:
                items = json.loads(obj.read_text(encoding="utf-8"))
                self._listings[dir_md5] = {i["relpath"]: i["md5"] for i in items}
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                self._listings[dir_md5] = None
        return self._listings[dir_md5]

    def locate(self, path: str) -> tuple[str, dict[str, Any], str] | None:
        """``(stage, lock out entry, path inside the out or "")`` of the out holding ``path``."""
        hit = producer_of(path, self.stages)
        if hit is None or not (path == hit[1].path or path.startswith(hit[1].path + "/")):
            return None
        entry = self.entry(hit[0], hit[1].path)
        if entry is None:
            return None
        return hit[0], entry, path[len(hit[1].path) + 1:] if path != hit[1].path else ""

    def md5_of(self, path: str) -> str | None:
        """The MD5 ``dvc.lock`` (and the ``.dir`` listing) record for ``path``; ``None`` if unknown."""
        where = self.locate(path)
        if where is None:
            return None
        _, entry, inner = where
        if not inner:
            return entry.get("md5")
        listing = self.listing(entry.get("md5", "")) if str(entry.get("md5", "")).endswith(".dir") else None
        return listing.get(inner) if listing else None

    def read_bytes(self, path: str) -> bytes | None:
        """A file of this revision: the workspace copy (workspace view), the cache object of a
        DVC-tracked file, or git's copy of a git-tracked one; ``None`` when unavailable."""
        if self.rev is None and (self.root / path).is_file():
            return (self.root / path).read_bytes()
        md5 = self.md5_of(path)
        if md5 and not md5.endswith(".dir") and self.cache_object(md5).is_file():
            return self.cache_object(md5).read_bytes()
        return self.git_bytes(path) if self.rev is not None else None

    def exists(self, path: str) -> bool:
        """Whether ``path`` (a file or folder) is part of this revision (workspace, git or lock)."""
        if self.rev is None and (self.root / path).exists():
            return True
        where = self.locate(path)
        if where is not None:
            _, entry, inner = where
            if not inner:
                return True
            listing = self.listing(entry.get("md5", "")) if str(entry.get("md5", "")).endswith(".dir") else None
            if listing is not None:
                return inner in listing or any(k.startswith(inner + "/") for k in listing)
        if self.rev is not None:
            return _git(self.root, "cat-file", "-e", f"{self.rev}:{path}", check=False) is not None
        return False

    def kind_of(self, path: str, stage: str | None = None) -> str:
        """``model``, ``metrics``, ``plots``, ``report`` or ``data`` for an out path."""
        declared = {o.path: o for spec in self.declared.values() for o in spec.outs}
        artifacts = self.declared_doc.get("artifacts") or {}
        for art in artifacts.values():
            if isinstance(art, dict) and art.get("path") == path:
                return str(art.get("type") or "model")
        out = declared.get(path)
        if out is not None and out.kind in ("metrics", "plots"):
            return out.kind
        for plot_file in self.plot_files:
            if plot_file == path or plot_file.startswith(path.rstrip("/") + "/"):
                return "plots"
        suffix = PurePosixPath(path).suffix.lower()
        if suffix in _MODEL_SUFFIXES:
            return "model"
        if suffix in _REPORT_SUFFIXES or stage == "report" or path.startswith("reports/"):
            return "report"
        return "data"

    @cached_property
    def plot_files(self) -> list[str]:
        """Files that the top-level ``plots:`` of ``dvc.yaml`` draw from."""
        found: list[str] = []
        for item in self.declared_doc.get("plots") or []:
            if isinstance(item, str):
                found.append(item)
                continue
            if not isinstance(item, dict):
                continue
            for plot_id, spec in item.items():
                axes = [spec.get(a) for a in ("x", "y")] if isinstance(spec, dict) else []
                files = [f for axis in axes if isinstance(axis, dict) for f in axis]
                found.extend(files or [plot_id])
        return [PurePosixPath(f).as_posix() for f in found]


# --------------------------------------------------------------------------------------------
# lineage
# --------------------------------------------------------------------------------------------

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


def _stage_chain(stage: str, stages: Mapping[str, StageSpec]) -> list[str]:
    """``stage`` then its ancestors, downstream first (reverse ``dvc.lock`` order, which DVC
    writes in pipeline order)."""
    seen, todo = {stage}, deque([stage])
    while todo:
        name = todo.popleft()
        for dep in stages[name].deps:
            hit = producer_of(dep, stages)
            if hit and hit[0] not in seen and hit[0] != name:
                seen.add(hit[0])
                todo.append(hit[0])
    order = list(stages)
    return [stage] + sorted(seen - {stage}, key=lambda n: -order.index(n))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, sub in value.items():
            flat.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _relpath(path: str | os.PathLike, root: Path) -> str:
    full = Path(path)
    if not full.is_absolute():
        full = Path.cwd() / full
    try:
        rel = Path(os.path.normpath(full)).relative_to(root)
    except ValueError:
        raise LineageError(f"{path}: not inside the project {root}") from None
    return rel.as_posix()


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
    target = _relpath(path, root) if rev is None or Path(path).is_absolute() else PurePosixPath(path).as_posix()
    where = view.locate(target)
    if where is None:
        outs = ", ".join(o for s in view.stages.values() for o in s.out_paths)
        raise LineageError(f"{target}: no stage in dvc.lock ({label}) produces it (outs: {outs}); "
                           f"for what a source file fed, use --uses")
    stage_name, out_entry, inner = where
    chain = _stage_chain(stage_name, view.stages)
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
    raw, code = [], []
    for name in chain:
        for dep in view.lock[name].get("deps", []):
            if producer_of(dep["path"], view.stages) is not None:
                continue
            record = {"path": dep["path"], "md5": dep.get("md5"), "stage": name}
            (code if _is_code(dep["path"]) else raw).append(record)
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


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------

@dataclass
class Problem:
    """A file whose content differs from the record (``kind``: workspace, cache, source)."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail} [{self.kind}]"


def verify_lineage(report: Mapping[str, Any], root: str | os.PathLike | None = None,
                   *, check_cache: bool = True) -> tuple[list[Problem], list[str], int]:
    """Re-hash everything a :func:`lineage` report (of the workspace) names.

    Every dep and out of every stage in the chain: the workspace file (DVC MD5) or folder (DVC
    ``.dir`` hash; on a mismatch each differing, added or removed file is named using the
    ``.dir`` listing in the cache); with ``check_cache``, every cache object of those outputs
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
                entries[(item["path"], item["md5"])] = (_hash_name(item), cached)
    seen_objects: set[str] = set()
    for (path, md5), (hash_name, cached) in sorted(entries.items()):
        full = root / path
        listing = view.listing(md5) if md5.endswith(".dir") else None
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
    return problems, absent, checked


# --------------------------------------------------------------------------------------------
# uses (the reverse question)
# --------------------------------------------------------------------------------------------

@dataclass
class Item:
    """What ``--uses`` looks for: a file (sha256 / md5 / path) or a dataset (.dir md5 / name)."""

    text: str
    sha256: str | None = None
    md5: str | None = None
    path: str | None = None
    name: str | None = None


def identify(text: str, root: Path) -> Item:
    """Turn ``--uses`` input into what to match: an existing file (its SHA-256, DVC MD5 and
    path), an existing folder (its DVC ``.dir`` hash and path), a 64-hex SHA-256, a 32-hex MD5
    (``.dir`` allowed), or else a dataset name (``dataset.json`` ``name``) / repository path."""
    candidate = Path(text)
    full = candidate if candidate.is_absolute() else Path.cwd() / candidate
    if full.is_file():
        rel = _relpath(full, root) if str(full.resolve()).startswith(str(root)) else None
        return Item(text, sha256=sha256_file(full), md5=dvc_file_md5(full), path=rel)
    if full.is_dir():
        rel = _relpath(full, root)
        return Item(text, md5=dvc_dir_hash(full, root).md5, path=rel)
    bare = text.removesuffix(".dir")
    if _HEX.match(bare) and len(bare) == 64:
        return Item(text, sha256=bare.lower())
    if _HEX.match(bare) and len(bare) == 32:
        return Item(text, md5=text.lower())
    if "/" in text:
        return Item(text, path=PurePosixPath(text).as_posix())
    return Item(text, name=text)


def _downstream(start: Iterable[str], stages: Mapping[str, StageSpec]) -> set[str]:
    result = set(start)
    changed = True
    while changed:
        changed = False
        for name, spec in stages.items():
            if name in result:
                continue
            for dep in spec.deps:
                hit = producer_of(dep, stages)
                if hit and hit[0] in result:
                    result.add(name)
                    changed = True
                    break
    return result


def _path_between(src: str, dst: str, stages: Mapping[str, StageSpec]) -> list[str]:
    """Shortest stage path ``src -> ... -> dst`` following deps downstream ([] if none)."""
    children: dict[str, list[str]] = {n: [] for n in stages}
    for name, spec in stages.items():
        for dep in spec.deps:
            hit = producer_of(dep, stages)
            if hit and hit[0] != name and name not in children[hit[0]]:
                children[hit[0]].append(name)
    prev: dict[str, str | None] = {src: None}
    todo = deque([src])
    while todo:
        node = todo.popleft()
        if node == dst:
            path = [node]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for child in children[node]:
            if child not in prev:
                prev[child] = node
                todo.append(child)
    return []


def _uses_in_view(view: RepoView, item: Item) -> list[dict[str, str]]:
    """Outputs of one revision that ``item`` fed: ``{output, kind, md5, how}``."""
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
        for name in _downstream([manifest.stage], stages):
            chain = _stage_chain(name, stages)
            if manifest.stage not in chain:
                continue
            feeds = feeding_splits(chain, stages)
            if feeds is not None and split not in feeds:
                continue
            selectors = feeds.get(split, []) if feeds else []
            route = [manifest.stage]
            for sel in sorted(selectors, key=lambda s: len(_stage_chain(s, stages))):
                step = _path_between(route[-1], sel, stages)
                if step:
                    route += step[1:]
            step = _path_between(route[-1], name, stages)
            route += step[1:] if step else []
            label = f"{row.get('source_id')} [{split or 'no split'}]"
            emit(name, f"source {label} -> " + " -> ".join(route))
    if matched_rows:
        return _ordered(hits, stages)
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
                for consumer in _downstream([name], stages) - {name}:
                    route = _path_between(name, consumer, stages)
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
                for consumer in _downstream([name], stages):
                    route = _path_between(name, consumer, stages)
                    seeds.setdefault(consumer, f"input {inside or dep['path']} of {name} -> " + " -> ".join(route))
    for consumer, how in seeds.items():
        emit(consumer, how)
    return _ordered(hits, stages)


def _ordered(hits: list[dict[str, str]], stages: Mapping[str, StageSpec]) -> list[dict[str, str]]:
    order = list(stages)
    return sorted(hits, key=lambda h: (order.index(h["stage"]) if h["stage"] in order else len(order), h["output"]))


def revisions(root: Path, *, history: bool = True, experiments: bool = True) -> list[tuple[str, str | None]]:
    """``(label, sha)``: the workspace, each commit (branches and tags) that changed ``dvc.lock``,
    newest first, and each experiment."""
    revs: list[tuple[str, str | None]] = [("workspace", None)]
    if history:
        log = _git(root, "log", "--branches", "--tags", "--format=%H%x09%s", "--", "dvc.lock", check=False) or ""
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
    Rows: ``revision``, ``commit``, ``output``, ``kind``, ``md5``, ``how``."""
    root = find_repo_root(root or ".")
    item = identify(item_text, root)
    cache_dir = _cache_dir(root)
    rows: list[dict[str, str]] = []
    memo: dict[str, list[dict[str, str]]] = {}
    for label, sha in revisions(root, history=history, experiments=experiments):
        view = RepoView(root, sha, cache_dir=cache_dir)
        lock_bytes = view.git_bytes("dvc.lock")
        if lock_bytes is None:
            continue
        key = hashlib.sha256(lock_bytes + (view.git_bytes("dvc.yaml") or b"")).hexdigest()
        try:
            if key not in memo:
                memo[key] = _uses_in_view(view, item)
        except LineageError:
            continue
        for hit in memo[key]:
            if all_outs or hit["kind"] in REPORTED_KINDS:
                rows.append({"revision": label, "commit": sha or "", **hit})
    return rows


# --------------------------------------------------------------------------------------------
# text output
# --------------------------------------------------------------------------------------------

def _short(md5: Any) -> str:
    text = str(md5 or "")
    return text[:12] + (".dir" if text.endswith(".dir") else "") if text else "-"


def format_lineage(report: Mapping[str, Any], *, max_params: int = 200) -> str:
    """Human-readable text of a :func:`lineage` report."""
    lines = []
    prod = report["produced_by"]
    git = report["git"]
    lines.append(f"{report['target']}  ({prod['kind']}, md5 {prod['md5'] or '?'})")
    lines.append(f"  produced by stage '{prod['stage']}'"
                 + (f" inside its out {prod['out']}" if prod.get("inside_out") else ""))
    state = "clean" if not git.get("dirty") else "modified: " + ", ".join(git["dirty"])
    lines.append(f"  revision: {report['revision']}; git commit {git.get('commit') or '(none)'}"
                 + (f" (work tree {state})" if report["revision"] == "workspace" else ""))
    for stage in report["stages"]:
        lines.append("")
        lines.append(f"stage {stage['stage']}")
        lines.append(f"  cmd: {stage['cmd']}")
        for file, values in (stage.get("params") or {}).items():
            flat = _flatten(values)
            shown = list(flat.items())[:max_params]
            lines.append(f"  params ({file}): " + ", ".join(f"{k}={json.dumps(v)}" for k, v in shown)
                         + (" ..." if len(flat) > max_params else ""))
        width = max([len(d["path"]) for d in stage["deps"] + stage["outs"]] + [10])
        lines.append("  deps:")
        for dep in stage["deps"]:
            files = f" {dep['nfiles']} files" if dep.get("nfiles") else ""
            src = f"  <- {dep['produced_by']}" if dep.get("produced_by") else ""
            lines.append(f"    {dep['path']:<{width}}  {_short(dep.get('md5'))}{files}{src}")
        lines.append("  outs:")
        for out in stage["outs"]:
            files = f" {out['nfiles']} files" if out.get("nfiles") else ""
            lines.append(f"    {out['path']:<{width}}  {_short(out.get('md5'))}{files}  [{out['kind']}]")
    lines.append("")
    feeds = report.get("feeding_splits")
    src = report.get("sources")
    if src:
        if feeds is None:
            how = "all splits (no stage in the chain selects one)"
        else:
            how = "; ".join(f"{s} (selected by {', '.join(st)})" for s, st in feeds.items())
        lines.append(f"raw source files: {src['manifest']} (written by '{src['manifest_stage']}', files under "
                     f"{', '.join(src['roots']) or '?'}); feeding {report['target']}: {how}")
        rows = [r for r in src["files"] if r["feeds"]]
        width = max([len(r["image"]) for r in rows] + [4])
        lines.append(f"  {'split':<6} {'source_id':<20} {'file':<{width}}  sha256")
        for r in rows:
            lines.append(f"  {str(r['split']):<6} {str(r['source_id']):<20} {r['image']:<{width}}  {r['image_sha256']}")
        skipped = len(src["files"]) - len(rows)
        if skipped:
            lines.append(f"  ({skipped} source(s) of other splits do not feed it)")
    else:
        lines.append("raw source files: no sources.csv manifest upstream")
    if report.get("raw_inputs"):
        lines.append("other raw inputs (deps no stage produces):")
        for r in report["raw_inputs"]:
            state = ""
            if "matches_lock" in r:
                state = "; " + {True: "workspace matches dvc.lock", False: "WORKSPACE DIFFERS from dvc.lock",
                                None: "not in the workspace"}[r["matches_lock"]]
            lines.append(f"  {r['path']}  {_short(r['md5'])}  (dep of {r['stage']}{state})")
            for f in r.get("files", []):
                lines.append(f"    {f['path']}  sha256 {f['sha256']}")
    return "\n".join(lines) + "\n"


def format_uses(rows: Sequence[Mapping[str, str]], item: str) -> str:
    """A Markdown table: revision | output | kind | md5 | how it was reached."""
    if not rows:
        return f"{item}: fed no tracked model, metrics, plot or report (workspace, history, experiments)\n"
    lines = [f"Outputs fed by {item}:", "", "| revision | output | kind | md5 | how it was reached |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['revision']} | {r['output']} | {r['kind']} | {_short(r['md5'])} | {r['how']} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def add_lineage_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``porescope lineage`` on the ``porescope`` sub-command parser."""
    p = subparsers.add_parser(
        "lineage", help="trace an output back to the raw micrographs (or a source forward with --uses)",
        description="Print the chain from an output (model, metrics file, measurement table, report, "
                    "plot, or a file inside an output folder) back to the raw source micrographs: each "
                    "stage with its params and dep/out hashes from dvc.lock, the source files with their "
                    "SHA-256 and split, and the git commit. --verify re-hashes everything (workspace, "
                    "DVC cache, sources) and exits 1 naming each file that differs.")
    p.add_argument("path", nargs="?", help="output to trace (repository path)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON instead of text")
    p.add_argument("--verify", action="store_true",
                   help="re-hash the chain's files (workspace + DVC cache) and the raw sources; exit 1 on a difference")
    p.add_argument("--no-cache-check", action="store_true", help="with --verify: skip the DVC cache objects")
    p.add_argument("--strict", action="store_true", help="with --verify: also fail when a file is absent")
    p.add_argument("--rev", default=None, help="git revision or experiment to trace instead of the workspace")
    p.add_argument("--uses", metavar="FILE", default=None,
                   help="reverse: outputs that a source micrograph (path or sha256) or a dataset (folder, "
                        ".dir md5 or name like RDZF800) fed, across the workspace, git history and experiments")
    p.add_argument("--no-history", action="store_true", help="with --uses: skip git history")
    p.add_argument("--no-experiments", action="store_true", help="with --uses: skip experiments")
    p.add_argument("--all-outs", action="store_true", help="with --uses: include intermediate data outputs")
    p.set_defaults(func=cmd_lineage)
    return p


def cmd_lineage(args: argparse.Namespace) -> int:
    """Run ``porescope lineage``; returns the exit status (1: --verify found differences, 2: a
    path, revision or file that cannot be traced, reported as one line on stderr)."""
    try:
        return _run_lineage(args)
    except (LineageError, StageSpecError) as exc:
        print(f"porescope lineage: error: {exc}", file=sys.stderr)
        return 2


def _run_lineage(args: argparse.Namespace) -> int:
    if (args.path is None) == (args.uses is None):
        raise LineageError("give exactly one of PATH or --uses FILE")
    if args.uses is not None:
        rows = uses(args.uses, history=not args.no_history, experiments=not args.no_experiments,
                    all_outs=args.all_outs)
        print(json.dumps(rows, indent=2) if args.json else format_uses(rows, args.uses), end="" if not args.json else "\n")
        return 0
    if args.verify and args.rev:
        raise LineageError("--verify checks the workspace; do not combine it with --rev")
    report = lineage(args.path, rev=args.rev)
    status = 0
    if args.verify:
        problems, absent, checked = verify_lineage(report, check_cache=not args.no_cache_check)
        report = {**report, "verify": {"checked": checked, "differs": [str(p) for p in problems], "absent": absent,
                                       "ok": not problems and not (args.strict and absent)}}
        status = 0 if report["verify"]["ok"] else 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        text = format_lineage(report)
        if args.verify:
            v = report["verify"]
            text += f"\nverify: {v['checked']} file(s) re-hashed, {len(v['differs'])} differ, {len(v['absent'])} absent\n"
            text += "".join(f"  DIFFERS {p}\n" for p in v["differs"])
            text += "".join(f"  absent  {a}\n" for a in v["absent"][:50])
            if len(v["absent"]) > 50:
                text += f"  ... {len(v['absent']) - 50} more absent\n"
        print(text, end="")
    if status:
        print(f"porescope lineage: {len(report['verify']['differs'])} file(s) differ from what dvc.lock / "
              f"{(report.get('sources') or {}).get('manifest', 'the manifest')} recorded", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m porescope.provenance.lineage ...`` (same as ``porescope lineage ...``)."""
    parser = argparse.ArgumentParser(prog="porescope")
    sub = parser.add_subparsers(dest="command", required=True)
    add_lineage_parser(sub)
    args = parser.parse_args(["lineage", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
