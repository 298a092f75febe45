"""Sliding-window inference of a segmentation network on a micrograph of any size.

The model is any ``torch.nn.Module`` that maps a float32 batch ``N x 1 x h x w`` to logits
``N x C x h x w``: ``C == 1`` is a binary model (sigmoid gives p(foreground)), ``C > 1`` a
multi-class model (softmax over the channels). smp models need ``h`` and ``w`` to be multiples
of 32, so ``tile`` should be one; this module does not enforce it because other models do not
need it.

How an image is cut (all pure functions below, so tests and the training loop can reuse them):

1. The image is mirror-padded (``numpy.pad(mode="reflect")``) by ``overlap // 2`` pixels on
   every side, so that border pixels are predicted with context instead of the network's zero
   padding, and further at the bottom / right up to one tile when it is smaller than a tile
   (:func:`padding_for`).
2. Windows of ``tile x tile`` pixels start every ``tile - overlap`` pixels along each axis, the
   last one moved back so that it ends exactly on the padded image's edge (:func:`tile_starts`);
   no window runs past the padded image.
3. Each window's probabilities are multiplied by a separable weight (:func:`window_weights`):
   zero in the outer ``overlap // 4`` pixels of each side (where a network with zero padding is
   least reliable), a raised-cosine (Hann) ramp over the next ``overlap - 2 * (overlap // 4)``
   pixels, and 1 in the middle. Two neighbouring windows a nominal stride apart ramp in and out
   over the same pixels with ``sin^2 + cos^2 = 1``, so the seams blend smoothly. Products are
   accumulated in one preallocated float32 array and divided by the accumulated weight, which
   for a separable weight on a Cartesian grid of windows is the outer product of two 1-D sums
   and therefore never stored as an image.
4. The padding is cropped away.

Consequence used by the tests: when the network's receptive-field radius is at most
``overlap // 4``, every pixel that receives a non-zero weight from a window is computed from
input pixels inside that window (or at the padded image's own edge, where an untiled run sees
the same zero padding), so tiled inference equals untiled inference on the padded image up to
float rounding.

Memory: windows are cut ``batch_size`` at a time from the padded image (kept in its input dtype,
uint8 for micrographs) and normalised per batch; besides the model, the arrays held are the
padded image, the ``C x H_pad x W_pad`` float32 accumulator and the ``C x H x W`` float32 result.
A 4096 x 4096 uint8 micrograph with a binary model needs about 17 + 69 + 67 MB of arrays.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "normalise",
    "tile_starts",
    "window_weights",
    "padding_for",
    "predict_proba",
    "predict_mask",
    "decide",
    "area_matching_threshold",
]


def normalise(image: np.ndarray) -> np.ndarray:
    """Map a uint8 grey image (any shape) to float32 intensities in [0, 1] (``image / 255``).

    This is the single definition of the network input scale, shared by training and inference.

    Raises
    ------
    TypeError
        If ``image`` is not a uint8 array.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"normalise: image must be uint8 grey, got dtype {image.dtype}")
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def _check_tiling(tile: int, overlap: int) -> None:
    if int(tile) != tile or tile < 1:
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    if int(overlap) != overlap or overlap < 0 or 2 * overlap > tile:
        raise ValueError(f"overlap must be an integer in [0, tile // 2] = [0, {tile // 2}], got {overlap!r}")


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets of ``tile``-long windows covering ``[0, length)`` along one axis.

    Windows start every ``tile - overlap`` pixels; the last start is ``length - tile`` so that the
    last window ends exactly at ``length`` (it may then overlap its neighbour by more than
    ``overlap``). Starts are strictly increasing and unique.

    Parameters
    ----------
    length : int
        Axis length in pixels; must be ``>= tile`` (pad first, see :func:`padding_for`).
    tile, overlap : int
        Window size and nominal overlap in pixels, ``0 <= overlap <= tile // 2``.

    Returns
    -------
    numpy.ndarray of int64
    """
    _check_tiling(tile, overlap)
    if length < tile:
        raise ValueError(f"length {length} is smaller than tile {tile}; pad the image to at least one tile")
    stride = tile - overlap
    n = -(-(length - tile) // stride) + 1  # ceil division: enough windows to reach the end
    starts = np.arange(n, dtype=np.int64) * stride
    starts[-1] = length - tile
    return starts


def window_weights(tile: int, overlap: int) -> np.ndarray:
    """1-D blending weight of a window (float64, length ``tile``, values in [0, 1]).

    With ``dead = overlap // 4`` and ``ramp = overlap - 2 * dead``: 0 on the first and last
    ``dead`` pixels, ``sin^2(pi/2 * (i + 0.5) / ramp)`` for ``i = 0 .. ramp-1`` on the next ones
    (mirrored at the other end), 1 in the middle. For ``overlap == 0`` all ones. The 2-D weight of
    a window is the outer product of this profile with itself.
    """
    _check_tiling(tile, overlap)
    w = np.ones(tile, dtype=np.float64)
    if overlap == 0:
        return w
    dead = overlap // 4
    ramp = overlap - 2 * dead
    up = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
    w[:dead] = 0.0
    w[dead : dead + ramp] = up
    w[tile - dead - ramp : tile - dead] = up[::-1]
    if dead:
        w[tile - dead :] = 0.0
    return w


def padding_for(shape: tuple[int, int], tile: int, overlap: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Mirror-padding ``((top, bottom), (left, right))`` that :func:`predict_proba` applies.

    ``overlap // 2`` pixels on every side, plus at the bottom / right whatever is missing to make
    the padded image at least one tile in each direction.
    """
    _check_tiling(tile, overlap)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (rows, cols) with both >= 1, got {shape!r}")
    margin = overlap // 2
    pads = []
    for n in shape:
        extra = max(0, tile - (int(n) + 2 * margin))
        pads.append((margin, margin + extra))
    return pads[0], pads[1]


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _batches(ys: np.ndarray, xs: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    for i in range(0, len(grid), batch_size):
        yield grid[i : i + batch_size]


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def predict_proba(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    tile: int = 256,
    overlap: int = 64,
    batch_size: int = 4,
    tta: bool = False,
    device: str | torch.device | None = None,
    amp: bool = False,
) -> np.ndarray:
    """Class probabilities of a whole micrograph by blended sliding-window inference.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 ``N x 1 x tile x tile`` to logits ``N x C x tile x tile``. Put in eval mode
        for the call (its previous train/eval mode is restored afterwards) and run under
        ``torch.inference_mode``.
    image : numpy.ndarray
        2-D ``(rows, cols)`` grey image: uint8 (scaled by :func:`normalise`) or floating point
        (taken as already normalised, cast to float32). Any size, 1 x 1 included.
    tile : int
        Window size in pixels (a multiple of 32 for smp models).
    overlap : int
        Nominal overlap of neighbouring windows in pixels, ``0 <= overlap <= tile // 2``; see the
        module docstring for the blending weight and the border padding it implies.
    batch_size : int
        Windows per forward pass.
    tta : bool
        Average the probabilities over identity, horizontal, vertical and both flips (each flipped
        back before averaging); 4 forward passes per window.
    device : str, torch.device or None
        Where the model runs. ``None`` (default): the device of the model's parameters. Given
        explicitly, the model is moved there (``Module.to`` acts in place).
    amp : bool
        Run the forward pass under ``torch.autocast`` (float16) when the device is CUDA; ignored
        on CPU. Probabilities are computed and accumulated in float32 either way.

    Returns
    -------
    numpy.ndarray
        float32 ``C x rows x cols``; for a binary model ``C == 1`` holding p(foreground), for a
        multi-class model the softmax probabilities (summing to 1 over axis 0 up to rounding).

    Raises
    ------
    ValueError / TypeError
        On a non-2-D or empty image, unsupported dtype, bad tiling arguments or a model whose
        output is not ``N x C x tile x tile``.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"predict_proba: image must be a non-empty 2-D (rows, cols) array, got shape {image.shape}")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"predict_proba: image must be uint8 or floating point, got dtype {image.dtype}")
    _check_tiling(tile, overlap)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"predict_proba: batch_size must be a positive integer, got {batch_size!r}")

    if device is None:
        dev = _model_device(model)
    else:
        dev = torch.device(device)
        model.to(dev)
    use_amp = bool(amp) and dev.type == "cuda"
    if amp and not use_amp:
        log.debug("amp requested on %s: ignored (autocast is used on CUDA only)", dev)

    rows, cols = image.shape
    (top, bottom), (left, right) = padding_for((rows, cols), tile, overlap)
    padded = np.pad(image, ((top, bottom), (left, right)), mode="reflect")
    hp, wp = padded.shape
    ys = tile_starts(hp, tile, overlap)
    xs = tile_starts(wp, tile, overlap)
    w1 = window_weights(tile, overlap)
    w2 = np.outer(w1, w1).astype(np.float32)

    flips: list[tuple[int, ...]] = [()]
    if tta:
        flips = [(), (3,), (2,), (2, 3)]

    acc: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(ys, xs, int(batch_size)):
                windows = np.stack([padded[y : y + tile, x : x + tile] for y, x in batch])
                windows = normalise(windows) if windows.dtype == np.uint8 else windows.astype(np.float32)
                inp = torch.from_numpy(windows[:, None]).to(dev)
                prob = None
                for dims in flips:
                    x_in = torch.flip(inp, dims) if dims else inp
                    ctx = torch.autocast(device_type="cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
                    with ctx:
                        logits = model(x_in)
                    if logits.ndim != 4 or logits.shape[0] != len(batch) or logits.shape[2:] != (tile, tile):
                        raise ValueError(
                            f"predict_proba: model output shape {tuple(logits.shape)} is not "
                            f"(N={len(batch)}, C, {tile}, {tile})"
                        )
                    p = _probabilities(logits)
                    if dims:
                        p = torch.flip(p, dims)
                    prob = p if prob is None else prob + p
                if len(flips) > 1:
                    prob = prob / len(flips)
                prob_np = prob.cpu().numpy()
                if acc is None:
                    acc = np.zeros((prob_np.shape[1], hp, wp), dtype=np.float32)
                prob_np *= w2
                for (y, x), p in zip(batch, prob_np):
                    acc[:, y : y + tile, x : x + tile] += p
    finally:
        model.train(was_training)

    assert acc is not None  # at least one window always exists
    wy = np.zeros(hp, dtype=np.float64)
    for y in ys:
        wy[y : y + tile] += w1
    wx = np.zeros(wp, dtype=np.float64)
    for x in xs:
        wx[x : x + tile] += w1
    out = acc[:, top : top + rows, left : left + cols]
    out /= wy[top : top + rows, None].astype(np.float32)
    out /= wx[None, left : left + cols].astype(np.float32)
    return np.ascontiguousarray(out)


def decide(proba: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """uint8 class ids from ``C x H x W`` probabilities (the decision of :func:`predict_mask`).

    Binary (``C == 1``): 1 where p(foreground) > ``threshold``, else 0 (0.5 = the logit-0 rule;
    a model file may carry an area-calibrated threshold, see :func:`area_matching_threshold`).
    Multi-class: ``argmax`` over the classes (ties -> the lower class id; no threshold).
    """
    if proba.shape[0] == 1:
        return (proba[0] > threshold).astype(np.uint8)
    if proba.shape[0] > 256:
        raise ValueError(f"decide: {proba.shape[0]} classes do not fit in uint8 class ids")
    return np.argmax(proba, axis=0).astype(np.uint8)


def predict_mask(model: torch.nn.Module, image: np.ndarray, *, threshold: float = 0.5, **kw) -> np.ndarray:
    """uint8 class ids of a micrograph: :func:`predict_proba` then :func:`decide` per pixel.

    Other keyword arguments are passed to :func:`predict_proba`.
    """
    return decide(predict_proba(model, image, **kw), threshold)


def area_matching_threshold(proba: np.ndarray, truth: np.ndarray, *, low: float = 0.2,
                            high: float = 0.8) -> float:
    """The probability threshold at which the predicted foreground area equals the true area.

    Porosity is an area fraction, so a segmentation that is unbiased in area matters more for a
    certificate than the 0.5 rule: a network trained with Dice/BCE tends to place boundaries a
    fraction of a pixel inside small pores, which biases porosity low by a few percent (relative).
    Given validation probabilities ``proba`` (any shape) and the boolean truth of the same shape,
    returns ``t`` such that ``(proba > t).sum() ~= truth.sum()``: the ``n_true``-th largest
    probability. Clipped to ``[low, high]`` so a degenerate validation set cannot push the rule
    far from 0.5.
    """
    p = np.asarray(proba, dtype=np.float32).ravel()
    n_true = int(np.count_nonzero(truth))
    if p.size != np.asarray(truth).size:
        raise ValueError(f"proba has {p.size} values, truth {np.asarray(truth).size}")
    if n_true == 0 or n_true >= p.size:
        return 0.5
    kth = p.size - n_true  # pixels strictly above the k-th smallest value are foreground
    t = float(np.partition(p, kth - 1)[kth - 1])
    return float(np.clip(t, low, high))
