"""DVC stage ``analyze``: measure the test-image predictions and check them against the truth.

    python -m stages.analyze --params params.yaml --predictions data/predictions \\
        --ingested data/ingested --split data/split --truth <ingest.source> \\
        --metrics metrics/analyze.json --plots plots/analyze --tables data/analysis

For every test image (``split == test`` in ``<split>/sources.csv``) the predicted class ids
``<predictions>/<source_id>.png`` and the ground-truth class ids
``<ingested>/masks/<source_id>.png`` are analysed and compared with the reference (the exact
synthetic truth when ``<truth>/truth.csv`` exists, else the ground-truth mask) by
:func:`porescope.analysis.accuracy.assess_predictions` (params group ``analyze``).
Outputs (atomic; same inputs -> same bytes): ``<metrics>`` (errors per estimator and mask),
``<plots>/summary.csv`` + figures, ``<tables>/objects.csv``, ``summary.csv``, ``comparison.csv``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.analysis.accuracy import assess_predictions, read_mask_pair
from porescope.analysis.membrane import ESTIMATORS
from porescope.analysis.params import AnalyzeParams
from porescope.analysis.truth import read_synthetic_truth
from porescope.config import parse_group
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json
from porescope.io.tables import PipelineDataError, read_classes, read_table

LOG = logging.getLogger("porescope.analyze")
GROUP = "analyze"


def _pixel_size(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _test_sources(split: Path) -> pd.DataFrame:
    path = split / "sources.csv"
    sources = read_table(path)
    for col in ("source_id", "split"):
        if col not in sources.columns:
            raise PipelineDataError(f"{path}: missing column '{col}'; rerun the split stage")
    test = sources[sources["split"] == "test"].sort_values("source_id")
    if test.empty:
        raise ParamsError(f"{path}: the test split is empty; raise split.test_fraction")
    return test


def run(params: AnalyzeParams, seed: int, *, predictions: Path, ingested: Path, split: Path,
        truth_dir: Path | None, metrics: Path, plots: Path, tables: Path) -> dict[str, Any]:
    """Analyse every test image and write all outputs; returns the metrics dict."""
    test = _test_sources(split)
    class_names = read_classes(ingested)
    truth, pores = read_synthetic_truth(truth_dir)
    truth_csv = (truth_dir or Path("<none>")) / "truth.csv"
    LOG.info("no %s: comparing the predictions with the ground-truth masks analysed the same way "
             "(reference = ground-truth mask)" if truth is None
             else "reference: exact synthetic truth from %s", truth_csv)
    images = ((str(r.source_id),
               *read_mask_pair(predictions / f"{r.source_id}.png",
                               ingested / "masks" / f"{r.source_id}.png"),
               _pixel_size(getattr(r, "pixel_size_nm", None)))
              for r in tqdm(list(test.itertuples(index=False)), desc="analyze", unit="image"))
    res = assess_predictions(images, params, seed, class_names=class_names,
                             truth=truth, pores=pores, truth_source=str(truth_csv))
    with output_dir(tables) as tmp:
        write_csv(tmp / "objects.csv", res.objects)
        write_csv(tmp / "summary.csv", res.summaries)
        write_csv(tmp / "comparison.csv", res.comparison)
    with output_dir(plots) as tmp:
        write_csv(tmp / "summary.csv", res.per_image)
        for name, data in sorted(res.figures.items()):
            write_bytes(tmp / name, data)
    write_json(metrics, res.metrics)
    for est in ESTIMATORS:
        s = res.metrics["estimators"][est]["pred"]
        LOG.info("%-14s predicted: porosity MAE %.3f pp, count MAE %.2f %% (bias %+.2f %%)", est,
                 s["porosity_mae_pp"] or math.nan, s["count_mae_pct"] or math.nan,
                 s["count_bias_pct"] or math.nan)
    return res.metrics


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, type=Path,
                        help="folder of predicted class-id PNGs (evaluate's output)")
    parser.add_argument("--ingested", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--truth", type=Path, default=None,
                        help="the ingest source; its truth.csv / pores.csv are used when present")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path)
    parser.add_argument("--tables", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    raw = load_params(args.params, GROUP)
    params = parse_group(AnalyzeParams, raw, group=GROUP, source=str(args.params))
    run(params, raw["seed"], predictions=args.predictions, ingested=args.ingested,
        split=args.split, truth_dir=args.truth, metrics=args.metrics, plots=args.plots,
        tables=args.tables)
    return 0


if __name__ == "__main__":
    run_stage("analyze", main)
