"""DVC stage ``train``: fit an smp model on the augmented train split, keep the best by val IoU.

Reads params group ``train`` (:class:`porescope.segmentation.train_model.TrainParams`); writes the
best model file, a resume checkpoint (kept between runs so a killed ``dvc repro`` continues from
the last finished epoch), DVCLive curves, ``metrics/train.json`` and the model card. The work is
:func:`porescope.segmentation.train_model.run_train`.
"""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from porescope.config import parse_group
from porescope.io.atomic import write_json, write_text
from porescope.provenance.model_card import build_model_card, render_model_card_md, write_run_record
from porescope.segmentation.train_model import TrainParams, run_train
from stages.common import LOG, load_params, run_stage, setup_logging, stage_parser

GROUP = "train"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--augmented", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--model", required=True, type=Path, help="best model file to write")
    parser.add_argument("--onnx", type=Path, default=None, help="ONNX export of the best model to write")
    parser.add_argument("--resume", required=True, type=Path, help="resume checkpoint (kept between runs)")
    parser.add_argument("--live", required=True, type=Path, help="DVCLive folder for per-epoch curves")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--card", type=Path, default=None,
                        help="model card JSON to write (Markdown beside it); dvc.yaml always passes it")
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = parse_group(TrainParams, raw, group=GROUP, source=str(args.params))

    from dvclive import Live

    live = Live(dir=str(args.live), dvcyaml=None, save_dvc_exp=False, report=None)

    def log_epoch(epoch: int, row: dict[str, float]) -> None:
        live.step = epoch
        for key in ("train_loss", "val_loss", "val_iou", "val_dice", "lr"):
            live.log_metric(key, row[key])
        live.make_summary()

    started = time.time()
    started_iso = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = run_train(params, raw["seed"], augmented=args.augmented, ingested=args.ingested, split=args.split,
                    model_path=args.model, resume=args.resume, on_epoch=log_epoch, onnx_path=args.onnx)
    live.end()
    result = run.result
    write_json(args.metrics, run.metrics())
    if args.card is not None:
        card = build_model_card(
            model_config=run.model_config, class_names=run.class_names, epochs_run=result.epochs_run,
            best_epoch=result.best_epoch, val_metrics=result.best_scores, device=run.device,
            threads=run.threads, stopped_early=result.stopped_early, amp=params.amp, stage="train",
            params=args.params, split_dir=args.split, augmented_dir=args.augmented, dvc_yaml="dvc.yaml",
            dvc_lock="dvc.lock", model_file=args.model.as_posix(),
            onnx_file=args.onnx.as_posix() if args.onnx else None,
            code_inputs=("pyproject.toml", "stages/", "porescope/"), model_meta=run.meta)
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
             run.device, run.threads, platform.processor() or platform.machine())
    # The run finished: its resume file has done its job. Removing it makes `dvc repro -f train`
    # really train again instead of "resuming" a finished run.
    args.resume.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    run_stage("train", main)
