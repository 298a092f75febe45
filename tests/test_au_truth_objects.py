"""``bench/au_truth_objects.py``: how marked particle centres fall on true objects, and, on the
shared Au tetrahedra masks (skipped without them), that cutting the annotated interiors at necks
(``evaluate.objects.truth_seed_h``) gives one true object per marked particle far more often
than the annotated components do."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench_scripts import load_bench

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
REFERENCE = ROOT / "data" / "reference" / "au-tetrahedra"


def _module():
    return load_bench("au_truth_objects")


def test_centre_census_counts_single_empty_and_clustered_objects() -> None:
    census = _module().centre_census
    lab = np.zeros((20, 30), int)
    lab[2:8, 2:8], lab[2:8, 12:18], lab[12:18, 2:28] = 1, 2, 3
    xy = np.array([[4, 4], [14, 5], [14, 6], [20, 15], [25, 15], [10, 10]])  # x = column, y = row
    assert census(lab, xy) == {"objects": 3, "one_centre": 1, "no_centre": 0, "several_centres": 2,
                               "centres_outside": 1}
    assert census(lab, xy[:1]) == {"objects": 3, "one_centre": 1, "no_centre": 2, "several_centres": 0,
                                   "centres_outside": 0}
    # object 2 without a centre: a speck when its annotated interior is a single pixel
    interior = (lab == 1) | (lab == 3)
    interior[4, 14] = True
    assert census(lab, xy[:1], interior=interior)["no_centre_specks"] == 1
    interior[4, 15] = True
    assert census(lab, xy[:1], interior=interior)["no_centre_specks"] == 0


def test_neck_cut_truth_matches_the_particles_marked_by_eye(capsys) -> None:
    root = DATA / "au-nanoparticles-tem" / "tetrahedra"
    if not root.is_dir():
        pytest.skip(f"shared Au tetrahedra data not found under {root} (set PORESCOPE_SHARED_DATA)")
    m = _module()
    import pandas as pd

    centres = pd.read_csv(REFERENCE / "centres.csv")
    name = "20190825_bad-Au-tetra-1-30k-1.dm3-15.tif"
    cm = m.class_map(root / "masks" / name)
    xy = centres.loc[centres["file"] == name, ["x", "y"]].to_numpy(int)
    from porescope.segmentation.instances import instances_from_three_class

    plain = m.centre_census(instances_from_three_class(cm, 1, 2, connectivity=4), xy)
    cut = m.centre_census(instances_from_three_class(cm, 1, 2, connectivity=4, seed_h=2.0), xy)
    # annotated components: touching particles are clusters; cut at necks: nearly one each
    assert plain["several_centres"] >= 5 and cut["several_centres"] <= 1
    assert cut["one_centre"] >= 0.9 * len(xy) > plain["one_centre"]
    assert m.main(["--shared-data", str(DATA), "--reference", str(REFERENCE), "--truth-seed-h", "2"]) == 0
    assert "pooled over the images" in capsys.readouterr().out
