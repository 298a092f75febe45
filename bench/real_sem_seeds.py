"""How much do the real-SEM results depend on the training run?

Trains the default model (params.yaml's ``train`` group, on the training data the pipeline
built: ``data/augmented``, ``data/ingested``, ``data/split``) once per seed, with only the
training seed changed (initialisation and sample order; the data stay those of ``seed``), and
scores each model

* on the nine real micrographs against the manual reference (``bench/real_sem_reference.py``'s
  protocol) at scale 1 (the default) and at ``scale: auto``, with the guard's verdict on each
  analysed region (``certified`` and the flags' names);
* on the ``validate`` stage's 48 synthetic membranes (porosity and the Boolean count).

Seed 42 is the pipeline's own seed: with the pipeline's CPU settings its model is the committed
``models/model.pt`` (the script prints whether the SHA-256 matches).

    python bench/real_sem_seeds.py --seeds 42 43 44 45 --out bench/results/real_sem_seeds

Writes ``<out>/seed<k>/model.pt``, ``<out>/images.csv`` (one row per seed, scale and image),
``<out>/summary.csv`` (one row per seed and scale) and prints both.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import pandas as pd
import yaml

from real_sem_reference import IMAGES, ROOT, compare_model, measure_params

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from porescope.analysis.params import AnalyzeParams  # noqa: E402
from porescope.analysis.validation import ValidateParams, validate_on_truth  # noqa: E402
from porescope.config import parse_group  # noqa: E402
from porescope.measure.segment import load_model  # noqa: E402
from porescope.segmentation.train_model import TrainParams, run_train  # noqa: E402


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_seed(params: TrainParams, seed: int, out: Path, data: dict[str, Path]) -> Path:
    """The default model trained with ``seed``; reused when ``out/seed<k>/model.pt`` exists."""
    folder = out / f"seed{seed}"
    model = folder / "model.pt"
    if not model.exists():
        folder.mkdir(parents=True, exist_ok=True)
        run_train(params, seed, augmented=data["augmented"], ingested=data["ingested"],
                  split=data["split"], model_path=model, resume=folder / "resume.pt",
                  onnx_path=folder / "model.onnx")
        (folder / "resume.pt").unlink(missing_ok=True)
    return model


def score(model_path: Path, p: dict) -> tuple[list[dict], list[dict]]:
    """Per-image rows and per-scale summary rows of one model."""
    model = load_model(model_path, device="cpu")
    mp = measure_params()
    images, summary = [], []
    for scale in (1.0, "auto"):
        got, table, m = compare_model(model, mp, scale, guard=True)
        err = table.set_index("image")["split_labels_error_pct"]
        for r in got.itertuples(index=False):
            images.append({"scale": scale, "image": r.image_id, "manual": r.manual,
                           "split": r.count_split_labels, "split_error_pct": err[r.image_id],
                           "certified": r.certified, "guard_flags": r.guard_flags})
        off = err.abs() > 5
        summary.append({"scale": scale, "split_mean_abs_pct": m["count"]["split_labels"]["mean_abs_pct"],
                        "split_max_abs_pct": m["count"]["split_labels"]["max_abs_pct"],
                        "split_pooled_pct": m["count"]["split_labels"]["pooled_pct"],
                        "porosity_mean_abs_pp": m["porosity"]["mean_abs_pp"],
                        "porosity_max_abs_pp": m["porosity"]["max_abs_pp"],
                        "images_off_by_more_than_5pct": int(off.sum()),
                        "of_them_certified": int((got.set_index("image_id")["certified"][off[off].index] == "yes").sum())})
    vp = ValidateParams.from_mapping(p["validate"])
    val = validate_on_truth(vp, p["synthesize"], AnalyzeParams.from_mapping(p["analyze"]), int(p["seed"]),
                            model_path=model_path).metrics
    t = val["targets"]["predicted"]
    for row in summary:
        row.update(validate_porosity_max_pp=t["porosity_max_abs_pp"],
                   validate_porosity_share_over=t["porosity_share_over"],
                   validate_porosity_mae_pp=val["errors"]["predicted"]["boolean_model"]["all"]["porosity_mae_pp"],
                   validate_boolean_pooled_pct=val["errors"]["predicted"]["boolean_model"]["all"]["count_pooled_pct"])
    return images, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--augmented", type=Path, default=ROOT / "data" / "augmented")
    ap.add_argument("--ingested", type=Path, default=ROOT / "data" / "ingested")
    ap.add_argument("--split", type=Path, default=ROOT / "data" / "split")
    ap.add_argument("--committed", type=Path, default=ROOT / "models" / "model.pt",
                    help="the pipeline's model, compared with the seed-42 one")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not IMAGES.is_dir():
        raise SystemExit(f"{IMAGES} not found: the real images are in ../shared/data")
    p = yaml.safe_load(args.params.read_text())
    params = parse_group(TrainParams, p["train"], group="train", source=str(args.params))
    data = {"augmented": args.augmented, "ingested": args.ingested, "split": args.split}
    images, summary = [], []
    for seed in args.seeds:
        model = train_seed(params, seed, args.out, data)
        digest = sha256(model)
        same = args.committed.exists() and digest == sha256(args.committed)
        print(f"seed {seed}: {model} sha256 {digest[:12]}"
              + (" = the committed model" if same else ""), flush=True)
        im, su = score(model, p)
        images += [{"seed": seed, **r} for r in im]
        summary += [{"seed": seed, "committed_model": same, **r} for r in su]
    pd.set_option("display.width", 250)
    images_df, summary_df = pd.DataFrame(images), pd.DataFrame(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    images_df.to_csv(args.out / "images.csv", index=False)
    summary_df.to_csv(args.out / "summary.csv", index=False)
    print(images_df.round(2).to_string(index=False))
    print(summary_df.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
