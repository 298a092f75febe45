"""Reading every supported format, TIFF metadata, conversions and the SEM data-bar detector."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from porescope.io.images import (
    array_sha256,
    decode_image,
    detect_data_bar,
    find_bottom_overlay,
    integer_percentiles,
    read_image,
    sniff_format,
    to_grey,
    to_uint8,
    unit_to_nm,
)
from porescope.io.pairing import IngestError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRACK = DATA / "track-membranes-sem-unlabelled"
TETRA = DATA / "au-nanoparticles-tem" / "tetrahedra"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared dataset not available: {path}")


def _enc(ext: str, a: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, a, list(params))
    assert ok
    return buf.tobytes()


def _tiff(a: np.ndarray, **kw) -> bytes:
    b = io.BytesIO()
    tifffile.imwrite(b, a, **kw)
    return b.getvalue()


RNG = np.random.default_rng(11)
GREY = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------- format detection
@pytest.mark.parametrize("ext, fmt", [(".png", "png"), (".jpg", "jpeg"), (".tif", "tiff"),
                                      (".webp", "webp"), (".bmp", "bmp")])
def test_sniff_format(ext, fmt):
    assert sniff_format(_enc(ext, GREY)[:16]) == fmt


def test_sniff_unknown():
    assert sniff_format(b"GIF89a" + b"\0" * 10) is None
    assert sniff_format(b"hello world, not an image") is None


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_lossless_grey_and_colour_roundtrip(ext):
    im = decode_image(_enc(ext, GREY), "g" + ext)
    np.testing.assert_array_equal(im.pages[0].array, GREY)
    # OpenCV writes BGR: the decoded array must be in RGB order
    im = decode_image(_enc(ext, RGB[..., ::-1]), "c" + ext)
    np.testing.assert_array_equal(im.pages[0].array, RGB)


def test_webp_lossless_and_jpeg():
    im = decode_image(_enc(".webp", RGB[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101]), "x.webp")
    assert im.format == "webp"
    np.testing.assert_array_equal(im.pages[0].array, RGB)
    smooth = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    im = decode_image(_enc(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 95]), "x.jpg")
    assert im.format == "jpeg" and im.pages[0].array.shape == smooth.shape
    assert np.abs(im.pages[0].array.astype(int) - smooth).max() <= 4


def test_content_not_extension_decides(tmp_path):
    path = tmp_path / "looks_like.jpg"
    path.write_bytes(_enc(".webp", GREY, [cv2.IMWRITE_WEBP_QUALITY, 101]))
    im = read_image(path)
    assert im.format == "webp"
    np.testing.assert_array_equal(to_grey(im.pages[0].array), GREY)


def test_sixteen_bit_png_kept():
    a = (RNG.integers(0, 65536, (20, 30))).astype(np.uint16)
    im = decode_image(_enc(".png", a), "a.png")
    assert im.pages[0].array.dtype == np.uint16
    np.testing.assert_array_equal(im.pages[0].array, a)


def test_palette_png_keeps_indices():
    idx = RNG.integers(0, 3, (10, 12), dtype=np.uint8)
    pil = Image.fromarray(idx, mode="P")
    pil.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    b = io.BytesIO()
    pil.save(b, format="PNG")
    im = decode_image(b.getvalue(), "p.png")
    page = im.pages[0]
    np.testing.assert_array_equal(page.array, idx)
    assert tuple(page.palette[1]) == (255, 0, 0) and tuple(page.palette[2]) == (0, 0, 255)


# ---------------------------------------------------------------------------- TIFF
def test_big_endian_16bit_tiff_matches_pillow():
    a = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 31).astype(np.uint16)
    data = _tiff(a, byteorder=">")
    with tifffile.TiffFile(io.BytesIO(data)) as t:
        assert t.byteorder == ">"
    im = decode_image(data, "be.tif")
    arr = im.pages[0].array
    assert im.byteorder == ">" and arr.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(arr, a)
    np.testing.assert_array_equal(arr, np.array(Image.open(io.BytesIO(data))).astype(np.uint16))


def test_lzw_tiff_falls_back_to_opencv():
    a = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7)
    ok, buf = cv2.imencode(".tif", a)  # OpenCV writes LZW; tifffile needs imagecodecs for it
    im = decode_image(buf.tobytes(), "lzw.tif")
    np.testing.assert_array_equal(im.pages[0].array, a)


def test_multipage_first_and_all_and_thumbnail_skipped():
    pages = np.stack([np.full((20, 30), v, np.uint8) for v in (10, 20, 30)])
    b = io.BytesIO()
    with tifffile.TiffWriter(b) as w:
        for p in pages:
            w.write(p, photometric="minisblack")
        w.write(np.zeros((5, 7), np.uint8), subfiletype=1)  # a reduced-resolution thumbnail
    first = decode_image(b.getvalue(), "m.tif", pages="first")
    assert first.n_pages == 3 and len(first.pages) == 1
    every = decode_image(b.getvalue(), "m.tif", pages="all")
    assert [p.index for p in every.pages] == [0, 1, 2]
    assert [int(p.array[0, 0]) for p in every.pages] == [10, 20, 30]


def test_miniswhite_inverted_and_rgb_planar():
    a = np.array([[0, 100], [200, 255]], np.uint8)
    im = decode_image(_tiff(a, photometric="miniswhite"), "w.tif")
    np.testing.assert_array_equal(im.pages[0].array, 255 - a)
    rgb = RNG.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    im = decode_image(_tiff(np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"),
                      "planar.tif")
    np.testing.assert_array_equal(im.pages[0].array, rgb)


FEI_TEXT = ("[User]\r\nDate=03/14/2024\r\nUser=user\r\n[Beam]\r\nHV=5000\r\n[Scan]\r\n"
            "InternalScan=true\r\nPixelWidth=2.5e-09\r\nPixelHeight=2.5e-09\r\n")


@pytest.mark.parametrize("tag, label", [(34682, "FEI_HELIOS"), (34680, "FEI_SFEG")])
def test_fei_pixel_size(tag, label):
    data = _tiff(np.zeros((30, 40), np.uint16), extratags=[(tag, "s", 0, FEI_TEXT, True)])
    im = decode_image(data, "fei.tif")
    assert im.pixel_size_nm == pytest.approx(2.5)  # 2.5e-9 m
    assert label in im.pixel_size_source


@pytest.mark.parametrize("text, nm", [("Pixel Size = 1.234 \xb5m", 1234.0),
                                      ("Pixel Size = 3.72 nm", 3.72),
                                      ("Pixel Size = 850 pm", 0.85)])
def test_zeiss_pixel_size(text, nm):
    # Zeiss writes upper-case keys on their own line, "Name = value unit" below, latin-1 text
    payload = f"0\r\n0\r\nAP_WD\r\nWD = 8.5 mm\r\nAP_PIXEL_SIZE\r\n{text}\r\n".encode("latin-1")
    data = _tiff(np.zeros((30, 40), np.uint8), extratags=[(34118, "s", 0, payload, True)])
    im = decode_image(data, "zeiss.tif")
    assert im.pixel_size_nm == pytest.approx(nm)
    assert "CZ_SEM" in im.pixel_size_source


def test_imagej_and_resolution_fallbacks():
    a = np.zeros((30, 40), np.uint8)
    im = decode_image(_tiff(a, imagej=True, resolution=(4.0, 4.0), metadata={"unit": "micron"}),
                      "ij.tif")
    assert im.pixel_size_nm == pytest.approx(250.0)  # 4 px per micron
    im = decode_image(_tiff(a, resolution=(1e5, 1e5), resolutionunit="CENTIMETER"), "cm.tif")
    assert im.pixel_size_nm == pytest.approx(100.0)  # 1e7 nm / 1e5 px
    im = decode_image(_tiff(a, resolution=(72, 72), resolutionunit="INCH"), "dpi.tif")
    assert im.pixel_size_nm is None and im.pixel_size_source == "none"  # a screen dpi


def test_unit_table():
    assert unit_to_nm("µm") == 1000 and unit_to_nm("micron") == 1000 and unit_to_nm("nm") == 1
    assert unit_to_nm("pixel") is None


# ---------------------------------------------------------------------------- conversions
def test_grey_weights():
    a = np.zeros((1, 4, 3), np.uint8)
    a[0, 0] = (255, 0, 0)
    a[0, 1] = (0, 255, 0)
    a[0, 2] = (0, 0, 255)
    a[0, 3] = (77, 77, 77)
    g = to_grey(a)
    expected = [round(0.299 * 255), round(0.587 * 255), round(0.114 * 255), 77]
    assert np.abs(g[0].astype(int) - expected).max() <= 1
    assert g[0, 3] == 77  # equal channels give the value back exactly
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(to_grey(rgba), to_grey(RGB))
    assert to_grey(GREY) is GREY


def test_to_uint8_leaves_8bit_untouched():
    out, record = to_uint8(GREY)
    assert out is GREY and record == "none"


def test_to_uint8_percentile_independent():
    rng = np.random.default_rng(2)
    a = rng.integers(1000, 50000, (64, 80)).astype(np.uint16)
    out, record = to_uint8(a, "percentile", 1.0, 99.0)
    lo, hi = np.percentile(a.astype(np.float64), [1.0, 99.0])
    expected = np.clip(np.rint((a - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert "percentile 1/99" in record and f"{lo:.10g}" in record
    assert (out == 0).mean() == pytest.approx(0.01, abs=0.005)


def test_integer_percentiles_equal_numpy():
    rng = np.random.default_rng(4)
    for a in (rng.integers(0, 65536, 1001).astype(np.uint16),
              rng.integers(0, 20, 999).astype(np.uint16)):
        got = integer_percentiles(a, (0.1, 99.9))
        np.testing.assert_allclose(got, np.percentile(a, [0.1, 99.9]), rtol=0, atol=1e-9)


def test_to_uint8_dtype_range_and_constant():
    a = np.array([[0, 65535], [32768, 257]], np.uint16)
    out, record = to_uint8(a, "dtype")
    np.testing.assert_array_equal(out, [[0, 255], [128, 1]])
    out, record = to_uint8(np.full((4, 4), 500, np.uint16))
    assert not out.any() and "constant" in record


def test_array_sha256_definition():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = hashlib.sha256(b"|u1|2x3|" + bytes(range(6))).hexdigest()
    assert array_sha256(a) == expected
    assert array_sha256(a.reshape(3, 2)) != expected
    assert array_sha256(a.astype(np.uint16)) != expected


# ---------------------------------------------------------------------------- errors
def test_corrupt_and_foreign_content_named():
    png = _enc(".png", GREY)
    with pytest.raises(IngestError) as err:
        decode_image(png[: len(png) // 2], "/x/broken.png")
    assert str(err.value).startswith("/x/broken.png: ") and "truncated" in str(err.value)
    with pytest.raises(IngestError) as err:
        decode_image(b"name,value\n1,2\n" * 4, "/x/notes.png")
    assert str(err.value).startswith("/x/notes.png: ") and "text" in str(err.value)
    with pytest.raises(IngestError, match="empty"):
        decode_image(b"", "/x/empty.png")


# ---------------------------------------------------------------------------- data bar
def _micrograph(h=600, w=800, seed=1):
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(120, 25, (h, w)), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 0)


def _with_bar(img, rows, bar_level, ink):
    a = img.copy()
    h = a.shape[0]
    a[h - rows:] = bar_level
    cv2.putText(a, "HV 5.00 kV  WD 10.1 mm  mag 20 000 x  HFW 12.7 um", (10, h - rows // 2),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, ink, 1)
    cv2.line(a, (600, h - 20), (760, h - 20), ink, 3)
    return a


@pytest.mark.parametrize("level, ink", [(0, 255), (255, 0), (25, 230)])
@pytest.mark.parametrize("rows", [40, 80])
def test_data_bar_detected(level, ink, rows):
    a = _with_bar(_micrograph(), rows, level, ink)
    assert detect_data_bar(a) == rows
    jpeg = cv2.imdecode(np.frombuffer(_enc(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 80]), np.uint8), 0)
    assert detect_data_bar(jpeg) == rows


def test_data_bar_with_separator_and_16bit():
    a = _with_bar(_micrograph(), 60, 0, 255)
    a[-61] = 255  # a one-pixel white line between micrograph and bar
    assert detect_data_bar(a) == 61
    a16 = a.astype(np.uint16) * 16  # 12-bit data in a 16-bit container
    assert detect_data_bar(a16) == 61


def test_no_bar_no_frame():
    img = _micrograph()
    assert detect_data_bar(img) == 0
    framed = img.copy()
    framed[:20] = 255
    framed[-20:] = 255
    assert detect_data_bar(framed) == 0  # a frame around the image, not a data bar
    thin = img.copy()
    thin[-1] = 255
    assert detect_data_bar(thin) == 0  # one white border row is no bar
    dark = np.zeros((300, 300), np.uint8)
    assert detect_data_bar(dark) == 0  # all "bar": nothing to tell apart


def test_overlay_found_on_synthetic_scale_bar():
    img = _micrograph(400, 500)
    cv2.line(img, (300, 370), (450, 370), 255, 2)
    first, last = find_bottom_overlay(img)
    assert 368 <= first <= last <= 372
    assert detect_data_bar(img) == 0


def test_photo5_overlay_text_is_not_cropped():
    path = TRACK / "photo5.jpg"
    _need(path)
    im = read_image(path)
    assert im.format == "webp"  # WebP content under a .jpg name
    g = to_grey(im.pages[0].array)
    assert g.shape == (642, 750)
    assert detect_data_bar(g) == 0
    overlay = find_bottom_overlay(g)
    assert overlay is not None and 560 <= overlay[0] <= overlay[1] <= 610  # its 50 um scale bar


def test_track_membranes_all_read_with_pillow_sizes():
    _need(TRACK)
    files = sorted(p for p in TRACK.iterdir() if p.is_file())
    assert len(files) == 9
    formats = set()
    for f in files:
        im = read_image(f)
        formats.add(im.format)
        with Image.open(f) as pil:
            w, h = pil.size
        g = to_grey(im.pages[0].array)
        assert g.shape == (h, w) and g.dtype == np.uint8, f.name
    assert formats == {"jpeg", "png", "webp"}


def test_tetrahedra_big_endian_masks_match_tifffile():
    _need(TETRA)
    masks = sorted((TETRA / "masks").glob("*.tif"))[:3]
    for f in masks:
        with tifffile.TiffFile(f) as t:
            assert t.byteorder == ">"
            ref = t.pages[0].asarray()
        arr = read_image(f).pages[0].array
        np.testing.assert_array_equal(arr, ref)
        np.testing.assert_array_equal(arr, np.array(Image.open(f).convert("RGB")))


def test_histogram_exact_in_blocks():
    from porescope.io.images import histogram

    rng = np.random.default_rng(9)
    a = rng.integers(0, 65536, (3000, 3000)).astype(np.uint16)  # > 2**23 px: several blocks
    np.testing.assert_array_equal(histogram(a), np.bincount(a.ravel(), minlength=65536))
    b = np.zeros((4100, 4100), np.uint8)  # one value above float32's exact-integer range
    b[0, 0] = 3
    h = histogram(b)
    assert h[0] == 4100 * 4100 - 1 and h[3] == 1 and h.sum() == b.size


def test_palette_and_grey_alpha_images_to_grey():
    idx = RNG.integers(0, 4, (10, 12), dtype=np.uint8)
    levels = [0, 60, 130, 250]
    pil = Image.fromarray(idx, mode="P")
    pil.putpalette([v for lv in levels for v in (lv, lv, lv)] + [0] * (252 * 3))
    b = io.BytesIO()
    pil.save(b, format="PNG")
    page = decode_image(b.getvalue(), "p.png").pages[0]
    np.testing.assert_array_equal(to_grey(page.array, page.palette), np.take(levels, idx))
    la = Image.fromarray(np.dstack([GREY, np.full(GREY.shape, 255, np.uint8)]), mode="LA")
    b = io.BytesIO()
    la.save(b, format="PNG")
    page = decode_image(b.getvalue(), "la.png").pages[0]
    np.testing.assert_array_equal(to_grey(page.array, page.palette), GREY)


def test_float_micrograph_with_missing_data_is_refused_naming_the_file(tmp_path):
    """NaN / inf pixels (a stitching gap) would be normalised to black, i.e. pores: refused."""
    from porescope.io.micrograph import read_micrograph

    img = np.random.default_rng(0).uniform(100, 200, (64, 80)).astype(np.float32)
    tifffile.imwrite(tmp_path / "ok.tif", img)
    assert read_micrograph(tmp_path / "ok.tif").image.dtype == np.uint8
    img[10:20, 10:20] = np.nan
    img[0, 0] = np.inf
    tifffile.imwrite(tmp_path / "gap.tif", img)
    with pytest.raises(IngestError, match=r"gap\.tif: 101 pixels are NaN or infinite"):
        read_micrograph(tmp_path / "gap.tif")


def test_a_one_row_image_is_named_as_too_small_not_as_a_crop_problem(tmp_path):
    from porescope.io.micrograph import read_micrograph

    cv2.imwrite(str(tmp_path / "one.png"), np.full((1, 1), 100, np.uint8))
    with pytest.raises(IngestError, match=r"one\.png: the image has 1 rows \(at least 9 needed\)$"):
        read_micrograph(tmp_path / "one.png", min_rows=9)
