"""DVC stage ``validate``: validation on truth - how accurate are porosity and pore counts?

    python -m stages.validate --params params.yaml --model models/model.pt \\
        --metrics metrics/validate.json --plots plots/validate

Generates a dedicated synthetic validation set (params group ``validate``: number and size of
the images, porosity and diameter ranges; every other generator setting - tilt, appearance,
mask convention, pixel size - from the ``synthesize`` group so the images look like the
training data). The set is made with the seed ``seed + validate.seed_offset``, so its pores,
appearance and noise are independent of the training images (which use ``seed``).

Each image is then analysed twice with :func:`porescope.analysis.membrane.analyse_mask`
(params group ``analyze``): on its exact ground-truth mask (the error of the *measurement*
alone) and on the mask that the trained model predicts from the rendered micrograph
(segmentation + measurement; sliding-window inference with ``validate.tile`` / ``overlap`` /
``batch_size`` / ``tta``). Porosity is compared with the exact porosity; each count estimator
with the exact count in its own convention (frame-counting estimators: true pores kept by the
guard-frame rule; Boolean model: pores whose centre is in the image) - see
:mod:`porescope.analysis.membrane`. The Boolean model is also reported with the *known*
single-pore area ``E[A]`` (``boolean_model_known_area``), which isolates the error of the model
itself from that of estimating ``E[A]``.

Outputs (atomic, deterministic for a fixed thread count):

* ``<metrics>``: per mask (``ground_truth``, ``predicted``), estimator and porosity band
  (the band edges are those of ``validate.targets.count_abs_pct``): mean / max absolute
  porosity error (pp), mean / max absolute, mean signed and pooled count error (%); and the
  targets: porosity |error| <= ``targets.porosity_abs_pp`` for every image, and for each band
  the best estimator (lowest mean |count error|, among the three practical estimators) with
  every image's |count error| within the band's tolerance.
* ``<plots>/table.csv``: the tidy per-image table, one row per image, mask and estimator.
* ``<plots>/count_error.png``, ``porosity_error.png``, ``porosity_scatter.png``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import ParamsError, load_params, run_stage, setup_logging, stage_parser
from porescope.analysis import membrane as ma
from porescope.synthetic import membranes as syn
from porescope.io.atomic import output_dir, write_bytes, write_csv, write_json

LOG = logging.getLogger("porescope.validate")
GROUP = "validate"

#: Defaults of the ``validate`` group (every key may be given; unknown keys are errors).
DEFAULTS: dict[str, Any] = {
    "n_images": 12,
    "height": 512,
    "width": 512,
    "porosity_min": 0.02,
    "porosity_max": 0.40,
    "diameter_min_px": 15.0,
    "diameter_max_px": 40.0,
    "seed_offset": 1_000_003,
    "targets": {"porosity_abs_pp": 0.5, "count_abs_pct": [[0.20, 2.0], [0.40, 5.0]]},
    "tile": 256,
    "overlap": 64,
    "batch_size": 4,
    "tta": False,
    "device": "auto",
    "threads": 0,
}
PRACTICAL = ma.ESTIMATORS            # estimators usable without knowing E[A]
KNOWN_AREA = "boolean_model_known_area"
MASKS = {"ground truth": "ground_truth", "predicted": "predicted"}


def _is_num(x: Any) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
            and math.isfinite(float(x)))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def validate_params(raw: Mapping[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Check the ``validate`` group (missing keys take :data:`DEFAULTS`); raise ParamsError."""
    p = dict(raw)
    seed = p.pop("seed", 0)
    for key in p:
        if key not in DEFAULTS:
            raise ParamsError(f"{source}: {GROUP}.{key}: unknown parameter "
                              f"(known: {', '.join(DEFAULTS)})")
    out = {**DEFAULTS, **p, "seed": seed}

    def err(key: str, why: str) -> ParamsError:
        return ParamsError(f"{source}: {GROUP}.{key}: {why} (got {out.get(key)!r})")

    for key, lo, hi in (("n_images", 1, 10_000), ("height", 32, 16384), ("width", 32, 16384),
                        ("seed_offset", 1, 2 ** 31), ("tile", 32, 8192), ("overlap", 0, 4096),
                        ("batch_size", 1, 4096), ("threads", 0, 256)):
        if not (_is_int(out[key]) and lo <= out[key] <= hi):
            raise err(key, f"must be an integer in [{lo}, {hi}]")
    if 2 * out["overlap"] > out["tile"]:
        raise err("overlap", f"must be at most tile / 2 = {out['tile'] // 2}")
    for key, lo, hi in (("porosity_min", 0.0, 0.95), ("porosity_max", 0.0, 0.95)):
        if not (_is_num(out[key]) and lo <= out[key] < hi):
            raise err(key, f"must be a number in [{lo}, {hi})")
    if out["porosity_max"] < out["porosity_min"]:
        raise err("porosity_max", "must be >= porosity_min")
    side = min(out["height"], out["width"])
    for key in ("diameter_min_px", "diameter_max_px"):
        if not (_is_num(out[key]) and 1.0 <= out[key] <= side):
            raise err(key, f"must be a number in [1, {side}]")
    if out["diameter_max_px"] < out["diameter_min_px"]:
        raise err("diameter_max_px", "must be >= diameter_min_px")
    if not isinstance(out["tta"], bool):
        raise err("tta", "must be true or false")
    if out["device"] not in ("auto", "cpu", "cuda") and not str(out["device"]).startswith("cuda:"):
        raise err("device", "must be auto, cpu, cuda or cuda:<n>")
    targets = out["targets"]
    if not isinstance(targets, Mapping) or set(targets) - {"porosity_abs_pp", "count_abs_pct"}:
        raise err("targets", "must be a mapping with porosity_abs_pp and count_abs_pct")
    targets = {**DEFAULTS["targets"], **targets}
    pp = targets["porosity_abs_pp"]
    if not (_is_num(pp) and pp > 0):
        raise ParamsError(f"{source}: {GROUP}.targets.porosity_abs_pp: must be a number > 0 "
                          f"(got {pp!r})")
    steps = targets["count_abs_pct"]
    ok = (isinstance(steps, (list, tuple)) and len(steps) >= 1
          and all(isinstance(s, (list, tuple)) and len(s) == 2 and all(_is_num(v) for v in s)
                  and 0 < s[0] < 1 and s[1] > 0 for s in steps)
          and all(a[0] < b[0] for a, b in zip(steps, steps[1:])))
    if not ok:
        raise ParamsError(f"{source}: {GROUP}.targets.count_abs_pct: must be a list of "
                          f"[porosity upper bound, tolerated |error| %] with increasing bounds "
                          f"in (0, 1) (got {steps!r})")
    out["targets"] = {"porosity_abs_pp": float(pp),
                      "count_abs_pct": [[float(a), float(b)] for a, b in steps]}
    return out


def validation_specs(vparams: Mapping[str, Any], synth: Mapping[str, Any], seed: int
                     ) -> list[syn.MembraneSpec]:
    """Specs of the validation images: the ``synthesize`` settings with the ``validate`` sizes,
    porosity and diameter ranges, drawn with ``seed + seed_offset``."""
    params = {**syn.DEFAULT_PARAMS, **{k: v for k, v in synth.items() if k != "seed"}}
    for key in ("n_images", "height", "width", "porosity_min", "porosity_max",
                "diameter_min_px", "diameter_max_px"):
        params[key] = vparams[key]
    params["databar_height_px"] = min(int(params["databar_height_px"]), int(params["height"]) - 8)
    try:
        return syn.dataset_specs(params, seed + int(vparams["seed_offset"]))
    except (KeyError, ValueError) as exc:
        raise ParamsError(f"validate/synthesize params: {exc}") from None


def _round(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col, nd in (("porosity_true", 6), ("porosity_measured", 6), ("porosity_error_pp", 4),
                    ("count_measured", 2), ("count_error_pct", 3), ("density_true_cm2", 0),
                    ("density_measured_cm2", 0), ("mean_diameter_px", 3), ("porosity_target", 4)):
        if col in out.columns:
            out[col] = out[col].astype(float).round(nd)
    return out


def _targets(errors: Mapping[str, Any], table: pd.DataFrame, targets: Mapping[str, Any]
             ) -> dict[str, Any]:
    """Are the accuracy targets met, per mask? (every image within the tolerance)."""
    out: dict[str, Any] = {}
    steps = targets["count_abs_pct"]
    names = ma.band_names([s[0] for s in steps[:-1]])
    for mask, key in MASKS.items():
        if mask not in errors:
            continue
        t = table[(table["mask"] == mask)].copy()
        t["band"] = pd.cut(t["porosity_true"], [-np.inf, *[s[0] for s in steps[:-1]], np.inf],
                           labels=names, right=True)
        por = t.drop_duplicates("image_id")["porosity_error_pp"].abs().max()
        res: dict[str, Any] = {"porosity_max_abs_pp": round(float(por), 4),
                               "porosity_met": bool(por <= targets["porosity_abs_pp"]),
                               "count": {}}
        for name, (upper, tol) in zip(names, steps):
            cand = {e: errors[mask][e].get(name) for e in PRACTICAL}
            cand = {e: s for e, s in cand.items() if s and s["count_mae_pct"] is not None}
            if not cand:
                continue
            best = min(cand, key=lambda e: (cand[e]["count_mae_pct"], e))
            s = cand[best]
            pooled = s["count_pooled_pct"]
            res["count"][name] = {
                "tolerance_pct": tol, "best_estimator": best,
                "best_mae_pct": s["count_mae_pct"], "best_max_abs_pct": s["count_max_abs_pct"],
                "best_pooled_pct": pooled,
                "met": bool(s["count_max_abs_pct"] <= tol),
                "met_pooled": bool(pooled is not None and abs(pooled) <= tol),
                "n_images": s["n_images"],
                "n_true_pores": int(t[(t["estimator"] == best) & (t["band"] == name)]["count_true"].sum()),
                "estimators_meeting": sorted(e for e, v in cand.items()
                                             if v["count_max_abs_pct"] <= tol),
            }
        res["all_met"] = bool(res["porosity_met"] and res["count"]
                              and all(v["met"] for v in res["count"].values()))
        out[key] = res
    return out


def run(vparams: Mapping[str, Any], synth: Mapping[str, Any], aparams: ma.AnalysisParams,
        seed: int, *, model_path: Path | None, metrics: Path, plots: Path) -> dict[str, Any]:
    """Generate, analyse, compare, write; returns the metrics dict."""
    specs = validation_specs(vparams, synth, seed)
    convention = synth.get("mask", "opening")
    model = payload = device = None
    if model_path is not None:
        from porescope.segmentation.devices import configure_cpu_threads, select_device
        from porescope.segmentation.models import load_model

        device = select_device(vparams["device"])
        configure_cpu_threads(int(vparams["threads"]))
        model, payload = load_model(model_path, device)
    else:
        LOG.info("no --model: validating the measurement on the ground-truth masks only")
    binary_names = {"0": "background", "1": "pore"}          # the synthetic truth masks
    model_names = payload["class_names"] if payload else binary_names

    rows: list[dict[str, Any]] = []
    vseed = seed + int(vparams["seed_offset"])
    for k, spec in enumerate(tqdm(specs, desc="validate", unit="image")):
        iid = f"val_{k:03d}"
        res = syn.synthesize_image(spec, syn.image_rng(vseed, k))
        truth = dict(res.truth)
        if convention == "core":
            truth["porosity"] = truth["porosity_core"]
        gt = (res.mask_core if convention == "core" else res.mask_opening).astype(np.uint8)
        ref = ma.synthetic_reference(truth, res.pores, include_edges=aparams.include_edges)
        extra = {"porosity_target": spec.porosity, "mean_diameter_px": spec.mean_diameter_px}
        masks = {"ground truth": gt}
        if model is not None:
            from porescope.segmentation.inference import predict_mask
            from porescope.segmentation.models import decision_threshold

            masks["predicted"] = predict_mask(
                model, res.image, tile=int(vparams["tile"]), overlap=int(vparams["overlap"]),
                batch_size=int(vparams["batch_size"]), tta=bool(vparams["tta"]), device=device,
                amp=device.type == "cuda", threshold=decision_threshold(payload))
        for label, mask in masks.items():
            a = ma.analyse_mask(mask, pixel_size_nm=spec.pixel_size_nm, params=aparams,
                                rng=ma.image_rng(seed, iid, label), image_id=iid,
                                bar_rows=spec.databar_height_px,
                                class_names=model_names if label == "predicted" else binary_names,
                                spatial=False)
            rows += ma.compare_with_reference(a, ref, mask=label, extra=extra)
            rows.append(ma.boolean_known_area_row(a, ref, mask=label,
                                                  mean_area_px=truth["expected_area_px"],
                                                  extra=extra))
    table = pd.DataFrame(rows)
    order = {e: i for i, e in enumerate((*ma.ESTIMATORS, KNOWN_AREA))}
    table = table.assign(_m=table["mask"].map({"ground truth": 0, "predicted": 1}),
                         _e=table["estimator"].map(order)) \
        .sort_values(["_m", "_e", "porosity_true", "image_id"]).drop(columns=["_m", "_e"])
    cols = ["image_id", "porosity_target", "mean_diameter_px", "mask", "estimator",
            "porosity_true", "porosity_measured", "porosity_error_pp", "count_true",
            "count_convention", "count_measured", "count_error_pct", "density_true_cm2",
            "density_measured_cm2"]
    table = _round(table[cols].reset_index(drop=True))

    targets = vparams["targets"]
    edges = [s[0] for s in targets["count_abs_pct"][:-1]]
    errors = ma.summarise_errors(table, bands=edges)
    out: dict[str, Any] = {
        "n_images": len(specs), "mask_convention": convention,
        "model": str(model_path) if model_path is not None else None,
        "errors": {MASKS[m]: v for m, v in errors.items()},
        "targets": {"porosity_abs_pp": targets["porosity_abs_pp"],
                    "count_abs_pct": targets["count_abs_pct"],
                    **_targets(errors, table, targets)},
    }
    figures = {
        "count_error.png": ma.count_error_figure(
            table, title="Validation on truth: count error per estimator",
            targets=[tuple(s) for s in targets["count_abs_pct"]]),
        "porosity_error.png": ma.porosity_error_figure(
            table, title="Validation on truth: porosity error", target_pp=targets["porosity_abs_pp"]),
        "porosity_scatter.png": ma.porosity_scatter_figure(
            table, title="Validation on truth: porosity measured vs true"),
    }
    with output_dir(plots) as tmp:
        write_csv(tmp / "table.csv", table)
        for name, fig in figures.items():
            write_bytes(tmp / name, ma.figure_png(fig))
    write_json(metrics, out)
    for key, res in out["targets"].items():
        if not isinstance(res, dict) or "porosity_met" not in res:
            continue
        LOG.info("%s masks: porosity max |error| %.3f pp (%s); %s", key,
                 res["porosity_max_abs_pp"], "met" if res["porosity_met"] else "NOT met",
                 "; ".join(f"{b}: best {v['best_estimator']} max |error| {v['best_max_abs_pct']:.2f} % "
                           f"({'met' if v['met'] else 'NOT met'}, tolerance {v['tolerance_pct']:g} %)"
                           for b, v in res["count"].items()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="trained model file (omit: ground-truth masks only)")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--plots", required=True, type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    vparams = validate_params(load_params(args.params, GROUP), str(args.params))
    synth = load_params(args.params, "synthesize")
    raw = load_params(args.params, "analyze")
    aparams = ma.AnalysisParams.from_mapping(raw, source=str(args.params))
    run(vparams, synth, aparams, int(raw["seed"]), model_path=args.model, metrics=args.metrics,
        plots=args.plots)
    return 0


if __name__ == "__main__":
    run_stage("validate", main)
