"""Read micrographs of any supported format into arrays, the same way every time.

Formats and libraries
---------------------
The format is detected from the file *content* (magic bytes), never from the extension (a WebP
file named ``photo5.jpg`` is read as WebP):

========  ==========================================  =========================================
format    magic bytes                                 reader
========  ==========================================  =========================================
PNG       ``89 50 4E 47 0D 0A 1A 0A``                 OpenCV (palette PNGs: Pillow, indices kept)
JPEG      ``FF D8 FF``                                OpenCV
TIFF      ``II*\\0``, ``MM\\0*`` (BigTIFF ``II+\\0``)   tifffile (pixels and metadata); OpenCV's
                                                      libtiff, then Pillow, for compressions
                                                      tifffile cannot decode without imagecodecs
                                                      (LZW, JPEG-in-TIFF)
WebP      ``RIFF....WEBP``                            OpenCV
BMP       ``BM``                                      OpenCV
========  ==========================================  =========================================

Pixels are returned *as stored*: grey ``(rows, cols)`` or colour ``(rows, cols, C)`` with the
channels in **RGB(A)** order, native byte order (big-endian ImageJ TIFFs included), original
dtype. JPEG EXIF orientation is ignored (pixels as stored, so an image and its mask line up).
TIFF specifics: reduced-resolution sub-files (thumbnails) are skipped; ``MinIsWhite`` pages are
inverted so that 0 is black; palette pages keep their indices and carry the palette; 1-bit
pages become 0/255 ``uint8``.

Size limit and errors
---------------------
Before anything is decoded, the image size is read from the file header (PNG ``IHDR``, the
JPEG frame header, the WebP ``VP8``/``VP8L``/``VP8X`` chunk, the BMP info header, every TIFF
page's ``ImageWidth``/``ImageLength``) and a file whose decoded pages would exceed
``max_pixels`` (rows x cols summed over the pages decoded, default :data:`DEFAULT_MAX_PIXELS`)
is refused with :class:`ImageTooLargeError`: a 1 MB PNG can decode to 30000 x 30000 pixels.
:func:`read_image` reads the first bytes of a file for the format check and the header before it
reads the rest. Every decoder failure (OpenCV, tifffile, Pillow, a truncated file) is raised as
one :class:`ImageReadError` naming the file and the problem.

Conversions (used by ``stages.ingest``)
---------------------------------------
* colour -> grey (:func:`to_grey`): ITU-R BT.601 luma, ``Y = 0.299 R + 0.587 G + 0.114 B``
  (OpenCV ``COLOR_RGB2GRAY``, fixed-point for 8-bit, so R = G = B gives back exactly that value);
  an alpha channel is dropped (a warning is logged when it is not fully opaque).
* more than 8 bits -> ``uint8`` (:func:`to_uint8`): a linear map of the ``low``..``high``
  percentiles (default 0.1 / 99.9, numpy's ``linear`` percentile definition) of the image to
  0..255, clipped and rounded half to even; or ``method='dtype'``: the whole integer range of the
  dtype (65535 -> 255). The values used are returned as text so they can be recorded.
  ``uint8`` data are never changed.

SEM specifics
-------------
* :func:`detect_data_bar`: height of a black or white data bar at the bottom of an SEM image.
* :func:`find_bottom_overlay`: rows of a scale bar or text drawn *over* the micrograph near the
  bottom (not cropped automatically, see :func:`detect_data_bar`).
* :func:`tiff_pixel_size_nm`: pixel size written by the microscope: FEI/Thermo Fisher
  (``FEI_HELIOS`` tag 34682 / ``FEI_SFEG`` tag 34680, ``[Scan] PixelWidth`` in metres), Zeiss
  (``CZ_SEM`` tag 34118, ``ap_pixel_size`` / ``ap_image_pixel_size`` with its unit), ImageJ
  (``XResolution`` with ``unit=`` in the ImageJ description) and, last, the plain TIFF
  ``XResolution``/``ResolutionUnit`` pair (only when it implies pixels smaller than 0.1 mm:
  72-1200 dpi values describe a printer or screen, not the specimen).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from porescope.io.pairing import IngestError

LOG = logging.getLogger("porescope.ingest")

SUPPORTED_FORMATS = ("png", "jpeg", "tiff", "webp", "bmp")

#: Largest image decoded by default, rows x cols (summed over the pages decoded): 400 Mpx, a
#: 20000 x 20000 stitched SEM mosaic (such mosaics are real). Decoded as 16-bit RGB that is
#: 2.4 GB, plus 0.8 GB of 16-bit grey and 0.4 GB of 8-bit grey after conversion: about a
#: sixth of a 24 GB, 2-core machine, leaving room for the stage's own work. A 30000 x 30000
#: decompression bomb (900 Mpx) is refused. Stages pass their own ``max_pixels`` parameter
#: (``measure`` runs inference and uses a lower one).
DEFAULT_MAX_PIXELS = 400_000_000

#: Bytes read for the format check (magic bytes and the description of foreign content).
HEAD_BYTES = 64


class ImageReadError(IngestError):
    """A file that cannot be read or decoded as an image; the message names the file and why."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than the ``max_pixels`` limit."""

#: BT.601 luma weights (R, G, B), as OpenCV's ``COLOR_RGB2GRAY`` and Pillow's ``"L"``.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------------------------
def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of raw bytes (``image_sha256`` of a source file)."""
    return hashlib.sha256(data).hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """Hex sha256 of a decoded pixel array: dtype, shape and C-order bytes.

    Hashes ``f"{dtype.str}|{'x'.join(shape)}|".encode()`` followed by the array bytes, e.g.
    ``b"|u1|256x256|" + a.tobytes()``, so equal pixels give equal hashes whatever file format or
    PNG compression carried them, and arrays with the same bytes but another dtype or shape
    differ.
    """
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}|{'x'.join(map(str, a.shape))}|".encode("ascii"))
    h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# format detection
# --------------------------------------------------------------------------------------------
def sniff_format(head: bytes) -> str | None:
    """The supported format of a file from its first bytes (>= 12), or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    return None


_OTHER_MAGIC = (
    (b"GIF8", "a GIF image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"\xd0\xcf\x11\xe0", "an OLE compound file (e.g. Thumbs.db or an old Office file)"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x00\x00\x00\x03", "possibly a Gatan DM3 file"),
    (b"\x00\x00\x00\x04", "possibly a Gatan DM4 file"),
    (b"\x89HDF", "an HDF5 file"),
)


def describe_content(head: bytes) -> str:
    """A short human description of unsupported content, for error messages."""
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF":
        return f"a RIFF file of type {head[8:12]!r}, not WebP"
    sample = head[:64]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "text"
    return f"unknown content (first bytes {head[:8].hex(' ')})"


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
@dataclass
class Page:
    """One decoded image plane.

    ``array``: grey ``(rows, cols)`` or ``(rows, cols, C)`` RGB(A), native byte order, as stored;
    ``index``: page number in the file (0 for single-image formats);
    ``palette``: ``(K, 3)`` uint8 RGB colours when ``array`` holds palette indices, else None.
    """

    array: np.ndarray
    index: int = 0
    palette: np.ndarray | None = None


@dataclass
class ImageFile:
    """A decoded file: its format, its pages and what the microscope wrote about pixel size.

    ``n_pages`` counts full-resolution pages (thumbnails excluded) even when only the first
    was decoded. ``pixel_size_nm`` is ``None`` and ``pixel_size_source`` ``"none"`` when the
    file does not say.
    """

    name: str
    format: str
    pages: list[Page]
    n_pages: int = 1
    byteorder: str | None = None
    pixel_size_nm: float | None = None
    pixel_size_source: str = "none"
    notes: list[str] = field(default_factory=list)


def read_image(path: str | os.PathLike, pages: Literal["first", "all"] = "first", *,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Read and decode the image file at ``path`` (see :func:`decode_image`).

    The first :data:`HEAD_BYTES` bytes are read for the format check and then the header for
    the size check (:func:`image_size`); the whole file is read only when both pass, so a 3 GB
    file that is not an image, or whose header declares too many pixels, costs a few bytes of
    reading.
    """
    image_size(path, pages, max_pixels=max_pixels)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageReadError(path, f"cannot be read ({exc.strerror or exc}); check that the file "
                                   "exists and is readable") from None
    return decode_image(data, str(path), pages=pages, max_pixels=max_pixels)


def image_size(path: str | os.PathLike, pages: Literal["first", "all"] = "first", *,
               max_pixels: int | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Format and ``(rows, cols)`` of the full-resolution pages of an image file, from its
    first bytes and header alone (nothing is decoded); ``pages='first'`` lists only the first
    page. Checks every input up front, cheaply.

    Raises :class:`ImageReadError` for an empty, unreadable or unsupported file or a damaged
    header, and :class:`ImageTooLargeError` when ``max_pixels`` is given and the pages exceed it.

    Examples
    --------
    >>> import tempfile, cv2, numpy as np
    >>> f = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
    >>> _ = f.write(cv2.imencode(".png", np.zeros((30, 40), np.uint8))[1].tobytes()); f.close()
    >>> image_size(f.name)
    ('png', [(30, 40)])
    >>> try:
    ...     image_size(f.name, max_pixels=1000)
    ... except ImageTooLargeError as err:
    ...     print(str(err).split(": ", 1)[1].split(";")[0])
    is too large to decode: 40 x 30 px (0.0 Mpx) is more than max_pixels = 1000 (0.0 Mpx)
    >>> os.unlink(f.name)
    """
    name = str(path)
    try:
        with open(path, "rb") as fh:
            fmt = _check_head(fh.read(HEAD_BYTES), name)
            fh.seek(0)
            sizes = _header_sizes(fh, fmt, name)
    except OSError as exc:
        raise ImageReadError(path, f"cannot be read ({exc.strerror or exc}); check that the file "
                                   "exists and is readable") from None
    _check_pixels(sizes, name, pages, max_pixels)
    return fmt, sizes if pages == "all" else sizes[:1]


def decode_image(data: bytes, name: str, pages: Literal["first", "all"] = "first", *,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    """Decode image bytes; ``name`` (the file path) is used in messages only.

    ``pages='first'`` decodes only the first full-resolution page of a multi-page TIFF;
    ``'all'`` decodes every full-resolution page. Other formats have one page. ``max_pixels``
    (rows x cols summed over the pages to decode; ``None``: no limit) is checked against the
    header before anything is decoded.

    Raises
    ------
    ImageTooLargeError
        The header declares more than ``max_pixels`` pixels.
    ImageReadError
        Empty data, unsupported content (says what it looks like), or a file that cannot be
        decoded (truncated or corrupt). Both derive from ``IngestError``.
    """
    fmt = _check_head(data[:HEAD_BYTES], name)
    if fmt == "tiff":
        return _decode_tiff(data, name, pages, max_pixels)
    _check_pixels(_header_sizes(io.BytesIO(data), fmt, name), name, pages, max_pixels)
    if fmt == "png" and len(data) > 25 and data[12:16] == b"IHDR" and data[25] == 3:
        return ImageFile(name, fmt, [_decode_palette_png(data, name, max_pixels)])
    return ImageFile(name, fmt, [Page(_cv2_decode(data, name, fmt))])


def _check_head(head: bytes, name: str) -> str:
    """The format sniffed from a file's first bytes, or an error naming what the file is."""
    if not head:
        raise ImageReadError(name, "is empty (0 bytes); copy the file again or remove it")
    fmt = sniff_format(head[:16])
    if fmt is None:
        raise ImageReadError(name, f"is not a supported image: its content is "
                                   f"{describe_content(head[:64])}. "
                                   "Supported: PNG, JPEG, TIFF, WebP, BMP (detected from the "
                                   "content, not the extension); convert it or move it out of "
                                   "the folder")
    return fmt


def _check_pixels(sizes: list[tuple[int, int]], name: str, pages: str,
                  max_pixels: int | None) -> None:
    """Refuse an image whose pages to decode exceed ``max_pixels`` (before decoding)."""
    wanted = sizes if pages == "all" else sizes[:1]
    total = sum(r * c for r, c in wanted)
    if max_pixels is None or total <= max_pixels:
        return
    what = (f"{wanted[0][1]} x {wanted[0][0]} px" if len(wanted) == 1
            else f"{len(wanted)} pages of {total} px in all")
    raise ImageTooLargeError(name, _too_large(what, total, max_pixels))


def _too_large(what: str, total: int, max_pixels: int) -> str:
    return (f"is too large to decode: {what} ({total / 1e6:.1f} Mpx) is more than max_pixels = "
            f"{max_pixels} ({max_pixels / 1e6:.1f} Mpx); raise max_pixels if the machine has "
            "the memory, or split or downscale the image")


# --------------------------------------------------------------------------------------------
# image size from the header
# --------------------------------------------------------------------------------------------
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic; not DHT/JPG/DAC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _header_sizes(fh: Any, fmt: str, name: str) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each full-resolution page from the header of the open file ``fh``
    (positioned at its start); only the header bytes are read."""
    if fmt == "tiff":
        import tifffile

        try:
            with tifffile.TiffFile(fh) as tif:
                return _tiff_sizes(tif, name)[0]
        except ImageReadError:
            raise
        except Exception as exc:  # TiffFileError, ValueError, struct errors...
            raise ImageReadError(name, f"could not be read as TIFF ({exc}); the file is "
                                       "truncated or corrupt; copy it again or re-export it"
                                 ) from None
    size = {"png": _png_size, "jpeg": _jpeg_size, "webp": _webp_size, "bmp": _bmp_size}[fmt](fh)
    if size is None:
        raise ImageReadError(name, f"has a damaged {fmt.upper()} header (no image size could be "
                                   "read from it); the file is truncated or corrupt; copy it "
                                   "again or re-export it")
    return [size]


def _png_size(fh: Any) -> tuple[int, int] | None:
    head = fh.read(24)  # signature, IHDR length and type, width, height (big-endian)
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def _bmp_size(fh: Any) -> tuple[int, int] | None:
    head = fh.read(26)
    if len(head) < 22:
        return None
    info = int.from_bytes(head[14:18], "little")
    if info == 12 and len(head) >= 22:  # OS/2 BITMAPCOREHEADER: 16-bit width and height
        return int.from_bytes(head[20:22], "little"), int.from_bytes(head[18:20], "little")
    if info < 40 or len(head) < 26:
        return None
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = int.from_bytes(head[22:26], "little", signed=True)  # negative: stored top-down
    return abs(height), abs(width)


def _webp_size(fh: Any) -> tuple[int, int] | None:
    head = fh.read(30)
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # canvas size minus one, 24-bit little-endian
        return (int.from_bytes(head[27:30], "little") + 1,
                int.from_bytes(head[24:27], "little") + 1)
    if chunk == b"VP8L" and head[20] == 0x2F:  # 14-bit width-1 and height-1
        bits = int.from_bytes(head[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # key frame start code
        return (int.from_bytes(head[28:30], "little") & 0x3FFF,
                int.from_bytes(head[26:28], "little") & 0x3FFF)
    return None


def _jpeg_size(fh: Any) -> tuple[int, int] | None:
    """Walk the JPEG marker segments (skipping their bodies) to the first frame header."""
    fh.seek(2)
    while True:
        byte = fh.read(1)
        if byte != b"\xff":
            return None  # end of file, or not a marker where one must be
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            return None
        m = marker[0]
        if m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            continue
        if m in (0xD9, 0xDA):  # end of image or scan data before any frame header
            return None
        length = int.from_bytes(fh.read(2), "big")
        if length < 2:
            return None
        if m in _JPEG_SOF:
            body = fh.read(5)  # precision, height, width
            if len(body) < 5:
                return None
            return int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
        fh.seek(length - 2, 1)


def _bgr_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr[..., ::-1])
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.ascontiguousarray(arr[..., [2, 1, 0, 3]])
    return arr


def _cv2_decode(data: bytes, name: str, fmt: str) -> np.ndarray:
    import cv2

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own checks (size limit, bad header) raise, not return None
        raise ImageReadError(name, f"could not be decoded as {fmt.upper()}: OpenCV refused it "
                                   f"({_cv2_message(exc)}); the file is corrupt or too large"
                             ) from None
    if arr is None:
        raise ImageReadError(name, f"could not be decoded as {fmt.upper()} (the content starts like "
                                f"{fmt.upper()}, but the file is truncated or corrupt); copy it "
                                "again or re-export it")
    return _bgr_to_rgb(arr)


def _cv2_message(exc: Exception) -> str:
    """The last line of an OpenCV error (its first lines are the source location)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


_PIL_LIMIT = threading.Lock()


class _pil_pixel_limit:
    """Set Pillow's decompression-bomb limit to ``max_pixels`` while Pillow decodes: the size
    has been checked against the caller's limit already, so Pillow's own (89 Mpx warning,
    179 Mpx error) must not refuse a smaller image that the caller allows."""

    def __init__(self, max_pixels: int | None) -> None:
        self.max_pixels = max_pixels

    def __enter__(self) -> None:
        from PIL import Image

        _PIL_LIMIT.acquire()
        self.saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = self.max_pixels

    def __exit__(self, *exc: object) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = self.saved
        _PIL_LIMIT.release()


def _decode_palette_png(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
                        ) -> Page:
    from PIL import Image

    try:
        with _pil_pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode != "P":
                return Page(_cv2_decode(data, name, "png"))
            idx = np.asarray(im, dtype=np.uint8).copy()
            pal = np.asarray(im.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(name, f"could not be decoded as a palette PNG ({exc}); the file is "
                                "truncated or corrupt; copy it again or re-export it") from None
    if idx.size and int(idx.max()) >= len(pal):
        pal = np.vstack([pal, np.zeros((int(idx.max()) + 1 - len(pal), 3), np.uint8)])
    return Page(idx, 0, pal)


def _tiff_page_array(page: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A tifffile page's pixels in this module's convention, plus its palette if any."""
    from tifffile import PHOTOMETRIC, PLANARCONFIG

    key = page.keyframe
    arr = page.asarray()
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if key.planarconfig == PLANARCONFIG.SEPARATE and arr.ndim == 3 and key.samplesperpixel > 1:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    arr = np.ascontiguousarray(arr)
    palette = None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if key.photometric == PHOTOMETRIC.MINISWHITE and arr.ndim == 2:
        arr = (np.iinfo(arr.dtype).max - arr) if arr.dtype.kind in "ui" else (arr.max() - arr)
    elif key.photometric == PHOTOMETRIC.PALETTE and key.colormap is not None:
        cmap = np.asarray(key.colormap)
        cmap = (cmap >> 8) if cmap.max() > 255 else cmap
        palette = np.ascontiguousarray(cmap.T.astype(np.uint8))
    return arr, palette


def _tiff_sizes(tif: Any, name: str) -> tuple[list[tuple[int, int]], list[tuple[int, Any]], int]:
    """``(rows, cols)`` of the full-resolution pages, those ``(index, page)`` pairs, and the
    pixels of every page (thumbnails included, as the fallback decoders decode them all)."""
    try:
        every = list(enumerate(tif.pages))
        dims = [(int(p.keyframe.imagelength) * int(p.keyframe.imagedepth or 1),
                 int(p.keyframe.imagewidth)) for _, p in every]
        main = [(i, p) for i, p in every if not (int(getattr(p, "subfiletype", 0) or 0) & 1)]
    except Exception as exc:
        raise ImageReadError(name, f"TIFF page directory is damaged ({exc}); re-export the "
                                   "file") from None
    if not main:
        raise ImageReadError(name, "TIFF holds no full-resolution image page")
    return [dims[i] for i, _ in main], main, sum(r * c for r, c in dims)


def _decode_tiff(data: bytes, name: str, pages: str,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageFile:
    import tifffile

    try:
        tif = tifffile.TiffFile(io.BytesIO(data))
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct errors...
        raise ImageReadError(name, f"could not be read as TIFF ({exc}); the file is truncated or "
                                   "corrupt; copy it again or re-export it") from None
    with tif:
        sizes, main, every_px = _tiff_sizes(tif, name)
        _check_pixels(sizes, name, pages, max_pixels)
        wanted = main if pages == "all" else main[:1]
        out: list[Page] = []
        fallback: list[np.ndarray] | None = None
        for i, page in wanted:
            try:
                arr, pal = _tiff_page_array(page)
            except Exception as exc:
                if fallback is None:
                    if max_pixels is not None and every_px > max_pixels:
                        # the fallback decoders decode every page, thumbnails included
                        raise ImageTooLargeError(name, _too_large(
                            f"all {len(sizes)} page(s) ({every_px} px, which this file's "
                            "compression forces to decode together)", every_px, max_pixels))
                    fallback = _tiff_fallback(data, name, exc, max_pixels)
                if i >= len(fallback):
                    raise ImageReadError(name, f"TIFF page {i} could not be decoded ({exc})"
                                         ) from None
                arr, pal = fallback[i], None
            out.append(Page(arr, i, pal))
        size_nm, size_src = tiff_pixel_size_nm(tif)
        return ImageFile(name, "tiff", out, n_pages=len(main), byteorder=tif.byteorder,
                         pixel_size_nm=size_nm, pixel_size_source=size_src)


def _tiff_fallback(data: bytes, name: str, exc: Exception,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[np.ndarray]:
    """Decode all TIFF pages with OpenCV's libtiff (then Pillow) when tifffile cannot."""
    import cv2

    try:
        ok, mats = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # refused or corrupt: try Pillow, then report tifffile's reason
        ok, mats = False, None
    if ok and mats:
        return [_bgr_to_rgb(np.asarray(m)) for m in mats]
    try:
        from PIL import Image, ImageSequence

        with _pil_pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as im:
            return [np.array(frame) for frame in ImageSequence.Iterator(im)]
    except Exception:
        pass
    raise ImageReadError(name, f"TIFF pixels could not be decoded ({exc}); the compression may "
                               "need the 'imagecodecs' package, or the file is corrupt or "
                               "truncated; save it uncompressed or with ZIP/LZW compression"
                         ) from None


# --------------------------------------------------------------------------------------------
# pixel size from TIFF metadata
# --------------------------------------------------------------------------------------------
_UNIT_NM = {
    "pm": 1e-3, "a": 0.1, "å": 0.1, "angstrom": 0.1, "nm": 1.0, "nanometer": 1.0,
    "nanometre": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometre": 1e3, "\\u00b5m": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9,
}


def unit_to_nm(unit: str) -> float | None:
    """Nanometres per ``unit`` (``"nm"``, ``"µm"``, ``"micron"``, ``"\\u00B5m"``...), or None."""
    return _UNIT_NM.get(str(unit).strip().lower())


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def fei_pixel_size_nm(fei: dict[str, Any] | None) -> float | None:
    """Pixel width in nm from tifffile's parsed FEI metadata (``[Scan] PixelWidth`` in metres,
    else ``[EScan] PixelWidth``)."""
    if not fei:
        return None
    for section in ("Scan", "EScan"):
        v = _positive((fei.get(section) or {}).get("PixelWidth"))
        if v is not None:
            return v * 1e9
    return None


def zeiss_pixel_size_nm(sem: dict[str, Any] | None) -> float | None:
    """Pixel size in nm from tifffile's parsed Zeiss ``CZ_SEM`` metadata.

    Entries look like ``{"ap_pixel_size": ("Pixel Size", 2.481, "nm")}`` (``ap_image_pixel_size``
    on some models); a value tifffile left as text (``"2.481 nm"``) is parsed too.
    """
    if not sem:
        return None
    for key in ("ap_pixel_size", "ap_image_pixel_size"):
        entry = sem.get(key)
        if not entry or not isinstance(entry, tuple) or len(entry) < 2:
            continue
        value = entry[1]
        unit = entry[2] if len(entry) > 2 else None
        if isinstance(value, str):
            m = re.match(r"\s*([-+0-9.eE]+)\s*(\S+)?", value)
            if not m:
                continue
            value, unit = m.group(1), unit or m.group(2)
        scale = unit_to_nm(unit) if unit is not None else None
        v = _positive(value)
        if v is not None and scale is not None:
            return v * scale
    return None


def _rational(value: Any) -> float | None:
    if isinstance(value, tuple) and len(value) == 2:
        return _positive(value[0] / value[1]) if value[1] else None
    return _positive(value)


def resolution_pixel_size_nm(tif: Any) -> tuple[float | None, str]:
    """Pixel size in nm from ImageJ ``unit`` + ``XResolution``, else from TIFF ``ResolutionUnit``
    (cm or inch) + ``XResolution`` when that implies pixels below 0.1 mm."""
    page = tif.pages.first
    tags = page.tags
    xres = _rational(tags["XResolution"].value) if "XResolution" in tags else None
    if xres is None:
        return None, "none"
    ij = tif.imagej_metadata or {}
    if ij.get("unit") is not None:
        scale = unit_to_nm(ij["unit"])
        if scale is not None:
            return scale / xres, "tiff:ImageJ unit+XResolution"
        return None, "none"
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    scale = {2: 2.54e7, 3: 1e7}.get(unit)
    if scale is None:
        return None, "none"
    size = scale / xres
    if size >= 1e5:  # 0.1 mm or more per pixel: a screen/print dpi, not a calibration
        return None, "none"
    return size, "tiff:XResolution+ResolutionUnit"


def tiff_pixel_size_nm(tif: Any) -> tuple[float | None, str]:
    """``(pixel size in nm, source)`` from an open ``tifffile.TiffFile``; ``(None, "none")``.

    Order: FEI/Thermo tags, Zeiss CZ_SEM tag, ImageJ unit, TIFF resolution (see module doc).
    """
    try:
        if tif.is_fei:
            v = fei_pixel_size_nm(tif.fei_metadata)
            if v is not None:
                tag = "FEI_HELIOS" if 34682 in tif.pages.first.tags else "FEI_SFEG"
                return v, f"tiff:{tag} [Scan] PixelWidth"
        if tif.is_sem:
            v = zeiss_pixel_size_nm(tif.sem_metadata)
            if v is not None:
                return v, "tiff:CZ_SEM ap_pixel_size"
        return resolution_pixel_size_nm(tif)
    except Exception as exc:  # damaged metadata must not stop reading the pixels
        LOG.warning("pixel-size metadata could not be parsed (%s); treated as unknown", exc)
        return None, "none"


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------
def to_grey(array: np.ndarray, palette: np.ndarray | None = None,
            name: str = "image") -> np.ndarray:
    """Grey ``(rows, cols)`` image in the input's dtype.

    Grey input is returned unchanged (not copied). RGB(A) becomes BT.601 luma (OpenCV
    ``COLOR_RGB2GRAY``; float arithmetic rounded to the dtype for dtypes OpenCV lacks); alpha is
    dropped; grey+alpha keeps the grey plane; palette indices are looked up first.
    """
    import cv2

    if palette is not None and array.ndim == 2:
        array = palette[array]
    if array.ndim == 2:
        return array
    if array.ndim != 3 or array.shape[2] not in (2, 3, 4):
        raise IngestError(name, f"has an unsupported pixel layout {array.shape} (expected grey, "
                                "RGB or RGBA); export it as a grey or RGB image")
    channels = array.shape[2]
    if channels in (2, 4):
        alpha = array[..., -1]
        full = np.iinfo(array.dtype).max if array.dtype.kind in "ui" else 1.0
        if np.any(alpha != full):
            LOG.warning("%s: alpha channel is not fully opaque; it is ignored (pixels are used "
                        "as stored, not blended)", name)
        if channels == 2:
            return np.ascontiguousarray(array[..., 0])
        array = array[..., :3]
    rgb = np.ascontiguousarray(array)
    if rgb.dtype in (np.uint8, np.uint16, np.float32):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    y = rgb.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
    if rgb.dtype.kind in "ui":
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(rgb.dtype)
    return y.astype(rgb.dtype)


def histogram(values: np.ndarray) -> np.ndarray:
    """Exact pixel counts per value of a ``uint8`` / ``uint16`` array (length 256 / 65536).

    OpenCV's ``calcHist`` (a few times faster than ``np.bincount``, which first widens the data
    to 64-bit), over blocks of at most 2**23 pixels so its float32 counts stay exact.
    """
    import cv2

    if values.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"histogram needs uint8 or uint16 data, not {values.dtype}")
    bins = 256 if values.dtype == np.uint8 else 65536
    flat = np.ascontiguousarray(values).reshape(1, -1) if values.ndim != 2 else values
    flat = np.ascontiguousarray(flat)
    rows_per_block = max(1, (1 << 23) // max(1, flat.shape[1]))
    counts = np.zeros(bins, np.int64)
    for start in range(0, flat.shape[0], rows_per_block):
        block = flat[start:start + rows_per_block]
        if block.shape[1] > (1 << 23):  # one very long row: fall back to numpy
            counts += np.bincount(block.ravel(), minlength=bins)
            continue
        counts += cv2.calcHist([block], [0], None, [bins], [0, bins]).ravel().astype(np.int64)
    return counts


def integer_percentiles(values: np.ndarray, q: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(values, q)`` (``linear`` method) for ``uint8``/``uint16`` via a histogram.

    Equal to numpy's result; O(n) counting instead of partitioning a float copy.
    """
    cum = np.cumsum(histogram(values))
    n = int(cum[-1])
    out = []
    for p in q:
        rank = p / 100.0 * (n - 1)
        k = int(np.floor(rank))
        lo = int(np.searchsorted(cum, k, side="right"))
        hi = int(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(lo + (rank - k) * (hi - lo))
    return float(out[0]), float(out[1])


def to_uint8(grey: np.ndarray, method: str = "percentile", low: float = 0.1,
             high: float = 99.9) -> tuple[np.ndarray, str]:
    """Grey image -> ``uint8`` and a record of what was done.

    ``uint8`` input is returned unchanged with record ``"none"``. Otherwise the values ``lo`` /
    ``hi`` are the ``low`` / ``high`` percentiles (``method='percentile'``) or the dtype's range
    (``method='dtype'``, integers only), and ``out = round((v - lo) * 255 / (hi - lo))``, clipped
    to 0..255 (NaN -> 0). A constant image (``hi == lo``) maps to 0. The record reads e.g.
    ``"percentile 0.1/99.9 of uint16: 1021..60112 -> 0..255"``.
    """
    if grey.dtype == np.uint8:
        return grey, "none"
    if grey.dtype == bool:
        return grey.astype(np.uint8) * np.uint8(255), "bool -> 0/255"
    if method == "dtype":
        if grey.dtype.kind not in "ui":
            raise ValueError(f"normalisation method 'dtype' needs integer pixels, not {grey.dtype}")
        info = np.iinfo(grey.dtype)
        lo, hi = float(info.min), float(info.max)
        what = f"dtype range of {grey.dtype}"
    elif method == "percentile":
        if grey.dtype in (np.uint16,):
            lo, hi = integer_percentiles(grey, (low, high))
        else:
            finite = grey[np.isfinite(grey)] if grey.dtype.kind == "f" else grey
            if finite.size == 0:
                lo = hi = 0.0
            else:
                lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
        what = f"percentile {low:g}/{high:g} of {grey.dtype}"
    else:
        raise ValueError(f"unknown normalisation method {method!r} (use 'percentile' or 'dtype')")
    record = f"{what}: {lo:.10g}..{hi:.10g} -> 0..255"
    if not hi > lo:
        return np.zeros(grey.shape, np.uint8), record + " (constant image -> 0)"
    scale = 255.0 / (hi - lo)
    if grey.dtype == np.uint16:  # a lookup table: exact same arithmetic, 1 pass over the pixels
        lut = np.clip(np.rint((np.arange(65536, dtype=np.float64) - lo) * scale), 0, 255)
        return lut.astype(np.uint8)[grey], record
    v = (grey.astype(np.float64) - lo) * scale
    v = np.nan_to_num(v, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8), record


def preview_uint8(grey: np.ndarray) -> np.ndarray:
    """``uint8`` view for detection heuristics: unchanged if ``uint8``, else min..max -> 0..255."""
    if grey.dtype == np.uint8:
        return grey
    g = grey.astype(np.float64)
    finite = np.isfinite(g)
    if not finite.any():
        return np.zeros(grey.shape, np.uint8)
    lo, hi = float(g[finite].min()), float(g[finite].max())
    if hi <= lo:
        return np.zeros(grey.shape, np.uint8)
    g = np.where(finite, g, lo)
    return np.clip(np.rint((g - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# SEM data bar
# --------------------------------------------------------------------------------------------
def detect_data_bar(grey: np.ndarray, *, tol: int = 3, min_fraction: float = 0.6,
                    max_height_fraction: float = 0.3, min_height_fraction: float = 0.02) -> int:
    """Number of rows of an SEM data bar at the bottom of ``grey`` (0 when there is none).

    A data bar is a band at the bottom, across the full width, whose background is one flat
    level, black (<= 50) or white (>= 205), with text, logos and a scale bar drawn on it; above
    it the micrograph starts abruptly. Rule, on a ``uint8`` preview (:func:`preview_uint8`):

    1. ``level`` = most frequent value of the bottom row; it must be <= 50 or >= 205.
    2. A row is *bar-like* when at least ``min_fraction`` of its pixels lie within ``tol`` grey
       levels of ``level`` (text covers less than the rest; micrograph noise spreads wider).
    3. The band grows upwards from the bottom row through bar-like rows, bridging text lines of
       up to ``max(2, 2 % of the height)`` non-bar-like rows; up to 3 flat separator rows (one
       value +- ``tol`` over >= 90 % of the row) directly above are included.
    4. It is accepted only if its height is at least ``max(3 px, min_height_fraction * height)``
       (thinner = a frame line), at most ``max_height_fraction * height``, the rows just above
       it are not bar-like (mean bar-like fraction < 0.3: a sharp change) and the top rows of
       the image are not the same band (that is a frame around the image, not a data bar).

    Text or a scale bar drawn *over* the micrograph (no band of its own, e.g. the
    ``photo5.jpg`` JEOL-style overlay in ``track-membranes-sem-unlabelled``) is not a data bar:
    the rows under it are micrograph content, so nothing is cropped; see
    :func:`find_bottom_overlay` to warn about it.
    """
    g = preview_uint8(grey)
    if g.ndim != 2:
        raise ValueError(f"detect_data_bar needs a 2-D grey image, got shape {g.shape}")
    height = g.shape[0]
    if height < 16:
        return 0
    level = int(np.bincount(g[-1], minlength=256).argmax())
    if 50 < level < 205:
        return 0
    frac = np.count_nonzero(np.abs(g.astype(np.int16) - level) <= tol, axis=1) / g.shape[1]
    bar_like = frac >= min_fraction
    if not bar_like[-1]:
        return 0
    max_gap = max(2, round(0.02 * height))
    # walk upwards (one step per row, not per pixel); stop after more than max_gap non-bar rows
    top = height - 1
    gap = 0
    for r in range(height - 1, -1, -1):
        if bar_like[r]:
            top, gap = r, 0
        else:
            gap += 1
            if gap > max_gap:
                break
    for _ in range(3):  # separator lines directly above the band
        if top == 0:
            break
        row = g[top - 1].astype(np.int16)
        mode = int(np.bincount(g[top - 1], minlength=256).argmax())
        if np.count_nonzero(np.abs(row - mode) <= tol) >= 0.9 * row.size:
            top -= 1
        else:
            break
    bar = height - top
    if bar < max(3, min_height_fraction * height) or bar > max_height_fraction * height:
        return 0
    above = frac[max(0, top - max(3, round(0.05 * height))):top]
    if above.size == 0 or above.mean() >= 0.3:
        return 0
    if bar_like[:bar].mean() >= 0.8:  # the same band at the top: a frame, not a data bar
        return 0
    return int(bar)


def _longest_true_run(mask: np.ndarray) -> np.ndarray:
    """Length of the longest run of True along each row of a 2-D bool array (vectorised)."""
    rows, cols = mask.shape
    pos = np.arange(1, cols + 1)
    last_false = np.maximum.accumulate(np.where(mask, 0, pos[None, :]), axis=1)
    return (pos[None, :] - last_false).max(axis=1) if cols else np.zeros(rows, int)


def find_bottom_overlay(grey: np.ndarray, *, bottom_fraction: float = 0.25,
                        min_run_fraction: float = 0.1, bright: int = 235) -> tuple[int, int] | None:
    """Rows ``(first, last)`` of a bright scale bar / text overlaid on the micrograph near the
    bottom, or ``None``.

    Looks in the bottom ``bottom_fraction`` of the image (except the last 1 % of rows, where
    frames sit) for rows holding a horizontal run of bright (>= ``bright`` on the uint8 preview)
    pixels at least ``min_run_fraction`` of the width and 10 px long (a scale bar line or a
    logo), in rows that are not mostly bright (a frame or a white bar). The result bounds all
    such rows. Used only to warn; ingest never crops on it.
    """
    g = preview_uint8(grey)
    height, width = g.shape
    start = int(height * (1 - bottom_fraction))
    stop = height - max(2, height // 100)
    if stop <= start:
        return None
    bright_px = g[start:stop] >= bright
    runs = _longest_true_run(bright_px)
    hits = (runs >= max(10, min_run_fraction * width)) & (bright_px.mean(axis=1) < 0.5)
    rows = np.flatnonzero(hits)
    if rows.size == 0:
        return None
    return int(start + rows[0]), int(start + rows[-1])
