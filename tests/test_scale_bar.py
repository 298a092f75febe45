"""Pixel size from the scale bar: synthetic bars of known scale, the real photo5.jpg, fallbacks."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from porescope.io.scale_bar import (
    ScaleBarError,
    bar_length_px,
    find_scale_bars,
    parse_scale_label,
    read_scale_bar,
    tesseract_available,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "track-membranes-sem-unlabelled"
needs_ocr = pytest.mark.skipif(not tesseract_available(), reason="Tesseract OCR is not installed "
                               "(apt-get install tesseract-ocr; pip install pytesseract)")
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def micrograph(seed: int, shape=(480, 640), data_bar: bool = True, light: bool = True) -> np.ndarray:
    """Textured grey 'micrograph' with dark pores; a black data bar at the bottom when asked."""
    rng = np.random.default_rng(seed)
    img = rng.normal(120, 12, shape)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for _ in range(25):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(6, 14)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 20
    img = np.clip(img, 0, 255).astype(np.uint8)
    if data_bar:
        img[-60:] = 0 if light else 235
    return img


def draw_bar(img: np.ndarray, length_px: int, label: str, *, light: bool = True,
             y: int | None = None, x0: int = 200, thickness: int = 4, size: int = 22) -> np.ndarray:
    """A scale bar of ``length_px`` with ``label`` written under it (DejaVu Sans)."""
    y = img.shape[0] - 45 if y is None else y
    colour = 255 if light else 0
    img[y:y + thickness, x0:x0 + length_px] = colour
    page = Image.fromarray(img)
    ImageDraw.Draw(page).text((x0 + length_px // 4, y + thickness + 4), label, fill=colour,
                              font=ImageFont.truetype(str(FONT), size))
    return np.asarray(page).copy()


@pytest.mark.parametrize("text, expected", [
    ("50um", (50.0, "um")), ("500 nm", (500.0, "nm")), ("2 µm", (2.0, "um")), ("2.5μm", (2.5, "um")),
    ("SOxm", (50.0, "um")), ("5@um", (50.0, "um")), ("1 mm", (1.0, "mm")), ("X500 100nm", (100.0, "nm")),
    ("X500", None), ("21/AUG/15", None), ("", None),
])
def test_parse_scale_label(text, expected):
    assert parse_scale_label(text) == expected


def test_find_bar_and_its_length_with_subpixel_ends():
    img = micrograph(0)
    img = draw_bar(img, 150, "10 µm")
    bars = find_scale_bars(img)
    assert bars and (bars[0].x0, bars[0].x1) == (200, 349)
    assert bar_length_px(img, bars[0]) == pytest.approx(150, abs=0.6)


@needs_ocr
@pytest.mark.parametrize("length, label, light, data_bar, nm", [
    (100, "500 nm", True, True, 5.0),
    (160, "2 µm", True, True, 12.5),
    (240, "10 µm", True, True, 41.6667),
    (80, "200 nm", False, True, 2.5),
    (200, "50 µm", False, True, 250.0),
    (150, "1 µm", True, False, 6.6667),     # overlaid on the micrograph, no band of its own
    (120, "20 um", False, False, 166.667),  # black bar on the micrograph, "um" spelling
    (300, "5 mm", True, True, 16666.67),
])
def test_read_synthetic_bars(length, label, light, data_bar, nm):
    img = micrograph(length, data_bar=data_bar, light=light)
    y = None if data_bar else 380
    img = draw_bar(img, length, label, light=light, y=y)
    bar = read_scale_bar(img)
    assert bar.nm_per_px == pytest.approx(nm, rel=0.01), (bar.text, bar.value, bar.unit)


@needs_ocr
def test_no_bar_is_an_error_saying_so():
    with pytest.raises(ScaleBarError, match="no scale bar found"):
        read_scale_bar(micrograph(3, data_bar=False))


def test_without_tesseract_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr("porescope.io.scale_bar.shutil.which", lambda name: None)
    with pytest.raises(ScaleBarError, match="apt-get install tesseract-ocr"):
        read_scale_bar(micrograph(4))


@needs_ocr
def test_photo5_reads_314_nm_per_px():
    path = SHARED / "photo5.jpg"
    if not path.is_file():
        pytest.skip(f"real SEM images not available ({SHARED} absent)")
    grey = np.asarray(Image.open(path).convert("L"))
    bar = read_scale_bar(grey)
    assert (bar.value, bar.unit) == (50.0, "um")
    assert bar.nm_per_px == pytest.approx(314.0, rel=0.01)


@needs_ocr
def test_read_micrograph_falls_back_to_the_scale_bar(tmp_path):
    """Order: given value > file metadata > scale bar; a bar-less image stays unknown with a warning."""
    from porescope.io.micrograph import read_micrograph

    img = draw_bar(micrograph(7), 160, "2 µm")
    path = tmp_path / "m.png"
    Image.fromarray(img).save(path)
    m = read_micrograph(path, crop_bottom=60, scale_bar=True)
    assert m.pixel_size_nm == pytest.approx(12.5, rel=0.01) and m.pixel_size_source == "scale_bar:2um"
    assert m.image.shape == (420, 640)                     # the bar was read before the crop
    given = read_micrograph(path, crop_bottom=60, pixel_size_nm=40.0, scale_bar=True)
    assert (given.pixel_size_nm, given.pixel_size_source) == (40.0, "given")
    off = read_micrograph(path, crop_bottom=60)
    assert off.pixel_size_nm is None
    plain = tmp_path / "plain.png"
    Image.fromarray(micrograph(8, data_bar=False)).save(plain)
    none = read_micrograph(plain, scale_bar=True)
    assert none.pixel_size_nm is None and any("no scale bar found" in w for w in none.warnings)
