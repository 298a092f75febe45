"""Region bands: walk a big mask in bands of rows, each band owning whole 8-connected regions.

A band owns the regions whose top row lies in its rows and is worked on the rows that hold
those regions whole, so that an image-sized label image is never needed (issue 14: a
16000 x 16000 px micrograph within 2 GB). Used by the banded analysis of
:func:`porescope.analysis.membrane.analyse_mask` and by
:func:`porescope.measure.pale_regions.drop_pale_regions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np


def owned_rows(fg_rows: Callable[[int, int], np.ndarray], r0: int, own_end: int, end: int
               ) -> tuple[int, np.ndarray]:
    """The rows ``[r0, r1)`` holding, whole, every region whose top row lies in
    ``[r0, own_end)``, and a mask of just those regions.

    Parameters
    ----------
    fg_rows : callable
        ``fg_rows(a, b)`` -> the (b - a, cols) bool foreground of rows ``[a, b)``.
    r0, own_end : int
        The band's own rows.
    end : int
        The last row to consider + 1.

    Returns
    -------
    r1 : int
        End row (exclusive) of the rows that hold the owned regions whole.
    owned : (r1 - r0, cols) bool ndarray
        The owned regions (those coming from above ``r0`` and those starting at ``own_end``
        or below left out).

    Examples
    --------
    >>> fg = np.zeros((10, 6), bool)
    >>> fg[1:8, 1] = True                  # starts in rows 0-1, runs to row 7
    >>> fg[3:5, 4] = True                  # starts below the band's own rows
    >>> r1, owned = owned_rows(lambda a, b: fg[a:b], 0, 2, 10)
    >>> r1, int(owned.sum()), bool(owned[:, 4].any())
    (10, 7, False)
    """
    above = fg_rows(r0 - 1, r0)[0] if r0 > 0 else None
    step = max(2, own_end - r0)
    r1 = min(end, own_end + step)
    while True:
        fg = fg_rows(r0, r1)
        _, lab, stats, _ = cv2.connectedComponentsWithStats(fg.view(np.uint8), connectivity=8)
        owned = np.zeros(stats.shape[0], bool)
        owned[1:] = stats[1:, cv2.CC_STAT_TOP] < own_end - r0
        if above is not None and above.any():
            # 8-adjacent to a region pixel in the row above: that region began higher up
            near = above.copy()
            near[1:] |= above[:-1]
            near[:-1] |= above[1:]
            owned[lab[0][near & fg[0]]] = False
        bottom = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]
        if r1 >= end or not (owned & (bottom == r1 - r0)).any():
            return r1, owned[lab]
        step *= 2
        r1 = min(end, r1 + step)


def owned_bands(fg_rows: Callable[[int, int], np.ndarray], start: int, end: int, cols: int,
                band_pixels: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """The bands of rows ``[start, end)``: ``(r0, own_end, r1, owned)`` per band.

    Band ``k`` owns the regions whose top row lies in its ``band_pixels / cols`` rows (an even
    number, so that OpenCV's 2 x 2-block numbering of the regions runs band after band);
    ``r1`` and ``owned`` are those of :func:`owned_rows`. Every region of the rows is owned by
    exactly one band.

    Examples
    --------
    >>> fg = np.zeros((10, 6), bool)
    >>> fg[1:8, 1] = True
    >>> fg[3:5, 4] = True
    >>> [(r0, e, r1, int(o.sum())) for r0, e, r1, o in owned_bands(lambda a, b: fg[a:b],
    ...                                                            0, 10, 6, 12)]
    [(0, 2, 10, 7), (2, 4, 6, 2), (4, 6, 8, 0), (6, 8, 10, 0), (8, 10, 10, 0)]
    """
    own_rows = max(2, band_pixels // cols // 2 * 2)
    r0 = start
    while r0 < end:
        own_end = min(end, max(r0 + 2, (r0 + own_rows) // 2 * 2))
        # no local name for the owned mask: the caller may free it while the band is worked on
        yield (r0, own_end, *owned_rows(fg_rows, r0, own_end, end))
        r0 = own_end
