"""Dask scale-out of ``measure``: 2 LocalCluster workers vs 1 process on the same micrographs.

    python bench/bench_measure_dask.py [--images 40] [--workers 2] [--model models/model.pt]

Renders ``--images`` synthetic 512 px membranes (the built-in generator, default params), then
times ``run_measure`` on them in this process and on a ``dask.distributed`` LocalCluster (the
cluster start-up is included: it is what a user waits for), checks that both wrote identical
tables, and prints images/s and the ratio. Needs a trained model (``dvc repro train``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import yaml

from porescope.synthetic import membranes as syn
from porescope.analysis.params import AnalysisParams
from porescope.measure.folder import run_measure
from porescope.measure.params import parse_measure_params

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    analysis = AnalysisParams.from_mapping(params["analyze"])
    settings = parse_measure_params({**params["measure"], "seed": params["seed"]}, analysis)
    settings = dataclasses.replace(settings, figures=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "micrographs"
        src.mkdir()
        specs = syn.dataset_specs({**params["synthesize"], "n_images": args.images}, params["seed"] + 7)
        for k, spec in enumerate(specs):
            cv2.imwrite(str(src / f"m{k:03d}.png"), syn.synthesize_image(spec, syn.image_rng(params["seed"] + 7, k)).image)
        t0 = time.perf_counter()
        one = run_measure(src, args.model, tmp / "single", settings)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        many = run_measure(src, args.model, tmp / "dask", settings, scheduler="local", workers=args.workers)
        t_dask = time.perf_counter() - t0
        same = (tmp / "single" / "summary.csv").read_bytes() == (tmp / "dask" / "summary.csv").read_bytes() and \
            (tmp / "single" / "objects.csv").read_bytes() == (tmp / "dask" / "objects.csv").read_bytes()
    n = len(one)
    print(f"{n} micrographs of 512x512 px, model {args.model}")
    print(f"  1 process          : {t_single:7.1f} s  {n / t_single:6.2f} images/s")
    print(f"  Dask, {args.workers} workers    : {t_dask:7.1f} s  {n / t_dask:6.2f} images/s  (cluster start-up included)")
    print(f"  ratio              : {t_single / t_dask:.2f}x   identical tables: {same and len(many) == n}")


if __name__ == "__main__":
    main()
