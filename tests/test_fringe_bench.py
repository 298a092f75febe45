"""bench/fringe_strokes_synthetic.py: strokes scored against the overlays the generator drew."""

from __future__ import annotations

import numpy as np
import pandas as pd

from porescope.measure.quality import QualityLimits

from bench_scripts import load_bench


def test_a_fringe_and_a_scale_bar_are_told_apart_and_scored():
    fb = load_bench("fringe_strokes_synthetic")
    grey = np.full((120, 160), 120, np.uint8)
    yy, xx = np.mgrid[:120, :160]
    pores = np.zeros(grey.shape, bool)
    for cy, cx in [(30, 40), (30, 110), (80, 40)]:
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 12 ** 2
        pores |= disc
        ring = ((yy - cy) ** 2 + (xx - cx) ** 2 < 15 ** 2) & ~disc & (yy > cy)
        grey[ring] = 255                                  # a saturated fringe below each pore
    grey[pores] = 10
    hidden = np.zeros(grey.shape, bool)
    hidden[100:104, 60:150] = True                        # a scale bar the generator drew
    grey[hidden] = 255
    pred = pores.copy()
    pred[96:100, 100:110] = True                          # an object the model put on the bar
    strokes, image = fb.classify(grey, pred, hidden, QualityLimits())
    assert len(strokes) == 4
    bar = strokes[strokes["true_overlay"]]
    assert len(bar) == 1 and not bar["as_fringe"].any()
    assert strokes[~strokes["true_overlay"]]["as_fringe"].all()
    assert image == {"objects": 4, "objects_on_true_overlay": 1, "flag_old": True, "flag_new": True}
    images = pd.DataFrame([image, {"objects": 3, "objects_on_true_overlay": 0, "flag_old": True,
                                   "flag_new": False}])
    s = fb.summary(strokes, images)
    assert s["true_overlays_taken_for_fringes"] == 0 and s["not_overlay_taken_for_overlay"] == 0
    assert s["images_with_objects_on_true_overlay"] == 1 and s["of_them_not_flagged_now"] == 0
    assert s["images_flagged_without_before"] == 1 and s["images_flagged_without_now"] == 0
