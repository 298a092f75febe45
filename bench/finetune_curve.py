"""Fine-tuning learning curve: what 1, 2, 4 annotated real images give, from the synthetic model or from scratch.

For each dataset, draw which images a lab would have annotated (``--draws`` draws: one seeded
permutation, rotated by the draw number; within a draw the 2-image set contains the 1-image
set), train the default network on them twice,
``train.init_from`` the synthetic default model (``--model``) and from a random init, and score
both on the images left out (leave-the-rest-out; ISBI and Au: a fixed held-out set). The default
model itself, not trained on the dataset, is scored on the same held-out images (rows
``init = "synthetic, no training"``) as the reference.

    python bench/finetune_curve.py --model models/model.pt --shared-data ../shared/data \\
        --reference data/reference/track-membranes-sem --datasets track isbi \\
        --n-train 1 2 4 --draws 1 --epochs 4 --samples 192 --out bench/results

Every step is the library's (as the DVC stages run it): ``run_ingest`` once per dataset,
``run_split`` with ``method: lists``, ``run_augment``, ``run_train``, ``run_evaluate``. A lab with
a few images has none to spare for validation, so the best epoch and the binary decision
threshold are chosen on the (un-augmented) training tiles themselves.

Datasets (``--datasets``):

* ``track``: the real SEM track-etched membranes with a hand-checked mask (``--reference``:
  ``counts.csv`` + ``masks/``, images in ``<shared-data>/track-membranes-sem-unlabelled``); pixels
  outside each image's analysed region are given the ignore label. Test: every image not trained on.
* ``isbi``: ISBI 2012 membranes (mask 0 = membrane = foreground); train images drawn from slices
  0-19, test: slices 20-29 (a contiguous block, so neighbouring slices are not split).
* ``au``: Au tetrahedra TEM, RGB classes particle / boundary; train drawn from the first 12 files
  (sorted), test: the last 6 (not run yet; files cut from one micrograph are not grouped).

Writes ``<out>/finetune_curve_<dataset>.csv`` (one row per run, with its settings), and from all
such CSVs in ``<out>``: ``finetune_curve.md`` (mean and range over the draws, with the settings)
and ``finetune_curve.png`` (Dice against images).
Scratch work (ingested tiles, augmented sets, models) goes to ``--work`` and is deleted unless
``--keep``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.config import parse_group  # noqa: E402
from porescope.evaluation.evaluate_model import EvaluateParams, run_evaluate  # noqa: E402
from porescope.io.tables import read_table  # noqa: E402
from porescope.preprocessing.augmentation import AugmentParams, run_augment  # noqa: E402
from porescope.preprocessing.ingest import parse_ingest_params, run_ingest  # noqa: E402
from porescope.preprocessing.splitting import SplitParams, run_split  # noqa: E402
from porescope.segmentation.train_model import TrainParams, run_train  # noqa: E402

LOG = logging.getLogger("porescope.finetune_curve")

#: the init of the rows that score the synthetic model itself, untrained on the dataset
BASE = "synthetic, no training"
#: value painted where a mask says nothing (outside the analysed region of the track images)
IGNORE = 128
COLUMNS = ["dataset", "n_train_images", "init", "draw", "train_images", "n_test_images", "dice", "iou",
           "object_f1_0.5", "object_ap_0.5", "count_error", "train_s", "train_cpu_s", "epochs", "samples"]


@dataclass(frozen=True)
class Dataset:
    """How one dataset is laid out for the curve."""

    name: str
    ingest: dict[str, Any]  # ingest params (the rest: params.yaml defaults)
    score_class: str  # class name whose Dice / IoU is reported ("foreground": all classes merged)
    objects: bool = True  # object scores mean something (not for ISBI's membrane network)
    fixed_test: int = 0  # > 0: the last this many (sorted) ids are the test set; 0: leave the rest out
    prepare: Callable[[Path, argparse.Namespace], None] | None = field(default=None, repr=False)
    title: str = ""  # figure panel title
    evaluate_objects: dict[str, Any] = field(default_factory=dict)  # evaluate.objects keys for the scores


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target.resolve())


def prepare_track(folder: Path, args: argparse.Namespace) -> None:
    """images/ -> the shared SEM files; masks/ = the reference masks with the ignore value outside
    the analysed region (the text band of photo5, the frames), so it is neither taught nor scored."""
    counts = pd.read_csv(Path(args.reference) / "counts.csv")
    counts = counts[counts["mask_file"].notna()]
    images = Path(args.shared_data) / "track-membranes-sem-unlabelled"
    for row in counts.itertuples():
        _link(images / row.file, folder / "images" / row.file)
        mask = np.asarray(Image.open(Path(args.reference) / row.mask_file).convert("L"))
        out = np.full(mask.shape, IGNORE, np.uint8)
        h, w = mask.shape
        region = (slice(row.margin_top, h - row.margin_bottom), slice(row.margin_left, w - row.margin_right))
        out[region] = np.where(mask[region] > 0, 255, 0)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(folder / "masks" / f"{row.image}.png")


def _prepare_pairs(sub: str) -> Callable[[Path, argparse.Namespace], None]:
    def prepare(folder: Path, args: argparse.Namespace) -> None:
        root = Path(args.shared_data) / sub
        files = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))
        files = sorted(files, key=lambda p: (len(p.stem), p.stem))  # ISBI: 2 before 10
        if args.limit_images:
            files = files[:args.limit_images]
        for f in files:
            _link(f, folder / "images" / f.name)
            _link(root / "masks" / f.name, folder / "masks" / f.name)
    return prepare


DATASETS = {
    "track": Dataset("track", {"foreground": 255, "ignore_value": IGNORE, "pixel_size_nm": None,
                               "class_names": ["background", "pore"]}, "pore", prepare=prepare_track,
                     title="real SEM track membranes (5 masked)"),
    "isbi": Dataset("isbi", {"foreground": 0, "pixel_size_nm": None, "class_names": ["background", "membrane"]},
                    "membrane", objects=False, fixed_test=10, prepare=_prepare_pairs("isbi2012-em-membranes"),
                    title="ISBI 2012 membranes (test: slices 20-29)"),
    "au": Dataset("au", {"mask_format": "rgb", "pixel_size_nm": None,
                         "colour_map": {"255,0,0": 1, "0,0,255": 2, "0,0,0": 0},
                         "class_names": ["background", "particle", "boundary"]},
                  "particle", fixed_test=6, prepare=_prepare_pairs("au-nanoparticles-tem/tetrahedra"),
                  title="Au tetrahedra TEM (test: last 6)",
                  # 4-connected overlap lines; touching particles cut at 2 px necks in truth and
                  # prediction alike (README: "Au tetrahedra: true objects that are particles")
                  evaluate_objects={"connectivity": 4, "truth_seed_h": 2.0, "seed_h": 2.0}),
}


def _order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda s: (len(s), s))


def draw_train_sets(ids: list[str], n_train: list[int], fixed_test: int, draw: int, seed: int
                    ) -> dict[int, tuple[list[str], list[str]]]:
    """``{n: (train ids, test ids)}`` of one draw: the train sets are nested prefixes of one
    permutation of the pool (seed ``seed``) rotated by ``draw``, so draws start from different
    images; test = the last ``fixed_test`` ids, or (0) every id not trained on.

    Examples
    --------
    >>> sets = draw_train_sets(["a", "b", "c", "d", "e"], [1, 2], 0, draw=0, seed=1)
    >>> set(sets[1][0]) <= set(sets[2][0]), sorted(sets[2][0] + sets[2][1])
    (True, ['a', 'b', 'c', 'd', 'e'])
    >>> draw_train_sets(["a", "b", "c"], [1], 0, draw=1, seed=1)[1][0] != sets[1][0]
    True
    """
    ids = _order(ids)
    pool, test = (ids[:-fixed_test], ids[-fixed_test:]) if fixed_test else (ids, None)
    if max(n_train) >= len(pool) + (1 if fixed_test else 0):
        raise SystemExit(f"--n-train {max(n_train)} leaves no image to test on (pool of {len(pool)})")
    perm = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    perm = perm[draw % len(pool):] + perm[:draw % len(pool)]
    return {n: (perm[:n], test if test is not None else _order(perm[n:])) for n in n_train}


def write_split_copy(split: Path, out: Path, relabel: Callable[[str, str], str]) -> Path:
    """A copy of a split folder with every source's split replaced by ``relabel(source_id, split)``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sources.csv", "tiles.csv"):
        table = read_table(split / name)
        table["split"] = [relabel(str(s), str(p)) for s, p in zip(table["source_id"], table["split"])]
        table.to_csv(out / name, index=False)
    return out


def scores(summary: dict[str, Any], plots: Path, ds: Dataset) -> dict[str, float]:
    """Dice / IoU of the scored class (mean over test images), object F1 and AP at IoU 0.5 and
    the mean relative count error |n_pred - n_true| / n_true over the test images."""
    # the synthetic model names its class "pore" whatever the dataset calls it: then class 1
    name = ds.score_class if ds.score_class in summary else \
        next(k for k in summary if k not in ("n_images", "objects", "datasets", "foreground"))
    cls = summary[name]
    out = {"dice": cls["dice"]["mean"], "iou": cls["iou"]["mean"], "object_f1_0.5": np.nan,
           "object_ap_0.5": np.nan, "count_error": np.nan}
    if ds.objects:
        per = pd.read_csv(plots / "objects_per_image.csv")
        per = per[np.isclose(per["threshold"], 0.5)]
        rel = (per["n_pred"] - per["n_true"]).abs() / per["n_true"].clip(lower=1)
        out.update({"object_f1_0.5": summary["objects"]["f1@0.5"], "object_ap_0.5": summary["objects"]["ap@0.5"],
                    "count_error": float(rel.mean())})
    return {k: round(float(v), 4) for k, v in out.items()}


def evaluate(model: Path, ingested: Path, split: Path, work: Path, ds: Dataset, threads: int) -> dict[str, float]:
    params = parse_group(EvaluateParams, {"device": "cpu", "threads": threads, "n_worst": 0,
                                          "objects": ds.evaluate_objects}, group="evaluate")
    summary = run_evaluate(params, model=model, ingested=ingested, split=split, predictions=work / "pred",
                           metrics=work / "metrics.json", plots=work / "plots")
    return scores(summary, work / "plots", ds)


def run_dataset(ds: Dataset, args: argparse.Namespace, work: Path, csv: Path) -> list[dict[str, Any]]:
    """Every run of one dataset; the rows so far are rewritten to ``csv`` after each run (a run
    cut short keeps what it measured)."""
    folder, ingested = work / ds.name / "source", work / ds.name / "ingested"
    ds.prepare(folder, args)
    ingest = parse_ingest_params({**ds.ingest, "tile_size": args.tile, "source": str(folder)})
    run_ingest(folder, ingested, ingest)
    ids = read_table(ingested / "sources.csv")["source_id"].astype(str).tolist()
    rows, base_scores = [], {}
    for draw in range(args.draws):
        fixed = ds.fixed_test if not ds.fixed_test or args.test_images is None else args.test_images
        for n, (train_ids, test_ids) in draw_train_sets(ids, args.n_train, fixed, draw, args.seed).items():
            run = work / ds.name / f"d{draw}_n{n}"
            unused = [i for i in ids if i not in train_ids and i not in test_ids]
            lists = {"method": "lists", "lists": {"train": train_ids, "val": unused, "test": test_ids}}
            split = run / "split"
            run_split(parse_group(SplitParams, lists, group="split"), args.seed, ingested, split)
            # no image to spare for validation: best epoch and threshold are chosen on the train tiles
            fit_split = write_split_copy(split, run / "fit_split", lambda s, p: "val" if p == "train" else "unused")
            if args.model:  # the synthetic model as it is, on the same test images
                key = tuple(test_ids)
                if key not in base_scores:
                    base_scores[key] = evaluate(Path(args.model), ingested, split, run / "base", ds, args.threads)
                rows.append({"dataset": ds.name, "n_train_images": n, "init": BASE, "draw": draw,
                             "train_images": "", "n_test_images": len(test_ids), "train_s": 0.0,
                             "train_cpu_s": 0.0, "epochs": 0, "samples": 0, **base_scores[key]})
            augmented = run / "augmented"
            run_augment(parse_group(AugmentParams, {"size": args.samples, "workers": 1}, group="augment"),
                        args.seed, ingested, split, augmented, progress=False)
            for init in (["synthetic", "scratch"] if args.model else ["scratch"]):
                raw = {"epochs": args.epochs, "device": "cpu", "threads": args.threads, "batch_size": args.batch_size,
                       "lr": args.lr, "init_from": str(args.model) if init == "synthetic" else None}
                model = run / init / "model.pt"
                t0, c0 = time.perf_counter(), time.process_time()
                run_train(parse_group(TrainParams, raw, group="train"), args.seed, augmented=augmented,
                          ingested=ingested, split=fit_split, model_path=model, resume=run / init / "resume.pt")
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                rows.append({"dataset": ds.name, "n_train_images": n, "init": init, "draw": draw,
                             "train_images": " ".join(train_ids), "n_test_images": len(test_ids),
                             "train_s": round(seconds, 1), "train_cpu_s": round(cpu, 1), "epochs": args.epochs,
                             "samples": args.samples,
                             **evaluate(model, ingested, split, run / init, ds, args.threads)})
                LOG.info("%s", rows[-1])
                pd.DataFrame(rows, columns=COLUMNS).assign(settings=settings_line(args)).to_csv(csv, index=False)
                if not args.keep:
                    model.unlink(missing_ok=True)
            if not args.keep:
                shutil.rmtree(augmented, ignore_errors=True)
    return rows


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over the draws (and min / max of Dice) per dataset, number of images and init.

    Examples
    --------
    >>> runs = pd.DataFrame({"dataset": ["t"] * 3, "n_train_images": [1, 1, 1], "init": ["scratch"] * 3,
    ...                      "dice": [0.5, 0.7, 0.6], "iou": [0.3, 0.5, 0.4], "object_f1_0.5": [0.1] * 3,
    ...                      "object_ap_0.5": [0.1] * 3, "count_error": [0.2] * 3, "train_s": [10.0] * 3,
    ...                      "n_test_images": [4] * 3})
    >>> summary_table(runs)[["draws", "dice", "dice_min", "dice_max"]].to_dict("records")
    [{'draws': 3, 'dice': 0.6, 'dice_min': 0.5, 'dice_max': 0.7}]
    """
    keys = ["dataset", "n_train_images", "init"]
    g = runs.groupby(keys, sort=False)
    cols = ["dice", "iou", "object_f1_0.5", "object_ap_0.5", "count_error", "train_s", "train_cpu_s", "n_test_images"]
    out = g[[c for c in cols if c in runs.columns]].mean()
    out.insert(0, "draws", g.size())
    out.insert(2, "dice_min", g["dice"].min())
    out.insert(3, "dice_max", g["dice"].max())
    out = out.reset_index()
    order = {BASE: 0, "synthetic": 1, "scratch": 2}
    out = out.sort_values(["dataset", "n_train_images", "init"], key=lambda c: c.map(order) if c.name == "init" else c,
                          kind="stable")
    return out.round(4).reset_index(drop=True)


def _cell(v: float, fmt: str = "{:.3f}") -> str:
    return "—" if pd.isna(v) else fmt.format(v)


def markdown(table: pd.DataFrame, settings: str) -> str:
    """The summary as a Markdown table (Dice as mean and range over the draws)."""
    lines = [settings, "",
             "| dataset | images trained on | init | draws | test images | Dice (min–max) | IoU | object F1@0.5 "
             "| AP@0.5 | count error | train s (wall / CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        if r["init"] == BASE:  # nothing trained: no time to show
            r = {**r, "train_s": np.nan, "train_cpu_s": np.nan}
        dice = _cell(r["dice"]) + ("" if r["draws"] == 1 or r["dice_min"] == r["dice_max"]
                                   else f" ({r['dice_min']:.3f}–{r['dice_max']:.3f})")
        lines.append(f"| {r['dataset']} | {r['n_train_images']} | {r['init']} | {r['draws']} "
                     f"| {r['n_test_images']:g} | {dice} | {_cell(r['iou'])} | {_cell(r['object_f1_0.5'])} "
                     f"| {_cell(r['object_ap_0.5'])} | {_cell(r['count_error'])} "
                     f"| {_cell(r['train_s'], '{:.0f}')} / {_cell(r.get('train_cpu_s', np.nan), '{:.0f}')} |"
                     .replace("— / —", "—"))
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, path: Path) -> None:
    """Dice against the number of images trained on: fine-tuned and scratch, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = table[table["dataset"] == name]
        for init, label, style in (("synthetic", "fine-tuned from the synthetic model", "o-"),
                                   ("scratch", "from scratch", "s--")):
            p = part[part["init"] == init]
            if len(p):
                ax.errorbar(p["n_train_images"], p["dice"], yerr=[p["dice"] - p["dice_min"], p["dice_max"] - p["dice"]],
                            fmt=style, capsize=3, label=label)
        base = part[part["init"] == BASE]
        if len(base):
            ax.plot(base["n_train_images"], base["dice"], "x:", color="grey",
                    label="synthetic model, no training (same test images)")
        ax.set_xscale("log", base=2)
        ticks = sorted(part.loc[part["n_train_images"] > 0, "n_train_images"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("annotated images trained on")
        ax.set_ylabel("test Dice (mean over draws, range)")
        ax.set_title(DATASETS[name].title if name in DATASETS else name, fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="synthetic default model to fine-tune "
                    "(train.init_from); without it only scratch runs")
    ap.add_argument("--shared-data", type=Path, required=True, help="folder of the shared real datasets")
    ap.add_argument("--reference", type=Path, default=None,
                    help="track: folder with counts.csv and masks/ (data/reference/track-membranes-sem)")
    ap.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["track", "isbi"])
    ap.add_argument("--n-train", type=int, nargs="+", default=[1, 2, 4], help="images trained on")
    ap.add_argument("--draws", type=int, default=2, help="draws of which images are trained on")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--samples", type=int, default=192, help="augmented training samples (augment.size)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--tile", type=int, default=128, help="ingest.tile_size, px")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit-images", type=int, default=0, help="isbi/au: use only the first N files (tests)")
    ap.add_argument("--test-images", type=int, default=None,
                    help="isbi/au: size of the fixed test set (default: 10 / 6, the last files)")
    ap.add_argument("--out", type=Path, required=True, help="folder for finetune_curve.csv/.md/.png")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder and models")
    args = ap.parse_args(argv)
    if "track" in args.datasets and args.reference is None:
        ap.error("--reference is needed for the track dataset")
    if any(n < 1 for n in args.n_train) or args.draws < 1:
        ap.error("--n-train values and --draws must be >= 1")
    args.n_train = sorted(set(args.n_train))
    return args


def settings_line(args: argparse.Namespace) -> str:
    return (f"default network (U-Net, MobileNetV3-small, params.yaml train group) with "
            f"{args.epochs} epochs x {args.samples} augmented {args.tile}-px samples (RDZF), batch {args.batch_size}, "
            f"lr {args.lr}, cosine schedule, CPU ({args.threads} threads), seed {args.seed}; best epoch and threshold "
            f"on the training tiles; {args.draws} draw(s) of the training images; test = images not trained on "
            f"(isbi: slices 20-29, au: last 6 files); Dice/IoU = mean over test images of the foreground class.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="finetune_curve_"))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.datasets:
            t0 = time.perf_counter()
            run_dataset(DATASETS[name], args, work, args.out / f"finetune_curve_{name}.csv")
            LOG.info("%s: %.0f s", name, time.perf_counter() - t0)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = write_summary(args.out)
    print(text)
    return 0


def write_summary(out: Path) -> str:
    """``finetune_curve.md`` and ``.png`` from every ``finetune_curve_<dataset>.csv`` in ``out``
    (datasets run separately, e.g. with different draws, end up in one table)."""
    parts = [pd.read_csv(p, dtype={"train_images": str}) for p in sorted(out.glob("finetune_curve_*.csv"))]
    runs = pd.concat(parts, ignore_index=True)
    table = summary_table(runs)
    settings = "\n\n".join(f"**{d}**: {s}" for d, s in runs.groupby("dataset", sort=False)["settings"].first().items())
    text = markdown(table, settings)
    (out / "finetune_curve.md").write_text(text)
    figure(table, out / "finetune_curve.png")
    return text


if __name__ == "__main__":
    raise SystemExit(main())
