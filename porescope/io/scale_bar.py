"""The pixel size read from the scale bar burned into a micrograph.

SEM software draws a scale bar (a thin line or a filled bar, white on dark or black on light)
with its length printed beside it (``50um``, ``500 nm``, ``2 µm``), either in a data bar under
the image or over the micrograph itself. :func:`find_scale_bars` finds bar candidates (long,
thin, uniform horizontal runs of extreme grey), :func:`read_scale_bar` reads the label next to
each with Tesseract OCR and returns the pixel size ``label length / bar length``.

OCR of SEM fonts is fragile (a slashed zero reads as ``@``, ``G`` or ``B``, ``µ`` as ``u``, ``p``
or ``x``), so the label is read several times (thresholds, upscaling, page modes), each reading
is parsed with a tolerant grammar (:func:`parse_scale_label`) and the readings vote. Labels are
taken from the series 1, 2, 2.5, 3, 4, 5 x 10^k that SEM software uses; a reading outside it
gives way to a series value that differs from it only in an ambiguous character.

Tesseract is an external program (Debian package ``tesseract-ocr``) called through the pinned
``pytesseract`` binding; without it :func:`read_scale_bar` raises :class:`ScaleBarError` saying
so, and callers fall back to the next pixel-size source with a warning.
"""

from __future__ import annotations

import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from porescope.errors import PorescopeError

#: nm per unit of a scale-bar label.
UNITS_NM = {"nm": 1.0, "um": 1000.0, "mm": 1.0e6}

#: Mantissas of scale-bar labels in SEM software (x 10^k).
SERIES = (1.0, 2.0, 2.5, 3.0, 4.0, 5.0)

# Characters OCR gives for a digit in SEM fonts (slashed zero, narrow five, ...).
_DIGIT_LOOKALIKES = {
    "0": "0", "o": "0", "O": "0", "@": "0", "G": "0", "Q": "0", "D": "0", "θ": "0", "Ø": "0", "ø": "0",
    "B": "08", "8": "80", "6": "60", "S": "5", "s": "5", "5": "5", "1": "1", "l": "1", "I": "1",
    "|": "1", "i": "1", "2": "2", "Z": "2", "z": "2", "3": "3", "4": "4", "7": "7", "9": "9",
}
_LABEL = re.compile(
    r"(?P<num>[0-9oO@GQDθØøBSsZzlI|i][0-9oO@GQDθØøBSsZzlI|i.,]{0,4})\s{0,2}"
    r"(?P<unit>[nN][mM]|[nN]?[uµμpPxyYjJk][a-zA-Z]{0,2}[mM]|[mM][mM]|[uµμ])(?![a-zA-Z])")


class ScaleBarError(PorescopeError):
    """No scale bar could be read (none found, label unreadable, or no OCR engine)."""


@dataclass(frozen=True)
class BarCandidate:
    """A horizontal bar: ``x0``..``x1`` (inclusive, px), rows ``y0``..``y1``, ``polarity`` 'light' | 'dark'."""

    x0: int
    x1: int
    y0: int
    y1: int
    polarity: str

    @property
    def length_px(self) -> int:
        return self.x1 - self.x0 + 1


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar read from an image.

    Attributes
    ----------
    nm_per_px : float
        Pixel size, nm per pixel (``value * unit / length_px``).
    length_px : float
        Bar length in pixels (half-maximum ends).
    value : float
        The label's number, e.g. ``50.0``.
    unit : str
        ``'nm'``, ``'um'`` or ``'mm'``.
    text : str
        The OCR reading that won the vote.
    votes : int
        Readings agreeing with it.
    bar : BarCandidate
        Where the bar is.
    """

    nm_per_px: float
    length_px: float
    value: float
    unit: str
    text: str
    votes: int
    bar: BarCandidate


def find_scale_bars(grey: np.ndarray, *, min_length_frac: float = 0.04,
                    max_thickness_px: int | None = None) -> list[BarCandidate]:
    """Horizontal bar candidates in a grey image, longest first.

    A candidate is a connected run of near-white (>= 200) or near-black (<= 55) pixels that
    survives a morphological opening with a ``1 x L`` line (L = ``min_length_frac`` x width,
    at least 12 px), is at most ``max_thickness_px`` thick (default: 2 % of the height, at
    least 6 px) and at most 1/8 of its length, does not touch the left or right image edge
    (frame lines do), and stands alone: the rows 2 px above and below it are mostly not of its
    grey (a dark pore opened to a line is not a bar).

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
    min_length_frac : float
        Shortest bar, as a fraction of the image width.
    max_thickness_px : int, optional

    Returns
    -------
    list of BarCandidate

    Examples
    --------
    >>> img = np.full((100, 200), 120, np.uint8)
    >>> img[80:83, 40:140] = 255
    >>> [(b.x0, b.x1, b.polarity) for b in find_scale_bars(img)]
    [(40, 139, 'light')]
    """
    grey = np.asarray(grey)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError("find_scale_bars: expected a 2-D uint8 image")
    h, w = grey.shape
    length = max(12, int(round(min_length_frac * w))) | 1  # odd: the opening keeps the bar's ends
    thick = max_thickness_px if max_thickness_px is not None else max(6, int(0.02 * h))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    found = []
    for polarity, binary in (("light", grey >= 200), ("dark", grey <= 55)):
        opened = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        n, _, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
        for x, y, bw, bh, _area in stats[1:n]:
            if bh > thick or x == 0 or x + bw >= w or bw < 8 * bh:
                continue
            # a bar stands alone: the rows just above and below it are mostly not bar-coloured
            # (a dark pore or a text stroke opened to a line is not)
            above = binary[max(0, y - 2), x:x + bw].mean() if y >= 2 else 0.0
            below = binary[min(h - 1, y + bh + 1), x:x + bw].mean() if y + bh + 1 < h else 0.0
            if max(above, below) > 0.5:
                continue
            found.append(BarCandidate(int(x), int(x + bw - 1), int(y), int(y + bh - 1), polarity))
    return sorted(found, key=lambda b: -b.length_px)


def bar_length_px(grey: np.ndarray, bar: BarCandidate) -> float:
    """Length of ``bar`` with sub-pixel ends: where the row profile crosses half-way between
    the bar's grey and the background's (the median of the rows just above and below)."""
    rows = grey[bar.y0:bar.y1 + 1].astype(np.float64)
    core = rows.max(axis=0) if bar.polarity == "light" else rows.min(axis=0)
    h = grey.shape[0]
    around = np.concatenate([grey[max(0, bar.y0 - 4):bar.y0], grey[bar.y1 + 1:min(h, bar.y1 + 5)]])
    bg = float(np.median(around[:, bar.x0:bar.x1 + 1])) if around.size else 128.0
    level = float(np.median(core[bar.x0:bar.x1 + 1]))
    half = (level + bg) / 2
    inside = core >= half if bar.polarity == "light" else core <= half

    def edge(i: int, step: int) -> float:
        # walk out from the bar end to the first pixel past half-way, interpolate the crossing
        j = i
        while 0 <= j + step < core.size and inside[j + step]:
            j += step
        k = j + step
        if not 0 <= k < core.size or core[j] == core[k]:
            return float(j) + 0.5 * step
        return j + step * (core[j] - half) / (core[j] - core[k])

    return edge(bar.x1, 1) - edge(bar.x0, -1)


def _unit(token: str) -> str | None:
    t = token.lower()
    if t.startswith("n") and len(t) > 2:  # "num": a µ read as "nu"
        t = t[1:]
    if t == "nm":
        return "nm"
    if t == "mm":
        return "mm"
    return "um" if t[0] in "uµμpxyjk" else None


def _numbers(token: str) -> list[float]:
    """Every number a digit-lookalike string may stand for, the literal reading first."""
    token = token.replace(",", ".")
    options = [""]
    for ch in token:
        if ch == ".":
            options = [o + "." for o in options]
            continue
        digits = _DIGIT_LOOKALIKES.get(ch)
        if digits is None:
            return []
        options = [o + d for o in options for d in digits]
    out = []
    for o in options:
        try:
            v = float(o)
        except ValueError:
            continue
        if v > 0 and v not in out:
            out.append(v)
    return out


def in_series(value: float) -> bool:
    """Whether ``value`` is 1, 2, 2.5, 3, 4 or 5 x 10^k (a scale-bar label)."""
    if value <= 0:
        return False
    k = math.floor(math.log10(value))
    mantissa = value / 10 ** k
    return any(abs(mantissa - s) < 1e-6 for s in SERIES)


def parse_scale_label(text: str) -> tuple[float, str] | None:
    """``(value, unit)`` of the first scale label in an OCR string, or ``None``.

    Tolerates SEM-font misreadings: slashed zeros (``@``, ``G``, ``B``), ``S`` for 5, and
    ``u``/``p``/``x`` for ``µ``. Among the readings of an ambiguous number the first in the
    1-2-2.5-3-4-5 series wins; a magnification (``X500``) is not a label.

    Examples
    --------
    >>> parse_scale_label("10kV X500 50um 0000 21/AUG/15")
    (50.0, 'um')
    >>> parse_scale_label("5@um")
    (50.0, 'um')
    >>> parse_scale_label("200 nm")
    (200.0, 'nm')
    >>> parse_scale_label("X500") is None
    True
    """
    labels = scale_labels(text)
    return labels[0] if labels else None


def scale_labels(text: str) -> list[tuple[float, str]]:
    """Every scale label in an OCR string, left to right (see :func:`parse_scale_label`)."""
    out = []
    for m in _LABEL.finditer(text):
        if m.start() > 0 and text[m.start() - 1] in "xX×*":
            continue
        unit = _unit(m.group("unit"))
        numbers = _numbers(m.group("num").rstrip("."))
        if unit is None or not numbers:
            continue
        nice = [v for v in numbers if in_series(v)]
        out.append(((nice[0] if nice else numbers[0]), unit))
    return out


def _label_region(grey: np.ndarray, bar: BarCandidate) -> tuple[slice, slice]:
    """Rows and columns around a bar where its label can be: a few text heights above and
    below, 0.6 bar lengths to each side."""
    h, w = grey.shape
    L = bar.length_px
    pad_y = int(max(24, 0.08 * h, 0.3 * L))  # labels sit within a few text heights of the bar
    return (slice(max(0, bar.y0 - pad_y), min(h, bar.y1 + 1 + pad_y)),
            slice(max(0, bar.x0 - int(0.6 * L)), min(w, bar.x1 + 1 + int(0.6 * L))))


def _region_pages(grey: np.ndarray, bar: BarCandidate) -> list[np.ndarray]:
    """The label region as dark-on-light grey, upscaled x2 and x3 (Tesseract binarises it)."""
    ys, xs = _label_region(grey, bar)
    crop = grey[ys, xs].astype(np.float32)
    if bar.polarity == "light":
        crop = 255.0 - crop
    pages = []
    for scale in (2, 3):
        big = np.clip(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), 0, 255)
        pages.append(cv2.copyMakeBorder(big.astype(np.uint8), 30, 30, 30, 30, cv2.BORDER_REPLICATE))
    return pages


def _label_words(grey: np.ndarray, bar: BarCandidate) -> list[list[np.ndarray]]:
    """Black-on-white crops of the words near the bar in reading order, each word at the
    same six thresholds / scales (variant ``k`` of every word belongs together).

    Words are groups of ink components joined by a horizontal gap under ~1.2 character
    heights; the bar itself is removed from the ink first. Nearest words first.
    """
    ys, xs = _label_region(grey, bar)
    y0, x0 = ys.start, xs.start
    crop = grey[ys, xs].astype(np.float64)
    light = bar.polarity == "light"
    bg = float(np.median(crop))
    level = 255.0 if light else 0.0

    def ink_at(frac: float) -> np.ndarray:
        thr = bg + frac * (level - bg)
        ink = crop >= thr if light else crop <= thr
        ink[bar.y0 - y0:bar.y1 - y0 + 1, max(0, bar.x0 - x0 - 1):bar.x1 - x0 + 2] = False
        return ink

    ink = ink_at(0.5).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    heights = [s[3] for s in stats[1:n] if s[4] >= 4 and s[3] >= 4]
    if not heights:
        return []
    char_h = float(np.median(heights))
    gap = max(3, int(round(1.2 * char_h)))  # joins "500 nm" but not the magnification beside it
    joined = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_RECT, (gap, max(1, int(char_h // 3)))))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    cx, cy = (bar.x0 + bar.x1) / 2 - x0, (bar.y0 + bar.y1) / 2 - y0
    boxes = [s for s in stats[1:n] if 0.5 * char_h <= s[3] <= 3 * char_h and s[2] >= 0.4 * char_h]
    boxes.sort(key=lambda s: abs(s[0] + s[2] / 2 - cx) + abs(s[1] + s[3] / 2 - cy))
    # the nearest few words, then in reading order: a label split into "500" and "nm" reads whole
    boxes = sorted(boxes[:4], key=lambda s: (round((s[1] + s[3] / 2) / char_h), s[0]))
    words = []
    for bx, by, bw, bh, _ in boxes:
        pad = max(2, int(0.3 * char_h))
        ys, xs = slice(max(0, by - pad), by + bh + pad), slice(max(0, bx - pad), bx + bw + pad)
        # smooth upscaling to 30-40 px character heights: Tesseract reads blocky pixels badly
        crops = []
        for target in (30.0, 40.0):
            scale = max(2.0, target / char_h)
            big = cv2.resize(crop[ys, xs].astype(np.float32), None, fx=scale, fy=scale,
                             interpolation=cv2.INTER_CUBIC)
            big = cv2.GaussianBlur(big, (0, 0), 0.5 * scale)
            for frac in (0.2, 0.3, 0.4):
                thr = bg + frac * (level - bg)
                page = np.where(big >= thr if light else big <= thr, 0, 255).astype(np.uint8)
                crops.append(cv2.copyMakeBorder(page, 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=255))
        words.append(crops)
    return words


def tesseract_available() -> bool:
    """Whether the Tesseract OCR program and its Python binding are installed."""
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


def read_scale_bar(grey: np.ndarray, *, max_candidates: int = 3) -> ScaleBar:
    """Find the scale bar of a micrograph and read its pixel size.

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
        The whole micrograph, data bar included.
    max_candidates : int
        Bars tried, longest first; the first whose label reads wins.

    Returns
    -------
    ScaleBar

    Raises
    ------
    ScaleBarError
        No bar, no readable label, or Tesseract is not installed (the message says which).
    """
    if not tesseract_available():
        raise ScaleBarError("the scale bar cannot be read: Tesseract OCR is not installed "
                            "(Debian: apt-get install tesseract-ocr; Python: pytesseract)")
    import pytesseract

    grey = np.asarray(grey)
    bars = find_scale_bars(grey)
    if not bars:
        raise ScaleBarError("no scale bar found (no long thin horizontal bar of extreme grey)")
    tried = []
    for bar in bars[:max_candidates]:
        votes: Counter = Counter()
        texts: dict[tuple[float, str], str] = {}
        words = _label_words(grey, bar)
        for k in range(len(words[0]) if words else 0):
            for psm in (7, 8):
                line = " ".join(pytesseract.image_to_string(word[k], config=f"--psm {psm}").strip()
                                for word in words)
                for hit in set(scale_labels(line)):
                    votes[hit] += 1
                    texts.setdefault(hit, line)
        for page in _region_pages(grey, bar):
            for psm in (6, 11):
                line = pytesseract.image_to_string(page, config=f"--psm {psm}")
                for hit in set(scale_labels(line)):
                    votes[hit] += 1
                    texts.setdefault(hit, line.strip())
        if not votes:
            tried.append(f"bar at x {bar.x0}-{bar.x1}, y {bar.y0}: no label read")
            continue
        # a series value beats an odd one (WD 8.5 mm, HFW 20.7 um in a data bar), then votes
        (value, unit), n = max(votes.items(), key=lambda kv: (in_series(kv[0][0]), kv[1]))
        length = bar_length_px(grey, bar)
        return ScaleBar(nm_per_px=value * UNITS_NM[unit] / length, length_px=length, value=value,
                        unit=unit, text=texts[(value, unit)], votes=n, bar=bar)
    raise ScaleBarError("scale bar label unreadable: " + "; ".join(tried))
