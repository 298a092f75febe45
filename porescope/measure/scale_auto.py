"""``scale: auto``: estimate the pore size of a micrograph, then resize it to the model's.

A network only knows the pore sizes (in pixels) it was trained on. When the pixel sizes of the
image and of the training data are unknown, the resize factor can still be chosen from the
image itself:

1. **estimate** (:func:`first_pass_pore_size`): the model segments the image (at most a
   ``max_side`` x ``max_side`` centre crop, to stay cheap) at scale 1; the typical pore size is
   the median equivalent circular diameter (ECD, px) of the objects that do not touch the
   crop's edge, specks left out (:func:`median_object_ecd`): robust to merged pairs, surface
   grain, debris and partial misses;
2. **choose** (:func:`choose_scale`): the factor that brings that ECD to the middle of the
   training objects' sizes (their median ECD, the model file's ``meta.object_ecd_px``),
   clipped to ``[min_scale, max_scale]`` and to what ``max_pixels`` allows.

The image is then segmented at that factor and the probabilities resized back, exactly as with
an explicit ``scale`` (:func:`porescope.measure.segment.predict_mask`), so masks and all
measurements are on the original pixel grid. An estimate that cannot be trusted (too few whole
objects in the first pass, a factor outside what resizing may do, a model that does not record
its training sizes) raises a quality flag: the image is then not certified
(:mod:`porescope.measure.quality`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from porescope.measure.segment import SegmentationModel

#: how a pore size is estimated (the ``scale_method`` column)
METHOD = "first_pass"


@dataclass(frozen=True)
class ScaleAutoParams:
    """Settings of ``scale: auto`` (the ``measure.scale_auto`` params group).

    min_objects: fewer whole objects in the first pass make the estimate unreliable (flagged).
    min_scale, max_scale: the resize factors auto may choose; a pore size that needs more is
    clipped, and flagged when the clipped factor leaves the pores outside the trained
    5th-95th percentile ECD range. max_side: the first pass segments at most this centre crop (px).
    """

    min_objects: int = field(default=8, metadata={"ge": 1})
    min_scale: float = field(default=0.25, metadata={"ge": 0.05, "le": 1})
    max_scale: float = field(default=4.0, metadata={"ge": 1, "le": 20})
    max_side: int = field(default=1024, metadata={"ge": 64})


@dataclass(frozen=True)
class AutoScale:
    """What :func:`choose_scale` decided: ``scale`` (the resize factor), the pore size estimate
    ``ecd_px`` (median ECD, px of the original image; NaN = none), ``n_objects`` it rests on,
    ``target_ecd_px`` (the trained median ECD; NaN = unknown), ``method`` and ``flags`` (quality
    flags: empty when the estimate is trusted)."""

    scale: float
    ecd_px: float
    n_objects: int
    target_ecd_px: float
    method: str = METHOD
    flags: tuple[str, ...] = ()

    def columns(self) -> dict[str, Any]:
        """The summary columns of a run with ``scale: auto``."""
        return {"scale_method": self.method, "scale_estimate_ecd_px": self.ecd_px,
                "scale_estimate_n_objects": self.n_objects,
                "scale_target_ecd_px": self.target_ecd_px}


def median_object_ecd(mask: np.ndarray) -> tuple[float, int]:
    """Typical object size of ``mask``: the median ECD (px) of its 8-connected objects that do
    not touch the edge, leaving out specks under half the area-weighted median ECD.

    The area-weighted median (half of the object area lies in objects no larger) is hardly moved
    by the many small specks a network finds on a rough surface or on debris, which would drag
    a plain median down; the plain median of the objects that are left is hardly moved by the
    merged pairs, which would push an area-weighted one up.

    Parameters
    ----------
    mask : (rows, cols) array
        Non-zero = object.

    Returns
    -------
    (median ECD in px, number of objects it is taken over); ``(nan, 0)`` without whole objects.

    Examples
    --------
    >>> m = np.zeros((60, 60), np.uint8)
    >>> m[10:20, 10:20] = 1          # ECD 11.28 px
    >>> m[40:52, 40:52] = 1          # 13.54 px
    >>> m[30:33, 30:33] = 1          # a 3.39 px speck: left out
    >>> m[0:5, 50:55] = 1            # touches the edge: left out
    >>> ecd, n = median_object_ecd(m)
    >>> round(ecd, 2), n
    (12.41, 2)
    """
    from skimage.measure import label, regionprops_table
    from skimage.segmentation import clear_border

    labels = clear_border(label(np.asarray(mask) > 0, connectivity=2))
    ecd = regionprops_table(labels, properties=("equivalent_diameter_area",))["equivalent_diameter_area"]
    if not len(ecd):
        return math.nan, 0
    order = np.argsort(ecd)
    weight = np.cumsum(ecd[order] ** 2)
    weighted_median = ecd[order][np.searchsorted(weight, 0.5 * weight[-1])]
    kept = ecd[ecd >= 0.5 * weighted_median]
    return float(np.median(kept)), int(len(kept))


def centre_crop(image: np.ndarray, max_side: int) -> np.ndarray:
    """The centre ``max_side`` x ``max_side`` (at most) of ``image``.

    Examples
    --------
    >>> centre_crop(np.zeros((100, 3000)), 1024).shape
    (100, 1024)
    """
    h, w = image.shape[:2]
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return image[top:top + min(h, max_side), left:left + min(w, max_side)]


def first_pass_pore_size(model: "SegmentationModel", grey: np.ndarray, *, max_side: int = 1024,
                         **predict: Any) -> tuple[float, int]:
    """Typical pore size of a micrograph: the median ECD (px) of the whole objects the model
    finds at scale 1 in the centre crop, specks left out (:func:`centre_crop`,
    :func:`median_object_ecd`).

    Parameters
    ----------
    model : SegmentationModel
    grey : (rows, cols) uint8 array
    max_side : int
        Side of the largest centre crop segmented, px.
    **predict
        Inference settings for :func:`porescope.measure.segment.predict_mask` (tile, overlap,
        batch_size, tta, backend, ...); ``scale`` is 1.

    Returns
    -------
    (median ECD in px, number of whole objects)

    Examples
    --------
    A "model" that calls pixels darker than mid-grey pores, on 9 digital discs of radius 4.5 px
    (69 px each: ECD 9.4 px):

    >>> import torch
    >>> from porescope.measure.segment import SegmentationModel
    >>> class Dark(torch.nn.Module):
    ...     def forward(self, x):
    ...         return 10.0 * (0.5 - x)
    >>> model = SegmentationModel(Dark(), {}, torch.device("cpu"))
    >>> yy, xx = np.mgrid[:96, :96]
    >>> grey = np.full((96, 96), 200, np.uint8)
    >>> for cy in (20, 48, 76):
    ...     for cx in (20, 48, 76):
    ...         grey[(yy - cy) ** 2 + (xx - cx) ** 2 <= 4.5 ** 2] = 10
    >>> ecd, n = first_pass_pore_size(model, grey, tile=64, overlap=16)
    >>> round(ecd, 1), n
    (9.4, 9)
    """
    from porescope.measure.segment import predict_mask

    ids = predict_mask(model, np.ascontiguousarray(centre_crop(grey, max_side)), scale=1.0, **predict)
    return median_object_ecd(ids)


def choose_scale(ecd_px: float, n_objects: int, trained_ecd_px: Sequence[float] | None,
                 params: ScaleAutoParams = ScaleAutoParams(), *, image_shape: tuple[int, int] | None = None,
                 max_pixels: int | None = None) -> AutoScale:
    """The resize factor that brings pores of ECD ``ecd_px`` to the trained median ECD.

    Parameters
    ----------
    ecd_px : float
        Estimated pore ECD of the image, px (NaN = no object found).
    n_objects : int
        Objects the estimate rests on.
    trained_ecd_px : (p5, p50, p95) or None
        ECD percentiles of the training objects, px (``meta.object_ecd_px``); ``None``: unknown
        (scale 1, flagged).
    params : ScaleAutoParams
    image_shape, max_pixels : optional
        The factor is also capped so that the resized image has at most ``max_pixels`` pixels.

    Returns
    -------
    AutoScale

    Examples
    --------
    >>> a = choose_scale(8.0, 40, (14.3, 19.4, 39.0))
    >>> round(a.scale, 3), a.flags
    (2.425, ())
    >>> choose_scale(4.0, 40, (14.3, 19.4, 39.0)).scale         # clipped, but in range
    4.0
    >>> a = choose_scale(3.0, 40, (14.3, 19.4, 39.0))
    >>> print(a.scale, a.flags[0])
    4.0 scale_auto_out_of_reach: pores of 3.0 px need a resize by 6.47 (allowed 0.25-4), at 4 they are 12.0 px, outside the trained 14-39 px
    >>> print(choose_scale(30.0, 3, (14.3, 19.4, 39.0)).flags[0])
    scale_auto_few_objects: the first pass found 3 whole objects (under 8): pore size 30.0 px uncertain
    """
    ecd_px = float(ecd_px)
    flags: list[str] = []
    if trained_ecd_px is None:
        return AutoScale(1.0, ecd_px, n_objects, math.nan,
                         flags=("scale_auto_no_target: the model file does not record its training "
                                "pore sizes (meta.object_ecd_px), not resized",))
    target = float(trained_ecd_px[1])
    if n_objects == 0 or not math.isfinite(ecd_px) or ecd_px <= 0:
        return AutoScale(1.0, math.nan, n_objects, target,
                         flags=("scale_auto_few_objects: the first pass found no whole object, "
                                "not resized",))
    if n_objects < params.min_objects:
        flags.append(f"scale_auto_few_objects: the first pass found {n_objects} whole objects "
                     f"(under {params.min_objects}): pore size {ecd_px:.1f} px uncertain")
    want = target / ecd_px
    hi = params.max_scale
    if image_shape is not None and max_pixels is not None:
        hi = min(hi, math.sqrt(max_pixels / (image_shape[0] * image_shape[1])))
    scale = min(max(want, params.min_scale), hi)
    p5, p95 = float(trained_ecd_px[0]), float(trained_ecd_px[2])
    if not p5 <= ecd_px * scale <= p95:     # clipped so far that the pores stay out of range
        flags.append(f"scale_auto_out_of_reach: pores of {ecd_px:.1f} px need a resize by "
                     f"{want:.3g} (allowed {params.min_scale:g}-{hi:.3g}), at {scale:.3g} they "
                     f"are {ecd_px * scale:.1f} px, outside the trained {p5:.0f}-{p95:.0f} px")
    return AutoScale(scale, ecd_px, n_objects, target, flags=tuple(flags))
