"""A model on the nine real SEM micrographs, against the manual reference (data/reference/).

For every image of ``data/reference/track-membranes-sem/counts.csv``: segment the whole image
with the model (the network sees the full context), keep the reference's analysed region
(its top / bottom / left / right margins), measure that region (guard-frame counts, porosity)
and compare with the manual count and, where a hand-checked mask exists, its porosity.

    python bench/real_sem_reference.py --model models/model.pt [--scale 1.0 | auto] [--json out.json]
        [--set counting.split_max_pores=2 ...] [--min-contrast 0.3 | none]

Every setting is the pipeline's default (``MeasureParams``, ``AnalyzeParams``) unless changed.
``--min-contrast``: ``measure.min_region_contrast`` (drop the predicted regions that are not
darker than the surface around them, :mod:`porescope.measure.pale_regions`; ``none`` = off).
``--set KEY=VALUE`` changes an ``analyze`` setting (YAML value, dotted key inside the group).
``--scale auto``: per image, the factor of ``measure.scale: auto``
(:mod:`porescope.measure.scale_auto`: a first pass at scale 1, the median ECD of its objects
brought to the model's trained median); the rows then show the estimate and the factor.

Prints one row per image and the pooled errors of each count estimator
(:func:`porescope.measure.reference.reference_errors`). Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from porescope.analysis.params import AnalyzeParams
from porescope.io.images import read_image, to_grey
from porescope.measure.measurement import measure_micrograph
from porescope.measure.params import MeasureParams
from porescope.measure.reference import reference_errors
from porescope.measure.scale_auto import choose_scale, first_pass_pore_size
from porescope.measure.segment import load_model, predict_mask
from quality_run import dotted, merge

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "data" / "reference" / "track-membranes-sem"
SHARED = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGES = SHARED / "track-membranes-sem-unlabelled"


def region(row: pd.Series, shape: tuple[int, int]) -> tuple[slice, slice]:
    h, w = shape
    return (slice(int(row.margin_top), h - int(row.margin_bottom)),
            slice(int(row.margin_left), w - int(row.margin_right)))


def with_settings(raw: dict, sets: list[str]) -> AnalyzeParams:
    """:class:`AnalyzeParams` of the ``analyze`` mapping ``raw`` with the changes
    ``["counting.split_max_pores=2", ...]`` (dotted keys inside the group, YAML values)."""
    return AnalyzeParams.from_mapping(merge(raw, dotted(sets)), source="--set")


#: ``min_region_contrast`` of :func:`measure_params` when not given: the pipeline's default
DEFAULT_CONTRAST = MeasureParams().min_region_contrast


def measure_params(sets: list[str] | None = None, min_contrast: float | None = DEFAULT_CONTRAST
                   ) -> MeasureParams:
    """The bench's measure settings, with ``analyze`` changes (:func:`with_settings`) and
    ``min_region_contrast`` (None = off)."""
    params = MeasureParams(device="cpu", figures=False, scale_bar=False,
                           min_region_contrast=min_contrast)
    if not sets:
        return params
    return replace(params, analysis=with_settings(params.analysis.to_dict(), sets))


def add_contrast_option(ap: argparse.ArgumentParser) -> None:
    """``--min-contrast VALUE | none``, by default the pipeline's ``measure.min_region_contrast``."""
    ap.add_argument("--min-contrast", type=lambda v: None if v.lower() in ("none", "null") else float(v),
                    default=DEFAULT_CONTRAST,
                    help=f"measure.min_region_contrast, or none (default: {DEFAULT_CONTRAST}, the pipeline's)")


def compare_model(model, params: MeasureParams, scale: float | str = 1.0, *, backend: str = "auto",
                  tta: bool = False, guard: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A loaded model (:func:`porescope.measure.segment.load_model`) on the nine images against
    the manual reference: ``(per-image measurements, error table, error metrics)``
    (:func:`porescope.measure.reference.reference_errors`). ``scale``: a resize factor or
    ``"auto"``. ``guard``: also measure each analysed region with the model the way ``porescope
    measure`` does and record its verdict (columns ``certified``, ``guard_flags``: the
    flags' names)."""
    counts = pd.read_csv(REFERENCE / "counts.csv")
    rows = []
    for r in counts.itertuples(index=False):
        grey = to_grey(read_image(IMAGES / r.file).pages[0].array, None, r.file)
        auto = {}
        factor = scale
        if scale == "auto":
            ecd, n = first_pass_pore_size(model, grey, max_side=params.scale_auto.max_side,
                                          backend=backend)
            chosen = choose_scale(ecd, n, (model.payload.get("meta") or {}).get("object_ecd_px"),
                                  params.scale_auto)
            factor = chosen.scale
            auto = {"est_ecd_px": ecd, "est_n": n, "scale": factor,
                    "flags": "; ".join(f.split(":")[0] for f in chosen.flags)}
        pred = predict_mask(model, grey, scale=factor, backend=backend, tta=tta)
        ys, xs = region(r, grey.shape)
        _, summary = measure_micrograph(grey[ys, xs], mask=pred[ys, xs] > 0, params=params,
                                        image_id=r.image)
        verdict = {}
        if guard:
            _, own = measure_micrograph(grey[ys, xs], model=model,
                                        params=replace(params, scale=scale, tta=tta, backend=backend),
                                        image_id=r.image)
            # flag names only: a flag's own text may contain "; " (scale_auto's does)
            names = re.findall(r"(?:^|; )([a-z_]+):", str(own.get("quality_flags") or ""))
            verdict = {"certified": own["certified"], "guard_flags": "; ".join(names)}
        mask_porosity = np.nan
        if isinstance(r.mask_file, str) and r.mask_file:
            from PIL import Image
            ref_mask = np.asarray(Image.open(REFERENCE / r.mask_file)) > 0
            mask_porosity = float(ref_mask[ys, xs].mean())
        rows.append({**{k: summary[k] for k in ("image_id", "porosity", "count_median_area",
                                                 "count_split_labels", "count_boolean_model")},
                     "manual": r.manual_count_guard_frame, "ambiguous": r.ambiguous_objects,
                     "mask_porosity": mask_porosity, **auto, **verdict})
    got = pd.DataFrame(rows)
    ref = pd.DataFrame({"image": counts["image"], "count": counts["manual_count_guard_frame"].astype(float),
                        "porosity": got["mask_porosity"]})
    table, metrics = reference_errors(got, ref)
    return got, table, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--scale", type=lambda v: v if v == "auto" else float(v), default=1.0,
                    help="resize factor before inference, or auto")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--tta", action="store_true", help="average over flips (measure.tta: true)")
    ap.add_argument("--json", type=Path, default=None, help="write the comparison here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="analyze setting, e.g. counting.split_max_pores=2 (repeatable)")
    add_contrast_option(ap)
    args = ap.parse_args()
    if not IMAGES.is_dir():
        raise SystemExit(f"{IMAGES} not found: the real images are in ../shared/data")
    model = load_model(args.model, device="cpu")
    params = measure_params(args.set, args.min_contrast)
    got, table, metrics = compare_model(model, params, args.scale, backend=args.backend, tta=args.tta)
    pd.set_option("display.width", 200)
    print(f"model {args.model}, scale {args.scale}, backend {args.backend}"
          + (f", analyze {' '.join(args.set)}" if args.set else "")
          + (f", min_region_contrast {args.min_contrast}" if args.min_contrast is not None else ""))
    print(table.round(3).to_string(index=False))
    if args.scale == "auto":
        print(got[["image_id", "est_ecd_px", "est_n", "scale", "flags"]].round(3).to_string(index=False))
    print(json.dumps(metrics, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(args.model), "scale": args.scale,
                                         "set": args.set, "min_contrast": args.min_contrast,
                                         "table": table.round(4).to_dict(orient="records"),
                                         "metrics": metrics}, indent=1))


if __name__ == "__main__":
    main()
