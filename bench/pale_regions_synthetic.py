"""Pale predicted regions on synthetic membranes with artefacts, where each region's truth is known.

Draws development membranes (the ``validate`` sizes, porosity and diameter ranges of
``params.yaml`` WITH the ``synthesize.artefacts``: frames, text, logos, rough patches, charging,
JPEG ...; seeds ``seed + offset`` for each ``--offsets`` value, never the validation images),
segments them with the model and measures every predicted 8-connected region's contrast
against its surface ring (:func:`porescope.measure.pale_regions.region_contrast`; burned-in
overlays left out of the rings as ``measure`` does, unless ``--keep-overlays``). A region is
*false* when under 20 % of its pixels lie on (1-px dilated) true openings. Prints, for each
threshold of ``--thresholds``, the false and true regions that ``measure.min_region_contrast``
would drop (all regions, and those of ``split_min_area_px`` or more, which the split count can
count), where the false regions lie (within ``--edge`` px of an overlay or the image edge, or
on a rough patch), and the contrast quantiles of the true regions.

With ``--validate T ...`` it then runs :func:`porescope.analysis.validation.validate_on_truth`
(the ``validate`` stage's clean images, truth and targets) without and with each threshold and
prints the split-count and porosity errors of the predicted masks.

    python bench/pale_regions_synthetic.py --model models/model.pt [--offsets 2000003 3000017]
        [--n-images 24] [--thresholds 0.1 0.2 0.3 0.4] [--validate 0.3] [--csv regions.csv]
        [--keep-overlays]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

import porescope.synthetic.membranes as syn
from porescope.analysis.params import AnalyzeParams
from porescope.analysis.validation import ValidateParams, validate_on_truth
from porescope.measure.pale_regions import region_contrast
from porescope.measure.quality import overlay_mask
from porescope.measure.segment import load_model, predict_mask
from porescope.synthetic.artefacts import rough_patches
from development_membranes import add_arguments, development_specs


def regions_of(model, spec: syn.MembraneSpec, rng: np.random.Generator, edge: int,
               overlay_level: int | None) -> pd.DataFrame:
    """The contrast table of one membrane's predicted regions with ``false``, ``near_edge``
    (within ``edge`` px of an overlay or the image border) and ``on_rough``; the rings leave
    out the overlays of ``overlay_level`` and brighter, as ``measure`` does (None: keep them)."""
    res = syn.synthesize_image(spec, rng)
    pred = predict_mask(model, res.image, backend="auto")
    exclude = None if overlay_level is None else overlay_mask(res.image, overlay_level)
    labels, table = region_contrast(res.image, pred, exclude=exclude)
    n = len(table) + 1

    def share(pixels: np.ndarray) -> np.ndarray:
        return np.bincount(labels.ravel(), weights=pixels.ravel(), minlength=n)[1:] / \
            np.maximum(table["area"].to_numpy(), 1)

    truth = cv2.dilate(res.mask_opening.astype(np.uint8), np.ones((3, 3), np.uint8))
    # overlays are the pixels the masks leave out although the image shows them; the border too
    border = np.ones(labels.shape, np.uint8)
    border[1:-1, 1:-1] = 0
    hidden = border.astype(bool)
    art = spec.artefacts
    rough = np.zeros(labels.shape, bool)
    if art is not None and art.rough_coverage > 0 and art.downsample_factor <= 1:
        rough = np.abs(rough_patches(labels.shape, art, spec.mean_diameter_px)) > 1.0
    if art is not None and art.frame_width_px >= 0.5:
        w = int(np.ceil(1.3 * art.frame_width_px))
        hidden[:w], hidden[-w:], hidden[:, :w], hidden[:, -w:] = True, True, True, True
    near = cv2.dilate(hidden.view(np.uint8), np.ones((2 * edge + 1,) * 2, np.uint8)) > 0
    return table.assign(false=share(truth) < 0.2, near_edge=share(near) > 0,
                        on_rough=share(rough) > 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--edge", type=int, default=3, help="px from an overlay or the border")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--validate", type=float, nargs="*", default=[])
    ap.add_argument("--csv", type=Path, default=None, help="write the region table here")
    ap.add_argument("--keep-overlays", action="store_true",
                    help="rings include the burned-in overlays (measure leaves them out)")
    args = ap.parse_args()
    p = yaml.safe_load(args.params.read_text())
    vp = ValidateParams.from_mapping(p["validate"])
    analysis = AnalyzeParams.from_mapping(p["analyze"])
    min_area = analysis.counting.split_min_area_px
    level = None if args.keep_overlays else p["measure"]["quality"]["overlay_level"]
    model = load_model(args.model, device="cpu")
    tables = []
    for off, k, spec, rng in development_specs(p, args.offsets, args.n_images):
        t = regions_of(model, spec, rng, args.edge, level)
        tables.append(t.assign(offset=off, image=k))
    regions = pd.concat(tables, ignore_index=True)
    if args.csv:
        regions.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    for name, t in (("all regions", regions), (f">= {min_area} px", regions[regions["area"] >= min_area])):
        f, tr = t[t["false"]], t[~t["false"]]
        print(f"{name}: {len(f)} false ({int(f['near_edge'].sum())} at an overlay / the border, "
              f"{int(f['on_rough'].sum())} on a rough patch), {len(tr)} true; true contrast "
              "quantiles 0.1/1/5 %: " + " ".join(f"{tr['contrast'].quantile(q):.3f}"
                                                  for q in (0.001, 0.01, 0.05)))
        rows = [{"min_contrast": th, "false_dropped": int((f["contrast"] < th).sum()),
                 "false_dropped_edge": int(((f["contrast"] < th) & f["near_edge"]).sum()),
                 "false_dropped_rough": int(((f["contrast"] < th) & f["on_rough"]).sum()),
                 "true_dropped": int((tr["contrast"] < th).sum())} for th in args.thresholds]
        print(pd.DataFrame(rows).to_string(index=False))
    for th in [None, *args.validate]:
        m = validate_on_truth(vp, p["synthesize"], analysis, int(p["seed"]), model_path=args.model,
                              min_region_contrast=th).metrics
        e = m["errors"]["predicted"]
        split = "  ".join(f"{band}: mean {v['count_mae_pct']:.2f} max {v['count_max_abs_pct']:.2f} "
                          f"pooled {v['count_pooled_pct']:+.2f} %"
                          for band, v in e["split_labels"].items() if band != "all")
        por = e["split_labels"]["all"]
        print(f"[validate, min_region_contrast {th}] split {split} | porosity mean "
              f"{por['porosity_mae_pp']:.3f} max {por['porosity_max_abs_pp']:.3f} pp | targets met: "
              f"{m['targets']['predicted']['all_met']}")


if __name__ == "__main__":
    main()
