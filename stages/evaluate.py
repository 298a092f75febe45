"""DVC stage ``evaluate``: segment every whole test image and score it against its mask.

Pixel scores (Dice, IoU, precision, recall) per image and class, with mean / median / min / max
over images and the pooled score; object scores (match by IoU at 0.50:0.05:0.95, AP, mAP);
boxplot, overlays and a gallery of the worst images. Predictions of the test images are written
for ``analyze``. Params: :class:`porescope.evaluation.evaluate_model.EvaluateParams`; the work:
:func:`porescope.evaluation.evaluate_model.run_evaluate`.
"""

from __future__ import annotations

from pathlib import Path

from porescope.config import parse_group
from porescope.evaluation.evaluate_model import EvaluateParams, run_evaluate
from stages.common import load_params, run_stage, setup_logging, stage_parser

GROUP = "evaluate"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path, help="folder for test-image predictions")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path, help="folder for tables and figures")
    args = parser.parse_args(argv)
    setup_logging()
    params = parse_group(EvaluateParams, load_params(args.params, GROUP), group=GROUP, source=str(args.params))
    run_evaluate(params, model=args.model, ingested=args.ingested, split=args.split,
                 predictions=args.predictions, metrics=args.metrics, plots=args.plots)
    return 0


if __name__ == "__main__":
    run_stage("evaluate", main)
