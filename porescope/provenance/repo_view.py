"""One revision of a DVC project, read without checking it out: :class:`RepoView`.

:class:`RepoView` reads ``dvc.lock`` / ``dvc.yaml`` / git-tracked files at a git revision (or
the workspace) and DVC-tracked files from the workspace or the cache (through the ``.dir``
listing of their output), so lineage works on a clone where nothing was pulled as long as the
cache holds the small manifests. The git helpers beside it find the project root, the commit
and modified files, the experiments, and turn a revision or experiment name into a commit.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from porescope.errors import PorescopeError
from porescope.provenance.pipeline import (
    LOCK_FILE,
    PARAMS_FILE,
    PIPELINE_FILE,
    Out,
    StageSpec,
    StageSpecError,
    is_inside,
    parse_pipeline,
    producer_of,
)

_MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".ckpt", ".safetensors")
_REPORT_SUFFIXES = (".md", ".html", ".pdf", ".docx", ".tex")


class LineageError(PorescopeError, ValueError):
    """A path, revision or file cannot be traced; the message names it and what is missing."""


# --------------------------------------------------------------------------------------------
# git / repository helpers
# --------------------------------------------------------------------------------------------

def find_repo_root(start: str | os.PathLike = ".") -> Path:
    """The nearest folder at or above ``start`` holding ``dvc.yaml`` or ``.dvc``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / PIPELINE_FILE).is_file() or (folder / ".dvc").is_dir():
            return folder
    raise LineageError(f"{Path(start)}: not inside a DVC project (no dvc.yaml or .dvc above it)")


def git(root: Path, *args: str, check: bool = True) -> str | None:
    """stdout of ``git ARGS`` in ``root``; on failure :class:`LineageError` (``check``) or ``None``."""
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        if check:
            raise LineageError(f"git {' '.join(args)} (in {root}) failed: {proc.stderr.strip()}")
        return None
    return proc.stdout


def git_state(root: str | os.PathLike) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": [tracked paths modified vs HEAD]}`` (``git status``)."""
    root = Path(root)
    commit = git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    status = git(root, "status", "--porcelain", "--untracked-files=no", check=False) or ""
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
    out = git(root, "for-each-ref", "refs/exps", "--format=%(objectname) %(refname)", check=False) or ""
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
    sha = git(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    if sha:
        return sha.strip(), name
    matches = [(n, s) for n, s, _ in experiment_refs(root) if n == name]
    if len(matches) == 1:
        return matches[0][1], f"exp {name}"
    if matches:
        raise LineageError(f"{name}: several experiments have this name ({', '.join(s[:7] for _, s in matches)}); "
                           "give the commit sha")
    raise LineageError(f"{name}: not a git revision or an experiment name of {root}")


def repo_relpath(path: str | os.PathLike, root: Path) -> str:
    """``path`` (absolute, or relative to the current folder) as a POSIX path relative to the
    project ``root``; :class:`LineageError` when it lies outside (compared by path components)."""
    full = Path(path)
    if not full.is_absolute():
        full = Path.cwd() / full
    try:
        rel = Path(os.path.normpath(full)).relative_to(root)
    except ValueError:
        raise LineageError(f"{path}: not inside the project {root}") from None
    return rel.as_posix()


# --------------------------------------------------------------------------------------------
# a revision of the repository
# --------------------------------------------------------------------------------------------

def cache_dir_of(root: Path) -> Path:
    """The project's DVC cache folder of file objects (DVC's config, else the default place)."""
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
            self._cache_dir = cache_dir_of(self.root)
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
        doc = self._yaml(LOCK_FILE)
        if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
            raise LineageError(f"{LOCK_FILE} ({self.label}): absent or without stages; run `dvc repro` first")
        return doc["stages"]

    @cached_property
    def declared(self) -> dict[str, StageSpec]:
        """``dvc.yaml`` of this revision (for output kinds and ``meta``); {} if unreadable."""
        doc = self._yaml(PIPELINE_FILE)
        if not isinstance(doc, dict):
            return {}
        context = self._yaml(PARAMS_FILE) or {}
        for entry in doc.get("vars") or []:
            if isinstance(entry, dict):
                context.update(entry)
        try:
            return parse_pipeline(doc, context, f"{PIPELINE_FILE} ({self.label})")
        except StageSpecError:
            return {}

    @cached_property
    def declared_doc(self) -> dict[str, Any]:
        doc = self._yaml(PIPELINE_FILE)
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
        if hit is None or not is_inside(path, hit[1].path):
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
                return any(is_inside(k, inner) for k in listing)
        if self.rev is not None:
            return git(self.root, "cat-file", "-e", f"{self.rev}:{path}", check=False) is not None
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
            if is_inside(plot_file, path):
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
