"""Reading a micrograph for analysis: one page, grey, data bar cropped, 8-bit, pixel size.

The one place where ingest and measure turn a decoded image file into the grey ``uint8``
micrograph they work on:

1. a page of the file (:func:`porescope.io.images.decode_image`), grey (BT.601 for colour);
2. the SEM data bar dropped: ``crop_bottom`` rows, or ``"auto"``
   (:func:`~porescope.io.images.detect_data_bar`; bright text drawn over the micrograph itself
   is not cropped, only reported);
3. more than 8 bits -> ``uint8`` (:func:`~porescope.io.images.to_uint8`, recorded);
4. the pixel size: the one given, else the file's metadata, else unknown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from porescope.config import Fail
from porescope.io.images import (
    ImageFile,
    Page,
    detect_data_bar,
    find_bottom_overlay,
    read_image,
    to_grey,
    to_uint8,
)
from porescope.io.pairing import IngestError

LOG = logging.getLogger("porescope.io")


@dataclass(frozen=True)
class NormalisationParams:
    """How images of more than 8 bits become ``uint8`` (8-bit images are never changed).

    method: ``percentile`` (``low`` / ``high`` percentiles -> 0 / 255) or ``dtype`` (the
    integer type's range). low, high: percentiles, 0 <= low < high <= 100.
    """

    method: Literal["percentile", "dtype"] = "percentile"
    low: float = 0.1
    high: float = 99.9

    def check(self, fail: Fail) -> None:
        if not 0 <= self.low < self.high <= 100:
            raise fail("high", f"need 0 <= low < high <= 100 (low = {self.low})")


@dataclass(frozen=True)
class Micrograph:
    """A micrograph ready for analysis.

    image: ``uint8 (rows, cols)`` grey, data bar cropped. orig_shape: ``(rows, cols)`` of the
    page before the crop. crop_bottom: rows dropped at the bottom. normalisation: what
    :func:`~porescope.io.images.to_uint8` did (``"none"`` for 8-bit data). pixel_size_nm: nm per
    pixel or ``None`` (unknown). pixel_size_source: ``"given"`` (or the caller's label), the
    metadata's kind (e.g. ``"tiff:ImageJ unit+XResolution"``) or ``"none"``. page: page index
    in the file. n_pages: full-resolution pages in the file. format: the file's format
    (``"array"`` for an in-memory image). warnings: things the user should know.
    """

    image: np.ndarray
    orig_shape: tuple[int, int]
    crop_bottom: int
    normalisation: str
    pixel_size_nm: float | None
    pixel_size_source: str
    page: int = 0
    n_pages: int = 1
    format: str = "array"
    warnings: tuple[str, ...] = field(default=())


def crop_data_bar(grey: np.ndarray, crop_bottom: int | str, *, name: str = "image",
                  min_rows: int = 1, param: str = "crop_bottom"
                  ) -> tuple[np.ndarray, int, list[str]]:
    """Drop the SEM data bar at the bottom of a grey image.

    Parameters
    ----------
    grey : (rows, cols) array
        Grey image, any dtype.
    crop_bottom : int or "auto"
        Rows to drop, or ``"auto"``: :func:`~porescope.io.images.detect_data_bar`.
    name : str
        The image's name in messages.
    min_rows : int
        Fewest rows that must be left.
    param : str
        The parameter named in the error message.

    Returns
    -------
    cropped : (rows - crop, cols) view of ``grey``
    crop : int
        Rows dropped.
    warnings : list of str
        A bright scale bar / text over the micrograph that ``auto`` left in place.

    Raises
    ------
    IngestError
        Fewer than ``min_rows`` rows would be left.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(90, 160, (100, 80)).astype(np.uint8)
    >>> img[90:] = 0                      # a black data bar of 10 rows
    >>> crop_data_bar(img, "auto")[1]
    10
    >>> crop_data_bar(img, 4)[0].shape
    (96, 80)
    """
    oh = grey.shape[0]
    warnings: list[str] = []
    if crop_bottom == "auto":
        crop = detect_data_bar(grey)
        if crop:
            LOG.info("%s: data bar of %d rows detected and cropped", name, crop)
        else:
            overlay = find_bottom_overlay(grey)
            if overlay is not None:
                warnings.append(f"bright scale bar / text over the micrograph in rows "
                                f"{overlay[0]}-{overlay[1]} (not a separate data bar, so not "
                                f"cropped; set crop_bottom to e.g. {oh - overlay[0] + 4} to "
                                "drop those rows)")
    else:
        crop = int(crop_bottom)
    if oh < min_rows:
        raise IngestError(name, f"the image has {oh} rows (at least {min_rows} needed)")
    if oh - crop < min_rows:
        raise IngestError(name, f"{param} = {crop} rows leaves {max(0, oh - crop)} of its {oh} "
                                f"rows (at least {min_rows} needed); lower {param}")
    return grey[:oh - crop], crop, warnings


def resolve_pixel_size(given: float | None, meta_nm: float | None, meta_source: str, *,
                       given_source: str = "given") -> tuple[float | None, str, list[str]]:
    """The pixel size to use: the one ``given``, else the file's metadata, else unknown.

    Returns ``(nm per pixel or None, its source, warnings)``; a given size that differs from
    the metadata by more than 1 % is used, with a warning.

    Examples
    --------
    >>> resolve_pixel_size(None, 25.0, "tiff:FEI")
    (25.0, 'tiff:FEI', [])
    >>> px, src, warn = resolve_pixel_size(314.0, 25.0, "tiff:FEI")
    >>> px, src, len(warn)
    (314.0, 'given', 1)
    >>> resolve_pixel_size(None, None, "none")
    (None, 'none', [])
    """
    if given is not None:
        px = float(given)
        warnings = []
        if meta_nm and abs(meta_nm - px) > 0.01 * px:
            warnings.append(f"given pixel size {px:g} nm differs from the file's metadata "
                            f"({meta_source}: {meta_nm:.6g} nm); used the given one")
        return px, given_source, warnings + _implausible(px, given_source)
    if meta_nm:
        return float(meta_nm), meta_source, _implausible(float(meta_nm), meta_source)
    return None, meta_source, []


#: pixel sizes of electron and light micrographs, nm: from atomic-resolution TEM to low-mag SEM
_PLAUSIBLE_NM = (1e-3, 1e5)


def _implausible(px: float, source: str) -> list[str]:
    """A warning when ``px`` nm per pixel lies outside any microscope's range (a unit slip)."""
    lo, hi = _PLAUSIBLE_NM
    if lo <= px <= hi:
        return []
    return [f"pixel size {px:g} nm ({source}) is outside {lo:g}-{hi:g} nm of any electron "
            "micrograph: a unit slip? densities and sizes in physical units are off"]


def pixel_size_from_scale_bar(grey: np.ndarray, normalisation: NormalisationParams = NormalisationParams()
                              ) -> tuple[float | None, str, str | None]:
    """``(nm per pixel or None, source, warning or None)`` from the image's scale bar.

    The last resort of the pixel-size order (given value > file metadata > scale bar): the
    source is ``"scale_bar:<label>"`` (e.g. ``scale_bar:50um``); when no bar can be read the
    size stays unknown and the warning says why (no bar, unreadable label, no Tesseract).
    """
    from porescope.io.scale_bar import ScaleBarError, read_scale_bar

    if grey.dtype != np.uint8:
        grey, _ = to_uint8(grey, normalisation.method, normalisation.low, normalisation.high)
    try:
        bar = read_scale_bar(grey)
    except ScaleBarError as exc:
        return None, "none", f"pixel size unknown: {exc}"
    return bar.nm_per_px, f"scale_bar:{bar.value:g}{bar.unit}", None


def page_micrograph(file: ImageFile, index: int = 0, *, crop_bottom: int | str = 0,
                    pixel_size_nm: float | None = None,
                    normalisation: NormalisationParams = NormalisationParams(),
                    normalise_before_crop: bool = False, min_rows: int = 1,
                    name: str | None = None, given_source: str = "given",
                    scale_bar: bool = False) -> Micrograph:
    """Page ``index`` of a decoded file as a :class:`Micrograph` (see :func:`read_micrograph`)."""
    page = file.pages[index]
    name = name or file.name
    grey = to_grey(page.array, page.palette, name)
    if grey.dtype.kind == "f":
        bad = grey.size - int(np.count_nonzero(np.isfinite(grey)))
        if bad:     # normalised they would turn black, i.e. into pores
            raise IngestError(name, f"{bad} pixels are NaN or infinite (missing data, e.g. a "
                                    "stitching gap or a masked region, anywhere in the image, data "
                                    "bar included); fill them with a grey value first")
    n = normalisation
    record = None
    if normalise_before_crop:
        grey, record = to_uint8(grey, n.method, n.low, n.high)
    oh, ow = grey.shape
    whole = grey  # the scale bar may sit in the data bar that the crop drops
    grey, crop, warnings = crop_data_bar(grey, crop_bottom, name=name, min_rows=min_rows)
    if record is None:
        grey, record = to_uint8(grey, n.method, n.low, n.high)
    px, src, px_warnings = resolve_pixel_size(pixel_size_nm, file.pixel_size_nm,
                                              file.pixel_size_source, given_source=given_source)
    if px is None and scale_bar:
        px, src, bar_warning = pixel_size_from_scale_bar(whole, n)
        px_warnings = px_warnings + ([bar_warning] if bar_warning else [])
    return Micrograph(np.ascontiguousarray(grey), (oh, ow), crop, record, px, src,
                      page=page.index, n_pages=file.n_pages, format=file.format,
                      warnings=tuple(warnings + px_warnings))


def read_micrograph(source: str | os.PathLike | np.ndarray, *, crop_bottom: int | str = 0,
                    pixel_size_nm: float | None = None,
                    normalisation: NormalisationParams = NormalisationParams(),
                    normalise_before_crop: bool = False, min_rows: int = 1,
                    scale_bar: bool = False) -> Micrograph:
    """Read a micrograph: first page, grey, data bar cropped, ``uint8``, pixel size.

    Parameters
    ----------
    source : path or array
        An image file (PNG, JPEG, TIFF, WebP, BMP; detected from the content), or an image
        already in memory: ``(rows, cols)`` grey or ``(rows, cols, 3|4)`` RGB(A), any dtype.
    crop_bottom : int or "auto"
        Rows of an SEM data bar to drop, or ``"auto"`` to detect it.
    pixel_size_nm : float, optional
        nm per pixel. Without it: the file's metadata (FEI, Zeiss, ImageJ, TIFF resolution),
        else the scale bar when ``scale_bar`` (:func:`pixel_size_from_scale_bar`), else
        unknown (``None``).
    normalisation : NormalisationParams
        How more than 8 bits become 8 (percentiles 0.1 / 99.9 by default).
    normalise_before_crop : bool
        Normalise the whole page (data bar included) and detect the bar on the 8-bit result,
        as the measure pipeline does; by default the bar is cropped first (as ingest does).
    min_rows : int
        Fewest rows that the crop must leave.
    scale_bar : bool
        Read the pixel size from the burned-in scale bar (Tesseract OCR) when it is neither
        given nor in the metadata.

    Returns
    -------
    Micrograph
        ``.image`` is the ``uint8`` grey micrograph without the data bar.

    Raises
    ------
    IngestError
        Unreadable or unsupported file, or a crop that leaves too little.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((120, 100), 30000, np.uint16)
    >>> img[:, 50:] = 10000
    >>> img[110:] = 0                                   # a data bar of 10 rows
    >>> m = read_micrograph(img, crop_bottom=10, pixel_size_nm=314.0)
    >>> m.image.shape, m.image.dtype.name, m.crop_bottom, m.pixel_size_nm
    ((110, 100), 'uint8', 10, 314.0)
    >>> int(m.image.min()), int(m.image.max())
    (0, 255)
    """
    if isinstance(source, np.ndarray):
        file = ImageFile("image", "array", [Page(source)])
    else:
        file = read_image(source, pages="first")
    return page_micrograph(file, 0, crop_bottom=crop_bottom, pixel_size_nm=pixel_size_nm,
                           normalisation=normalisation,
                           normalise_before_crop=normalise_before_crop, min_rows=min_rows,
                           scale_bar=scale_bar)
