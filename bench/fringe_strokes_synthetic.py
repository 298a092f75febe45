"""Saturated strokes on synthetic membranes with artefacts: burned-in overlay or edge fringe?

The guard's ``on_overlay`` check withholds certification from an image whose objects touch a
near-white stroke (text, logo, frame, scale bar). Real SEM edge fringes saturate too, so every
image with bright fringes was flagged although its pores were measured right. A stroke that
hugs the predicted pores from outside is now taken for a fringe
(:func:`porescope.measure.quality.saturated_strokes`, ``measure.quality.fringe_reach`` /
``fringe_near_share``). This script checks that rule where the truth is known: the development
membranes drawn with the ``synthesize.artefacts`` (``bench/development_membranes.py``; never the
validation images), segmented by the model. A stroke is a true
overlay when at least half of its pixels were drawn by an overlay (``SyntheticImage.hidden``),
else a fringe (or a bright rim / speck).

Prints, per rule (every stroke an overlay, as before; the fringe rule): the true overlays taken
for fringes (the unsafe error), the fringes taken for overlays, and per image whether its
objects touch a true overlay and whether the guard flags ``on_overlay``: images with objects on
a true overlay that are not flagged (unsafe) and images flagged without one (false alarms).

    python bench/fringe_strokes_synthetic.py --model models/model.pt [--offsets 2000003 3000017]
        [--n-images 24] [--json bench/results/fringe_strokes_synthetic.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

import porescope.synthetic.membranes as syn
from development_membranes import add_arguments, development_specs
from porescope.measure.quality import _STROKE, QualityLimits, saturated_strokes
from porescope.measure.segment import load_model, predict_mask


def classify(grey: np.ndarray, pred: np.ndarray, hidden: np.ndarray | None,
             limits: QualityLimits) -> tuple[pd.DataFrame, dict[str, object]]:
    """Per stroke: ``true_overlay`` and ``as_fringe`` (the rule's call); per image: objects on a
    true overlay, and whether either rule flags ``on_overlay``."""
    n_obj, labels = cv2.connectedComponents(pred.astype(np.uint8), connectivity=8)
    area = np.bincount(labels.ravel())[1:]
    # as the guard does on a whole image (ObjectPixels), on the unsplit predicted regions
    ecd = float(np.median(np.sqrt(4 * area / np.pi))) if area.size else 12.0
    over, fringe = saturated_strokes(grey, limits.overlay_level, pores=labels > 0,
                                     fringe_reach_px=max(3.0, limits.fringe_reach * ecd),
                                     fringe_near_share=limits.fringe_near_share,
                                     fringe_max_extent_px=limits.fringe_max_extent * ecd)
    old = over | fringe                                      # every stroke an overlay
    bright = (grey >= limits.overlay_level).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    size = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    drawn = np.zeros(n) if hidden is None else np.bincount(lab.ravel(), weights=hidden.ravel(), minlength=n)
    in_fringe = np.bincount(lab.ravel(), weights=fringe.ravel(), minlength=n)
    is_stroke = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= _STROKE
    rows = [{"size": int(size[i]), "true_overlay": bool(drawn[i] / size[i] >= 0.5),
             "as_fringe": bool(in_fringe[i] / size[i] >= 0.5)}
            for i in range(1, n) if is_stroke[i]]
    true_over = np.isin(lab, [i for i in range(1, n) if is_stroke[i] and drawn[i] / size[i] >= 0.5])
    true_over = cv2.dilate(true_over.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    fg = labels > 0
    image = {"objects": int(n_obj - 1),
             "objects_on_true_overlay": int(np.count_nonzero(np.unique(labels[true_over & fg]))),
             "flag_old": bool((old & fg).any()), "flag_new": bool((over & fg).any())}
    return pd.DataFrame(rows, columns=["size", "true_overlay", "as_fringe"]), image


def summary(strokes: pd.DataFrame, images: pd.DataFrame) -> dict[str, int]:
    """The counts the script prints."""
    on = images["objects_on_true_overlay"] > 0
    strokes = strokes.astype({"true_overlay": bool, "as_fringe": bool})   # empty frames: object
    t, f = strokes[strokes["true_overlay"]], strokes[~strokes["true_overlay"]]
    return {"images": len(images), "strokes_true_overlay": len(t),
            "true_overlays_taken_for_fringes": int(t["as_fringe"].sum()),
            "strokes_not_overlay": len(f), "not_overlay_taken_for_overlay": int((~f["as_fringe"]).sum()),
            "images_with_objects_on_true_overlay": int(on.sum()),
            "of_them_not_flagged_before": int((on & ~images["flag_old"]).sum()),
            "of_them_not_flagged_now": int((on & ~images["flag_new"]).sum()),
            "images_flagged_without_before": int((~on & images["flag_old"]).sum()),
            "images_flagged_without_now": int((~on & images["flag_new"]).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    p = yaml.safe_load(args.params.read_text())
    limits = QualityLimits(**p["measure"]["quality"])
    model = load_model(args.model, device="cpu")
    strokes, images = [], []
    for off, k, spec, rng in development_specs(p, args.offsets, args.n_images):
        res = syn.synthesize_image(spec, rng)
        pred = predict_mask(model, res.image, backend="auto")
        s, im = classify(res.image, pred, res.hidden, limits)
        strokes.append(s.assign(offset=off, image=k))
        images.append({"offset": off, "image": k, **im})
    strokes_t, images_t = pd.concat(strokes, ignore_index=True), pd.DataFrame(images)
    out = summary(strokes_t, images_t)
    pd.set_option("display.width", 200)
    print(images_t[(images_t["objects_on_true_overlay"] > 0) | images_t["flag_old"]].to_string(index=False))
    for k, v in out.items():
        print(f"{k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(args.model), "offsets": args.offsets,
                                         "n_images": args.n_images, **out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
