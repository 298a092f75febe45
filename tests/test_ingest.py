"""Ingest end to end (library and stage): real datasets, synthetic edge cases, one test per bad
input, the params group."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from PIL import Image

from porescope.config import ParamsError
from porescope.io.images import array_sha256
from porescope.io.mask_encoding import decode_binary, decode_labels, decode_rgb
from porescope.io.pairing import IngestError
from porescope.preprocessing.tiling import stitch
from porescope.preprocessing.ingest import (
    SOURCES_COLUMNS,
    TILES_COLUMNS,
    IngestParams,
    parse_ingest_params,
    run_ingest,
)
from stages.ingest import main

ROOT = Path(__file__).resolve().parents[1]


def parse_params(raw: dict) -> IngestParams:
    """Ingest params as these tests were written: pixel size from metadata, class names by
    mask format (the params.yaml defaults are 25 nm and [background, pore])."""
    return parse_ingest_params({"pixel_size_nm": "auto", "class_names": None, **raw})

DATA = Path(os.environ.get("PORESCOPE_SHARED_DATA",
                          Path(__file__).resolve().parents[2] / "shared" / "data"))
ISBI = DATA / "isbi2012-em-membranes"
TETRA = DATA / "au-nanoparticles-tem" / "tetrahedra"
PRISM = DATA / "au-nanoparticles-tem" / "patchy-nanoprism"
TRACK = DATA / "track-membranes-sem-unlabelled"

TETRA_MAP = {"255,0,0": 1, "0,0,255": 2, "0,0,0": 0}


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared dataset not available: {path}")


def _png(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", a)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _read_png(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def _dataset(root: Path, n: int = 2, shape=(80, 100), seed: int = 0) -> Path:
    """A small binary dataset: grey images and 0/255 masks (255 = object)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        mask = np.zeros(shape, np.uint8)
        mask[10:30, 20:50] = 255
        _png(root / "images" / f"s{i}.png", img)
        _png(root / "masks" / f"s{i}.png", mask)
    return root


def _leftovers(out: Path) -> list[str]:
    """Output folder or any temporary sibling left behind."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.lstrip(".").startswith(out.name))


def _expect_error(src: Path, out: Path, culprit: Path | str, *words: str, **params) -> str:
    with pytest.raises(IngestError) as err:
        run_ingest(src, out, parse_params(params))
    msg = str(err.value)
    assert msg.startswith(str(culprit)), msg
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    assert _leftovers(out) == [], "output or temp folder left behind"
    return msg


# ============================================================================ real datasets
def test_isbi_binary_foreground_zero(tmp_path):
    _need(ISBI)
    out = tmp_path / "ingested"
    run_ingest(ISBI, out, parse_params({"foreground": 0, "tile_size": 256,
                                        "class_names": ["background", "membrane"]}))
    sources = pd.read_csv(out / "sources.csv", keep_default_na=False)
    tiles = pd.read_csv(out / "tiles.csv", keep_default_na=False)
    assert list(sources.columns) == SOURCES_COLUMNS and list(tiles.columns) == TILES_COLUMNS
    assert len(sources) == 30 and (sources[["height", "width"]] == 512).all().all()
    assert len(tiles) == 30 * 4
    assert json.loads((out / "classes.json").read_text()) == {"0": "background", "1": "membrane"}

    # membrane fraction computed independently from the raw PNGs (0 = membrane in ISBI)
    raw = np.stack([np.array(Image.open(p)) for p in sorted((ISBI / "masks").glob("*.png"))])
    raw_fraction = float((raw == 0).mean())
    assert 0.15 < raw_fraction < 0.30  # membranes are the minority class
    ours = np.stack([_read_png(out / "masks" / f"{s}.png") for s in sources["source_id"]])
    assert set(np.unique(ours)) == {0, 1}
    assert float(ours.mean()) == pytest.approx(raw_fraction, abs=1e-12)
    # per-tile fg_fraction agrees with the tile masks, and the pooled value with the raw masks
    assert np.average(tiles["fg_fraction"]) == pytest.approx(raw_fraction, abs=1e-12)

    # provenance: raw-file hash, decoded-array hashes, stitching back
    row = sources.iloc[0]
    raw_bytes = (ISBI / row["image_file"]).read_bytes()
    assert row["image_sha256"] == hashlib.sha256(raw_bytes).hexdigest()
    assert row["normalisation"] == "none" and row["pixel_size_nm"] == ""
    sid = row["source_id"]
    t = tiles[tiles["source_id"] == sid]
    imgs = list(np.load(out / "tiles" / "images.npy")[t.index])  # row k = row k of tiles.csv
    assert [array_sha256(a) for a in imgs] == list(t["image_sha256"])
    back = stitch(imgs, t[["y", "x"]].itertuples(index=False), (512, 512))
    np.testing.assert_array_equal(back, np.array(Image.open(ISBI / row["image_file"])))
    np.testing.assert_array_equal(_read_png(out / "images" / f"{sid}.png"), back)


def _subset(src: Path, dst: Path, stems: list[str]) -> Path:
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True)
        for f in (src / sub).iterdir():
            if f.stem in stems:
                shutil.copy(f, dst / sub / f.name)
    return dst


def test_deterministic_bytes_and_workers(tmp_path):
    _need(ISBI)
    src = _subset(ISBI, tmp_path / "isbi", ["0", "1", "2", "3"])
    p1 = parse_params({"foreground": 0, "tile_size": 128, "workers": 1})
    p2 = parse_params({"foreground": 0, "tile_size": 128, "workers": 2})
    run_ingest(src, tmp_path / "a", p1)
    run_ingest(src, tmp_path / "b", p2)

    def listing(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}

    a, b = listing(tmp_path / "a"), listing(tmp_path / "b")
    assert a.keys() == b.keys() and a == b
    assert sorted(k for k in a if k.startswith("tiles/")) == ["tiles/images.npy", "tiles/masks.npy"]
    assert np.load(tmp_path / "a" / "tiles" / "images.npy").shape == (4 * 16, 128, 128)


def test_tetrahedra_rgb_big_endian(tmp_path):
    _need(TETRA)
    stems = sorted(p.stem for p in (TETRA / "images").glob("*.tif"))[:4]
    src = _subset(TETRA, tmp_path / "tetra", stems)
    out = tmp_path / "ingested"
    run_ingest(src, out, parse_params({
        "mask_format": "rgb", "colour_map": TETRA_MAP, "tile_size": 256,
        "class_names": {0: "background", 1: "particle", 2: "boundary"}}))
    sources = pd.read_csv(out / "sources.csv", keep_default_na=False)
    assert list(sources["source_id"]) == stems
    for stem in stems:
        with tifffile.TiffFile(src / "masks" / f"{stem}.tif") as t:
            assert t.byteorder == ">"  # the ImageJ masks are big-endian
            rgb = t.pages[0].asarray()
        expected = np.zeros(rgb.shape[:2], np.uint8)
        expected[np.all(rgb == (255, 0, 0), axis=-1)] = 1
        expected[np.all(rgb == (0, 0, 255), axis=-1)] = 2
        ids = _read_png(out / "masks" / f"{stem}.png")
        np.testing.assert_array_equal(ids, expected)
        assert (ids == 2).any() or (ids == 1).any()
        np.testing.assert_array_equal(_read_png(out / "images" / f"{stem}.png"),
                                      np.array(Image.open(src / "images" / f"{stem}.tif")))


def test_patchy_nanoprism_thumbs_db_skipped(tmp_path, caplog):
    _need(PRISM)
    assert (PRISM / "images" / "Thumbs.db").exists()
    out = tmp_path / "ingested"
    with caplog.at_level(logging.WARNING, logger="porescope.ingest"):
        summary = run_ingest(PRISM, out, parse_params({
            "mask_format": "rgb", "colour_map": {"255,0,0": 1, "0,255,0": 2, "0,0,0": 0},
            "class_names": ["background", "prism", "patch"], "tile_size": 512}))
    assert summary["sources"] == 12
    skipped = [r.getMessage() for r in caplog.records if "Thumbs.db" in r.getMessage()]
    assert len(skipped) == 2 and all("skipped" in m for m in skipped)
    ids = np.stack([_read_png(p) for p in sorted((out / "masks").glob("*.png"))])
    assert set(np.unique(ids)) == {0, 1, 2}


def test_track_membranes_unlabelled(tmp_path, caplog):
    _need(TRACK)
    out = tmp_path / "ingested"
    with caplog.at_level(logging.WARNING, logger="porescope.ingest"):
        run_ingest(TRACK, out, parse_params({"require_masks": False, "crop_bottom": "auto",
                                             "tile_size": 256}))
    sources = pd.read_csv(out / "sources.csv", keep_default_na=False).set_index("source_id")
    assert len(sources) == 9
    for sid, row in sources.iterrows():
        with Image.open(TRACK / row["image_file"]) as pil:
            w, h = pil.size
        assert (row["orig_height"], row["orig_width"]) == (h, w)
        assert _read_png(out / "images" / f"{sid}.png").shape == (row["height"], row["width"])
        assert row["mask_file"] == "" and row["mask_sha256"] == ""
    assert sources.loc["photo5", "crop_bottom"] == 0  # overlaid text: not a data bar
    assert sources.loc["photo5", "height"] == 642
    assert any("photo5.jpg" in r.getMessage() and "scale bar" in r.getMessage()
               for r in caplog.records)
    assert not any((out / "masks").iterdir()) and not (out / "tiles" / "masks.npy").exists()
    tiles = pd.read_csv(out / "tiles.csv", keep_default_na=False)
    assert (tiles["fg_fraction"] == "").all()
    assert np.load(out / "tiles" / "images.npy").shape == (len(tiles), 256, 256)


# ============================================================================ synthetic cases
def test_data_bar_auto_crops_image_and_mask(tmp_path):
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(np.clip(rng.normal(120, 25, (300, 400)), 0, 255).astype(np.uint8),
                           (5, 5), 0)
    img[-40:] = 0
    cv2.putText(img, "HV 5 kV  mag 10 kx", (10, 285), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    mask = np.zeros((300, 400), np.uint8)
    mask[100:150, 100:150] = 255
    _png(tmp_path / "src" / "images" / "bar.png", img)
    _png(tmp_path / "src" / "masks" / "bar.png", mask)
    # a second image whose mask was drawn on the already-cropped image (260 rows)
    _png(tmp_path / "src" / "images" / "bar2.png", img)
    _png(tmp_path / "src" / "masks" / "bar2.png", mask[:260])
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({"crop_bottom": "auto", "tile_size": 128}))
    s = pd.read_csv(out / "sources.csv").set_index("source_id")
    assert list(s["crop_bottom"]) == [40, 40] and list(s["height"]) == [260, 260]
    for sid in ("bar", "bar2"):
        np.testing.assert_array_equal(_read_png(out / "images" / f"{sid}.png"), img[:260])
        np.testing.assert_array_equal(_read_png(out / "masks" / f"{sid}.png"), mask[:260] // 255)


def test_16bit_tiff_normalised_and_pixel_size_recorded(tmp_path):
    rng = np.random.default_rng(8)
    a = rng.integers(2000, 40000, (96, 64)).astype(np.uint16)
    fei = "[Scan]\r\nPixelWidth=3.1e-09\r\nPixelHeight=3.1e-09\r\n"
    (tmp_path / "src" / "images").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "src" / "images" / "sem.tif", a, byteorder=">",
                     extratags=[(34682, "s", 0, fei, True)])
    _png(tmp_path / "src" / "masks" / "sem.png", np.zeros((96, 64), np.uint8))
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({"tile_size": 64}))
    row = pd.read_csv(out / "sources.csv").iloc[0]
    assert row["pixel_size_nm"] == pytest.approx(3.1)
    assert "FEI_HELIOS" in row["pixel_size_source"]
    lo, hi = np.percentile(a, [0.1, 99.9])
    assert row["normalisation"].startswith("percentile 0.1/99.9 of uint16")
    expected = np.clip(np.rint((a - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(_read_png(out / "images" / "sem.png"), expected)
    # an explicit param wins over metadata (and is recorded as such)
    run_ingest(tmp_path / "src", out, parse_params({"tile_size": 64, "pixel_size_nm": 5}))
    row = pd.read_csv(out / "sources.csv").iloc[0]
    assert row["pixel_size_nm"] == 5 and row["pixel_size_source"] == "param"


def test_multipage_all_gives_one_source_per_page(tmp_path):
    pages = np.stack([np.full((40, 48), 50 * (k + 1), np.uint8) for k in range(3)])
    masks = np.stack([np.where(np.arange(48) < 8 * (k + 1), 255, 0).astype(np.uint8)[None, :]
                      .repeat(40, 0) for k in range(3)])
    for sub, arr in (("images", pages), ("masks", masks)):
        (tmp_path / "src" / sub).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "src" / sub / "stack.tif", arr, photometric="minisblack")
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({"multipage": "all", "tile_size": 32}))
    s = pd.read_csv(out / "sources.csv")
    assert list(s["source_id"]) == ["stack_p0", "stack_p1", "stack_p2"]
    assert list(s["page"]) == [0, 1, 2]
    for k in range(3):
        assert _read_png(out / "masks" / f"stack_p{k}.png").sum() == 40 * 8 * (k + 1)
    run_ingest(tmp_path / "src", out, parse_params({"multipage": "first", "tile_size": 32}))
    assert list(pd.read_csv(out / "sources.csv")["source_id"]) == ["stack"]


def test_labels_and_mask_suffix_and_small_image_padding(tmp_path):
    img = np.arange(20 * 24, dtype=np.uint8).reshape(20, 24)
    lab = np.zeros((20, 24), np.uint8)
    lab[:, 12:] = 2
    lab[5:8, :4] = 1
    _png(tmp_path / "src" / "images" / "tiny img.v2.png", img)
    _png(tmp_path / "src" / "masks" / "tiny img.v2_mask.png", lab)
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({
        "mask_format": "labels", "n_classes": 3, "mask_suffix": "_mask", "tile_size": 64,
        "min_size": 16}))
    t = pd.read_csv(out / "tiles.csv").iloc[0]
    assert t["tile_id"] == "tiny img.v2__y00000_x00000"
    assert (t["valid_height"], t["valid_width"]) == (20, 24)
    tile = np.load(out / "tiles" / "masks.npy")[0]
    assert tile.shape == (64, 64)
    np.testing.assert_array_equal(tile[:20, :24], lab)
    assert t["fg_fraction"] == pytest.approx(np.count_nonzero(lab) / lab.size)


@pytest.mark.parametrize("workers", [1, 3])
def test_tile_stacks_follow_tiles_csv_row_for_row(tmp_path, workers):
    """Row k of tiles/images.npy and tiles/masks.npy is the tile of row k of tiles.csv, checked
    by the content hashes tiles.csv records; the files are what np.save writes. The images are
    read in another order than the table's (dataset 'zeta' is listed first, the table is sorted
    by source id) and one has no mask."""
    rng = np.random.default_rng(5)
    for name, stem, shape in (("zeta", "9", (70, 90)), ("zeta", "10", (40, 40)),
                              ("alpha", "2", (65, 33)), ("alpha", "nomask", (50, 50))):
        mask = np.zeros(shape, np.uint8)
        mask[5:20, 3:17] = 255
        _png(tmp_path / name / "images" / f"{stem}.png", rng.integers(0, 256, shape, dtype=np.uint8))
        if stem != "nomask":
            _png(tmp_path / name / "masks" / f"{stem}.png", mask)
    out = tmp_path / "out"
    sources = [{"name": n, "path": str(tmp_path / n)} for n in ("zeta", "alpha")]
    run_ingest(tmp_path, out, parse_params({"tile_size": 32, "min_size": 16, "workers": workers,
                                            "require_masks": False, "sources": sources}))
    tiles = pd.read_csv(out / "tiles.csv", keep_default_na=False)
    assert tiles["source_id"].drop_duplicates().tolist() == ["alpha__2", "alpha__nomask", "zeta__10", "zeta__9"]
    images, masks = np.load(out / "tiles" / "images.npy"), np.load(out / "tiles" / "masks.npy")
    assert images.shape == masks.shape == (len(tiles), 32, 32) and images.dtype == masks.dtype == np.uint8
    assert [array_sha256(a) for a in images] == tiles["image_sha256"].tolist()
    has_mask = (tiles["mask_sha256"] != "").to_numpy()
    assert [array_sha256(a) for a in masks[has_mask]] == tiles.loc[has_mask, "mask_sha256"].tolist()
    assert 0 < has_mask.sum() < len(tiles) and not masks[~has_mask].any()  # no mask: 0
    for kind, stack in (("images", images), ("masks", masks)):
        buf = io.BytesIO()
        np.save(buf, stack)
        assert (out / "tiles" / f"{kind}.npy").read_bytes() == buf.getvalue()
    assert sorted(p.relative_to(out).as_posix() for p in (out / "tiles").iterdir()) == [
        "tiles/images.npy", "tiles/masks.npy"]


def test_existing_output_survives_a_failed_run(tmp_path):
    src = _dataset(tmp_path / "src")
    out = tmp_path / "out"
    run_ingest(src, out, parse_params({"tile_size": 64}))
    before = (out / "sources.csv").read_bytes()
    (src / "masks" / "s1.png").unlink()
    with pytest.raises(IngestError):
        run_ingest(src, out, parse_params({"tile_size": 64}))
    assert (out / "sources.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ============================================================================ bad input, one each
def test_error_zero_byte_file(tmp_path):
    src = _dataset(tmp_path / "src")
    bad = src / "images" / "s2.png"
    bad.write_bytes(b"")
    _expect_error(src, tmp_path / "out", bad, "empty", "0 bytes", tile_size=64)


def test_error_unreadable_file(tmp_path):
    src = _dataset(tmp_path / "src")
    bad = src / "images" / "s1.png"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated PNG
    _expect_error(src, tmp_path / "out", bad, "truncated or corrupt", tile_size=64)


def test_error_not_an_image(tmp_path):
    src = _dataset(tmp_path / "src")
    bad = src / "images" / "readme.txt"
    bad.write_text("These are my images\n" * 5)
    _png(src / "masks" / "readme.png", np.zeros((80, 100), np.uint8))
    _expect_error(src, tmp_path / "out", bad, "not a supported image", "text", tile_size=64)


def test_error_image_without_mask(tmp_path):
    src = _dataset(tmp_path / "src")
    lonely = _png(src / "images" / "extra.png", np.zeros((80, 100), np.uint8))
    _expect_error(src, tmp_path / "out", lonely, "image without a mask", "require_masks",
                  tile_size=64)


def test_error_mask_without_image(tmp_path):
    src = _dataset(tmp_path / "src")
    lonely = _png(src / "masks" / "ghost.png", np.zeros((80, 100), np.uint8))
    _expect_error(src, tmp_path / "out", lonely, "mask without an image", tile_size=64)


def test_error_size_mismatch_gives_both_sizes(tmp_path):
    src = _dataset(tmp_path / "src")
    bad = _png(src / "masks" / "s0.png", np.zeros((70, 90), np.uint8))
    msg = _expect_error(src, tmp_path / "out", bad, "90 x 70", "100 x 80", tile_size=64)
    assert "s0.png" in msg


def test_error_jpeg_binary_mask(tmp_path):
    src = _dataset(tmp_path / "src")
    (src / "masks" / "s1.png").unlink()
    m = np.zeros((80, 100), np.uint8)
    cv2.circle(m, (50, 40), 20, 255, -1)
    bad = _png(src / "masks" / "s1.jpg", m)  # JPEG invents grey levels along the edge
    msg = _expect_error(src, tmp_path / "out", bad, "distinct values", "JPEG", "PNG", " px",
                        tile_size=64)
    assert "255:" in msg and "0:" in msg


def test_error_binary_foreground_absent_hint(tmp_path):
    src = _dataset(tmp_path / "src", n=1)
    m = np.zeros((80, 100), np.uint8)
    m[:10] = 1
    bad = _png(src / "masks" / "s0.png", m)  # a 0/1 mask with foreground: 255
    _expect_error(src, tmp_path / "out", bad, "does not occur", "ingest.foreground", tile_size=64)


def test_error_rgb_colour_not_in_map(tmp_path):
    src = tmp_path / "src"
    _png(src / "images" / "a.png", np.zeros((40, 50), np.uint8))
    m = np.zeros((40, 50, 3), np.uint8)
    m[:10, :, 2] = 255   # red in RGB (OpenCV writes BGR)
    m[10:12, :] = (0, 200, 0)
    bad = _png(src / "masks" / "a.png", m)
    msg = _expect_error(src, tmp_path / "out", bad, "not in ingest.colour_map", "(0,200,0)",
                        "100 px", mask_format="rgb", colour_map=TETRA_MAP, tile_size=32)
    assert "(255,0,0)" not in msg.split("Mapped")[0]


def test_error_labels_outside_declared_ids(tmp_path):
    src = tmp_path / "src"
    _png(src / "images" / "a.png", np.zeros((40, 50), np.uint8))
    m = np.zeros((40, 50), np.uint8)
    m[:4] = 7
    bad = _png(src / "masks" / "a.png", m)
    _expect_error(src, tmp_path / "out", bad, "outside the declared class ids", "7: 200 px",
                  mask_format="labels", n_classes=3, tile_size=32)


def test_error_image_smaller_than_min_size(tmp_path):
    src = _dataset(tmp_path / "src")
    small = _png(src / "images" / "s9.png", np.zeros((20, 100), np.uint8))
    _png(src / "masks" / "s9.png", np.zeros((20, 100), np.uint8))
    _expect_error(src, tmp_path / "out", small, "min_size", "100 x 20", tile_size=64)


def test_error_duplicate_stem(tmp_path):
    src = _dataset(tmp_path / "src")
    (src / "images" / "s0.tif").write_bytes(b"II*\x00" + b"\x00" * 100)
    msg = _expect_error(src, tmp_path / "out", src / "images" / "s0.tif", "same stem",
                        "s0.png", tile_size=64)
    assert "keep only one" in msg


def test_error_source_missing(tmp_path):
    _expect_error(tmp_path / "nowhere", tmp_path / "out", tmp_path / "nowhere", "not found",
                  "ingest.source")


def test_error_no_images(tmp_path):
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "masks").mkdir()
    (tmp_path / "src" / "images" / ".DS_Store").write_bytes(b"junk")
    _expect_error(tmp_path / "src", tmp_path / "out", tmp_path / "src" / "images",
                  "no image files")


def test_error_masks_folder_missing(tmp_path):
    src = _dataset(tmp_path / "src")
    shutil.rmtree(src / "masks")
    _expect_error(src, tmp_path / "out", src / "masks", "require_masks: false")


def test_several_problems_listed_together(tmp_path):
    src = _dataset(tmp_path / "src", n=3)
    (src / "masks" / "s0.png").unlink()
    (src / "masks" / "s2.png").unlink()
    msg = _expect_error(src, tmp_path / "out", src / "images" / "s0.png", "1 more problem")
    assert str(src / "images" / "s2.png") in msg


def test_junk_files_skipped_with_warning(tmp_path, caplog):
    src = _dataset(tmp_path / "src", n=1)
    (src / "images" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0junk")
    (src / "images" / "._s0.png").write_bytes(b"\x00\x05\x16\x07")
    (src / "masks" / "desktop.ini").write_text("[.ShellClassInfo]")
    (src / "images" / "__MACOSX").mkdir()
    with caplog.at_level(logging.WARNING, logger="porescope.ingest"):
        summary = run_ingest(src, tmp_path / "out", parse_params({"tile_size": 64}))
    assert summary["sources"] == 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("Thumbs.db", "._s0.png", "desktop.ini", "__MACOSX"):
        assert name in text


# ============================================================================ params and CLI
def test_params_validation():
    with pytest.raises(ParamsError, match="forground"):
        parse_params({"forground": 0})
    with pytest.raises(ParamsError, match="colour_map"):
        parse_params({"mask_format": "rgb"})
    with pytest.raises(ParamsError, match="n_classes"):
        parse_params({"mask_format": "labels"})
    with pytest.raises(ParamsError, match="crop_bottom"):
        parse_params({"crop_bottom": -3})
    with pytest.raises(ParamsError, match="pixel_size_nm"):
        parse_params({"pixel_size_nm": "1 nm"})
    with pytest.raises(ParamsError, match="class id 0"):
        parse_params({"mask_format": "rgb", "colour_map": {"255,0,0": 1},
                      "class_names": {1: "particle"}})
    p = parse_params({"mask_format": "rgb", "colour_map": TETRA_MAP, "seed": 1})
    assert p.encoding.class_names == {0: "background", 1: "class_1", 2: "class_2"}


def test_cli_source_argument_wins(tmp_path, monkeypatch):
    src = _dataset(tmp_path / "src", n=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "ingest": {"source": "does/not/exist",
                                                            "tile_size": 64}}))
    monkeypatch.chdir(tmp_path)
    assert main(["--params", str(params), "--source", str(src), "--out", "data/ingested"]) == 0
    assert (tmp_path / "data" / "ingested" / "sources.csv").exists()
    with pytest.raises(IngestError, match="not found"):          # param source missing
        main(["--params", str(params), "--out", "data/other"])
    assert not (tmp_path / "data" / "other").exists()


# ============================================================================ decoders directly
def test_decoders_on_known_arrays():
    m = np.array([[0, 255], [255, 255]], np.uint8)
    np.testing.assert_array_equal(decode_binary(m, 0), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(decode_binary(np.full((2, 2), 9, np.uint8), 255), 0)
    grey_rgb = np.dstack([m, m, m])
    np.testing.assert_array_equal(decode_binary(grey_rgb, 255), m // 255)
    np.testing.assert_array_equal(decode_labels(np.array([[0, 2]], np.uint16), [0, 1, 2]), [[0, 2]])
    rgb = np.array([[[255, 0, 0], [0, 0, 255], [0, 0, 0]]], np.uint8)
    cmap = {(255, 0, 0): 1, (0, 0, 255): 2, (0, 0, 0): 0}
    np.testing.assert_array_equal(decode_rgb(rgb, cmap), [[1, 2, 0]])
    with pytest.raises(IngestError, match="colour pixels"):
        decode_binary(rgb, 255, "m.png")


def test_error_with_worker_processes_leaves_nothing(tmp_path):
    src = _dataset(tmp_path / "src", n=4)
    bad = src / "masks" / "s1.png"
    bad.write_bytes(bad.read_bytes()[:100])
    _expect_error(src, tmp_path / "out", bad, "truncated", tile_size=64, workers=2)


def test_error_page_suffix_meets_a_stem(tmp_path):
    src = tmp_path / "src"
    for sub in ("images", "masks"):
        (src / sub).mkdir(parents=True)
        tifffile.imwrite(src / sub / "a.tif", np.zeros((2, 40, 40), np.uint8),
                         photometric="minisblack")
        _png(src / sub / "a_p1.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(IngestError) as err:
        run_ingest(src, tmp_path / "out", parse_params({"multipage": "all", "tile_size": 32}))
    assert "a_p1" in str(err.value) and "rename" in str(err.value)
    assert str(err.value).startswith(str(src / "images"))
    assert _leftovers(tmp_path / "out") == []


# ======================================================================= three-class targets
def _two_touching_discs(shape=(64, 96)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    labels[np.hypot(yy - 32, xx - 30) <= 14] = 7
    labels[np.hypot(yy - 32, xx - 54) <= 14] = 300  # 16-bit ids, not consecutive; overlaps disc 7
    return labels


@pytest.mark.parametrize("fmt", ["binary", "instances"])
def test_three_class_target_separates_touching_objects(tmp_path, fmt):
    labels = _two_touching_discs()
    img = np.where(labels > 0, 40, 200).astype(np.uint8)
    _png(tmp_path / "src" / "images" / "a.png", img)
    _png(tmp_path / "src" / "masks" / "a.png", np.where(labels > 0, 255, 0).astype(np.uint8)
         if fmt == "binary" else labels)
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({"mask_format": fmt, "target": "three_class",
                                                    "border_width": 2, "tile_size": 64, "min_size": 16}))
    classes = json.loads((out / "classes.json").read_text())
    assert classes["2"] == "border" and set(classes) == {"0", "1", "2"}
    mask = _read_png(out / "masks" / "a.png")
    assert set(np.unique(mask)) == {0, 1, 2}
    np.testing.assert_array_equal(mask > 0, labels > 0)  # the union of objects is unchanged
    from scipy import ndimage
    _, n_interiors = ndimage.label(mask == 1)
    assert n_interiors == 2, "the border must cut the two touching discs apart"
    row = mask[32]
    left_end = 30 + np.argmax(row[30:] != 1)  # first non-interior pixel right of disc 1's centre
    right_start = 54 - np.argmax(row[54::-1] != 1) + 1
    assert left_end < right_start and (row[left_end:right_start] == 2).all()  # a border line between


def test_instances_as_is_become_one_foreground_class(tmp_path):
    labels = _two_touching_discs()
    _png(tmp_path / "src" / "images" / "a.png", np.full(labels.shape, 128, np.uint8))
    _png(tmp_path / "src" / "masks" / "a.png", labels)
    out = tmp_path / "out"
    run_ingest(tmp_path / "src", out, parse_params({"mask_format": "instances", "tile_size": 64, "min_size": 16}))
    np.testing.assert_array_equal(_read_png(out / "masks" / "a.png"), (labels > 0).astype(np.uint8))


def test_three_class_from_rgb_classes_is_refused():
    with pytest.raises(ParamsError, match="three_class"):
        parse_params({"mask_format": "rgb", "colour_map": {"255,0,0": 1, "0,0,0": 0}, "target": "three_class"})


def test_defaults_are_params_yaml():
    """The dataclass defaults are the defaults: params.yaml must repeat them exactly."""
    from porescope.config import to_mapping

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["ingest"]
    assert to_mapping(IngestParams()) == raw
    assert parse_ingest_params(raw) == IngestParams()


def test_stage_error_is_one_line_and_exit_2(tmp_path, monkeypatch):
    """A bad input is a PorescopeError: the stage prints one line and exits 2 (no traceback)."""
    import subprocess
    import sys

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "ingest": {"source": str(tmp_path / "nowhere")}}))
    run = subprocess.run([sys.executable, "-c", "import sys; from stages.common import run_stage; "
                          "from stages.ingest import main; "
                          "run_stage('ingest', lambda: main(sys.argv[1:]))",
                          "--params", str(params), "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("stage ingest: error: ")
    assert "Traceback" not in run.stderr
