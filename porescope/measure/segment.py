"""Segmenting a micrograph with a trained porescope model, at the model's pixel size.

The network only knows the pore sizes (in pixels) it was trained on. With both the image's and
the model's training pixel size known (the model file's ``meta.pixel_size_nm``), the image is
resized by ``image nm/px / model nm/px`` before inference (``cv2.INTER_AREA`` to shrink,
``INTER_LINEAR`` to enlarge) and the class probabilities are resized back (``INTER_LINEAR``)
before the per-pixel decision (:func:`resize_factor`, :func:`predict_mask`). Masks always have
the image's own size.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from porescope.config import ParamsError

if TYPE_CHECKING:  # torch is imported only when a model is loaded
    import torch

    from porescope.measure.params import MeasureParams


@dataclass(frozen=True)
class SegmentationModel:
    """A loaded porescope model: the network (eval mode), its file's contents and its device."""

    network: "torch.nn.Module"
    payload: Mapping[str, Any]
    device: "torch.device"

    @property
    def threshold(self) -> float:
        """Binary decision threshold stored with the model (else 0.5)."""
        from porescope.segmentation.models import decision_threshold

        return decision_threshold(self.payload)

    @property
    def pixel_size_nm(self) -> float | None:
        """Pixel size of the training images (``meta.pixel_size_nm``), or None."""
        return model_pixel_size_nm(self.payload)

    @property
    def class_names(self) -> Mapping[Any, str] | None:
        """Class id -> name of the model's output."""
        return self.payload.get("class_names")


def load_model(path: str | os.PathLike, device: str = "auto") -> SegmentationModel:
    """Load a porescope model file.

    Parameters
    ----------
    path : path
        A model file written by the ``train`` stage (``models/model.pt``).
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``.

    Returns
    -------
    SegmentationModel
        ``.network`` (a ``torch.nn.Module`` in eval mode), ``.payload`` (the file's contents),
        ``.device``, ``.threshold``, ``.pixel_size_nm``, ``.class_names``.

    Raises
    ------
    ModelFileError
        Missing file, or not a porescope model file.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from porescope.segmentation import models
    >>> cfg = models.model_config("Unet", "mobilenet_v2", 1, encoder_depth=3,
    ...                           decoder_channels=[16, 8, 4])
    >>> path = Path(tempfile.mkdtemp()) / "model.pt"
    >>> _ = torch.manual_seed(0)
    >>> _ = models.save_model_file(path, models.build_model(cfg), cfg,
    ...                            {"0": "background", "1": "pore"}, {"pixel_size_nm": 25.0})
    >>> model = load_model(path, device="cpu")
    >>> model.pixel_size_nm, model.threshold
    (25.0, 0.5)
    """
    from porescope.segmentation.devices import select_device
    from porescope.segmentation.models import ModelFileError, load_model as load_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found; train a model (dvc repro train) or give "
                             "the path of a porescope model file")
    dev = select_device(device)
    network, payload = load_file(path, dev)
    return SegmentationModel(network, payload, dev)


@functools.lru_cache(maxsize=2)
def _cached_model(model_path: str, stamp: tuple[int, int], device: str, threads: int
                  ) -> SegmentationModel:
    """Loaded once per process and model file version."""
    from porescope.segmentation.devices import configure_cpu_threads, select_device
    from porescope.segmentation.models import load_model as load_file

    dev = select_device(device)
    configure_cpu_threads(threads)
    network, payload = load_file(model_path, dev)
    return SegmentationModel(network, payload, dev)


def load_model_cached(model_path: str | os.PathLike, params: "MeasureParams") -> SegmentationModel:
    """The model of ``model_path`` for ``params`` (device, threads), cached by path, size and
    mtime, so that a worker process loads it once."""
    path = Path(model_path)
    if not path.is_file():
        from porescope.segmentation.models import ModelFileError

        raise ModelFileError(f"{path}: file not found; train a model (dvc repro train) or give "
                             "the path of a porescope model file")
    st = path.stat()
    return _cached_model(str(path.resolve()), (st.st_size, st.st_mtime_ns), params.device,
                         params.threads)


def model_pixel_size_nm(payload: Mapping[str, Any]) -> float | None:
    """Training pixel size recorded in a model file (``meta.pixel_size_nm``), or None."""
    v = (payload.get("meta") or {}).get("pixel_size_nm")
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return float(v) if ok else None


def resize_factor(image_px: float | None, model_px: float | None, params: "MeasureParams"
                  ) -> tuple[float, str]:
    """``(factor, source)``: how much to enlarge the image before inference, and why.

    ``params.scale`` when set, else ``image_px / model_px`` with ``params.resample_to_model``
    and both known, else 1. ``scale: auto`` needs the image and the model
    (:mod:`porescope.measure.scale_auto`), not this function.
    """
    if params.scale == "auto":
        raise ValueError("resize_factor: scale 'auto' is chosen from the image (porescope.measure.scale_auto)")
    if params.scale is not None:
        return float(params.scale), "scale"
    if params.resample_to_model and image_px and model_px:
        return image_px / model_px, "pixel sizes"
    return 1.0, "none"


def predict_mask(model: SegmentationModel | str | os.PathLike, image: np.ndarray, *,
                 scale: float = 1.0, tile: int = 256, overlap: int = 64, batch_size: int = 4,
                 tta: bool = False, max_pixels: int = 64_000_000, name: str = "image",
                 backend: str = "torch", return_uncertain: bool = False, margin: int = 0
                 ) -> np.ndarray | tuple[np.ndarray, int]:
    """Class ids of a grey micrograph by sliding-window inference, optionally resized.

    Parameters
    ----------
    model : SegmentationModel or path
        From :func:`load_model`, or a model file (loaded on the CPU / GPU, ``device="auto"``).
    image : (rows, cols) uint8 array
        Grey micrograph (e.g. ``read_micrograph(...).image``).
    scale : float
        Resize factor before inference (2 = enlarge twice); probabilities are resized back.
    tile, overlap, batch_size, tta, backend
        Sliding-window inference (:func:`porescope.segmentation.inference.predict_proba`;
        backend ``"onnxruntime"`` or ``"auto"`` runs the network in ONNX Runtime on a CPU).
    max_pixels : int
        Largest resized image that inference may be run on.
    name : str
        The image's name in messages.
    return_uncertain : bool
        Also return the number of pixels whose probability of "any object" (1 - p(background);
        a binary model's p) lies strictly between 0.25 and 0.75, for the quality guard
        (:func:`porescope.measure.quality.uncertain_pixels`).
    margin : int
        Uncertain pixels are counted only this many px or more inside every edge (the analysed
        region of ``measure.margin_px``), so that their share of the analysed pore area is right.

    Returns
    -------
    (rows, cols) uint8 array
        Class ids (binary model: 1 = pore where p > the model's threshold); with
        ``return_uncertain`` a tuple ``(ids, uncertain pixel count)``.

    Notes
    -----
    At ``scale`` 1 the probabilities are decided band by band as the sliding window moves down
    (:func:`porescope.segmentation.inference.predict_proba_bands`), so no image-sized float map
    is held: a 16000 x 16000 micrograph needs its own 256 MB plus the 256 MB of class ids. A
    resized image's probabilities are resized back as a whole (4 B per pixel and class).

    Examples
    --------
    Any network mapping ``N x 1 x h x w`` to logits ``N x C x h x w`` will do; here a
    "model" that calls pixels darker than mid-grey pores:

    >>> import numpy as np, torch
    >>> class Dark(torch.nn.Module):
    ...     def forward(self, x):
    ...         return 10.0 * (0.5 - x)
    >>> model = SegmentationModel(Dark(), {}, torch.device("cpu"))
    >>> image = np.full((70, 90), 200, np.uint8)
    >>> image[20:30, 40:60] = 10
    >>> mask = predict_mask(model, image, tile=64, overlap=16)
    >>> mask.shape, int(mask.sum())
    ((70, 90), 200)
    >>> int(predict_mask(model, image, scale=0.5, tile=32, overlap=8).sum())
    200
    """
    import cv2

    from porescope.measure.quality import uncertain_pixels
    from porescope.segmentation.inference import decide, predict_proba, predict_proba_bands

    if not isinstance(model, SegmentationModel):
        model = load_model(model)
    device, threshold = model.device, model.threshold
    kw = dict(tile=tile, overlap=overlap, batch_size=batch_size, tta=tta, device=device,
              amp=device.type == "cuda", backend=backend)
    h, w = image.shape

    def unsure(proba: np.ndarray, r0: int) -> int:
        """Uncertain pixels of the rows ``r0...`` of ``proba`` inside the margin."""
        fg = proba[0] if proba.shape[0] == 1 else 1.0 - proba[0]
        a, b = max(margin - r0, 0), min(h - margin - r0, fg.shape[0])
        return uncertain_pixels(fg[a:b, margin:w - margin]) if b > a and w > 2 * margin else 0

    if abs(scale - 1.0) < 1e-9:
        ids = np.empty((h, w), np.uint8)
        n_uncertain = 0
        for r0, band in predict_proba_bands(model.network, image, **kw):
            ids[r0:r0 + band.shape[1]] = decide(band, threshold)
            if return_uncertain:
                n_uncertain += unsure(band, r0)
        return (ids, n_uncertain) if return_uncertain else ids
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size[0] * size[1] > max_pixels:
        raise ParamsError(f"{name}: resizing by {scale:.4g} would give a {size[0]}x{size[1]} image "
                          f"(more than measure.max_pixels = {max_pixels}); check the pixel "
                          "sizes (image vs the model's training pixel size) or set measure.scale / "
                          "--scale (e.g. 1)")
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interp)
    small = predict_proba(model.network, resized, **kw)
    proba = np.stack([cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_LINEAR)
                      for c in small])
    ids = decide(proba, threshold)
    return (ids, unsure(proba, 0)) if return_uncertain else ids
