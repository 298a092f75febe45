"""Pipeline budget: cold ``dvc repro`` of the default params, a no-op second repro, and which
stages a single parameter change reruns.

Usage (from the repository root, with the project installed)::

    python bench/bench_pipeline.py [--keep DIR]

Clones the current commit into a temporary folder (an empty DVC cache, so nothing is reused),
then measures:

1. cold ``dvc repro --force`` wall time, per stage (from the timestamps of DVC's "Running stage"
   lines) - every stage runs, also those whose git-tracked outputs a fresh clone already holds
   (a plain ``dvc repro`` in a clone skips e.g. ``validate`` when the rebuilt model is
   byte-identical to the committed one) - budget: 300 s on a 2-core CPU;
2. a second ``dvc repro``: must run no stage - budget 3 s;
3. for a few one-parameter changes (``dvc repro --dry`` after editing params.yaml, then
   reverting): the stages DVC would rerun, against the stages downstream of that parameter.

Prints a table and writes ``bench/results/bench_pipeline.json``.

``--noop DIR`` measures only the no-op ``dvc repro`` of an existing, up-to-date checkout (e.g. one
where the pipeline has just run) against DVC's own floor, built in a temporary folder with the
same DVC: a one-stage pipeline, and as many chained stages as DIR's dvc.yaml has, each with a
params dependency on a copy of DIR's params.yaml where DIR's stage has params (the shape of this
pipeline without its code, data and templating). Runs are
interleaved; wall and CPU (user + sys of the dvc process) seconds are reported, CPU being the
steadier figure on a shared machine. DIR's dvc.lock must come out unchanged.

The goal (issue 12: at most 1.5x "DVC's own floor on a trivial pipeline") is judged against the
same-shape floor: as many stages as this pipeline (11: the ``code`` stage and ten that use
params, so DVC parses the same params.yaml once per such stage, as it does here), without its
code deps, data folders and templating - the cost this project adds. The one-stage floor (DVC's start-up alone) is
reported beside it. Which YAML parser DVC uses (libyaml or pure Python) is printed: it moves every
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1", "DVC_NO_ANALYTICS": "1"}
#: no-op repro budget: CPU seconds at most this multiple of the same-shape floor (issue 12)
NOOP_GOAL = 1.5
#: parameter -> what it should rerun (the stages that read it), checked with --dry
CHANGES = {
    "analyze.spatial.n_sim": (lambda p: p["analyze"]["spatial"].__setitem__("n_sim", 49)),
    "analyze.counting.small_factor": (lambda p: p["analyze"]["counting"].__setitem__("small_factor", 0.45)),
    "evaluate.overlap": (lambda p: p["evaluate"].__setitem__("overlap", 32)),
    "train.epochs": (lambda p: p["train"].__setitem__("epochs", 7)),
}


def _dvc(args: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-u", "-m", "dvc", *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:  # timestamp each line as it arrives: per-stage times
        lines.append(f"{time.perf_counter() - t0:9.2f} {line.rstrip()}")
    proc.wait()
    if proc.returncode:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n" + "\n".join(lines[-40:]))
    return time.perf_counter() - t0, "\n".join(lines)


def _stage_times(log: str, total: float) -> dict[str, float]:
    starts = [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^\s*([\d.]+) Running stage '([^']+)'", log, re.M)]
    ends = [t for t, _ in starts[1:]] + [total]
    return {name: round(end - start, 1) for (start, name), end in zip(starts, ends)}


def _ran(log: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", log)


def _timed_dvc(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one dvc command."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def _floor_repo(path: Path, with_params: list[bool], params: str) -> Path:
    """A trivial chained pipeline: stage i has a params dependency when ``with_params[i]``."""
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, env=ENV, check=True)
    (path / "params.yaml").write_text(params)
    key = next(iter(yaml.safe_load(params)))
    stages = {}
    for i, has_params in enumerate(with_params):
        stages[f"s{i}"] = {"cmd": f"echo {i} > o{i}.txt", "deps": [f"o{i - 1}.txt"] if i else [],
                           **({"params": [key]} if has_params else {}), "outs": [f"o{i}.txt"]}
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "floor"], cwd=path, check=True)
    _dvc(["repro"], path)
    return path


def noop_repro(repo: Path, repeats: int) -> None:
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=repo, env=ENV, text=True,
                            capture_output=True, check=True).stdout
    if "up to date" not in status:
        raise SystemExit(f"{repo}: the pipeline is not up to date; a dvc repro there would run stages:\n{status}")
    lock = (repo / "dvc.lock").read_bytes()
    with tempfile.TemporaryDirectory(prefix="porescope-noop-") as tmp:
        shape = [bool(s.get("params")) for s in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values()]
        same = f"floor: {len(shape)} stages, {sum(shape)} with params"
        repos = {"floor: 1 stage": _floor_repo(Path(tmp) / "one", [True], "a: 1\n"),
                 same: _floor_repo(Path(tmp) / "same", shape, (repo / "params.yaml").read_text()),
                 f"{repo}": repo}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in repos}
        for _ in range(repeats):
            for name, path in repos.items():
                times[name].append(_timed_dvc(["repro"], path))
    if (repo / "dvc.lock").read_bytes() != lock:
        raise SystemExit(f"{repo}/dvc.lock changed during the no-op runs")
    one, floor = (min(c for _, c in times[name]) for name in list(times)[:2])
    print(f"no-op dvc repro, best of {repeats} interleaved runs (CPU = user + sys of the dvc process); "
          f"DVC's YAML parser: {_yaml_parser()}")
    print(f"{'pipeline':<40} {'wall s':>7} {'CPU s':>6} {'/ 1-stage':>10} {'/ same shape':>13}")
    for name, runs in times.items():
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        print(f"{name:<40} {wall:>7.2f} {cpu:>6.2f} {cpu / one:>10.2f} {cpu / floor:>13.2f}")
    ratio = min(c for _, c in times[f"{repo}"]) / floor
    print(f"goal: CPU <= {NOOP_GOAL}x the same-shape floor ({same}, parsing this params.yaml; "
          f"the 1-stage one is DVC's start-up alone): {ratio:.2f}x, {'met' if ratio <= NOOP_GOAL else 'missed'}")
    print(f"what DVC checks in {repo.name}: {_lock_shape(lock)}")


def _lock_shape(lock: bytes) -> str:
    """What a no-op repro costs in proportion to: file deps, folder entries (DVC lists a folder's
    files and looks each up in its state db, once per stage that names the folder), lock size."""
    stages = yaml.safe_load(lock)["stages"].values()
    entries = [e for s in stages for e in (*s.get("deps", []), *s.get("outs", []))]
    folders = [e for e in entries if "nfiles" in e]
    return (f"{len(stages)} stages, {len(entries) - len(folders)} file deps/outs, {len(folders)} folder deps/outs "
            f"holding {sum(e['nfiles'] for e in folders)} files in all, dvc.lock {len(lock) / 1024:.0f} kB "
            f"(DVC parses it twice)")


def _yaml_parser() -> str:
    """'libyaml' when ruamel.yaml (DVC's YAML reader) has its C parser, else 'pure Python'."""
    code = "from ruamel.yaml import YAML; print(YAML(typ='safe').Parser.__name__)"
    name = subprocess.run([sys.executable, "-c", code], env=ENV, text=True, capture_output=True).stdout.strip()
    return "libyaml" if name == "CParser" else f"pure Python ({name or 'ruamel.yaml not importable'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="clone here and keep it (default: a temp folder)")
    parser.add_argument("--noop", type=Path, metavar="DIR", help="only the no-op repro of DIR vs DVC's floor")
    parser.add_argument("--repeats", type=int, default=3, help="--noop: runs of each pipeline")
    args = parser.parse_args()
    if args.noop:
        noop_repro(args.noop.resolve(), args.repeats)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="porescope-bench-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work}: not empty")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    try:
        cold, log = _dvc(["repro", "--force"], work)
        stages = _stage_times(log, cold)
        noop, log2 = _dvc(["repro"], work)
        changes = {}
        params_path = work / "params.yaml"
        original = params_path.read_text()
        for key, edit in CHANGES.items():
            params = yaml.safe_load(original)
            edit(params)
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            _, dry = _dvc(["repro", "--dry"], work)
            changes[key] = _ran(dry)
            params_path.write_text(original)
        result = {"cold_repro_s": round(cold, 1), "stage_s": stages, "noop_repro_s": round(noop, 2),
                  "noop_ran": _ran(log2), "reruns": changes, "cpus": os.cpu_count()}
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"cold dvc repro --force: {result['cold_repro_s']:.1f} s (budget 300 s) on {result['cpus']} CPUs")
    for name, seconds in stages.items():
        print(f"  {name:<11} {seconds:7.1f} s")
    print(f"second dvc repro: {result['noop_repro_s']:.2f} s (budget 3 s), stages run: {result['noop_ran'] or 'none'}")
    for key, ran in changes.items():
        print(f"change {key:<32} reruns: {', '.join(ran)}")
    out = ROOT / "bench" / "results" / "bench_pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
