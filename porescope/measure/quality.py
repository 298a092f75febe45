"""Out-of-distribution guard: may the numbers of a measured micrograph be certified?

A segmentation network trained on one kind of image answers on any image, and on a micrograph
unlike its training data (another pore size, exported screenshots with frames, logos and text,
rough surface patches, the bright edge fringe of real SEM) it finds objects that are not pores
without any sign of doubt. :func:`quality_flags` looks at what was measured and raises a flag
for each symptom of that; an image with any flag is **not certified**, and the flag says why.

Symptoms checked (thresholds in :class:`QualityLimits`):

* ``small_objects``: share of objects far below the pore sizes the model was trained on
  (ECD, measured at the resolution the network saw, under ``small_factor`` x the 5th
  percentile of the training objects' ECD) - slivers of fringes and surface grain;
* ``size_out_of_range``: the median object ECD at the network's resolution outside the
  training objects' 5th-95th percentile range widened by ``size_margin``; the flag names the
  resize factor that would put it at the training objects' median;
* ``bright_objects``: share of objects brighter than the surface around them - SEM pores are
  dark openings; bright "pores" are edge fringes, debris or overlays;
* ``uncertain_pixels``: pixels with a foreground probability between 0.25 and 0.75, as a share
  of the predicted foreground - the network hesitates;
* ``on_overlay``: share of objects touching burned-in overlays (near-white text, logos, frames,
  scale bars: pixels >= ``overlay_level`` in connected strokes). A saturated edge fringe of real
  SEM is such a stroke too, but one that hugs a pore from outside: a stroke lying almost whole
  (``fringe_near_share``) within ``fringe_reach`` x the median pore ECD of the objects and
  hardly inside them is a fringe (:func:`saturated_strokes`), not an overlay; the share of
  objects touching one is reported (``fringe_share``) without a flag.

* ``no_objects``: nothing was segmented, so porosity 0 and count 0 are no measurement (a
  blank or featureless image, or pores the model does not see);
* ``no_contrast``: the grey levels span fewer than ``min_contrast`` levels between their 1st
  and 99th percentiles (a blank, saturated or constant image);

* ``scale_auto_*`` (only with ``measure.scale: auto``, raised before inference by
  :mod:`porescope.measure.scale_auto` and passed in as ``flags``): the pore size estimate rests
  on too few objects, or the pores are beyond what the allowed resize factors can fix.

Without the training objects' sizes (a model file from before they were recorded) the size
checks are skipped and the flags say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of :func:`quality_flags` (the ``measure.quality`` params group)."""

    small_factor: float = field(default=0.5, metadata={"gt": 0})
    max_small_share: float = field(default=0.15, metadata={"ge": 0, "le": 1})
    size_margin: float = field(default=0.6, metadata={"gt": 0, "lt": 1})
    max_bright_share: float = field(default=0.10, metadata={"ge": 0, "le": 1})
    max_uncertain_share: float = field(default=0.25, metadata={"ge": 0})
    overlay_level: int = field(default=245, metadata={"ge": 128, "le": 255})
    max_overlay_share: float = field(default=0.0, metadata={"ge": 0, "le": 1})
    min_contrast: int = field(default=8, metadata={"ge": 0, "le": 255})
    fringe_reach: float = field(default=0.25, metadata={"ge": 0})
    fringe_max_extent: float = field(default=2.5, metadata={"gt": 0})
    fringe_near_share: float = field(default=0.8, metadata={"gt": 0, "le": 1})


@dataclass(frozen=True)
class Quality:
    """``certified``; ``flags``: short reasons (empty when certified); ``values``: every measured
    symptom (shares as fractions, sizes in px at the network's resolution; NaN = not checked)."""

    certified: bool
    flags: tuple[str, ...]
    values: dict[str, float]


def overlay_mask(grey: np.ndarray, level: int = 245, rows: tuple[int, int] | None = None
                 ) -> np.ndarray:
    """Burned-in overlays: near-white pixels in strokes of at least 12 px (text, logos, frames,
    scale bars), dilated by 2 px. Isolated bright specks (debris, rims) are not overlays.
    (:func:`saturated_strokes` without pores: every stroke counts.)

    ``rows=(r0, r1)``: only those rows of the result, computed from rows ``r0 - 14 .. r1 + 14``
    (a bright component cut by that window reaches 12 px into it, so it is a stroke; any other
    lies whole inside): the same pixels as the whole image's, in memory of the rows.

    Examples
    --------
    >>> img = np.full((60, 80), 120, np.uint8)
    >>> img[50:53, 10:60] = 255                  # a bar
    >>> img[20, 30] = 255                        # a speck
    >>> m = overlay_mask(img)
    >>> bool(m[51, 30]), bool(m[20, 30])
    (True, False)
    >>> bool(np.array_equal(overlay_mask(img, rows=(40, 55)), m[40:55]))
    True
    """
    return saturated_strokes(grey, level, rows)[0]


def saturated_strokes(grey: np.ndarray, level: int = 245, rows: tuple[int, int] | None = None,
                      pores: np.ndarray | None = None, fringe_reach_px: float = 3.0,
                      fringe_near_share: float = 0.8, fringe_max_extent_px: float = np.inf
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Near-white strokes of a micrograph, split into burned-in overlays and edge fringes.

    A stroke is a connected set of pixels >= ``level`` at least 12 px wide or tall. With
    ``pores``, a stroke is an edge fringe when it hugs pores from outside, as a fringe does:

    * at least ``fringe_near_share`` of its pixels lie within ``fringe_reach_px`` of a pore and
      at most 10 % inside one (letters or a logo that a model segmented lie inside objects);
    * it is no longer than ``fringe_max_extent_px`` (frames, scale bars, text lines are);
    * it encloses no pore pixel (a letter whose hole was segmented: "0", "8", "e") and lies
      in no hole of a pore (text on a dark label box segmented as one object);
    * it is not cut by the rows window (a stroke running on beyond it is judged on a part).

    Every other stroke is an overlay. Both masks are dilated by 2 px.

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
    level : int
        Grey level of a saturated pixel.
    rows : (int, int), optional
        Only these rows of the result, computed from rows ``r0 - 14 .. r1 + 14`` (a bright
        component cut by that window reaches 12 px into it, so it is a stroke; any other lies
        whole inside): the same pixels as the whole image's, in memory of the rows.
    pores : (r1 - r0, cols) bool ndarray, optional
        Predicted pores of the same rows. Without them every stroke is an overlay. Strokes
        reaching beyond the rows see only these pores, so a fringe there may be taken for an
        overlay (the safe side).
    fringe_reach_px : float
        Distance from a pore within which a fringe lies, px.
    fringe_near_share : float
        Share of a fringe's pixels within that distance.
    fringe_max_extent_px : float
        Longest side of a fringe's bounding box, px.

    Returns
    -------
    overlays, fringes : (r1 - r0, cols) bool ndarray

    Examples
    --------
    >>> img = np.full((80, 80), 120, np.uint8)
    >>> yy, xx = np.mgrid[:80, :80]
    >>> pore = (yy - 30) ** 2 + (xx - 30) ** 2 < 10 ** 2
    >>> img[pore] = 10
    >>> ring = ((yy - 30) ** 2 + (xx - 30) ** 2 < 13 ** 2) & ~pore & (yy > 30)   # lower crescent
    >>> img[ring] = 255
    >>> img[70:73, 10:70] = 255                                                 # a scale bar
    >>> over, fringe = saturated_strokes(img, pores=pore)
    >>> bool(fringe[41, 30]), bool(over[41, 30]), bool(over[71, 40]), bool(fringe[71, 40])
    (True, False, True, False)
    >>> bool(overlay_mask(img)[41, 30])          # without the pores: an overlay
    True
    >>> img[20:40, 55:60] = img[20:40, 70:75] = img[20:25, 55:75] = img[35:40, 55:75] = 255  # an "0"
    >>> hole = np.zeros_like(pore)
    >>> hole[25:35, 60:70] = True                                               # its hole "a pore"
    >>> over, fringe = saturated_strokes(img, pores=pore | hole)
    >>> bool(over[30, 57]), bool(fringe[41, 30])
    (True, True)
    """
    grey = np.asarray(grey)
    r0, r1 = (0, grey.shape[0]) if rows is None else rows
    a, b = max(0, r0 - _STROKE - 2), min(grey.shape[0], r1 + _STROKE + 2)
    bright = (grey[a:b] >= level).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    top, height = stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_HEIGHT]
    keep = np.zeros(n, bool)
    keep[1:] = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], height) >= _STROKE
    # cut by the window's top or bottom: it runs on beyond the 14 rows
    keep[1:] |= ((top == 0) & (a > 0)) | ((top + height == b - a) & (b < grey.shape[0]))
    fringe = np.zeros(n, bool)
    if pores is not None and n > 1:
        inside = np.zeros(bright.shape, np.uint8)
        inside[r0 - a:r1 - a] = np.asarray(pores, bool)
        r = max(1, int(round(fringe_reach_px)))
        near = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
        size = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        share_near = np.bincount(lab.ravel(), weights=near.ravel(), minlength=n) / size
        share_in = np.bincount(lab.ravel(), weights=inside.ravel(), minlength=n) / size
        extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        cut = np.zeros(n, bool)
        cut[1:] = ((top == 0) & (a > 0)) | ((top + height == b - a) & (b < grey.shape[0]))
        fringe = (keep & (share_near >= fringe_near_share) & (share_in <= 0.1)
                  & (extent <= fringe_max_extent_px) & ~cut)
        if fringe.any():
            strokes, pore = keep[lab], inside.astype(bool)
            # pore pixels in a stroke's hole: the stroke encloses them (a letter's segmented hole)
            enclosed = ndi.binary_fill_holes(strokes) & ~strokes & pore
            rim = cv2.dilate(enclosed.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            fringe[np.unique(lab[rim & strokes])] = False
            # stroke pixels in a pore's hole: a pore encloses them (text on a dark box)
            fringe[np.unique(lab[ndi.binary_fill_holes(pore) & ~pore & strokes])] = False
    k = np.ones((5, 5), np.uint8)
    out = [cv2.dilate((sel[lab]).astype(np.uint8), k).astype(bool)[r0 - a:r1 - a]
           for sel in (keep & ~fringe, fringe)]
    return out[0], out[1]


#: a bright stroke is at least this many pixels wide or tall
_STROKE = 12


def uncertain_pixels(proba: np.ndarray) -> int:
    """Number of pixels whose foreground probability lies strictly between 0.25 and 0.75.

    Examples
    --------
    >>> uncertain_pixels(np.array([[0.1, 0.3], [0.5, 0.75]], np.float32))
    2
    """
    p = np.asarray(proba)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(float)
    # 0.25 and 0.75 are exact in float32, so no float64 copy of a big map is needed
    return int(np.count_nonzero((p > 0.25) & (p < 0.75)))


class ObjectPixels:
    """What :func:`quality_flags` needs from the pixels, gathered band by band.

    ``add(first_row, labels)`` takes the object labels of a band of rows (the whole image at
    once, or the bands of a banded analysis, labels numbered within each band): bands start
    in order and may share rows, but no later band holds an object above its first row; rows
    never given hold no object. Per object: area and grey sum; for the image: the histogram of
    the surface ring around the objects (the pixels within 3 px of an object, 7 x 7 dilation,
    that are not object) and of all non-object pixels, and the numbers of objects touching a
    burned-in overlay and a saturated edge fringe (:func:`saturated_strokes` with the
    :class:`QualityLimits` ``limits``: reach ``fringe_reach`` x the median ECD of the band's
    objects, at least 3 px, longest side ``fringe_max_extent`` x that ECD; ``fringe_reach`` 0 =
    no fringes, every stroke an overlay). A ring row is counted once no later band can put an
    object within 3 px of it, so only a few bands of rows are held.
    """

    _HALO = 3

    def __init__(self, grey: np.ndarray, limits: "QualityLimits | None" = None):
        self.grey = np.asarray(grey)
        self.limits = limits if limits is not None else QualityLimits()
        self._area: list[np.ndarray] = []
        self._sums: list[np.ndarray] = []
        self.n_on_overlay = 0
        self.n_on_fringe = 0
        self.ring_hist = np.zeros(256, np.int64)
        self.surface_hist = np.zeros(256, np.int64)
        self._fg = np.zeros((0, self.grey.shape[1]), bool)   # object pixels of rows _fg0...
        self._fg0 = 0
        self._start = 0                                      # first row of the last band
        self._done = 0                                       # rows whose ring is counted

    def add(self, r0: int, labels: np.ndarray) -> None:
        """Objects of rows ``r0 .. r0 + len(labels)`` (int labels, 0 = background)."""
        if r0 < self._start:
            raise ValueError(f"ObjectPixels.add: bands must start in order; got row {r0} after "
                             f"{self._start}")
        self._start = r0
        self._count_rings(r0 - self._HALO)      # rows above r0 are final
        labels = np.asarray(labels)
        r1 = r0 + labels.shape[0]
        grey = self.grey[r0:r1]
        n = int(labels.max(initial=0))
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        present = area > 0
        sums = np.zeros(n + 1)
        for r in range(0, labels.shape[0], 1024):   # exact integer sums, no float64 image copy
            sums += np.bincount(labels[r:r + 1024].ravel(), weights=grey[r:r + 1024].ravel(),
                                minlength=n + 1)
        self._area.append(area[present].astype(float))
        self._sums.append(sums[1:][present])
        fg = labels > 0
        if n:
            lim = self.limits
            ecd = float(np.median(np.sqrt(4.0 * area[present] / np.pi)))
            over, fringe = saturated_strokes(
                self.grey, lim.overlay_level, rows=(r0, r1),
                pores=fg if lim.fringe_reach > 0 else None,
                fringe_reach_px=max(3.0, lim.fringe_reach * ecd),
                fringe_near_share=lim.fringe_near_share,
                fringe_max_extent_px=lim.fringe_max_extent * ecd)
            self.n_on_overlay += int(np.count_nonzero(np.unique(labels[over & fg])))
            self.n_on_fringe += int(np.count_nonzero(np.unique(labels[fringe & fg])))
        end = self._fg0 + self._fg.shape[0]
        if r1 > end:
            self._fg = np.concatenate([self._fg, np.zeros((r1 - end, fg.shape[1]), bool)])
        self._fg[r0 - self._fg0:r1 - self._fg0] |= fg

    def _count_rings(self, upto: int) -> None:
        """Ring and surface histograms of rows ``[_done, upto)``."""
        upto = min(upto, self.grey.shape[0])
        if upto <= self._done:
            return
        a = max(0, self._done - self._HALO)
        b = min(self.grey.shape[0], upto + self._HALO)
        fg = np.zeros((b - a, self.grey.shape[1]), bool)
        end = self._fg0 + self._fg.shape[0]
        lo, hi = max(a, self._fg0), min(b, end)
        if hi > lo:
            fg[lo - a:hi - a] = self._fg[lo - self._fg0:hi - self._fg0]
        k = np.ones((2 * self._HALO + 1,) * 2, np.uint8)
        near = cv2.dilate(fg.view(np.uint8), k).astype(bool)
        rows = slice(self._done - a, upto - a)
        grey, off = self.grey[self._done:upto], ~fg[rows]
        self.ring_hist += np.bincount(grey[near[rows] & off], minlength=256)
        self.surface_hist += np.bincount(grey[off], minlength=256)
        self._done = upto
        keep = min(max(self._fg0, upto - self._HALO), end)
        self._fg = self._fg[keep - self._fg0:]
        self._fg0 = keep

    def finish(self) -> dict[str, object]:
        """``area`` and ``sums`` per object (float arrays), ``surface`` (median grey of the ring,
        or of all non-object pixels without a ring), ``n_on_overlay`` and ``n_on_fringe``."""
        self._count_rings(self.grey.shape[0])
        hist = self.ring_hist if self.ring_hist.any() else self.surface_hist
        return {"area": np.concatenate(self._area) if self._area else np.zeros(0),
                "sums": np.concatenate(self._sums) if self._sums else np.zeros(0),
                "surface": _hist_median(hist), "n_on_overlay": self.n_on_overlay,
                "n_on_fringe": self.n_on_fringe}


def _hist_median(hist: np.ndarray) -> float:
    """``numpy.median`` of the values a histogram of 0..255 counts (NaN when empty)."""
    n = int(hist.sum())
    if n == 0:
        return float("nan")
    c = np.cumsum(hist)
    lo = int(np.searchsorted(c, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(c, n // 2, side="right"))
    return (lo + hi) / 2.0


def quality_flags(grey: np.ndarray, labels: np.ndarray | None = None, *,
                  pixels: "ObjectPixels | None" = None, ecd_px: np.ndarray | None = None,
                  proba: np.ndarray | None = None, n_uncertain: int | None = None,
                  scale: float = 1.0, trained_ecd_px: Sequence[float] | None = None,
                  limits: QualityLimits = QualityLimits(), flags: Sequence[str] = ()) -> Quality:
    """Flags of one measured micrograph (see the module docstring).

    Parameters
    ----------
    grey : (rows, cols) uint8 ndarray
        The analysed micrograph.
    labels : (rows, cols) int ndarray
        Measured objects (0 = background), same shape; or give ``pixels``.
    pixels : ObjectPixels, optional
        The objects' pixel statistics gathered band by band (a big micrograph whose labels are
        never whole, see ``band_pixels`` of :func:`porescope.analysis.membrane.analyse_mask`).
    ecd_px : (n_objects,) ndarray, optional
        Each object's ECD in px at the image's resolution (default: from ``labels``).
    proba : (rows, cols) float ndarray, optional
        Foreground probability; without it (and without ``n_uncertain``) the
        ``uncertain_pixels`` check is skipped.
    n_uncertain : int, optional
        :func:`uncertain_pixels` of the probability map, counted when it was made so that a big
        micrograph's float map need not be kept until the objects are measured.
    scale : float
        Resize factor applied before inference (sizes are compared at the network's resolution).
    trained_ecd_px : (p5, p50, p95), optional
        ECD percentiles of the training objects, px (the model file's ``meta.object_ecd_px``).
    limits : QualityLimits
    flags : sequence of str
        Flags raised before inference (an unreliable pore size estimate of ``scale: auto``,
        :mod:`porescope.measure.scale_auto`); they come first.

    Returns
    -------
    Quality

    Examples
    --------
    >>> grey = np.full((100, 100), 140, np.uint8)
    >>> labels = np.zeros((100, 100), np.int32)
    >>> yy, xx = np.mgrid[:100, :100]
    >>> for k, (cy, cx) in enumerate([(25, 25), (25, 75), (75, 25), (75, 75)], start=1):
    ...     disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 10 ** 2
    ...     labels[disc], grey[disc] = k, 20
    >>> q = quality_flags(grey, labels, trained_ecd_px=(15, 25, 40))
    >>> q.certified, q.flags
    (True, ())
    >>> for flag in quality_flags(grey, labels, trained_ecd_px=(60, 80, 120)).flags:
    ...     print(flag)
    small_objects: 100 % of the objects are under 30.0 px at the network (trained on 60-120 px pores)
    size_out_of_range: median pore 19.7 px (at the network) outside the trained 36-200 px, a resize by 4.06 (measure.scale or scale: auto) brings it to the trained median 80 px
    """
    if pixels is None:
        pixels = ObjectPixels(grey, limits)
        pixels.add(0, np.asarray(labels))
    stats = pixels.finish()
    area = stats["area"]
    if ecd_px is None:
        ecd_px = np.sqrt(4.0 * area / np.pi)
    ecd_net = np.asarray(ecd_px, float) * scale
    values: dict[str, float] = {"n_objects": float(area.size)}
    flags = list(flags)
    hist = np.bincount(np.asarray(grey, np.uint8).ravel(), minlength=256).cumsum()
    lo, hi = (int(np.searchsorted(hist, q * hist[-1])) for q in (0.01, 0.99))
    values["contrast"] = float(hi - lo)
    if hi - lo < limits.min_contrast:
        flags.append(f"no_contrast: the grey levels span {hi - lo} levels (1st-99th percentile, "
                     "a blank, saturated or constant image)")
    if not area.size:
        flags.append("no_objects: nothing was segmented, so porosity 0 and count 0 are no "
                     "measurement (a blank or featureless image, or pores the model does not see)")

    if area.size:
        # brightness of each object against the surface ring around it
        mean_in = stats["sums"] / area
        values["bright_share"] = float(np.mean(mean_in > stats["surface"]))
        values["overlay_share"] = float(stats["n_on_overlay"] / area.size)
        values["fringe_share"] = float(stats["n_on_fringe"] / area.size)
    else:
        values["bright_share"] = values["overlay_share"] = values["fringe_share"] = 0.0
    if values["bright_share"] > limits.max_bright_share:
        flags.append(f"bright_objects: {100 * values['bright_share']:.0f} % of the objects are "
                     "brighter than the surface (edge fringes, debris or overlays, not pores)")
    if values["overlay_share"] > limits.max_overlay_share:
        flags.append(f"on_overlay: {100 * values['overlay_share']:.0f} % of the objects touch "
                     "saturated bright strokes: burned-in text, a logo, frame or scale bar (crop "
                     "it: crop_bottom / margin_px), or a saturated edge fringe")

    if trained_ecd_px is not None and len(ecd_net):
        p5, p50, p95 = (float(v) for v in trained_ecd_px)
        values["small_share"] = float(np.mean(ecd_net < limits.small_factor * p5))
        values["median_ecd_px"] = float(np.median(ecd_net))
        lo, hi = p5 * limits.size_margin, p95 / limits.size_margin
        if values["small_share"] > limits.max_small_share:
            flags.append(f"small_objects: {100 * values['small_share']:.0f} % of the objects are "
                         f"under {limits.small_factor * p5:.1f} px at the network (trained on "
                         f"{p5:.0f}-{p95:.0f} px pores)")
        if not lo <= values["median_ecd_px"] <= hi:
            # the remedy: the resize factor that puts the median at the trained median
            fix = scale * p50 / values["median_ecd_px"]
            flags.append(f"size_out_of_range: median pore {values['median_ecd_px']:.1f} px (at the "
                         f"network) outside the trained {lo:.0f}-{hi:.0f} px, a resize by "
                         f"{fix:.2f} (measure.scale or scale: auto) brings it to the trained "
                         f"median {p50:.0f} px")
    else:
        values["small_share"] = values["median_ecd_px"] = float("nan")

    if n_uncertain is None and proba is not None:
        n_uncertain = uncertain_pixels(proba)
    if n_uncertain is not None:
        unsure = int(n_uncertain)
        values["uncertain_share"] = unsure / max(1, int(area.sum()))
        if values["uncertain_share"] > limits.max_uncertain_share:
            flags.append(f"uncertain_pixels: {unsure} pixels with probability 0.25-0.75, "
                         f"{100 * values['uncertain_share']:.0f} % of the pore area")
    else:
        values["uncertain_share"] = float("nan")
    return Quality(not flags, tuple(flags), values)
