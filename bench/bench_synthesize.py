"""Speed of the synthetic-membrane generator (budget: the default dataset well under 15 s).

Measures, in one run on this machine:

1. per image, in-process: the default dataset's 24 specs (512 x 512, porosity 0.03-0.35,
   diameters 15-40 px) rendered with ``supersample`` = 4 (default), against a baseline of the
   same specs with ``supersample`` = 1 and against geometry only (pores + both masks, no
   rendering): seconds per image, per megapixel, and the ratios;
2. the whole stage, ``python -m stages.synthesize`` in a subprocess (imports, PNG/CSV writing
   included) with ``workers`` = 1 and 2, wall-clock seconds against the 15 s budget.

    python bench/bench_synthesize.py [--repeat 1] [--skip-stage]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from porescope.synthetic import membranes as syn

ROOT = Path(__file__).resolve().parents[1]
SEED = 42
BUDGET_S = 15.0


def time_specs(specs, fn, repeat: int) -> tuple[float, float]:
    """Best (wall, CPU) seconds over ``repeat`` runs of ``fn`` on every spec."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        for k, spec in enumerate(specs):
            fn(spec, syn.image_rng(SEED, k))
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def geometry_only(spec, rng):
    pores = syn.sample_pores(spec, rng)
    syn.opening_mask(pores, (spec.height, spec.width))
    syn.core_mask(pores, (spec.height, spec.width))


def stage_seconds(workers: int, tmp: Path) -> tuple[float, float]:
    """(wall, CPU of the child processes) seconds of one stage run."""
    params = dict(syn.DEFAULT_PARAMS, workers=workers)
    path = tmp / f"params_w{workers}.yaml"
    path.write_text(yaml.safe_dump({"seed": SEED, "synthesize": params}), encoding="utf-8")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stages.synthesize", "--params", str(path),
                    "--out", str(tmp / f"out_w{workers}")], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PORESCOPE_LOG": "WARNING"})
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    ap.add_argument("--skip-stage", action="store_true", help="skip the subprocess stage runs")
    args = ap.parse_args()

    specs = syn.dataset_specs(syn.DEFAULT_PARAMS, SEED)
    n = len(specs)
    mpix = sum(s.height * s.width for s in specs) / 1e6
    syn.synthesize_image(specs[0], syn.image_rng(SEED, 0))  # warm-up (imports, caches)

    t_full = time_specs(specs, syn.synthesize_image, args.repeat)
    ss1 = [dataclasses.replace(s, supersample=1) for s in specs]
    t_ss1 = time_specs(ss1, syn.synthesize_image, args.repeat)
    t_geo = time_specs(specs, geometry_only, args.repeat)
    n_pores = [len(syn.sample_pores(s, syn.image_rng(SEED, k))) for k, s in enumerate(specs)]

    print(f"default dataset: {n} images of {specs[0].height}x{specs[0].width} "
          f"({mpix:.2f} Mpx), pores drawn per image {min(n_pores)}-{max(n_pores)} "
          f"(mean {np.mean(n_pores):.0f}), {os.cpu_count()} CPU cores")
    print(f"load average before: {os.getloadavg()[0]:.2f} (wall times suffer when other jobs run)")
    print(f"{'variant':<34}{'wall s':>8}{'CPU s':>8}{'CPU s/image':>12}{'CPU s/Mpx':>10}{'CPU ratio':>10}")
    for name, (wall, cpu) in (("synthesize_image, supersample 4", t_full),
                              ("baseline: same, supersample 1", t_ss1),
                              ("geometry + masks only", t_geo)):
        print(f"{name:<34}{wall:>8.2f}{cpu:>8.2f}{cpu / n:>12.3f}{cpu / mpix:>10.3f}"
              f"{cpu / t_ss1[1]:>10.2f}")

    if not args.skip_stage:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                t, cpu = stage_seconds(workers, Path(tmp))
                verdict = "within" if t < BUDGET_S else "OVER"
                print(f"stage `python -m stages.synthesize` workers={workers}: {t:.2f} s wall, "
                      f"{cpu:.2f} s CPU incl. imports and PNG/CSV writing ({t / n:.3f} s wall/image; "
                      f"wall = {t / BUDGET_S:.0%} of the {BUDGET_S:.0f} s budget: {verdict})")
            same = all((Path(tmp) / "out_w1" / f.relative_to(Path(tmp) / "out_w2")).read_bytes()
                       == f.read_bytes() for f in (Path(tmp) / "out_w2").rglob("*") if f.is_file())
            print(f"workers=1 and workers=2 outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
