"""Measuring one micrograph: read it, segment it (or take a given mask), measure the mask.

Per image (:func:`measure_one` for a file, :func:`measure_micrograph` for an array):

1. read, first page, grey (BT.601), >8-bit -> uint8 (``normalisation``), the SEM data bar
   dropped (``crop_bottom`` rows or ``auto``) - :func:`porescope.io.micrograph.read_micrograph`;
   ``margin_px`` pixels at every edge are left out of the analysis (a frame around an exported
   image; the network still sees them as context);
2. pixel size: the given one, else the TIFF metadata, else unknown (pixel units only,
   densities per px^2);
3. segmentation at the model's training pixel size (:mod:`porescope.measure.segment`), at an
   explicit ``scale``, or with ``scale: auto`` at the factor that brings the image's estimated
   pore size to the trained one (:mod:`porescope.measure.scale_auto`);
4. with ``min_region_contrast``, the predicted (or given) regions that are not darker than
   the surface around them are removed (:mod:`porescope.measure.pale_regions`);
5. the analysis of the mask: :func:`porescope.analysis.membrane.analyse_mask` (the ``analyze``
   settings, ``MeasureParams.analysis``), with a generator that depends only on the seed and
   the image id.

:func:`measure_one` is a pure function of picklable arguments, so images can be distributed to
processes or a Dask cluster; results do not depend on the order.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from porescope.analysis import membrane as ma
from porescope.io.images import image_size
from porescope.io.pairing import IngestError
from porescope.io.micrograph import Micrograph, read_micrograph
from porescope.analysis.figures import OutlineCanvas
from porescope.measure.pale_regions import drop_pale_regions
from porescope.measure.quality import ObjectPixels, quality_flags
from porescope.measure.params import MeasureParams
from porescope.measure.scale_auto import AutoScale, choose_scale, first_pass_pore_size
from porescope.measure.segment import (
    SegmentationModel,
    load_model_cached,
    predict_mask,
    resize_factor,
)

LOG = logging.getLogger("porescope.measure")
#: the measure pipeline has always wanted more than 8 rows left after the crop
_MIN_ROWS = 9


@dataclass
class MeasureResult:
    """What :func:`measure_one` returns for one image.

    image_id (file stem), grey (uint8 analysed image, data bar cropped), mask (uint8 class ids
    at the file's full size, 0 in the cropped rows and the margin), analysis (ImageAnalysis),
    info (dict: image_file, format, orig_height, orig_width, crop_bottom, pixel_size_nm,
    pixel_size_source, model_pixel_size_nm, scale, scale_source, with ``scale: auto`` also
    scale_method, scale_estimate_ecd_px, scale_estimate_n_objects, scale_target_ecd_px;
    normalisation, warnings).
    """

    image_id: str
    grey: np.ndarray | None
    mask: np.ndarray | None
    analysis: ma.ImageAnalysis
    info: dict[str, Any]
    #: output images already encoded (relative path -> PNG bytes); a folder run keeps these and
    #: drops ``grey``, ``mask`` and ``analysis.labels`` so memory does not grow with the images
    files: dict[str, bytes] = field(default_factory=dict)
    #: an image analysed in bands (no whole ``analysis.labels``), when asked for: its outlines,
    #: drawn band by band (:class:`~porescope.analysis.figures.OutlineCanvas`)
    overlay: OutlineCanvas | None = None

    @property
    def summary(self) -> dict[str, Any]:
        """One flat row: the analysis summary and the image info (``summary.csv``)."""
        info = {k: v for k, v in self.info.items() if k != "pixel_size_nm"}
        return {**self.analysis.summary, **info}


def _measure(mg: Micrograph, image_id: str, params: MeasureParams, *, image_file: str,
             model: SegmentationModel | None = None, mask: np.ndarray | None = None,
             warnings: list[str] | None = None, name: str | None = None,
             overlay: bool = False) -> MeasureResult:
    """Segment (with ``model``) or take ``mask`` (the cropped image's shape), then measure.

    An image of more than ``params.band_pixels`` pixels is analysed in bands (its labels are
    never whole): the guard's pixel statistics and, with ``overlay``, the outline overlay are
    gathered band by band."""
    name = name or image_id
    warnings = list(warnings or []) + list(mg.warnings)
    grey = mg.image
    oh, ow = mg.orig_shape
    crop = mg.crop_bottom
    margin = params.margin_px
    left = (grey.shape[0] - 2 * margin, grey.shape[1] - 2 * margin)
    if min(grey.shape) < _MIN_ROWS:
        raise IngestError(name, f"the image is {grey.shape[1]} x {grey.shape[0]} px (at least "
                                f"{_MIN_ROWS} x {_MIN_ROWS} needed)")
    if min(left) < _MIN_ROWS:
        raise IngestError(name, f"margin_px = {margin} leaves {max(0, left[1])} x {max(0, left[0])} px "
                                f"of the {grey.shape[1]} x {grey.shape[0]} px image (at least "
                                f"{_MIN_ROWS} x {_MIN_ROWS} needed); lower margin_px")
    px = mg.pixel_size_nm
    px_src = mg.pixel_size_source if px is not None else "unknown"
    model_px, factor, factor_src, class_names, auto = None, 1.0, "none", None, None
    infer = dict(tile=params.tile, overlap=params.overlap, batch_size=params.batch_size,
                 tta=params.tta, max_pixels=params.max_pixels, name=name, backend=params.backend)
    if model is not None:
        model_px = model.pixel_size_nm
        trained = (model.payload.get("meta") or {}).get("object_ecd_px")
        if params.scale == "auto":
            auto = _auto_scale(model, grey, trained, params, infer)
            factor, factor_src = auto.scale, "auto"
        else:
            factor, factor_src = resize_factor(px, model_px, params)
        if not (0.25 <= factor <= 4.0):
            warnings.append(f"resized by {factor:.3g} before inference ({factor_src}); the model "
                            "may see pores far from the sizes it was trained on")
        # uncertain pixels counted during inference: no float map of a big micrograph is kept
        pred, n_uncertain = predict_mask(model, grey, scale=factor, return_uncertain=True,
                                         margin=margin, **infer)
        class_names = model.class_names
    else:
        pred, n_uncertain, trained = mask, None, None
    pale = None
    if params.min_region_contrast is not None:
        # our own prediction is cleared in place; a given mask is the caller's
        pred, pale = drop_pale_regions(grey, pred, params.min_region_contrast,
                                       overlay_level=params.quality.overlay_level,
                                       band_pixels=params.band_pixels, in_place=model is not None)
    banded = pred.size > params.band_pixels
    pixels = ObjectPixels(grey, params.quality) if banded else None
    canvas = OutlineCanvas(grey.shape) if banded and overlay else None

    def on_labels(r0: int, labels: np.ndarray) -> None:
        pixels.add(r0, labels)
        if canvas is not None:
            canvas.add(r0, labels)

    analysis = ma.analyse_mask(pred, pixel_size_nm=px, params=params.analysis,
                               rng=ma.image_rng(params.seed, image_id, "measure"),
                               image_id=image_id, margin=margin, class_names=class_names,
                               band_pixels=params.band_pixels if banded else None,
                               on_labels=on_labels if banded else None)
    quality = quality_flags(grey, analysis.labels, pixels=pixels, n_uncertain=n_uncertain,
                            scale=factor, trained_ecd_px=trained, limits=params.quality,
                            flags=auto.flags if auto is not None else ())
    if model is not None and trained is None:
        warnings.append("the model file does not record its training pore sizes: size checks skipped")
    h_a = oh - crop
    if model is not None and crop == 0:
        full = pred     # our own prediction: the margin is cleared in place, no second copy
        for strip in (full[:margin], full[h_a - margin:], full[:, :margin], full[:, ow - margin:]):
            strip[...] = 0
    else:
        full = np.zeros((oh, ow), np.uint8)
        full[margin:h_a - margin, margin:ow - margin] = pred[margin:h_a - margin, margin:ow - margin]
    for w in warnings:
        LOG.warning("%s: %s", name, w)
    info = {"image_file": image_file, "format": mg.format, "orig_height": oh, "orig_width": ow,
            "crop_bottom": crop, "pixel_size_nm": px if px is not None else math.nan,
            "pixel_size_source": px_src,
            "model_pixel_size_nm": model_px if model_px is not None else math.nan,
            "scale": factor, "scale_source": factor_src,
            **(auto.columns() if auto is not None else {}), "normalisation": mg.normalisation,
            "certified": "yes" if quality.certified else "no",
            "quality_flags": "; ".join(quality.flags),
            **{f"quality_{k}": v for k, v in quality.values.items() if k != "n_objects"},
            "warnings": "; ".join(warnings)}
    if pale is not None:    # only then: the summary of a run without the rule is unchanged
        info["pale_regions_dropped"] = pale
    return MeasureResult(image_id, grey, full, analysis, info, overlay=canvas)


def _auto_scale(model: SegmentationModel, grey: np.ndarray, trained: Any, params: MeasureParams,
                infer: dict[str, Any]) -> AutoScale:
    """``scale: auto``: the first pass at scale 1 and the factor it asks for."""
    ecd, n = first_pass_pore_size(model, grey, max_side=params.scale_auto.max_side, **infer)
    return choose_scale(ecd, n, trained, params.scale_auto, image_shape=grey.shape,
                        max_pixels=params.max_pixels)


def measure_one(image_path: str | os.PathLike, model_path: str | os.PathLike,
                params: MeasureParams, *, overlay: bool = False) -> MeasureResult:
    """Read, segment and measure one micrograph file (see the module docstring).

    Pure in its arguments (the model is loaded once per process and cached), so calls can run
    in any order or process with identical results. ``overlay``: a big image analysed in bands
    also returns its outline overlay (``MeasureResult.overlay``). Raises ``IngestError`` (unreadable /
    unsupported file, more than ``params.max_pixels`` pixels, crop or margin too large), ``ModelFileError`` or ``ParamsError``, naming the file.
    """
    path = Path(image_path)
    model = load_model_cached(model_path, params)
    # the header against measure.max_pixels before anything is decoded (read_micrograph's own
    # limit is the reader's default, made for ingest)
    image_size(path, "first", max_pixels=params.max_pixels)
    mg = read_micrograph(path, crop_bottom=params.crop_bottom, pixel_size_nm=params.pixel_size_nm,
                         normalisation=params.normalisation, normalise_before_crop=True,
                         min_rows=_MIN_ROWS, scale_bar=params.scale_bar)
    pages = [f"{mg.n_pages} pages; only the first was measured"] if mg.n_pages > 1 else []
    return _measure(mg, path.stem, params, image_file=path.name, model=model, warnings=pages,
                    name=str(path), overlay=overlay)


def measure_micrograph(image: np.ndarray, model: SegmentationModel | str | os.PathLike | None = None,
                       mask: np.ndarray | None = None, pixel_size_nm: float | None = None, *,
                       crop_bottom: int | str | None = None, margin_px: int | None = None,
                       params: MeasureParams | None = None, image_id: str = "image"
                       ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measure the pores of one micrograph held in memory.

    Parameters
    ----------
    image : (rows, cols) or (rows, cols, 3) array
        The micrograph, any dtype (more than 8 bits are scaled to 8 as the pipeline does).
    model : SegmentationModel or path, optional
        Segment the image with this model (:func:`porescope.measure.segment.load_model`, or a
        model file). Give either ``model`` or ``mask``.
    mask : (rows, cols) array, optional
        Measure this mask instead (non-zero = pore), of the image's shape, or of its shape
        without the ``crop_bottom`` rows.
    pixel_size_nm : float, optional
        nm per pixel; unknown: lengths and densities in pixels only.
    crop_bottom : int or "auto", optional
        Rows of an SEM data bar at the bottom to leave out (default: ``params.crop_bottom``).
    margin_px : int, optional
        Pixels left out at every edge (default: ``params.margin_px``).
    params : MeasureParams, optional
        Inference and analysis settings (defaults = ``params.yaml``).
    image_id : str
        First column of the tables.

    Returns
    -------
    objects : pandas.DataFrame
        One row per object, ImageJ column names (``Area``, ``Perim.``, ``Feret``, ...).
    summary : dict
        Porosity, the three pore counts, densities, size statistics, spatial verdicts and how
        the image was read (``crop_bottom``, ``pixel_size_source``, ``scale``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> mask = np.zeros((128, 128), np.uint8)
    >>> for cy, cx in [(30, 30), (30, 90), (90, 40), (95, 100)]:
    ...     mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = 1
    >>> image = np.where(mask > 0, 20, 140).astype(np.uint8)
    >>> objects, summary = measure_micrograph(image, mask=mask, pixel_size_nm=100.0)
    >>> len(objects), round(summary["porosity"], 3), summary["pixel_size_source"]
    (4, 0.048, 'given')
    """
    params = params or MeasureParams()
    changes = {k: v for k, v in (("pixel_size_nm", pixel_size_nm), ("crop_bottom", crop_bottom),
                                 ("margin_px", margin_px)) if v is not None}
    params = replace(params, **changes)
    if (model is None) == (mask is None):
        raise ValueError("measure_micrograph: give either model (to segment the image) or mask")
    mg = read_micrograph(np.asarray(image), crop_bottom=params.crop_bottom,
                         pixel_size_nm=params.pixel_size_nm, normalisation=params.normalisation,
                         normalise_before_crop=True, min_rows=_MIN_ROWS, scale_bar=params.scale_bar)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape == mg.orig_shape:
            mask = mask[:mg.image.shape[0]]
        elif mask.shape != mg.image.shape:
            raise ValueError(f"{image_id}: mask shape {mask.shape} is neither the image's "
                             f"{mg.orig_shape} nor its shape without the data bar {mg.image.shape}")
        mask = np.ascontiguousarray(mask)
    elif not isinstance(model, SegmentationModel):
        model = load_model_cached(model, params)
    result = _measure(mg, image_id, params, image_file=image_id, model=model, mask=mask)
    return result.analysis.objects, result.summary
