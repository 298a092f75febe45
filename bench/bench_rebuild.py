"""Benchmark + check: two cold ``dvc repro`` in two separate clones give the same ``dvc.lock``.

    python bench/bench_rebuild.py [--tiny] [--keep DIR] [--set group.key=value ...]

Builds a throwaway project from this repository's ``dvc.yaml``, ``stages/`` and ``params.yaml``
(the DEFAULT params; ``--tiny`` applies ``tests/pipeline_project.TINY`` instead, ``--set``
overrides single values), commits it without results, clones it twice and, in each clone, runs
every stage cold with ``dvc repro --single-item STAGE`` in pipeline order, timing each
(the time includes DVC's own hashing of the stage's deps and outs, as in a normal repro).

Prints per stage: wall time in clone A and B and whether every dep and out hash that
``dvc.lock`` recorded is the same in both clones; for an output folder that differs, the
files that differ (from the two ``.dir`` listings in the clones' caches). Exit status 1 when
any hash differs. Raw figures go to ``bench/results/rebuild.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# stage commands say `python`: make it this interpreter (the project's venv) even when not activated
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from pipeline_project import TINY, deep_update, dvc, make_project, run  # noqa: E402

from porescope.provenance.pipeline import load_pipeline, producer_of  # noqa: E402


def pipeline_order(repo: Path) -> list[str]:
    """Stages of ``repo``'s dvc.yaml in dependency order (dvc.yaml order among equals)."""
    stages = load_pipeline(repo / "dvc.yaml")
    parents = {name: {hit[0] for d in spec.deps if (hit := producer_of(d, stages)) and hit[0] != name}
               for name, spec in stages.items()}
    order: list[str] = []
    while len(order) < len(stages):
        ready = [n for n in stages if n not in order and parents[n] <= set(order)]
        if not ready:
            raise RuntimeError(f"cycle among {sorted(set(stages) - set(order))}")
        order.append(ready[0])
    return order


def _set(params: dict, assignment: str) -> None:
    key, _, value = assignment.partition("=")
    node = params
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def build_source(repo: Path, tiny: bool, sets: list[str]) -> Path:
    """A committed project without results (default or TINY params)."""
    make_project(repo, commit=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if tiny:
        params = deep_update(params, TINY)
    for assignment in sets:
        _set(params, assignment)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with open(repo / ".gitignore", "a") as fh:  # see the report: the resume checkpoint is not ignored
        fh.write("/models/checkpoints/\n/models/train_run.json\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "rebuild bench"], repo)
    return repo


def cold_repro(source: Path, clone: Path, order: list[str]) -> dict[str, float]:
    run(["git", "clone", "-q", str(source), str(clone)], source.parent)
    times = {}
    for stage in order:
        t0 = time.perf_counter()
        dvc("repro", "--single-item", stage, cwd=clone)
        times[stage] = time.perf_counter() - t0
        print(f"  {clone.name}: {stage:<12} {times[stage]:8.1f} s", flush=True)
    return times


def _entries(lock: dict, stage: str) -> dict[str, str]:
    st = lock["stages"].get(stage, {})
    return {f"{kind}:{e['path']}": str(e.get("md5")) for kind in ("deps", "outs") for e in st.get(kind, [])}


def _listing(clone: Path, md5: str) -> dict[str, str]:
    obj = clone / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    try:
        return {i["relpath"]: i["md5"] for i in json.loads(obj.read_text())}
    except (OSError, ValueError):
        return {}


def compare(a: Path, b: Path, order: list[str]) -> dict[str, list[str]]:
    """Per stage, the deps/outs whose recorded hash differs (and the files inside folders)."""
    lock_a = yaml.safe_load((a / "dvc.lock").read_text())
    lock_b = yaml.safe_load((b / "dvc.lock").read_text())
    result = {}
    for stage in order:
        ea, eb = _entries(lock_a, stage), _entries(lock_b, stage)
        diffs = []
        for key in sorted(set(ea) | set(eb)):
            if ea.get(key) != eb.get(key):
                diffs.append(f"{key}: {ea.get(key)} != {eb.get(key)}")
                if str(ea.get(key)).endswith(".dir") and str(eb.get(key)).endswith(".dir"):
                    la, lb = _listing(a, ea[key]), _listing(b, eb[key])
                    files = sorted(k for k in set(la) | set(lb) if la.get(k) != lb.get(k))
                    diffs += [f"    {key.split(':', 1)[1]}/{f}" for f in files[:20]]
                    if len(files) > 20:
                        diffs.append(f"    ... {len(files) - 20} more")
        result[stage] = diffs
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tests' TINY params instead of the defaults")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one param, e.g. train.epochs=2 (repeatable)")
    parser.add_argument("--keep", type=Path, default=None, help="build in DIR and keep it")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="porescope-rebuild-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = build_source(work / "source", args.tiny, args.set)
        order = pipeline_order(source)
        print(f"params: {'TINY' if args.tiny else 'default'} {' '.join(args.set)}; stages: {' -> '.join(order)}; "
              f"{os.cpu_count()} CPU(s)", flush=True)
        times_a = cold_repro(source, work / "clone_a", order)
        times_b = cold_repro(source, work / "clone_b", order)
        diffs = compare(work / "clone_a", work / "clone_b", order)
        print()
        print(f"{'stage':<12} {'clone A s':>10} {'clone B s':>10}  hashes")
        for stage in order:
            state = "identical" if not diffs[stage] else f"DIFFER ({sum(not d.startswith(' ') for d in diffs[stage])})"
            print(f"{stage:<12} {times_a[stage]:10.1f} {times_b[stage]:10.1f}  {state}")
            for line in diffs[stage]:
                print(f"    {line}")
        total_a, total_b = sum(times_a.values()), sum(times_b.values())
        print(f"{'total':<12} {total_a:10.1f} {total_b:10.1f}  (B/A = {total_b / total_a:.2f})")
        same_lock = (work / "clone_a" / "dvc.lock").read_bytes() == (work / "clone_b" / "dvc.lock").read_bytes()
        print(f"dvc.lock byte-identical: {same_lock}")
        out = ROOT / "bench" / "results" / "rebuild.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"tiny": args.tiny, "set": args.set, "order": order, "times_a": times_a,
                                   "times_b": times_b, "diffs": diffs, "lock_identical": same_lock}, indent=2))
        return 0 if same_lock and not any(diffs.values()) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
