"""The model card: what a trained porescope model is, what exactly it was trained on, and how.

:func:`build_model_card` is called by the ``train`` stage after training and returns a
JSON-able dict; :func:`render_model_card_md` turns it into Markdown. The card holds

* the params of the training stage and of every stage upstream of it (``seed`` and the
  ``synthesize`` / ``ingest`` / ``split`` / ``augment`` groups, found from ``dvc.yaml``), the
  model config and class names;
* the content hashes of the exact training / validation inputs: per split the source ids with
  the SHA-256 of their raw files (``<split>/sources.csv``) and one digest over those pairs,
  a digest of the split's tiles (``<split>/tiles.csv`` tile pixel and mask hashes), the
  augmentation dataset's name and a SHA-256 digest of all its files, and the MD5 that
  ``dvc.lock`` records for every output of every upstream stage (DVC writes a stage's lock
  entry as soon as the stage finishes, so when ``train`` runs under ``dvc repro`` its upstream
  entries are already there; those the stage reads are re-hashed with DVC's hashing and marked
  ``matches_workspace``);
* the git commit and the tracked files modified relative to it; library versions; the device;
  epochs run, best epoch and the validation metrics;
* an environment fingerprint (:func:`environment_fingerprint`) and ``rebuild_expectation``.

Digests (recomputable with ``sha256sum``-style tools): each is the SHA-256 of UTF-8 lines
``"<field 1>\\t<field 2>...\\n"`` sorted by the first field:

* ``sources_digest``: ``source_id, image_sha256`` of the split's sources;
* ``tiles_digest``: ``tile_id, image_sha256, mask_sha256`` of the split's tiles;
* ``files_digest`` (augmented dataset): ``relative path, SHA-256 of the file's bytes`` of
  every file of the dataset folder (``images.npy``, ``masks.npy``, ``samples.csv``, ``dataset.json``).

Determinism. The card is a DVC output, so it must be a pure function of the inputs: the same
data, params, code, commit and machine give the same bytes (two cold ``dvc repro`` in two
clones must record the same hash). Wall-clock time, training duration, throughput and the
host name therefore never enter it; they go into a separate run record
(:func:`write_run_record`), which is neither a DVC output nor tracked by git.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from porescope.errors import PorescopeError
from porescope.io.atomic import write_json
from porescope.provenance.code_fingerprint import read_fingerprint
from porescope.provenance.hashes import dvc_dir_hash, dvc_file_md5, lock_hash_name
from porescope.provenance.pipeline import ancestors, is_inside, load_pipeline, params_values, producer_of

CARD_FORMAT = "porescope-model-card/1"

#: Distributions whose versions the card records (import name differs for some).
LIBRARIES = ("torch", "torchvision", "segmentation-models-pytorch", "timm", "numpy", "Augmentor",
             "opencv-python-headless", "dvc", "dvclive", "pandas", "scipy", "scikit-image", "pillow")

#: Fingerprint fields that must agree for a rebuild to be expected bit-identical.
FINGERPRINT_KEYS = ("machine", "device_type", "device_model", "cpu_capability", "python", "torch", "cuda",
                    "cudnn", "libraries", "threads", "seed", "deterministic_algorithms",
                    "deterministic_warn_only", "cudnn_deterministic", "cudnn_benchmark", "amp")


class ModelCardError(PorescopeError, ValueError):
    """An input the card describes is missing or malformed; the message names the file."""


# --------------------------------------------------------------------------------------------
# digests of the training inputs
# --------------------------------------------------------------------------------------------

def digest_lines(rows: Iterable[Iterable[Any]]) -> str:
    """SHA-256 of ``"\\t".join(row) + "\\n"`` lines sorted (the card's digest convention)."""
    lines = sorted("\t".join("" if v is None else str(v) for v in row) + "\n" for row in rows)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise ModelCardError(f"{path}: missing; rerun the stage that writes it (dvc repro)") from None
    missing = [c for c in required if rows and c not in rows[0]]
    if missing:
        raise ModelCardError(f"{path}: missing column(s) {', '.join(missing)}")
    return rows


def split_inputs(split_dir: str | os.PathLike, splits: Iterable[str] = ("train", "val")) -> dict[str, Any]:
    """Per split: sources with raw-file SHA-256, ``sources_digest``, tile count and ``tiles_digest``."""
    split_dir = Path(split_dir)
    sources = _read_csv(split_dir / "sources.csv", ("source_id", "image_sha256", "split"))
    tiles = _read_csv(split_dir / "tiles.csv", ("tile_id", "image_sha256", "mask_sha256", "split"))
    out: dict[str, Any] = {}
    for split in splits:
        src = sorted(((r["source_id"], r["image_sha256"]) for r in sources if r["split"] == split))
        til = [(r["tile_id"], r["image_sha256"], r["mask_sha256"]) for r in tiles if r["split"] == split]
        out[split] = {
            "n_sources": len(src),
            "sources": [{"source_id": s, "image_sha256": h} for s, h in src],
            "sources_digest": digest_lines(src),
            "n_tiles": len(til),
            "tiles_digest": digest_lines(til),
        }
    return out


def dataset_inputs(augmented_dir: str | os.PathLike) -> dict[str, Any]:
    """The augmentation dataset: name, size, ops (``dataset.json``), number of files and
    ``files_digest`` over every file's bytes."""
    folder = Path(augmented_dir)
    meta_path = folder / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelCardError(f"{meta_path}: missing; rerun augment") from None
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{meta_path}: not valid JSON: {exc}") from None
    rows = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            full = Path(root, name)
            with open(full, "rb") as fh:
                rows.append((full.relative_to(folder).as_posix(), hashlib.file_digest(fh, "sha256").hexdigest()))
    samples = _read_csv(folder / "samples.csv", ("sample_id", "tile_id"))
    return {"name": meta.get("name"), "size": meta.get("size"), "ops": meta.get("ops"),
            "n_samples": len(samples), "n_source_tiles": len({r["tile_id"] for r in samples}),
            "n_files": len(rows), "files_digest": digest_lines(rows)}


# --------------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------------

def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed distribution versions (``None`` when absent), from package metadata."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_fingerprint(device: Any = "cpu", threads: int | None = None, seed: int | None = None,
                            amp: bool = False) -> dict[str, Any]:
    """What decides whether a rerun gives the same bits: machine architecture, device model
    (CPU model name or GPU name), the CPU kernel level torch dispatches to, Python / torch /
    CUDA / cuDNN and library versions, thread count, seed, torch's determinism switches and
    AMP (which only acts on CUDA)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        model = torch.cuda.get_device_name(device)
    else:
        model = cpu_model()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = None
    return {
        "machine": platform.machine(),
        "device_type": device.type,
        "device_model": model,
        "cpu_capability": capability,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "libraries": library_versions(),
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "seed": seed,
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "amp": bool(amp and device.type == "cuda"),
    }


def compare_fingerprints(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Differences between two fingerprints, one ``"key: a != b"`` string each (library versions
    per library); ``[]`` when they match on every :data:`FINGERPRINT_KEYS` field."""
    diffs = []
    for key in FINGERPRINT_KEYS:
        va, vb = a.get(key), b.get(key)
        if key == "libraries" and isinstance(va, Mapping) and isinstance(vb, Mapping):
            for lib in sorted(set(va) | set(vb)):
                if va.get(lib) != vb.get(lib):
                    diffs.append(f"libraries.{lib}: {va.get(lib)} != {vb.get(lib)}")
        elif va != vb:
            diffs.append(f"{key}: {va} != {vb}")
    return diffs


def rebuild_expectation(recorded: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> str:
    """``"bit-identical"`` when ``current`` matches ``recorded`` (:func:`compare_fingerprints`;
    ``None`` = the same machine) and the run was deterministic (torch deterministic algorithms
    on, not warn-only, no cuDNN benchmark, no AMP); else ``"within tolerance"``."""
    if current is not None and compare_fingerprints(recorded, current):
        return "within tolerance"
    deterministic = (recorded.get("deterministic_algorithms") and not recorded.get("deterministic_warn_only")
                     and not recorded.get("cudnn_benchmark") and not recorded.get("amp"))
    return "bit-identical" if deterministic else "within tolerance"


# --------------------------------------------------------------------------------------------
# git and dvc.lock
# --------------------------------------------------------------------------------------------

def git_info(root: str | os.PathLike, inputs: Iterable[str]) -> dict[str, Any]:
    """``{"commit": HEAD sha or None, "dirty": tracked input files modified vs HEAD}``.

    ``inputs``: the tracked files (params, pipeline, code) and folders (ending in ``/``) that
    can change what a stage computes, relative to ``root``; only their modifications are listed,
    since modified outputs (``dvc.lock``, metrics, plots, the README) are results, not inputs.
    Untracked files are not listed."""
    files = tuple(i for i in inputs if not i.endswith("/"))
    folders = tuple(i for i in inputs if i.endswith("/"))

    def run(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        except FileNotFoundError:
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = run("rev-parse", "--verify", "--quiet", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no") or ""
    return {"commit": commit.strip() if commit else None,
            "dirty": sorted(path for path in (line[3:].strip() for line in status.splitlines() if line.strip())
                            if path in files or path.startswith(folders))}


def _params_by_group(values: Mapping[str, Any], default_file: str) -> dict[str, Any]:
    """``{"params.yaml:train": {...}}`` -> ``{"train": {...}}`` (other files keep their prefix)."""
    out = {}
    for key, value in values.items():
        file, _, name = key.partition(":")
        out[name if file == default_file else key] = value
    return out


def _lock_params(entry: Mapping[str, Any], default_file: str) -> dict[str, Any]:
    out = {}
    for file, values in (entry.get("params") or {}).items():
        for key, value in (values or {}).items():
            out[key if file == default_file else f"{file}:{key}"] = value
    return out


# --------------------------------------------------------------------------------------------
# the card
# --------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def build_model_card(*, model_config: Mapping[str, Any], class_names: Mapping[Any, str], epochs_run: int,
                     best_epoch: int, val_metrics: Mapping[str, float], device: Any, threads: int,
                     stage: str, params: str | os.PathLike, split_dir: str | os.PathLike,
                     augmented_dir: str | os.PathLike, dvc_yaml: str | os.PathLike, dvc_lock: str | os.PathLike,
                     model_file: str | None, code_inputs: Iterable[str] = (),
                     onnx_file: str | None = None, stopped_early: bool = False, amp: bool = False,
                     model_meta: Mapping[str, Any] | None = None, verify_upstream: bool = True) -> dict[str, Any]:
    """Describe a trained model (see the module docstring); deterministic for fixed inputs.

    Parameters
    ----------
    model_config, class_names, model_meta
        What :func:`porescope.segmentation.models.save_model_file` stores (class ids may be int or str;
        ``model_meta`` e.g. the decision threshold; JSON values only).
    epochs_run, best_epoch, val_metrics, stopped_early
        From the training result (``TrainResult``); ``val_metrics`` e.g. ``{"val_iou": ...}``.
    device, threads, amp
        The torch device trained on, the intra-op thread count, whether AMP was requested.
    stage, params, dvc_yaml, dvc_lock
        The training stage's name and the project files (``dvc_yaml``, ``dvc_lock``: paths
        relative to the working folder, which DVC sets to the repository root; ``params``:
        relative to the folder of ``dvc_yaml``, as DVC has it); the stage's params groups and
        its upstream stages are read from ``dvc_yaml``, upstream params and output hashes from
        ``dvc_lock``.
    onnx_file
        The ONNX export of the same weights, recorded with its SHA-256 (``None``: none).
    split_dir, augmented_dir, model_file
        The split manifest folder and the augmentation dataset folder the model was trained on,
        and the model file's path as recorded in the card (``None``: not named).
    code_inputs
        Tracked files and folders (ending in ``/``) besides ``params`` and ``dvc_yaml`` whose
        local modifications the card lists under ``git.dirty`` (:func:`git_info`).
    verify_upstream
        Re-hash (DVC MD5) the upstream outputs this stage reads and record whether they match
        ``dvc.lock`` (``matches_workspace``); a mismatch adds a warning.
    """
    dvc_yaml, dvc_lock = Path(dvc_yaml), Path(dvc_lock)
    root = dvc_yaml.parent
    default_file = PurePosixPath(str(params)).as_posix()
    warnings: list[str] = []
    stages = load_pipeline(dvc_yaml, params)
    if stage not in stages:
        raise ModelCardError(f"{dvc_yaml}: no stage '{stage}'")
    try:
        lock = (yaml.safe_load(dvc_lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    except FileNotFoundError:
        lock = {}
        warnings.append(f"{dvc_lock} not found: upstream params come from {params}, output hashes are unknown")
    upstream = ancestors(stage, stages)
    all_params = _params_by_group(params_values(stages[stage], root), default_file)
    upstream_outs: dict[str, list[dict[str, Any]]] = {}
    direct = {dep for dep in stages[stage].deps if producer_of(dep, stages)}
    for name in upstream:
        current = _params_by_group(params_values(stages[name], root), default_file)
        if name in lock:
            recorded = _lock_params(lock[name], default_file)
            for key in sorted(set(current) | set(recorded)):
                if current.get(key) != recorded.get(key):
                    warnings.append(f"params '{key}' of stage '{name}' in {params} differ from {dvc_lock}; "
                                    f"the card records the {dvc_lock} values (what produced the data)")
            all_params.update({k: v for k, v in recorded.items() if k not in all_params})
            outs = []
            for out in lock[name].get("outs", []):
                rec = {k: out.get(k) for k in ("path", "md5", "size", "nfiles") if out.get(k) is not None}
                used = [d for d in direct if is_inside(d, out["path"])]
                if verify_upstream and used:
                    rec["matches_workspace"] = _matches(root, out)
                    if not rec["matches_workspace"]:
                        warnings.append(f"{out['path']}: the workspace differs from the hash {dvc_lock} records "
                                        f"for stage '{name}'")
                outs.append(rec)
            upstream_outs[name] = outs
        else:
            all_params.update({k: v for k, v in current.items() if k not in all_params})
            upstream_outs[name] = []
            warnings.append(f"stage '{name}' is not in {dvc_lock}: its output hashes are unknown "
                            "(run the pipeline with dvc repro)")
    code = {}
    for dep in stages[stage].deps:
        full = root / dep
        if not full.is_file():
            continue
        if producer_of(dep, stages) is None:
            code[dep] = dvc_file_md5(full)
        elif full.suffix == ".json":  # the code fingerprint the stage ran under (checked by the guard)
            code.update(read_fingerprint(full.read_bytes()) or {})
    code = {k: code[k] for k in sorted(code, key=lambda p: (not p.startswith("stages/"), p))}
    aug = dataset_inputs(augmented_dir)
    aug_path = _rel(augmented_dir, root)
    aug_lock = next((o for outs in upstream_outs.values() for o in outs if o["path"] == aug_path), None)
    aug["dvc_md5"] = aug_lock.get("md5") if aug_lock else None
    seed = all_params.get("seed")
    fingerprint = environment_fingerprint(device, threads, seed, amp)
    card = {
        "format": CARD_FORMAT,
        "model": {"file": model_file, "config": dict(model_config),
                  "class_names": {str(k): str(v) for k, v in sorted(class_names.items(), key=lambda kv: int(kv[0]))},
                  "meta": {str(k): model_meta[k] for k in sorted(model_meta or {})}},
        **({"onnx": {"file": onnx_file, "sha256": _sha256(Path(onnx_file))}} if onnx_file else {}),
        "training": {"stage": stage, "epochs_run": int(epochs_run), "best_epoch": int(best_epoch),
                     "stopped_early": bool(stopped_early),
                     "validation": {k: float(v) for k, v in sorted(val_metrics.items())}},
        "params": {k: all_params[k] for k in sorted(all_params)},
        "data": {"manifest": f"{_rel(split_dir, root)}/sources.csv",
                 "splits": split_inputs(split_dir, ("train", "val")),
                 "augmented": aug},
        "upstream_outs": upstream_outs,
        "code": code,
        "git": git_info(root, (default_file, _rel(dvc_yaml, root), *code_inputs)),
        "libraries": fingerprint["libraries"],
        "device": str(device),
        "environment": fingerprint,
        "rebuild_expectation": rebuild_expectation(fingerprint),
        "rebuild_rule": ("bit-identical on a machine whose environment fingerprint matches this one "
                         "(porescope.model_card.compare_fingerprints == []) when torch's deterministic "
                         "algorithms are on (not warn-only, no AMP, no cuDNN benchmark); otherwise within "
                         "tolerance"),
        "warnings": warnings,
    }
    json.dumps(card, sort_keys=True)  # fail here, not in the writer, on a non-JSON value
    return card


def _rel(path: str | os.PathLike, root: Path) -> str:
    """``path`` relative to the project root, POSIX (no absolute paths in the card)."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _matches(root: Path, out: Mapping[str, Any]) -> bool:
    """Whether the workspace copy of an upstream out has the hash ``dvc.lock`` records."""
    path = root / out["path"]
    md5 = str(out.get("md5", ""))
    hash_name = lock_hash_name(out)
    if md5.endswith(".dir"):
        if not path.is_dir():
            return False
        return dvc_dir_hash(path, root, hash_name).md5 == md5
    return path.is_file() and dvc_file_md5(path, hash_name) == md5


# --------------------------------------------------------------------------------------------
# Markdown and the run record
# --------------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else str(value)
    return text.replace("|", "\\|")


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        return [item for k, v in value.items() for item in _flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, value)]


def render_model_card_md(card: Mapping[str, Any]) -> str:
    """The card as Markdown (deterministic: same card -> same text)."""
    m, t, d, env = card["model"], card["training"], card["data"], card["environment"]
    lines = [f"# Model card: {m.get('file') or 'porescope model'}", ""]
    lines += [f"- Architecture: {m['config'].get('arch')} / encoder {m['config'].get('encoder')}, "
              f"{m['config'].get('classes')} output channel(s)",
              "- Classes: " + ", ".join(f"{k} = {v}" for k, v in m["class_names"].items()),
              "- Stored with the model: " + (", ".join(f"{k} {_cell(v)}" for k, v in m.get("meta", {}).items())
                                             or "-"),
              *([f"- ONNX export: `{m['onnx']['file']}` (SHA-256 `{m['onnx']['sha256'][:16]}...`)"]
                if m.get("onnx") else []),
              f"- Trained by stage `{t['stage']}`: {t['epochs_run']} epoch(s), best epoch {t['best_epoch']}"
              + (" (stopped early)" if t["stopped_early"] else ""),
              "- Validation: " + ", ".join(f"{k} {v:.4f}" for k, v in t["validation"].items()),
              f"- Git commit: `{card['git']['commit']}`"
              + (f" (modified: {', '.join(card['git']['dirty'])})" if card["git"]["dirty"] else " (clean)"),
              f"- Device: {card['device']} ({env['device_model']}, {env['threads']} thread(s))",
              f"- Rebuild expectation: **{card['rebuild_expectation']}** — {card['rebuild_rule']}", ""]
    lines += ["## Training data", "", f"Manifest: `{d['manifest']}`", "",
              "| split | sources | sources digest | tiles | tiles digest |", "|---|---:|---|---:|---|"]
    for split, info in d["splits"].items():
        lines.append(f"| {split} | {info['n_sources']} | `{info['sources_digest']}` | {info['n_tiles']} | "
                     f"`{info['tiles_digest']}` |")
    lines += ["", "| split | source id | raw file sha256 |", "|---|---|---|"]
    for split, info in d["splits"].items():
        lines += [f"| {split} | {s['source_id']} | `{s['image_sha256']}` |" for s in info["sources"]]
    a = d["augmented"]
    lines += ["", f"Augmentation dataset **{a['name']}**: {a['n_samples']} samples from {a['n_source_tiles']} "
              f"train tiles (ops {a['ops'] or 'none'}), {a['n_files']} files, files digest `{a['files_digest']}`, "
              f"dvc md5 `{a['dvc_md5']}`", ""]
    lines += ["## Params", "", "| param | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in _flat(card["params"])]
    lines += ["", "## Upstream outputs (dvc.lock)", "", "| stage | output | md5 | files | matches workspace |",
              "|---|---|---|---:|---|"]
    for stage, outs in card["upstream_outs"].items():
        for o in outs:
            lines.append(f"| {stage} | {o['path']} | `{o.get('md5')}` | {o.get('nfiles', '')} | "
                         f"{_cell(o.get('matches_workspace', ''))} |")
    lines += ["", "## Code (md5)", "", "| file | md5 |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in card["code"].items()]
    lines += ["", "## Environment fingerprint", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in _flat({k: v for k, v in env.items()})]
    if card.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in card["warnings"]]
    return "\n".join(lines) + "\n"


def write_run_record(path: str | os.PathLike, seconds: float, samples_per_s: float, started_iso: str,
                     host: str) -> Path:
    """Write the untracked record of one training run: wall time, throughput, start time, host.

    Why apart from the card: these values change on every run even when the model's bytes do
    not, and the card is a DVC output whose hash goes into ``dvc.lock``; with a timestamp in it
    two rebuilds from identical inputs would record different hashes and every rerun would look
    like a change to everything downstream. So the record is written next to the model but is
    not declared in ``dvc.yaml`` and is git-ignored: it describes one run on one machine, for
    speed budgets and bookkeeping, and is never part of what a certificate rests on.
    """
    return write_json(path, {"started": str(started_iso), "host": str(host), "seconds": float(seconds),
                             "samples_per_s": float(samples_per_s)})
