"""What real SEM exports show besides the membrane, for the synthetic micrographs.

The ``synthesize.artefacts`` params group (:class:`~porescope.synthetic.params.ArtefactRanges`)
gives each artefact a probability and ranges; :func:`draw_artefacts` turns them into the
concrete :class:`Artefacts` of one image. The renderer of
:mod:`porescope.synthetic.membranes` then adds, in this order,

* the **edge-effect fringe**, a bright band a few px wide just *outside* every opening
  (brightest on one side, optionally behind a dark gap), drawn with the pores;
* **rough patches** (:func:`rough_patches`): regions of coarse bright and dark grains of
  pore-like size on the surface, not pores;
* **charging** (:func:`charging`): broad bright glows, a linear brightness ramp, per-row jumps;
* **overlays** (:func:`draw_overlays`) over the finished 8-bit image: a screenshot frame along
  1-4 sides, burned-in text, a logo, a bare scale bar; they hide what is below them, so the
  masks are background under every overlay pixel;
* **JPEG** blocking and ringing (:func:`jpeg_roundtrip`) on the whole image, last.

Down-sampling (``downsample_factor``) changes the image's spec instead (smaller pores, finer
rims, blur and noise; :func:`porescope.synthetic.membranes.downsampled`), so the geometry stays
exact. Every artefact draws from its own child of ``SeedSequence(Artefacts.seed)``, so turning
one artefact on does not move the others. Grey levels are 0-255, lengths px of the final image.

Examples
--------
>>> import numpy as np
>>> art = Artefacts(seed=3, frame_width_px=4.0, text_count=1, text_height_px=10.0)
>>> img = np.full((64, 96), 120, np.uint8)
>>> hidden = draw_overlays(img, art)
>>> hidden.shape, bool(hidden.any()), bool((img[~hidden] == 120).all())
((64, 96), True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from porescope.synthetic.noise import filtered_noise

#: The params of each artefact (after its ``<name>_probability``), in drawing order.
ARTEFACT_GROUPS: dict[str, tuple[str, ...]] = {
    "fringe": ("fringe_strength", "fringe_width_px", "fringe_gap_px", "fringe_gap_depth",
               "fringe_asymmetry", "fringe_direction_deg"),
    "rough": ("rough_coverage", "rough_strength", "rough_grain"),
    "frame": ("frame_width_px",),
    "text": ("text_count", "text_height_px"),
    "logo": ("logo_size_px",),
    "scalebar": ("scalebar_length",),
    "charging": ("charging_strength", "charging_gradient", "scanline_strength"),
    "jpeg": ("jpeg_quality",),
    "downsample": ("downsample_factor",),
}

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
          cv2.FONT_HERSHEY_COMPLEX)
_WORDS = ("SEI", "SE", "WD 10mm", "0000", "Image for illustrative purposes only", "Mag",
          "HV", "det ETD", "Spot 3.0", "PC", "SEM", "Sample A", "Fig. 2", "(b)")


def require_non_negative(values: Any) -> None:
    """Raise ValueError unless every field of the dataclass ``values`` is a finite number >= 0."""
    for f in dataclasses.fields(values):
        value = getattr(values, f.name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{type(values).__name__}.{f.name}: must be a finite number >= 0 "
                             f"(got {value!r})")


@dataclass(frozen=True)
class Artefacts:
    """The concrete artefacts of one image; every default is "off".

    seed: root of the artefacts' own random streams (positions, grains, texts).
    fringe_strength: grey of the edge-effect fringe above the surface on its brightest side
        (0 = no fringe); see :func:`fringe_grey`.
    fringe_width_px, fringe_gap_px: band width and the gap between the opening edge and it.
    fringe_gap_depth: the surface is multiplied by ``1 - depth`` in the gap (``t < gap``).
    fringe_asymmetry, fringe_direction_deg: ``a`` and the brightest side (deg ccw on screen,
        270 = down) of :func:`fringe_grey`.
    rough_coverage: fraction of the image in rough patches (0 = none); rough_strength: grain
        std, grey levels; rough_grain: grain size in mean pore diameters.
    frame_width_px: screenshot frame band width along 1-4 sides (0 = none).
    text_count, text_height_px: number of burned-in labels (0 = none) and their cap height.
    logo_size_px: height of a burned-in logo (0 = none).
    scalebar_length: scale-bar length as a fraction of the width (0 = none).
    charging_strength: grey of 1-3 broad glows; charging_gradient: relative linear ramp;
        scanline_strength: std of per-row brightness jumps (30 % of the rows).
    jpeg_quality: JPEG quality of the saved image (0 = not JPEG).
    downsample_factor: the image was acquired this many times finer and reduced (1 = not).
    """

    seed: int = 0
    fringe_strength: float = 0.0
    fringe_width_px: float = 0.0
    fringe_gap_px: float = 0.0
    fringe_gap_depth: float = 0.0
    fringe_asymmetry: float = 0.0
    fringe_direction_deg: float = 0.0
    rough_coverage: float = 0.0
    rough_strength: float = 0.0
    rough_grain: float = 0.0
    frame_width_px: float = 0.0
    text_count: int = 0
    text_height_px: float = 0.0
    logo_size_px: float = 0.0
    scalebar_length: float = 0.0
    charging_strength: float = 0.0
    charging_gradient: float = 0.0
    scanline_strength: float = 0.0
    jpeg_quality: float = 0.0
    downsample_factor: float = 1.0

    def __post_init__(self) -> None:
        require_non_negative(self)
        if self.fringe_strength > 0 and self.fringe_width_px <= 0:
            raise ValueError("Artefacts.fringe_width_px: must be > 0 with a fringe")
        if self.rough_coverage > 0 and self.rough_grain <= 0:
            raise ValueError("Artefacts.rough_grain: must be > 0 with rough patches")
        if self.downsample_factor < 1 or self.jpeg_quality > 100:
            raise ValueError("Artefacts: downsample_factor must be >= 1 and jpeg_quality <= 100")

    def has_overlays(self) -> bool:
        """Whether anything is drawn over the membrane (frame, text, logo, scale bar)."""
        return (self.frame_width_px >= 0.5 or self.text_count > 0 or self.logo_size_px > 0
                or self.scalebar_length > 0)

    def stream(self, name: str) -> np.random.Generator:
        """The random stream of one artefact (``name`` a key of :data:`ARTEFACT_GROUPS`)."""
        key = list(ARTEFACT_GROUPS).index(name)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(key,)))


def fringe_reach(art: Artefacts) -> float:
    """Largest distance (px) outside an opening at which :func:`fringe_grey` is not 0."""
    return art.fringe_gap_px + 1.45 * art.fringe_width_px * (1.0 + 0.5 * art.fringe_asymmetry)


def fringe_grey(t: np.ndarray, dx: np.ndarray, dy: np.ndarray, art: Artefacts) -> np.ndarray:
    """Grey the edge-effect fringe adds at distance ``t`` px outside an opening (float32).

    ``dx, dy``: offset (px, y down) from the pore centre, broadcastable with ``t``. With
    ``a = fringe_asymmetry`` and ``cos_d`` the cosine of the angle between the offset and
    ``fringe_direction_deg`` (ccw on screen, 270 = down), the band is
    ``strength * (1 + a cos_d) / (1 + a) * exp(-((t - c) / s)^2 / 2)`` for ``t < c + 3 s``
    (0 beyond), ``c = gap + 0.4 width k``, ``s = 0.35 width k``, ``k = 1 + a cos_d / 2``:
    brighter *and* wider on the bright side, as in real micrographs.

    Examples
    --------
    >>> art = Artefacts(fringe_strength=80.0, fringe_width_px=3.0, fringe_asymmetry=0.5,
    ...                 fringe_direction_deg=270.0)
    >>> t = np.array([0.0, 1.2, 1.8, 9.0], np.float32)
    >>> below = fringe_grey(t, np.float32(0.0), np.float32(10.0), art)
    >>> above = fringe_grey(t, np.float32(0.0), np.float32(-10.0), art)
    >>> np.round(below).tolist(), np.round(above).tolist()
    ([42.0, 78.0, 78.0, 0.0], [14.0, 25.0, 14.0, 0.0])
    """
    th = math.radians(art.fringe_direction_deg)
    rho = np.sqrt(dx * dx + dy * dy) + np.float32(1e-6)
    cos_d = (dx * np.float32(math.cos(th)) - dy * np.float32(math.sin(th))) / rho
    a = np.float32(art.fringe_asymmetry)
    k = 1.0 + 0.5 * a * cos_d
    z = (t - (art.fringe_gap_px + 0.4 * art.fringe_width_px * k)) / (0.35 * art.fringe_width_px * k)
    band = np.exp(-0.5 * z * z) * (z < 3.0)
    return (band * (art.fringe_strength / (1.0 + a)) * (1.0 + a * cos_d)).astype(np.float32)


def draw_artefacts(ranges: Mapping[str, Any], rng: np.random.Generator) -> Artefacts:
    """The artefacts of one image from ``synthesize.artefacts`` (a mapping of its keys).

    Per artefact, in :data:`ARTEFACT_GROUPS` order: one uniform draw decides whether it is on
    (``< <name>_probability``), then each of its values is drawn uniformly in its range (drawn
    even when off, so one probability does not move the other artefacts' values).

    Examples
    --------
    >>> from porescope.config import to_mapping
    >>> from porescope.synthetic.params import ArtefactRanges
    >>> from porescope.synthetic.params import artefacts_off
    >>> ranges = {**artefacts_off(), "jpeg_probability": 1.0}
    >>> art = draw_artefacts(ranges, np.random.default_rng(0))
    >>> 25 <= art.jpeg_quality <= 90, art.fringe_strength, art.text_count
    (True, 0.0, 0)
    """
    values: dict[str, Any] = {"seed": int(rng.integers(0, 2 ** 63 - 1))}
    for name, keys in ARTEFACT_GROUPS.items():
        on = bool(rng.uniform() < float(ranges[f"{name}_probability"]))
        drawn = {k: float(rng.uniform(float(ranges[k][0]), float(ranges[k][1]))) for k in keys}
        if on:
            values.update(drawn)
    if "text_count" in values:
        values["text_count"] = int(round(values["text_count"]))
    return Artefacts(**values)


def rough_patches(shape: tuple[int, int], art: Artefacts, mean_diameter_px: float) -> np.ndarray:
    """Additive grey of the rough patches (float32, ``shape``): coarse grains of std
    ``rough_strength`` and size ``rough_grain * mean_diameter_px`` inside soft-edged blobs
    that cover about ``rough_coverage`` of the image."""
    rng = art.stream("rough")
    region = filtered_noise(rng, shape, max(4.0, 0.06 * max(shape)))
    edge = float(np.quantile(region, 1.0 - min(art.rough_coverage, 1.0)))
    weight = np.clip((region - edge) * 3.0, 0.0, 1.0)
    grains = filtered_noise(rng, shape, max(0.4, 0.5 * art.rough_grain * mean_diameter_px))
    grains = np.tanh(1.5 * grains)  # flat-topped grains with sharp edges, not smooth mottling
    return (art.rough_strength / 0.75 * weight * grains).astype(np.float32)


def charging(img: np.ndarray, art: Artefacts) -> np.ndarray:
    """``img * ramp + glows + row jumps`` (float32): a linear ramp ``1 + g * r`` (``r`` in
    about [-0.7, 0.7] along a random direction), 1-3 Gaussian glows of up to
    ``charging_strength`` grey, and per-row offsets of std ``scanline_strength`` on 30 % of the
    rows."""
    rng = art.stream("charging")
    h, w = img.shape
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    th = rng.uniform(0.0, 2.0 * math.pi)
    out = img * (1.0 + art.charging_gradient * (xs * math.cos(th) + ys * math.sin(th)))
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        s = rng.uniform(0.1, 0.4)
        amp = art.charging_strength * rng.uniform(0.5, 1.0)
        out += amp * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2 * (h / w) ** 2) / (2 * s * s))
    rows = art.scanline_strength * rng.standard_normal(h) * (rng.uniform(size=h) < 0.3)
    out += rows.astype(np.float32)[:, None]
    return out.astype(np.float32)


def _blend(image: np.ndarray, alpha: np.ndarray, level: int, hidden: np.ndarray) -> None:
    """Paint ``level`` over ``image`` with coverage ``alpha`` (uint8 0-255), in place."""
    on = alpha > 0
    a = alpha[on].astype(np.float32) / 255.0
    image[on] = np.rint(image[on] * (1.0 - a) + level * a).astype(np.uint8)
    hidden |= on


def _label(rng: np.random.Generator) -> str:
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return f"{int(rng.choice([5, 10, 15, 20, 25]))}kV"
    if kind == 1:
        return f"X{int(rng.choice([500, 1000, 2000, 5000, 10000, 20000])):,}"
    if kind == 2:
        return f"{int(rng.choice([1, 2, 5, 10, 20, 50]))} {'um' if rng.uniform() < 0.5 else 'nm'}"
    return str(rng.choice(_WORDS))


def _text(image: np.ndarray, hidden: np.ndarray, text: str, height: float, at: tuple[float, float],
          rng: np.random.Generator, level: int, thickness: int, box: bool) -> None:
    font = int(rng.choice(_FONTS))
    (_, h1), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = max(0.2, height / max(h1, 1))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    x = int(at[0] * max(1, image.shape[1] - tw))
    y = int(th + at[1] * max(1, image.shape[0] - th - base))
    alpha = np.zeros(image.shape, np.uint8)
    if box:  # an opaque label box behind the text, the opposite grey
        pad = max(1, int(0.3 * th))
        cv2.rectangle(alpha, (x - pad, y - th - pad), (x + tw + pad, y + base + pad), 255, -1)
        _blend(image, alpha, 255 - level, hidden)
        alpha[:] = 0
    cv2.putText(alpha, text, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
    _blend(image, alpha, level, hidden)


def draw_overlays(image: np.ndarray, art: Artefacts,
                  pixel_size_nm: float | None = None) -> np.ndarray:
    """Paint the frame, texts, logo and scale bar of ``art`` over ``image`` (uint8), in place.

    Returns the boolean ``hidden`` map (same shape): the pixels any overlay touched (also
    its anti-aliased edge), which are background in the masks. ``pixel_size_nm`` only sets
    the scale bar's label.
    """
    hidden = np.zeros(image.shape, bool)
    h, w = image.shape
    if art.frame_width_px >= 0.5:
        rng = art.stream("frame")
        sides = rng.permutation(4)[:int(rng.integers(1, 5))]
        level = int(rng.choice([rng.integers(215, 256), rng.integers(0, 30), rng.integers(60, 200)]))
        band = np.zeros(image.shape, bool)
        for side in sides:  # 0 top, 1 bottom, 2 left, 3 right
            k = max(1, int(round(art.frame_width_px * rng.uniform(0.7, 1.3))))
            if side < 2:
                band[slice(0, k) if side == 0 else slice(h - k, h), :] = True
            else:
                band[:, slice(0, k) if side == 2 else slice(w - k, w)] = True
        fill = np.full(image.shape, level, np.float32)
        if rng.uniform() < 0.5:  # a textured band (a scanned or resized border)
            fill += rng.uniform(3.0, 15.0) * filtered_noise(rng, image.shape, 0.8)
        image[band] = np.clip(np.rint(fill[band]), 0, 255).astype(np.uint8)
        hidden |= band
    if art.text_count > 0:
        rng = art.stream("text")
        level = int(rng.integers(225, 256)) if rng.uniform() < 0.8 else int(rng.integers(0, 30))
        for _ in range(art.text_count):
            _text(image, hidden, _label(rng), art.text_height_px * rng.uniform(0.8, 1.2),
                  tuple(rng.uniform(0, 1, 2)), rng, level, int(rng.integers(1, 3)),
                  bool(rng.uniform() < 0.3))
    if art.logo_size_px > 0:
        rng = art.stream("logo")
        level = int(rng.integers(180, 256)) if rng.uniform() < 0.8 else int(rng.integers(0, 40))
        s = art.logo_size_px
        cx, cy = rng.uniform(0.5 * s, max(0.5 * s + 1, w - 2.5 * s)), rng.uniform(s, max(s + 1, h - 0.2 * s))
        alpha = np.zeros(image.shape, np.uint8)
        shape_kind = int(rng.integers(0, 3))
        r = int(0.4 * s)
        if shape_kind == 0:
            cv2.circle(alpha, (int(cx), int(cy - 0.5 * s)), r, 255, -1, cv2.LINE_AA)
        elif shape_kind == 1:
            cv2.rectangle(alpha, (int(cx - r), int(cy - s)), (int(cx + r), int(cy)), 255, max(2, r // 3))
        _blend(image, alpha, level, hidden)
        letters = "".join(rng.choice(list("ABCDEHIKLMNRSTUXcehs"), int(rng.integers(2, 5))))
        at = (min(1.0, (cx + (r + 2 if shape_kind < 2 else -r)) / max(1, w)),
              min(1.0, max(0.0, (cy - 0.1 * s) / max(1, h))))
        _text(image, hidden, letters, 0.7 * s, at, rng, level, max(2, int(s // 12)), False)
    if art.scalebar_length > 0:
        rng = art.stream("scalebar")
        length = max(4, int(art.scalebar_length * w))
        x0 = int(rng.uniform(0.02, 0.98 - art.scalebar_length) * w)
        y0 = int(rng.uniform(0.6, 0.97) * h)
        alpha = np.zeros(image.shape, np.uint8)
        cv2.line(alpha, (x0, y0), (x0 + length, y0), 255, int(rng.integers(1, 5)))
        level = int(rng.integers(225, 256))
        _blend(image, alpha, level, hidden)
        nm = length * (pixel_size_nm or 25.0)
        label = f"{nm / 1000:.3g} um" if nm >= 1000 else f"{nm:.3g} nm"
        th = max(5.0, 0.03 * h)
        _text(image, hidden, label, th, (x0 / max(1, w), max(0.0, (y0 - 1.6 * th) / max(1, h))),
              rng, level, 1, False)
    return hidden


def jpeg_roundtrip(image: np.ndarray, quality: float) -> np.ndarray:
    """``image`` (uint8 grey) encoded as JPEG at ``quality`` (1-100) and decoded again.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    >>> out = jpeg_roundtrip(img, 20)
    >>> out.shape, out.dtype, bool((out != img).any())
    ((32, 64), dtype('uint8'), True)
    """
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(round(quality))])
    if not ok:
        raise ValueError("jpeg_roundtrip: cv2.imencode failed")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
