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

Speed (opt-in; the defaults give the same probabilities as before, bit for bit):
``backend="onnxruntime"`` (or ``"auto"`` on a CPU) runs the network in ONNX Runtime
(:mod:`porescope.segmentation.onnx_runtime`), several times faster than torch eager on a CPU with
probabilities equal up to about 1e-6; ``tile="auto"`` picks the window of :func:`throughput_window`
(one 1056-px window for a 1024-px image instead of 36 windows of 256 px), which costs about 1.06 x
the image's pixels instead of 2.25 x but gives the network more context, so its probabilities
differ slightly from those of 256-px windows.
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
    "throughput_tile",
    "throughput_window",
    "resolve_backend",
    "predict_proba",
    "predict_proba_bands",
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


def _windows_cost(shape: tuple[int, int], tile: int, overlap: int) -> int:
    """Pixels the network processes for an image: windows x tile^2 (after :func:`padding_for`)."""
    (top, bottom), (left, right) = padding_for(shape, tile, overlap)
    ny = len(tile_starts(shape[0] + top + bottom, tile, overlap))
    nx = len(tile_starts(shape[1] + left + right, tile, overlap))
    return ny * nx * tile * tile


def throughput_tile(shape: tuple[int, int], overlap: int = 64, *, multiple: int = 32, min_tile: int = 256,
                    max_tile: int = 1536) -> int:
    """The window side that makes tiled inference of a ``shape`` image cheapest.

    Among multiples of ``multiple`` in ``[min_tile, max_tile]`` (and at least ``2 * overlap``), the
    tile whose windows cover the fewest pixels in total (window count x tile^2, with the mirror
    padding of :func:`padding_for`); ties go to the smaller tile. For a 1024 x 1024 image and
    ``overlap=64`` that is one 1088-px window (1.13 x the image's pixels, against 2.25 x for
    256-px windows); for 4096 x 4096, 9 windows of 1440 px (1.11 x). ``max_tile`` bounds the
    memory of one window (about 0.3 GB of activations for the default network at 1536 px).

    Examples
    --------
    >>> throughput_tile((1024, 1024))
    1088
    >>> throughput_tile((100, 3000))
    256
    """
    _check_tiling(int(min_tile), 0)
    lo = max(int(min_tile), 2 * int(overlap))
    lo = -(-lo // multiple) * multiple
    best, best_cost = None, None
    for tile in range(lo, max(lo, int(max_tile)) + 1, multiple):
        cost = _windows_cost(tuple(shape), tile, overlap)
        if best_cost is None or cost < best_cost:
            best, best_cost = tile, cost
    assert best is not None
    return best


def throughput_window(shape: tuple[int, int], overlap: int = 64, *, multiple: int = 32, min_tile: int = 256,
                      max_tile: int = 1536) -> tuple[int, int]:
    """Window side and overlap of ``tile="auto"``: :func:`throughput_tile`, or one smaller window.

    When a single window covers the image there is no seam to blend, so the margin around the
    image only has to clear the window's dead zone (``overlap // 4`` pixels of zero weight, where
    a network with zero padding is least reliable): that window is taken with ``overlap // 2``
    (margin ``overlap // 4``) when it covers fewer pixels than the windows of
    :func:`throughput_tile` with ``overlap``. For a 1024 x 1024 image and ``overlap=64``: one
    1056-px window (1.06 x the image's pixels) instead of one of 1088 px (1.13 x); images that
    need several windows keep ``overlap`` (4096 x 4096: 9 windows of 1440 px).

    Returns
    -------
    (tile, overlap) : tuple of int

    Examples
    --------
    >>> throughput_window((1024, 1024))
    (1056, 32)
    >>> throughput_window((4096, 4096))
    (1440, 64)
    """
    shape = tuple(shape)
    tile = throughput_tile(shape, overlap, multiple=multiple, min_tile=min_tile, max_tile=max_tile)
    cost = _windows_cost(shape, tile, overlap)
    half = int(overlap) // 2
    side = max(max(shape) + 2 * (half // 2), int(min_tile), 2 * half)
    side = -(-side // multiple) * multiple
    if side <= int(max_tile) and _windows_cost(shape, side, half) == side * side < cost:
        return side, half
    return tile, int(overlap)


BACKENDS = ("torch", "onnxruntime", "auto")

#: tile="auto": at most this many window pixels per forward pass (bounds activation memory)
_AUTO_BATCH_PIXELS = 2**21


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"torch"`` or ``"onnxruntime"`` for a requested ``backend`` on ``device``.

    ``"auto"`` is ONNX Runtime on a CPU (several times faster than torch eager there) and torch on
    an accelerator (CUDA, with AMP when asked).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "onnxruntime" if device.type == "cpu" else "torch"
    return backend


def _model_device(model) -> torch.device:
    if not isinstance(model, torch.nn.Module):
        return torch.device("cpu")  # an OnnxModel runs on the CPU
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _batches(ys: np.ndarray, xs: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    for i in range(0, len(grid), batch_size):
        yield grid[i : i + batch_size]


def _probabilities(logits: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
    """Sigmoid / softmax of ``N x C x h x w`` logits; ``in_place`` overwrites float32 logits
    nobody else holds (ONNX Runtime's output) instead of allocating the result."""
    logits = logits.float()
    if logits.shape[1] == 1:
        return torch.sigmoid_(logits) if in_place else torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def _weight_parts(w1: np.ndarray) -> list[tuple[tuple[slice, slice], np.ndarray]]:
    """The 2-D window weight ``outer(w1, w1)`` (float32) as ``(rows, cols)`` regions with their
    weights, covering every pixel whose weight is not exactly 1: multiplying only those gives
    the full product bit for bit (``x * 1.0 == x``) without a pass over the window's middle."""
    tile = w1.size
    ones = np.flatnonzero(w1 == 1.0)
    if ones.size == 0 or ones[-1] - ones[0] + 1 != ones.size:
        return [((slice(0, tile), slice(0, tile)), np.outer(w1, w1).astype(np.float32))]
    a, b = int(ones[0]), int(ones[-1]) + 1
    regions = [(slice(0, a), slice(0, tile)), (slice(b, tile), slice(0, tile)),
               (slice(a, b), slice(0, a)), (slice(a, b), slice(b, tile))]
    return [((r, c), np.outer(w1[r], w1[c]).astype(np.float32)) for r, c in regions
            if r.stop > r.start and c.stop > c.start]


def predict_proba(
    model,
    image: np.ndarray,
    *,
    tile: int | str = 256,
    overlap: int = 64,
    batch_size: int = 4,
    tta: bool = False,
    device: str | torch.device | None = None,
    amp: bool = False,
    backend: str = "torch",
    threads: int | None = None,
) -> np.ndarray:
    """Class probabilities of a whole micrograph by blended sliding-window inference.

    Parameters
    ----------
    model : torch.nn.Module or porescope.segmentation.onnx_runtime.OnnxModel
        Maps float32 ``N x 1 x tile x tile`` to logits ``N x C x tile x tile``. A torch model is
        put in eval mode for the call (its previous train/eval mode is restored afterwards) and
        run under ``torch.inference_mode``. An ``OnnxModel`` needs ``backend`` "onnxruntime" or
        "auto".
    image : numpy.ndarray
        2-D ``(rows, cols)`` grey image: uint8 (scaled by :func:`normalise`) or floating point
        (taken as already normalised, cast to float32). Any size, 1 x 1 included.
    tile : int or "auto"
        Window size in pixels (a multiple of 32 for smp models). ``"auto"``: the window and
        overlap of :func:`throughput_window` for this image (fewest pixels through the network:
        for a 1024-px image one 1056-px window with a 16-px margin instead of 36 of 256 px), with
        at most 2 Mpx of windows per forward pass. Larger windows give the network more context,
        so the probabilities differ slightly from those of 256-px windows.
    overlap : int
        Nominal overlap of neighbouring windows in pixels, ``0 <= overlap <= tile // 2``; see the
        module docstring for the blending weight and the border padding it implies.
    batch_size : int
        Windows per forward pass.
    tta : bool
        Average the probabilities over identity, horizontal, vertical and both flips (each flipped
        back before averaging); 4 forward passes per window.
    device : str, torch.device or None
        Where a torch model runs. ``None`` (default): the device of the model's parameters. Given
        explicitly, the model is moved there (``Module.to`` acts in place).
    amp : bool
        Run the forward pass under ``torch.autocast`` (float16) when the device is CUDA; ignored
        on CPU. Probabilities are computed and accumulated in float32 either way.
    backend : {"torch", "onnxruntime", "auto"}
        What runs the network: torch eager (default), ONNX Runtime on the CPU (the torch model
        is exported once and cached, see :func:`porescope.segmentation.onnx_runtime.onnx_model_for`;
        logits agree with torch to about 1e-6) or ``"auto"`` (:func:`resolve_backend`: ONNX
        Runtime on a CPU, torch on CUDA).
    threads : int or None
        Intra-op threads of the ONNX Runtime session; ``None``: ``torch.get_num_threads()``.

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
    out: np.ndarray | None = None
    for r0, band in predict_proba_bands(model, image, tile=tile, overlap=overlap,
                                        batch_size=batch_size, tta=tta, device=device, amp=amp,
                                        backend=backend, threads=threads):
        if out is None:
            out = np.empty((band.shape[0], *np.shape(image)), dtype=np.float32)
        out[:, r0:r0 + band.shape[1]] = band
    assert out is not None  # at least one window always exists
    return out


def predict_proba_bands(
    model,
    image: np.ndarray,
    *,
    tile: int | str = 256,
    overlap: int = 64,
    batch_size: int = 4,
    tta: bool = False,
    device: str | torch.device | None = None,
    amp: bool = False,
    backend: str = "torch",
    threads: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`predict_proba` as horizontal bands, for images whose probability map would not fit.

    Same arguments and the same values, bit for bit; yields ``(first row, C x rows x cols
    float32)`` top to bottom, each band as soon as no later window can change it. Besides the
    image, memory is one window-tall float32 accumulator of the padded width plus one batch
    (a 16000 x 16000 micrograph: ~20 MB instead of two 1 GB maps).

    Examples
    --------
    >>> import numpy as np, torch
    >>> class Dark(torch.nn.Module):
    ...     def forward(self, x):
    ...         return 10.0 * (0.5 - x)
    >>> image = np.random.default_rng(0).integers(0, 256, (300, 200), dtype=np.uint8)
    >>> bands = list(predict_proba_bands(Dark(), image, tile=64, overlap=16))
    >>> [(r0, b.shape) for r0, b in bands[:2]]
    [(0, (1, 40, 200)), (40, (1, 48, 200))]
    >>> whole = predict_proba(Dark(), image, tile=64, overlap=16)
    >>> bool(np.array_equal(np.concatenate([b for _, b in bands], axis=1), whole))
    True
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"predict_proba: image must be a non-empty 2-D (rows, cols) array, got shape {image.shape}")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"predict_proba: image must be uint8 or floating point, got dtype {image.dtype}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"predict_proba: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if tile == "auto":
        tile, overlap = throughput_window(image.shape, overlap)
        batch_size = max(1, min(batch_size, _AUTO_BATCH_PIXELS // (tile * tile)))
    elif isinstance(tile, str):
        raise ValueError(f"predict_proba: tile must be a positive integer or 'auto', got {tile!r}")
    _check_tiling(tile, overlap)

    is_torch = isinstance(model, torch.nn.Module)
    if device is None:
        dev = _model_device(model)
    else:
        dev = torch.device(device)
        if is_torch:
            model.to(dev)
    backend = resolve_backend(backend, dev)
    if not is_torch and backend == "torch":
        raise TypeError(f"predict_proba: backend 'torch' needs a torch.nn.Module, got {type(model).__name__}")
    if backend == "onnxruntime":
        from porescope.segmentation.onnx_runtime import onnx_model_for

        onnx_model = onnx_model_for(model, threads)
        dev = torch.device("cpu")

        def net(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(onnx_model(x.numpy()))
    else:
        def net(x: torch.Tensor) -> torch.Tensor:
            return model(x)
    use_amp = bool(amp) and dev.type == "cuda" and backend == "torch"
    if amp and not use_amp:
        log.debug("amp requested on %s with %s: ignored (autocast is used on CUDA with torch only)", dev, backend)

    yield from _proba_bands(net, image, tile=tile, overlap=overlap, batch_size=batch_size,
                            flips=[(), (3,), (2,), (2, 3)] if tta else [()], dev=dev,
                            use_amp=use_amp, in_place=backend == "onnxruntime",
                            toggle=model if is_torch and backend == "torch" else None)


def _padded_rows(image: np.ndarray, p0: int, p1: int, pads: tuple[tuple[int, int], tuple[int, int]]
                 ) -> np.ndarray:
    """Rows ``[p0, p1)`` of ``numpy.pad(image, pads, mode="reflect")`` without padding the whole
    image (the row padding must be shorter than the image, so one reflection suffices)."""
    (top, _), cols = pads
    n = image.shape[0]
    src = np.arange(p0, p1) - top
    src = np.abs(src)
    src = np.where(src > n - 1, 2 * (n - 1) - src, src)
    return np.pad(image[src], ((0, 0), cols), mode="reflect")


def _proba_bands(net, image: np.ndarray, *, tile: int, overlap: int, batch_size: int,
                 flips: list[tuple[int, ...]], dev: torch.device, use_amp: bool, in_place: bool,
                 toggle: torch.nn.Module | None) -> Iterator[tuple[int, np.ndarray]]:
    """The blended probabilities of :func:`predict_proba` as ``(first row, C x rows x cols)``
    bands, top to bottom, bit for bit the same values.

    Windows are taken in raster order, so once a window starting at padded row ``y`` is reached
    no later window touches the rows above ``y``: those rows are final and leave a rolling
    accumulator one window tall. The image is padded band by band where it is taller than its
    row padding. Memory besides the image: about ``C x tile x W`` float32 (accumulator) plus one
    batch, instead of two ``C x H x W`` float32 arrays.
    """
    rows, cols = image.shape
    pads = padding_for((rows, cols), tile, overlap)
    (top, bottom), (left, right) = pads
    hp, wp = rows + top + bottom, cols + left + right
    whole = None if max(top, bottom) < rows else np.pad(image, pads, mode="reflect")
    ys = tile_starts(hp, tile, overlap)
    xs = tile_starts(wp, tile, overlap)
    w1 = window_weights(tile, overlap)
    w2_parts = _weight_parts(w1)
    wy = np.zeros(hp, dtype=np.float64)
    for y in ys:
        wy[y : y + tile] += w1
    wx = np.zeros(wp, dtype=np.float64)
    for x in xs:
        wx[x : x + tile] += w1
    wy32 = wy.astype(np.float32)
    wx32 = wx[None, left : left + cols].astype(np.float32)

    def final(acc: np.ndarray, a0: int, a1: int) -> tuple[int, np.ndarray] | None:
        """Padded rows ``[a0, a1)`` of ``acc`` (which starts at ``a0``), cropped and divided."""
        r0, r1 = max(a0, top), min(a1, top + rows)
        if r1 <= r0:
            return None
        band = np.empty((acc.shape[0], r1 - r0, cols), dtype=np.float32)
        np.divide(acc[:, r0 - a0 : r1 - a0, left : left + cols], wy32[r0:r1, None], out=band)
        band /= wx32
        return r0 - top, band

    # one input buffer for all batches: windows are scaled straight into it (normalise's
    # arithmetic: uint8 -> float32, times float32(1/255)), no stacked copy per batch
    n_windows = len(ys) * len(xs)
    buf = np.empty((min(batch_size, n_windows), 1, tile, tile), dtype=np.float32)
    scale = np.float32(1.0 / 255.0)
    acc: np.ndarray | None = None
    a0 = 0          # padded row of acc's first row
    # only torch runs the module (ONNX Runtime runs the exported graph): no train/eval switch
    # of every submodule otherwise
    was_training = toggle.training if toggle is not None else False
    if toggle is not None:
        toggle.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(ys, xs, batch_size):
                n = len(batch)
                b0, b1 = int(batch[0][0]), int(batch[-1][0]) + tile
                src = whole[b0:b1] if whole is not None else _padded_rows(image, b0, b1, pads)
                for i, (y, x) in enumerate(batch):
                    window = src[y - b0 : y - b0 + tile, x : x + tile]
                    if window.dtype == np.uint8:
                        np.multiply(window, scale, out=buf[i, 0])
                    else:
                        buf[i, 0] = window
                del src
                inp = torch.from_numpy(buf[:n]).to(dev)
                prob = None
                for dims in flips:
                    x_in = torch.flip(inp, dims) if dims else inp
                    ctx = torch.autocast(device_type="cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
                    with ctx:
                        logits = net(x_in)
                    if logits.ndim != 4 or logits.shape[0] != n or logits.shape[2:] != (tile, tile):
                        raise ValueError(
                            f"predict_proba: model output shape {tuple(logits.shape)} is not "
                            f"(N={n}, C, {tile}, {tile})"
                        )
                    p = _probabilities(logits, in_place=in_place)
                    if dims:
                        p = torch.flip(p, dims)
                    prob = p if prob is None else prob + p
                if len(flips) > 1:
                    prob = prob / len(flips)
                prob_np = prob.cpu().numpy()
                for (rs, cs), w in w2_parts:
                    prob_np[:, :, rs, cs] *= w
                if n_windows == 1:
                    # the window is the padded image: 0 + p == p for probabilities (>= +0), so
                    # the weighted window is the accumulator as it is
                    acc = prob_np[0]
                    continue
                if acc is None:
                    acc = np.zeros((prob_np.shape[1], tile, wp), dtype=np.float32)
                for (y, x), p in zip(batch, prob_np):
                    y = int(y)
                    if y > a0:      # rows above y are final: emit them, roll the accumulator
                        done = final(acc, a0, y)
                        if done is not None:
                            yield done
                        shift = y - a0
                        acc[:, : tile - shift] = acc[:, shift:]
                        acc[:, tile - shift :] = 0.0
                        a0 = y
                    acc[:, y - a0 : y - a0 + tile, x : x + tile] += p
    finally:
        if toggle is not None:
            toggle.train(was_training)
    assert acc is not None  # at least one window always exists
    done = final(acc, a0, hp)
    if done is not None:
        yield done


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


def predict_mask(model, image: np.ndarray, *, threshold: float = 0.5, **kw) -> np.ndarray:
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
