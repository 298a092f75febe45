"""DVC stage ``train``: fit an smp model on the augmented train split, keep the best by val IoU.

Reads params group ``train``; writes the best model file, a resume checkpoint (kept between
runs so a killed ``dvc repro`` continues from the last finished epoch), DVCLive curves and
``metrics/train.json``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.common import LOG, ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.segmentation import devices
from porescope.segmentation import inference
from porescope.segmentation import losses
from porescope.segmentation import models
from porescope.segmentation import training
from porescope.io.atomic import write_json, write_text
from porescope.provenance.model_card import build_model_card, render_model_card_md, write_run_record
from porescope.io.tables import read_classes, read_stack, read_table


def _model_config(p: dict[str, Any], n_classes: int) -> dict[str, Any]:
    task = p.get("task", "auto")
    if task not in ("auto", "binary", "multiclass"):
        raise ParamsError(f"train.task must be auto, binary or multiclass, got {task!r}")
    if task == "binary" and n_classes != 2:
        raise ParamsError(f"train.task=binary needs 2 classes in the dataset, it has {n_classes}")
    out_channels = 1 if (n_classes == 2 and task != "multiclass") else n_classes
    return models.model_config(p["arch"], p["encoder"], out_channels, encoder_depth=p.get("encoder_depth", 5),
                               decoder_channels=p.get("decoder_channels"))


def _train_config(p: dict[str, Any]) -> training.TrainConfig:
    keys = training.TrainConfig.__dataclass_fields__
    try:
        return training.TrainConfig(**{k: p[k] for k in keys if k in p})
    except (TypeError, ValueError) as exc:
        raise ParamsError(str(exc)) from None


def _load_data(augmented: Path, ingested: Path, split: Path) -> tuple[training.SegmentationData, training.SegmentationData]:
    samples = read_table(augmented / "samples.csv")
    names = [Path(f).stem for f in samples["file"]]
    train = training.SegmentationData(read_stack(augmented / "images", names), read_stack(augmented / "masks", names))
    tiles = read_table(split / "tiles.csv")
    val_ids = tiles.loc[tiles["split"] == "val", "tile_id"].tolist()
    if not val_ids:
        raise ParamsError(f"{split / 'tiles.csv'}: the val split is empty; raise split.val_fraction")
    val = training.SegmentationData(read_stack(ingested / "tiles" / "images", val_ids),
                                    read_stack(ingested / "tiles" / "masks", val_ids))
    return train, val


def _fingerprint(p: dict[str, Any], config: dict[str, Any], *arrays: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps({"params": p, "model": config}, sort_keys=True).encode())
    for module in (training, losses, models):
        digest.update(Path(module.__file__).read_bytes())
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()


def _calibrated_threshold(p: dict[str, Any], model: torch.nn.Module, best_state: dict[str, torch.Tensor],
                          val: training.SegmentationData, config: dict[str, Any], device: torch.device,
                          batch_size: int) -> float:
    """Decision threshold of a binary model: area-matched on the val tiles, or 0.5 when off."""
    if config["classes"] != 1 or not p.get("calibrate_threshold", True):
        return 0.5
    model.load_state_dict(best_state)
    proba = training.tile_probabilities(model, val.images, batch_size=batch_size, device=device)
    threshold = inference.area_matching_threshold(proba[:, 0], val.masks > 0)
    LOG.info("area-matched decision threshold on the val tiles: %.4f", threshold)
    return round(threshold, 6)


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--augmented", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--model", required=True, type=Path, help="best model file to write")
    parser.add_argument("--resume", required=True, type=Path, help="resume checkpoint (kept between runs)")
    parser.add_argument("--live", required=True, type=Path, help="DVCLive folder for per-epoch curves")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--card", type=Path, default=None,
                        help="model card JSON to write (Markdown beside it); dvc.yaml always passes it")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params(args.params, "train")

    class_names = read_classes(args.ingested)
    config = _model_config(p, len(class_names))
    cfg = _train_config(p)
    train_data, val_data = _load_data(args.augmented, args.ingested, args.split)
    LOG.info("train: %d samples, val: %d tiles, model %s", len(train_data), len(val_data), config)

    device = devices.select_device(p.get("device", "auto"))
    threads = devices.configure_cpu_threads(int(p.get("threads", 0)))
    torch.manual_seed(cfg.seed)
    model = models.build_model(config)
    if p.get("encoder_weights"):
        models.load_encoder_weights(model, p["encoder_weights"])
    if p.get("init_from"):
        report = models.init_from_model(model, p["init_from"])
        LOG.info("initialised %d tensors from %s (%d skipped)", len(report["copied"]), p["init_from"],
                 len(report["skipped"]))
    loss_fn = losses.build_loss(p["loss"], config["classes"], p.get("class_weights"),
                                focal_gamma=p.get("focal_gamma", 2.0),
                                tversky_alpha=p.get("tversky_alpha", 0.5), tversky_beta=p.get("tversky_beta", 0.5))

    from dvclive import Live

    live = Live(dir=str(args.live), dvcyaml=None, save_dvc_exp=False, report=None)

    def log_epoch(epoch: int, row: dict[str, float]) -> None:
        live.step = epoch
        for key in ("train_loss", "val_loss", "val_iou", "val_dice", "lr"):
            live.log_metric(key, row[key])
        live.make_summary()

    started = time.time()
    started_iso = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = training.fit(model, loss_fn, train_data, val_data, cfg, n_classes=config["classes"], device=device,
                          amp=bool(p.get("amp", True)), resume_path=args.resume,
                          fingerprint=_fingerprint(p, config, train_data.images, train_data.masks,
                                                   val_data.images, val_data.masks),
                          on_epoch=log_epoch)
    live.end()
    if result.resumed_from_epoch:
        LOG.info("resumed after epoch %d from %s", result.resumed_from_epoch, args.resume)
    threshold = _calibrated_threshold(p, model, result.best_state, val_data, config, device, cfg.batch_size)
    meta = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "threshold": threshold,
            **result.best_scores}
    models.save_model_file(args.model, result.best_state, config, {str(k): v for k, v in class_names.items()}, meta)
    write_json(args.metrics, {
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
        "val_iou": result.best_scores.get("val_iou"), "val_dice": result.best_scores.get("val_dice"),
        "threshold": threshold,
        "train_samples": len(train_data), "val_tiles": len(val_data),
    })
    if args.card is not None:
        card = build_model_card(model_config=config, class_names=class_names, epochs_run=result.epochs_run,
                                best_epoch=result.best_epoch, val_metrics=result.best_scores, device=device,
                                threads=threads, stopped_early=result.stopped_early, amp=bool(p.get("amp", True)),
                                stage="train", params=args.params, split_dir=args.split, augmented_dir=args.augmented,
                                dvc_yaml="dvc.yaml", dvc_lock="dvc.lock", model_file=args.model.as_posix(),
                                code_inputs=("pyproject.toml", "stages/", "porescope/"), model_meta=meta)
        write_json(args.card, card)
        write_text(args.card.with_suffix(".md"), render_model_card_md(card))
    # Timings stay out of tracked outputs (they would make rebuilds differ byte for byte): they go to
    # an untracked run record beside the model and to the log.
    write_run_record(args.model.with_name("train_run.json"), result.seconds, result.samples_per_s, started_iso,
                     platform.node())
    LOG.info("%.1f training samples/s", result.samples_per_s)
    LOG.info("best epoch %d: val IoU %.4f, Dice %.4f (%d epochs, %.0f s on %s, %d threads, %s)",
             result.best_epoch, result.best_scores.get("val_iou", float("nan")),
             result.best_scores.get("val_dice", float("nan")), result.epochs_run, time.time() - started,
             device, threads, platform.processor() or platform.machine())
    # The run finished: its resume file has done its job. Removing it makes `dvc repro -f train`
    # really train again instead of "resuming" a finished run.
    args.resume.unlink(missing_ok=True)


if __name__ == "__main__":
    run_stage("train", main)
