"""Measure a params configuration (``examples/params_quality.yaml``) on a real labelled dataset.

Runs the pipeline's steps through the library, as ``dvc exp run -S ...`` with the overrides
would: ``params.yaml`` updated with ``--overrides`` (and ``--set group.key=value``), the dataset's
own ingest keys (mask encoding, as in ``bench/finetune_curve.py``), then ingest -> split (lists:
a fixed test set, ``--val`` images for validation, the rest train) -> augment -> train ->
evaluate. Prints and writes the test scores, the per-epoch validation curve and the CPU time.

    python bench/quality_run.py --params params.yaml --overrides examples/params_quality.yaml \\
        --dataset isbi --shared-data ../shared/data --out bench/results/quality_isbi

``--set train.epochs=4`` cuts the run short (the quality file's plateau scheduler does not
depend on ``train.epochs``, so this is the start of the full run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from finetune_curve import DATASETS, _order, scores  # noqa: E402

from porescope.config import parse_group  # noqa: E402
from porescope.evaluation.evaluate_model import EvaluateParams, run_evaluate, score_predictions  # noqa: E402
from porescope.io.atomic import write_csv  # noqa: E402
from porescope.io.tables import read_png, read_table  # noqa: E402
from porescope.preprocessing.augmentation import AugmentParams, run_augment  # noqa: E402
from porescope.preprocessing.ingest import parse_ingest_params, run_ingest  # noqa: E402
from porescope.preprocessing.splitting import SplitParams, run_split  # noqa: E402
from porescope.segmentation.models import read_model_file  # noqa: E402
from porescope.segmentation.train_model import TrainParams, run_train  # noqa: E402

LOG = logging.getLogger("porescope.quality_run")


def merge(base: dict, new: dict) -> dict:
    """``base`` updated with ``new``, nested mappings merged key by key.

    Examples
    --------
    >>> merge({"train": {"epochs": 6, "lr": 0.003}}, {"train": {"epochs": 60}})
    {'train': {'epochs': 60, 'lr': 0.003}}
    """
    out = dict(base)
    for key, value in new.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dotted(assignments: list[str]) -> dict:
    """``["train.epochs=4"]`` -> ``{"train": {"epochs": 4}}`` (values parsed as YAML, as ``dvc -S``).

    Examples
    --------
    >>> dotted(["train.epochs=4", "train.decoder_channels=[8,8]"])
    {'train': {'epochs': 4, 'decoder_channels': [8, 8]}}
    """
    out: dict = {}
    for item in assignments:
        key, _, value = item.partition("=")
        *groups, last = key.split(".")
        node = out
        for g in groups:
            node = node.setdefault(g, {})
        node[last] = yaml.safe_load(value)
    return out


def sweep_seed_h(eval_p: EvaluateParams, values: list[float], work: Path, ingested: Path, ds) -> pd.DataFrame:
    """Object scores with ``evaluate.objects.seed_h`` = each of ``values``, on the validation and
    the test images (the validation images scored as a test split of their own). The network
    runs once per part; each value re-scores the saved predictions."""
    sources = read_table(work / "split" / "sources.csv")
    class_names = read_model_file(work / "model.pt")["class_names"]
    rows = []
    for part in ("val", "test"):
        split = work / "sweep" / f"split_{part}"
        split.mkdir(parents=True, exist_ok=True)
        # the part's images become the test split; the others are never read
        relabelled = sources.assign(split=sources["split"].map(lambda s: "test" if s == part else "unused"))
        relabelled.to_csv(split / "sources.csv", index=False)
        pred = work / "sweep" / f"{part}_pred"
        run_evaluate(dataclasses.replace(eval_p, n_worst=0), model=work / "model.pt", ingested=ingested,
                     split=split, predictions=pred, metrics=work / "sweep" / f"{part}_metrics.json",
                     plots=work / "sweep" / f"{part}_plots")
        ids = relabelled.loc[relabelled["split"] == "test", "source_id"].astype(str)
        items = [(i, read_png(ingested / "masks" / f"{i}.png"), read_png(pred / f"{i}.png")) for i in ids]
        for h in values:
            scored = score_predictions(items, class_names, dataclasses.replace(eval_p.objects, seed_h=h))
            plots = work / "sweep" / f"{part}_{h:g}"
            write_csv(plots / "objects_per_image.csv", scored.objects.round(6))  # as run_evaluate writes it
            rows.append({"split": part, "seed_h": h, **scores(scored.summary, plots, ds)})
    return pd.DataFrame(rows)


def chosen_seed_h(sweep: pd.DataFrame) -> dict:
    """The ``seed_h`` with the best validation AP@0.5 (the smaller one on a tie) and its test scores.

    Examples
    --------
    >>> t = pd.DataFrame({"split": ["val", "val", "test", "test"], "seed_h": [2.0, 5.0, 2.0, 5.0],
    ...                   "object_ap_0.5": [0.8, 0.9, 0.75, 0.7]})
    >>> chosen_seed_h(t)["seed_h"], chosen_seed_h(t)["test"]["object_ap_0.5"]
    (5.0, 0.7)
    """
    val = sweep[sweep["split"] == "val"].sort_values(["object_ap_0.5", "seed_h"], ascending=[False, True])
    h = float(val["seed_h"].iloc[0])
    test = sweep[(sweep["split"] == "test") & (sweep["seed_h"] == h)].iloc[0]
    scores_of = [k for k in sweep.columns if k not in ("split", "seed_h")]
    return {"seed_h": h, "chosen_on": "validation AP@0.5",
            "val": {k: float(val.iloc[0][k]) for k in scores_of}, "test": {k: float(test[k]) for k in scores_of}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True, help="the project's params.yaml")
    ap.add_argument("--overrides", type=Path, default=None, help="params file of overrides (examples/params_quality.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE", help="one more override")
    ap.add_argument("--dataset", choices=["isbi", "au"], default="isbi")
    ap.add_argument("--shared-data", type=Path, required=True)
    ap.add_argument("--val", type=int, default=3, help="images (before the fixed test set) used for validation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="folder for scores.json and epochs.csv")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--sweep-seed-h", type=float, nargs="+", default=None, metavar="PX",
                    help="also score evaluate.objects.seed_h = each value on the validation and the test "
                         "images; the test scores at the value best on validation go to scores.json")
    args = ap.parse_args(argv)
    args.limit_images, args.reference = 0, None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = yaml.safe_load(args.params.read_text())
    if args.overrides:
        params = merge(params, yaml.safe_load(args.overrides.read_text()))
    params = merge(params, dotted(args.set))
    ds, seed = DATASETS[args.dataset], params["seed"]
    work = args.work or Path(tempfile.mkdtemp(prefix="quality_run_"))
    try:
        folder, ingested = work / "source", work / "ingested"
        ds.prepare(folder, args)
        ingest = {k: v for k, v in params["ingest"].items() if k not in ("source", "sources")}
        run_ingest(folder, ingested, parse_ingest_params({**ingest, **ds.ingest, "source": str(folder)}))
        ids = _order(read_table(ingested / "sources.csv")["source_id"].astype(str).tolist())
        test = ids[-ds.fixed_test:]
        val, train = ids[:-ds.fixed_test][-args.val:], ids[:-ds.fixed_test][:-args.val]
        lists = {"method": "lists", "lists": {"train": train, "val": val, "test": test}}
        run_split(parse_group(SplitParams, lists, group="split"), seed, ingested, work / "split")
        t0 = time.perf_counter()
        run_augment(parse_group(AugmentParams, {**params["augment"], "workers": 1}, group="augment"), seed,
                    ingested, work / "split", work / "augmented", progress=False)
        augment_s = time.perf_counter() - t0
        epochs = []
        train_p = parse_group(TrainParams, {**params["train"], "device": "cpu", "threads": args.threads},
                              group="train")
        t0 = time.perf_counter()

        def on_epoch(epoch: int, row: dict) -> None:
            epochs.append({"epoch": epoch, **{k: round(float(v), 5) for k, v in row.items()},
                           "elapsed_s": round(time.perf_counter() - t0, 1)})
            LOG.info("epoch %d: %s", epoch, epochs[-1])

        run = run_train(train_p, seed, augmented=work / "augmented", ingested=ingested, split=work / "split",
                        model_path=work / "model.pt", resume=work / "resume.pt", on_epoch=on_epoch)
        train_s = time.perf_counter() - t0
        eval_p = parse_group(EvaluateParams, {**params["evaluate"], "device": "cpu", "threads": args.threads,
                                              "n_worst": 0}, group="evaluate")
        t0 = time.perf_counter()
        summary = run_evaluate(eval_p, model=work / "model.pt", ingested=ingested, split=work / "split",
                               predictions=work / "pred", metrics=work / "metrics.json", plots=work / "plots")
        evaluate_s = time.perf_counter() - t0
        result = {"dataset": ds.name, "train_images": train, "val_images": val, "test_images": test,
                  "overrides": str(args.overrides) if args.overrides else None, "set": args.set,
                  "train": {k: params["train"][k] for k in ("encoder", "decoder_channels", "epochs", "batch_size",
                                                            "lr", "scheduler", "early_stopping", "class_weights")},
                  "tile_size": params["ingest"]["tile_size"], "augment_size": params["augment"]["size"],
                  "evaluate": {k: params["evaluate"][k] for k in ("tile", "overlap", "tta")},
                  "test": {k: (None if v != v else v) for k, v in scores(summary, work / "plots", ds).items()},
                  "train_metrics": run.metrics(),
                  "cpu_threads": args.threads, "augment_s": round(augment_s, 1), "train_s": round(train_s, 1),
                  "evaluate_s": round(evaluate_s, 1)}
        if args.sweep_seed_h:
            sweep = sweep_seed_h(eval_p, args.sweep_seed_h, work, ingested, ds)
            result["seed_h_sweep"] = chosen_seed_h(sweep)
        args.out.mkdir(parents=True, exist_ok=True)
        if args.sweep_seed_h:
            sweep.to_csv(args.out / "seed_h_sweep.csv", index=False)
        (args.out / "scores.json").write_text(json.dumps(result, indent=2) + "\n")
        pd.DataFrame(epochs).to_csv(args.out / "epochs.csv", index=False)
        print(json.dumps(result, indent=2))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
