"""The manual reference for the real SEM micrographs (data/reference/track-membranes-sem).

The tables and masks are checked on their own (no shared data needed); the checks against the
source images, and that ``bench/reference_masks.py`` rebuilds the same files, skip when
``../shared/data`` (or ``$PORESCOPE_SHARED_DATA``) is absent.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench_scripts import load_bench

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference" / "track-membranes-sem"
SHARED = Path(os.environ.get("PORESCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGES = SHARED / "track-membranes-sem-unlabelled"
INT_COLUMNS = ("width", "height", "margin_top", "margin_bottom", "margin_left", "margin_right",
               "analysed_px", "manual_count_guard_frame", "manual_count_all", "n_border_cut",
               "n_merged_groups", "n_pores_in_merged_groups", "ambiguous_objects")
REQUIRED = ("image", "file", "sha256", *INT_COLUMNS, "porosity_manual", "mask_file",
            "region_note", "annotator_notes")


def rows() -> list[dict[str, str]]:
    with open(REF / "counts.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def centres(stem: str) -> list[dict[str, str]]:
    with open(REF / "centres" / f"{stem}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def region(row: dict[str, str]) -> np.ndarray:
    h, w = int(row["height"]), int(row["width"])
    roi = np.zeros((h, w), bool)
    roi[int(row["margin_top"]):h - int(row["margin_bottom"]),
        int(row["margin_left"]):w - int(row["margin_right"])] = True
    return roi


def read_mask(row: dict[str, str]) -> np.ndarray:
    with Image.open(REF / row["mask_file"]) as im:
        assert im.mode == "L", f"{row['mask_file']}: mode {im.mode}, expected 8-bit grey"
        return np.asarray(im)


def need_images() -> None:
    if not IMAGES.is_dir():
        pytest.skip(f"shared images not available: {IMAGES} (set PORESCOPE_SHARED_DATA)")


def test_counts_table_is_well_formed():
    table = rows()
    assert table, "counts.csv has no rows"
    assert set(REQUIRED) <= set(table[0]), f"missing columns {set(REQUIRED) - set(table[0])}"
    assert len({r["image"] for r in table}) == len(table) == 9
    for r in table:
        v = {c: int(r[c]) for c in INT_COLUMNS}
        assert min(v.values()) >= 0, r["image"]
        assert v["analysed_px"] == region(r).sum(), r["image"]
        assert v["manual_count_guard_frame"] <= v["manual_count_all"], r["image"]
        # pores dropped by the guard frame touch the bottom or right edge, so are border-cut
        assert v["manual_count_all"] - v["manual_count_guard_frame"] <= v["n_border_cut"]
        assert v["n_pores_in_merged_groups"] >= 2 * v["n_merged_groups"], r["image"]
        assert len(r["sha256"]) == 64 and int(r["sha256"], 16) >= 0
        assert bool(r["mask_file"]) == bool(r["porosity_manual"]), r["image"]
    assert sum(bool(r["mask_file"]) for r in table) >= 3


def test_counts_agree_with_the_marked_centres():
    for r in rows():
        pores = centres(r["image"])
        roi = region(r)
        assert len(pores) == int(r["manual_count_all"]), r["image"]
        assert sum(int(p["guard_frame_counted"]) for p in pores) == int(
            r["manual_count_guard_frame"]), r["image"]
        assert sum(bool(p["edges"]) for p in pores) == int(r["n_border_cut"]), r["image"]
        for p in pores:
            assert set(p["edges"]) <= set("tblr"), p
            assert roi[int(p["y"]), int(p["x"])], f"{r['image']}: centre {p} outside the region"
            assert int(p["guard_frame_counted"]) == ("b" not in p["edges"] and
                                                     "r" not in p["edges"])
        merged = {p["group"] for p in pores if int(p["group_size"]) >= 2}
        assert len(merged) == int(r["n_merged_groups"]), r["image"]


def test_masks_match_the_table():
    for r in rows():
        if not r["mask_file"]:
            continue
        mask = read_mask(r)
        assert mask.shape == (int(r["height"]), int(r["width"])), r["image"]
        assert set(np.unique(mask)) <= {0, 255}, r["image"]
        roi = region(r)
        assert not mask[~roi].any(), f"{r['image']}: pore pixels outside the analysed region"
        porosity = (mask[roi] == 255).sum() / roi.sum()
        assert porosity == pytest.approx(float(r["porosity_manual"]), abs=5e-7), r["image"]
        # every marked pore lies in the mask, except border slivers marked beside it
        inside = [mask[int(p["y"]), int(p["x"])] == 255 for p in centres(r["image"])]
        assert np.mean(inside) > 0.95, r["image"]


def test_sources_match_sizes_and_hashes():
    need_images()
    from porescope.io.images import read_image

    for r in rows():
        path = IMAGES / r["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"], path
        shape = read_image(path).pages[0].array.shape[:2]
        assert shape == (int(r["height"]), int(r["width"])), r["image"]


def test_bench_script_rebuilds_the_same_files():
    need_images()
    module = load_bench("reference_masks")
    files = module.outputs(IMAGES)
    assert set(files) == {str(p.relative_to(REF)) for p in REF.rglob("*")
                          if p.is_file() and p.name != "README.md"}
    for rel, content in files.items():
        assert module.same(REF / rel, content), f"{rel} differs from what the script builds"
