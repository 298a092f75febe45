"""DVC stage ``validate``: validation on truth - how accurate are porosity and pore counts?

    python -m stages.validate --params params.yaml --model models/model.pt \\
        --metrics metrics/validate.json --plots plots/validate

Generates a dedicated synthetic validation set (params group ``validate``, the generator
settings of ``synthesize``, seed ``seed + validate.seed_offset``), analyses each image's exact
ground-truth mask and the model's prediction (params group ``analyze``) and compares them with
the exact truth: :func:`porescope.analysis.validation.validate_on_truth`.

Outputs (atomic, deterministic for a fixed thread count):

* ``<metrics>``: errors per mask (``ground_truth``, ``predicted``), estimator and porosity band,
  whether the accuracy targets (``validate.targets``) are met and by how many images they are
  missed, and the count error the segmentation adds (``segmentation_effect``: predicted against
  exact mask, per estimator).
* ``<plots>/table.csv`` (one row per image, mask and estimator), ``count_error.png``,
  ``porosity_error.png``, ``porosity_scatter.png``.

With ``validate.enabled: false`` (a dataset that is not a membrane) nothing is generated:
``<metrics>`` is ``{"reason": ..., "skipped": true}`` and ``<plots>`` holds only a README.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stages.common import load_params, run_stage, setup_logging, stage_parser
from porescope.analysis.params import AnalyzeParams
from porescope.analysis.validation import ValidateParams, skipped_metrics, validate_on_truth
from porescope.config import parse_group
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json, write_text

LOG = logging.getLogger("porescope.validate")
GROUP = "validate"
SKIP_REASON = "validate.enabled is false"


def run(params: ValidateParams, synth: dict[str, Any], analysis: AnalyzeParams, seed: int, *,
        model_path: Path | None, metrics: Path, plots: Path) -> dict[str, Any]:
    """Validate (or record the skip) and write the outputs; returns the metrics dict."""
    if not params.enabled:
        LOG.info("validation skipped: %s", SKIP_REASON)
        out = skipped_metrics(SKIP_REASON)
        with output_dir(plots) as tmp:
            write_text(tmp / "README.md", f"# Validation skipped\n\n{SKIP_REASON}: no validation "
                       "images were generated and no figures drawn.\n")
        write_json(metrics, out)
        return out
    res = validate_on_truth(params, synth, analysis, seed, model_path=model_path)
    with output_dir(plots) as tmp:
        write_csv(tmp / "table.csv", res.table)
        for name, data in res.figures.items():
            write_bytes(tmp / name, data)
    write_json(metrics, res.metrics)
    for est, per_band in res.metrics["segmentation_effect"].items():
        LOG.info("segmentation adds to the %s count: %s", est, "; ".join(
            f"{b}: max |difference| "
            + ("no estimate" if v["max_abs_pct"] is None else f"{v['max_abs_pct']:.2f} %")
            + f", {v['share_over']:.0%} of the images beyond {v['tolerance_pct']:g} %"
            for b, v in per_band.items()))
    for band, v in res.metrics["edge_shift_px"].items():
        LOG.info("porosity error as an edge shift, porosity %s: bias %+.3f px, mean |shift| %.3f px "
                 "(the porosity tolerance is %.3f px at the median image, %.3f px at the strictest)",
                 band, v["bias_px"], v["mae_px"], v["tolerance_median_px"], v["tolerance_min_px"])
    for key, t in res.metrics["targets"].items():
        if not isinstance(t, dict) or "porosity_met" not in t:
            continue
        LOG.info("%s masks: porosity max |error| %.3f pp (%s); %s", key,
                 t["porosity_max_abs_pp"], "met" if t["porosity_met"] else "NOT met",
                 "; ".join(f"{b}: best {v['best_estimator']} max |error| {v['best_max_abs_pct']:.2f} % "
                           f"({'met' if v['met'] else 'NOT met'}, tolerance {v['tolerance_pct']:g} %)"
                           for b, v in t["count"].items()))
    return res.metrics


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="trained model file (omit: ground-truth masks only)")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    params = parse_group(ValidateParams, load_params(args.params, GROUP), group=GROUP,
                         source=str(args.params))
    synth = load_params(args.params, "synthesize")
    raw = load_params(args.params, "analyze")
    analysis = parse_group(AnalyzeParams, raw, group="analyze", source=str(args.params))
    run(params, synth, analysis, int(raw["seed"]), model_path=args.model, metrics=args.metrics,
        plots=args.plots)
    return 0


if __name__ == "__main__":
    run_stage("validate", main)
