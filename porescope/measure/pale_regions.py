"""Pale regions: predicted pores that are not darker than the surface around them.

An SEM pore is a dark opening: its core is near black and even a lit wall leaves the opening's
mean grey well below the surface around it. A network trained on synthetic membranes also
calls some surface "pore" where the context fools it - most often a strip of surface along a
bright frame or overlay edge (the frame looks like a pore's bright rim), sometimes a grain of a
rough patch. Such a region has the grey of the surface it lies on.

:func:`region_contrast` measures, per 8-connected region of a mask, its mean grey against the
median grey of the surface ring around it (the non-foreground pixels within ``ring_px`` px of the
region, whether or not they are near another region too; burned-in overlays left out: a white
frame beside a strip is not the surface the strip lies on),

    contrast = (ring median - region mean) / max(ring median, 1),

and :func:`drop_pale_regions` removes the regions whose contrast is below a threshold (the
``measure.min_region_contrast`` param, 0.2 by default). A region that holds a real pore and a
pale strip touching it is judged as a whole, so it is kept.

The threshold was chosen on synthetic membranes drawn with artefacts (frames, overlays, rough
patches; ``bench/pale_regions_synthetic.py``), where each predicted region is known to be a
pore or not.

Each region is judged on its bounding box grown by ``ring_px``, so the result does not depend
on how the regions are numbered, and a mask above ``band_pixels`` is judged band by band
(:mod:`porescope.measure.region_bands`) with the same result as the whole image.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from porescope.measure.quality import overlay_mask
from porescope.measure.region_bands import owned_bands, owned_rows


def _judge(grey: np.ndarray, fg: np.ndarray, exclude: np.ndarray | None, labels: np.ndarray,
           stats: np.ndarray, ring_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area, mean grey and ring median of regions 1..n of ``labels`` (with OpenCV's ``stats``);
    ``grey``, ``fg`` and ``exclude`` cover the same rows, ``ring_px`` beyond the regions'
    where the image has them."""
    n = stats.shape[0] - 1
    rows, cols = labels.shape
    kernel = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    mean, median = np.empty(n), np.full(n, np.nan)
    for i in range(1, n + 1):
        x, y, w, h = stats[i, :4]
        a0, a1 = max(0, y - ring_px), min(rows, y + h + ring_px)
        c0, c1 = max(0, x - ring_px), min(cols, x + w + ring_px)
        own = labels[a0:a1, c0:c1] == i
        g = grey[a0:a1, c0:c1]
        mean[i - 1] = g[own].sum(dtype=np.int64) / area[i - 1]
        # the dilation's border adds nothing: a clipped square stops at the image edge
        ring = cv2.dilate(own.view(np.uint8), kernel).view(bool) & ~fg[a0:a1, c0:c1]
        if exclude is not None:
            ring &= ~exclude[a0:a1, c0:c1]
        if ring.any():
            median[i - 1] = np.median(g[ring])
    return area, mean, median


def _contrast(mean: np.ndarray, median: np.ndarray) -> np.ndarray:
    return (median - mean) / np.maximum(median, 1.0)


def region_contrast(grey: np.ndarray, mask: np.ndarray, ring_px: int = 3,
                    exclude: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Darkness of each connected region of ``mask`` against the surface around it.

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
        The micrograph.
    mask : (rows, cols) ndarray
        Non-zero = foreground (class ids or bool), same shape.
    ring_px : int
        Width of the surface ring, px: the non-foreground pixels within the
        ``(2 ring_px + 1)``-square around any pixel of a region, also those near another
        region (a pixel may be in several rings).
    exclude : (rows, cols) bool ndarray, optional
        Pixels never in a ring (burned-in overlays, :func:`porescope.measure.quality.overlay_mask`).

    Returns
    -------
    labels : (rows, cols) int32 ndarray
        8-connected regions, 1..n (0 = background).
    table : pandas.DataFrame
        One row per region, columns ``label``, ``area`` (px), ``mean_grey`` (region),
        ``ring_grey`` (median of its ring; NaN without ring pixels) and ``contrast``
        (``(ring_grey - mean_grey) / max(ring_grey, 1)``; NaN without a ring; about 0.8 for an
        SEM pore, about 0 for surface).

    Notes
    -----
    Memory: the label image, 4 B per pixel, and per region its grown bounding box.
    :func:`drop_pale_regions` with ``band_pixels`` needs no image-sized label image.

    Examples
    --------
    >>> grey = np.full((40, 60), 140, np.uint8)
    >>> mask = np.zeros((40, 60), np.uint8)
    >>> mask[10:20, 10:20] = 1
    >>> grey[10:20, 10:20] = 28            # a dark pore
    >>> mask[10:20, 40:44] = 1             # surface called pore
    >>> labels, t = region_contrast(grey, mask)
    >>> t[["label", "area", "mean_grey", "ring_grey", "contrast"]].to_numpy().tolist()
    [[1.0, 100.0, 28.0, 140.0, 0.8], [2.0, 40.0, 140.0, 140.0, 0.0]]
    """
    grey = np.asarray(grey)
    fg = np.asarray(mask) > 0
    if grey.shape != fg.shape:
        raise ValueError(f"region_contrast: grey {grey.shape} and mask {fg.shape} differ in shape")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.view(np.uint8), connectivity=8,
                                                           ltype=cv2.CV_32S)
    ex = None if exclude is None else np.asarray(exclude, bool)
    area, mean, median = _judge(grey, fg, ex, labels, stats, int(ring_px))
    table = pd.DataFrame({"label": np.arange(1, n), "area": area, "mean_grey": mean,
                          "ring_grey": median, "contrast": _contrast(mean, median)})
    return labels, table


def drop_pale_regions(grey: np.ndarray, mask: np.ndarray, min_contrast: float,
                      ring_px: int = 3, overlay_level: int | None = 245, *,
                      band_pixels: int | None = None, in_place: bool = False
                      ) -> tuple[np.ndarray, int]:
    """``mask`` without the regions whose :func:`region_contrast` is below ``min_contrast``.

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
    mask : (rows, cols) ndarray
        Class ids (0 = background) or bool; the dropped regions become 0.
    min_contrast : float
        Keep a region when ``contrast >= min_contrast`` (or it has no surface ring).
    ring_px : int
        See :func:`region_contrast`.
    overlay_level : int or None
        Rings leave out the burned-in overlays of this grey and brighter
        (:func:`porescope.measure.quality.overlay_mask`, ``measure.quality.overlay_level``);
        None = they count as surface.
    band_pixels : int, optional
        A mask of more pixels is judged in bands of about this many pixels
        (:func:`porescope.measure.region_bands.owned_bands`; ``measure.band_pixels``), each
        region with the rows ``ring_px`` around it: the same result as the whole image, with
        no image-sized label image. None = the whole image at once.
    in_place : bool
        Clear the pale regions in ``mask`` itself instead of a copy.

    Returns
    -------
    mask : ndarray
        ``mask`` (``in_place``) or a copy of it (same dtype) with the pale regions cleared.
    n_dropped : int
        Regions removed.

    Examples
    --------
    >>> grey = np.full((40, 60), 140, np.uint8)
    >>> mask = np.zeros((40, 60), np.uint8)
    >>> mask[10:20, 10:20] = 1
    >>> grey[10:20, 10:20] = 28
    >>> mask[10:20, 40:44] = 1             # surface called pore ...
    >>> grey[:, 44:50] = 255               # ... beside a white frame
    >>> kept, n = drop_pale_regions(grey, mask, 0.3)
    >>> n, int(kept.sum()), int(kept[10:20, 10:20].sum())
    (1, 100, 100)
    >>> banded, _ = drop_pale_regions(grey, mask, 0.3, band_pixels=120)
    >>> bool(np.array_equal(banded, kept))
    True
    """
    out = mask if in_place else np.array(mask, copy=True)
    if band_pixels is not None and out.size > band_pixels:
        return out, _drop_in_bands(np.asarray(grey), out, min_contrast, int(ring_px),
                                   overlay_level, int(band_pixels))
    exclude = None if overlay_level is None else overlay_mask(grey, overlay_level)
    labels, table = region_contrast(grey, out, ring_px, exclude)
    pale = table["label"].to_numpy()[(table["contrast"] < min_contrast).to_numpy()]
    if pale.size:
        drop = np.zeros(len(table) + 1, bool)
        drop[pale] = True
        out[drop[labels]] = 0
    return out, int(pale.size)


def _drop_in_bands(grey: np.ndarray, mask: np.ndarray, min_contrast: float, ring_px: int,
                   overlay_level: int | None, band_pixels: int) -> int:
    """:func:`drop_pale_regions` band by band, in place; returns the number dropped."""
    rows, cols = mask.shape
    if grey.shape != mask.shape:
        raise ValueError(f"drop_pale_regions: grey {grey.shape} and mask {mask.shape} differ "
                         "in shape")

    def fg_rows(a: int, b: int) -> np.ndarray:
        return mask[a:b] != 0

    # first judge every band, then clear: a cleared region would join the rings of the
    # regions judged after it
    pale_bands = []
    for r0, own_end, r1, owned in owned_bands(fg_rows, 0, rows, cols, band_pixels):
        a, b = max(0, r0 - ring_px), min(rows, r1 + ring_px)
        win = np.zeros((b - a, cols), np.uint8)
        win[r0 - a:r1 - a] = owned
        del owned
        _, labels, stats, _ = cv2.connectedComponentsWithStats(win, connectivity=8,
                                                               ltype=cv2.CV_32S)
        del win
        exclude = None if overlay_level is None else overlay_mask(grey, overlay_level, (a, b))
        _, mean, median = _judge(grey[a:b], fg_rows(a, b), exclude, labels, stats, ring_px)
        pale = np.flatnonzero(_contrast(mean, median) < min_contrast) + 1
        if pale.size:
            # each pale region by its first pixel (its top row's leftmost), in image rows
            top = stats[pale, cv2.CC_STAT_TOP]
            left = [int(np.argmax(labels[t] == i)) for t, i in zip(top, pale)]
            pale_bands.append((r0, own_end, top + a, np.array(left)))
        del labels, exclude
    for r0, own_end, top, left in pale_bands:
        r1, owned = owned_rows(fg_rows, r0, own_end, rows)
        _, labels = cv2.connectedComponents(owned.view(np.uint8), connectivity=8,
                                            ltype=cv2.CV_32S)
        drop = np.zeros(int(labels.max()) + 1, bool)
        drop[labels[top - r0, left]] = True
        band = mask[r0:r1]
        band[drop[labels]] = 0
    return sum(len(t) for _, _, t, _ in pale_bands)
