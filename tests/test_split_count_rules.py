"""Split-count rules behind ``analyze.counting``: pores counted by area (``split_max_pores``)
and frame-cut slivers below ``split_min_area_px`` (``split_min_area_at_edges``).

Known answers come from the construction of the masks (hand-placed discs whose number and
edge contacts are known), never from the module's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

from porescope.analysis.membrane import analyse_mask
from porescope.analysis.params import AnalyzeParams
from porescope.config import ParamsError
from porescope.measure.counting import split_count_table, split_pores_per_object
from porescope.measure.morphometry import measure_objects
from porescope.segmentation.instances import split_touching

R = 10.0
#: twelve isolated discs (the single pores that give E[A]) on a grid, none near the frame
SINGLES = [(30 + 40 * i, 30 + 40 * j) for i in range(4) for j in range(3)]


def disc(mask: np.ndarray, cx: float, cy: float, r: float = R) -> None:
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    mask[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1


def doublet(mask: np.ndarray, cx: float, cy: float, d: float = 12.0, r: float = R) -> None:
    """Two discs ``d`` px apart with the waist between them filled (the convex hull, a
    stadium): how a segmentation draws a strongly overlapping pair, with no neck."""
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    t = np.clip(xx - cx, 0, d)
    mask[(xx - cx - t) ** 2 + (yy - cy) ** 2 <= r * r] = 1


def membrane(pairs: int = 2) -> np.ndarray:
    """The singles plus ``pairs`` doublets without a neck (:func:`doublet`)."""
    m = np.zeros((200, 260), np.uint8)
    for cx, cy in SINGLES:
        disc(m, cx, cy)
    for k in range(pairs):
        doublet(m, 30 + 60 * k, 160)
    return m


def analyse(mask: np.ndarray, **counting) -> dict:
    p = AnalyzeParams.from_mapping({"spatial": {"n_sim": 0}, "counting": counting})
    return analyse_mask(mask, params=p, spatial=False).summary


def test_a_doublet_without_neck_is_one_watershed_object():
    # the premise of the area rule: the distance-transform split cannot see this doublet
    m = np.zeros((44, 56), np.uint8)
    doublet(m, 14, 20)
    assert split_touching(m, h=0.5).max() == 1
    # its area, as a multiple of one disc's, rounds to 2
    assert round(m.sum() / (np.pi * R * R)) == 2


@pytest.mark.parametrize("pairs", [1, 3])
def test_area_rule_counts_each_doublet_twice(pairs):
    m = membrane(pairs)
    assert analyse(m, split_max_pores=1)["count_split_labels"] == len(SINGLES) + pairs
    assert analyse(m)["count_split_labels"] == len(SINGLES) + 2 * pairs  # the default bound is 2
    for bound in (2, None):
        s = analyse(m, split_max_pores=bound)
        assert s["count_split_labels"] == len(SINGLES) + 2 * pairs
    # E[A] came from the isolated discs: one disc of radius R, not the doublets
    assert abs(s["mean_pore_area_px"] - np.pi * R * R) < 0.1 * np.pi * R * R


def test_area_rule_bound_and_big_objects():
    # one blob of about five disc areas: five pores unbounded, two with the bound 2
    m = membrane(0)
    yy, xx = np.ogrid[:200, :260]
    m[(xx - 130) ** 2 + (yy - 165) ** 2 <= 5 * R * R] = 1
    assert analyse(m, split_max_pores=None)["count_split_labels"] == len(SINGLES) + 5
    assert analyse(m, split_max_pores=2)["count_split_labels"] == len(SINGLES) + 2
    assert analyse(m, split_max_pores=3)["count_split_labels"] == len(SINGLES) + 3
    assert analyse(m, split_max_pores=1)["count_split_labels"] == len(SINGLES) + 1
    assert analyse(m)["count_split_labels"] == len(SINGLES) + 2


def test_area_rule_needs_a_finite_single_pore_area():
    labels = np.zeros((30, 30), np.int32)
    labels[5:15, 5:25] = 1
    table = measure_objects(labels)
    for ea in (None, float("nan")):
        assert split_count_table(table, mean_area=ea, max_pores=None)["count"] == 1
    assert split_count_table(table, mean_area=100.0, max_pores=None)["count"] == 2
    assert split_count_table(table, mean_area=100.0, max_pores=None)["pores_in_multi"] == 2


def test_edge_slivers_counted_by_the_guard_frame():
    # a pore cut by the top edge leaving a 2-row sliver (< 20 px), the same at the bottom edge
    # (an exclusion edge: never counted), and a 9-px speck inside (debris either way)
    m = membrane(0)
    disc(m, 60, -9)         # rows 0..1 inside
    disc(m, 140, 208)       # rows 198..199 inside
    m[100:103, 200:203] = 1
    labels = np.zeros(m.shape, np.int32)
    for i, (cx, cy) in enumerate(SINGLES + [(60, -9), (140, 208)], start=1):
        yy, xx = np.ogrid[:200, :260]
        labels[((xx - cx) ** 2 + (yy - cy) ** 2 <= R * R) & (m > 0)] = i
    labels[100:103, 200:203] = len(SINGLES) + 3
    table = measure_objects(labels)
    sliver = table["touches_top"].to_numpy(bool)
    assert sliver.sum() == 1 and table.loc[sliver, "Area"].item() < 20
    kw = {"min_area": 20}
    assert split_count_table(table, **kw)["count"] == len(SINGLES)
    assert split_count_table(table, min_area_at_edges=False, **kw)["count"] == len(SINGLES) + 1
    per = split_pores_per_object(table, min_area_at_edges=False, **kw)
    assert per[sliver].tolist() == [1] and per[table["touches_bottom"].to_numpy(bool)].tolist() == [0]
    # the same through analyse_mask (its debris filter keeps frame-cut regions, drops the speck)
    assert analyse(m)["count_split_labels"] == len(SINGLES)
    assert analyse(m, split_min_area_at_edges=False)["count_split_labels"] == len(SINGLES) + 1


def test_params_bounds_and_record():
    with pytest.raises(ParamsError, match="split_max_pores"):
        AnalyzeParams.from_mapping({"counting": {"split_max_pores": 0}})
    with pytest.raises(ParamsError, match="split_max_pore"):
        AnalyzeParams.from_mapping({"counting": {"split_max_pore": 2}})
    default = AnalyzeParams().to_dict()["counting"]
    assert default["split_max_pores"] == 2 and "split_min_area_at_edges" not in default
    p = AnalyzeParams.from_mapping({"counting": {"split_max_pores": None,
                                                 "split_min_area_at_edges": False}})
    rec = p.to_dict()["counting"]
    assert rec["split_max_pores"] is None and rec["split_min_area_at_edges"] is False
    assert AnalyzeParams.from_mapping(p.to_dict()) == p
