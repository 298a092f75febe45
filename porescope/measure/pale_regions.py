"""Pale regions: predicted pores that are not darker than the surface around them.

An SEM pore is a dark opening: its core is near black and even a lit wall leaves the opening's
mean grey well below the surface around it. A network trained on synthetic membranes also
calls some surface "pore" where the context fools it - most often a strip of surface along a
bright frame or overlay edge (the frame looks like a pore's bright rim), sometimes a grain of a
rough patch. Such a region has the grey of the surface it lies on.

:func:`region_contrast` measures, per 8-connected region of a mask, its mean grey against the
median grey of the surface ring around it (the non-region pixels within ``ring_px`` px, burned-in
overlays left out: a white frame beside a strip is not the surface the strip lies on),

    contrast = (ring median - region mean) / max(ring median, 1),

and :func:`drop_pale_regions` removes the regions whose contrast is below a threshold (the
``measure.min_region_contrast`` param; off by default). A region that holds a real pore and a
pale strip touching it is judged as a whole, so it is kept.

The threshold was chosen on synthetic membranes drawn with artefacts (frames, overlays, rough
patches; ``bench/pale_regions_synthetic.py``), where each predicted region is known to be a
pore or not.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from porescope.measure.quality import overlay_mask


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
        Width of the surface ring, px: the non-foreground pixels within a
        ``(2 ring_px + 1)``-square of a region; where two regions' rings overlap, a pixel
        belongs to the ring of the region with the higher label.
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
    Memory: the label image and its dilation, 8 B per pixel.

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
    n, labels = cv2.connectedComponents(fg.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    n -= 1
    flat = labels.ravel()
    g = grey.ravel()
    area = np.bincount(flat, minlength=n + 1)[1:]
    sums = np.bincount(flat, weights=g, minlength=n + 1)[1:]
    size = 2 * int(ring_px) + 1
    near = ndi.maximum_filter(labels, size=size, mode="constant", cval=0)
    ring = (near > 0) & ~fg
    if exclude is not None:
        ring &= ~np.asarray(exclude, bool)
    ring_lab, ring_grey = near[ring], grey[ring]
    # the median of each ring: sort by (label, grey), take the middle of each label's run
    order = np.lexsort((ring_grey, ring_lab))
    ring_lab, ring_grey = ring_lab[order], ring_grey[order].astype(float)
    count = np.bincount(ring_lab, minlength=n + 1)[1:]
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    median = np.full(n, np.nan)
    has = count > 0
    lo, hi = start[has] + (count[has] - 1) // 2, start[has] + count[has] // 2
    median[has] = (ring_grey[lo] + ring_grey[hi]) / 2.0
    mean = sums / np.maximum(area, 1)
    table = pd.DataFrame({"label": np.arange(1, n + 1), "area": area, "mean_grey": mean,
                          "ring_grey": median,
                          "contrast": (median - mean) / np.maximum(median, 1.0)})
    return labels, table


def drop_pale_regions(grey: np.ndarray, mask: np.ndarray, min_contrast: float,
                      ring_px: int = 3, overlay_level: int | None = 245) -> tuple[np.ndarray, int]:
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

    Returns
    -------
    mask : ndarray
        A copy of ``mask`` (same dtype) with the pale regions cleared.
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

    """
    exclude = None if overlay_level is None else overlay_mask(grey, overlay_level)
    labels, table = region_contrast(grey, mask, ring_px, exclude)
    pale = table["label"].to_numpy()[(table["contrast"] < min_contrast).to_numpy()]
    out = np.array(mask, copy=True)
    if pale.size:
        drop = np.zeros(len(table) + 1, bool)
        drop[pale] = True
        out[drop[labels]] = 0
    return out, int(pale.size)
