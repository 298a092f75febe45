"""Synthetic SEM micrographs of track-etched membranes with exact truth (METHODS.md section 7).

The model
---------
Pores are etched ion tracks. Their centres are a homogeneous Poisson process, generated in the
image window extended on every side by the largest possible half-opening (so the density near
the image edges is the same as in the middle). Each track is a cylinder of diameter ``d`` (a
truncated normal around the image's mean diameter, coefficient of variation ``diameter_cv``,
cut at +-3 CV) entering the surface at a tilt ``theta`` to the normal, whose horizontal
direction is the *azimuth* (a preferred irradiation direction per image plus a normal spread).
Seen from above, the surface opening is an ellipse with

* ``minor = d`` (across the azimuth) and ``major = d / cos(theta)`` (along the azimuth),
* major axis along the azimuth, so ``angle_deg = azimuth_deg mod 180``.

Overlapping openings merge (their union is the pore space), so doublets and triplets appear
naturally and become more frequent as porosity grows. The Poisson intensity comes from the
target porosity ``phi`` through the Boolean model, ``lambda = -ln(1 - phi) / E[A]`` with
``E[A] = pi/4 * E[d^2] * E[1 / cos(theta)]`` the mean area of one opening; the *realised*
porosity (counted on the mask) is the truth, the target is only what was asked for.

Coordinates and angles
----------------------
``(x, y)`` = (column, row) in pixels, origin at the centre of the top-left pixel, ``y`` down;
pixel ``(col, row)`` covers ``[col - 0.5, col + 0.5) x [row - 0.5, row + 0.5)``. Angles are in
degrees, **counter-clockwise from +x as seen on screen** (the ImageJ convention): direction
``alpha`` is the vector ``(cos alpha, -sin alpha)`` in ``(x, y)``. ``angle_deg`` (orientation of
the major axis) is in ``[0, 180)``; ``azimuth_deg`` (the direction in which the track's axis
moves as it goes deeper) is in ``[0, 360)``.

Mask conventions (both exact)
-----------------------------
A pixel is foreground iff its **centre** lies inside the union of the ellipses. For one pore
with centre ``(x, y)``, ``a = major / 2``, ``b = minor / 2``, ``c = cos(radians(angle_deg))``,
``s = sin(radians(angle_deg))``, a point ``(px, py)`` with ``dx = px - x``, ``dy = py - y`` is
inside iff ``((dx*c - dy*s) / a)**2 + ((dx*s + dy*c) / b)**2 <= 1`` (evaluated in float64;
see :func:`ellipse_inside`).

* **opening** mask (the default): union of the surface openings, i.e. dark core + visible wall.
  This is the membrane's open area.
* **core** mask: per pore, the opening intersected with the same ellipse translated by
  ``(core_dx, core_dy) = depth * tan(theta) * (cos az, -sin az)``, where
  ``depth = core_depth * d`` is the depth below which the wall is no longer seen (secondary
  electrons do not escape); it is where one looks straight down the track into the dark. The
  union over pores of these intersections. ``core ⊆ opening``; equal for ``theta = 0``.

Rows of an SEM data bar (bottom ``databar_height_px`` rows) are outside the *analysed region*;
both masks are 0 there. Overlays of :mod:`porescope.synthetic.artefacts` (screenshot frames,
burned-in text, logos, scale bars; off by default) hide what lies below them: both masks are 0 on
every pixel they touch, and a pore whose centre pixel they hide is not counted in ``n_true``
(see :func:`synthesize_image`). Count references that use the image edges as guard-frame edges
(:func:`porescope.analysis.truth.synthetic_reference`) do not know a frame's inner edge.

Rendering and where the edge sits
---------------------------------
The image is rendered at ``supersample`` x the final resolution from the same analytic
ellipses (sub-pixel centres, same inside rule) and area-averaged down (``cv2.INTER_AREA``):
each pixel's pore coverage is the fraction of its ``supersample^2`` sub-pixel centres inside,
so the rendered edge is quantised to ``1 / supersample`` px locally and unbiased on average.
The mask (pixel-centre test) and the rendered boundary share one edge: no half-pixel shift,
no dilation (the tests check the dark area and dark centroid of a blurred pore).

Inside an opening the grey level is the dark core level, except on the visible wall (the
crescent, on the side of the opening *opposite* to the azimuth), whose brightness falls from
``crescent_level`` at the rim to the core level at the visible depth. The bright edge ring
lies entirely **outside** the opening: at distance ``t`` px outside the boundary it adds
``rim_strength * g(t)``, ``g(t) = (exp(-t^2 / (2 w^2)) - e^-4.5) / (1 - e^-4.5)`` for
``0 <= t < 3w`` (0 beyond; ``w = rim_width_px``; brighter on the crescent side of tilted pores,
see :class:`Appearance`). So before the beam blur the dark-to-bright step sits exactly on the
opening boundary and the ring's light is centred ``~0.8 w`` outside it (``w sqrt(2/pi)`` for a
straight edge). The Gaussian beam blur (``blur_sigma_px``) is symmetric: it keeps the dark
area, its centroid and the ring light's mean position, but mixes the ring into the step; the
steepest point of the blurred dark-to-bright transition then lies 0-0.3 px inside the boundary
for the default ranges (1-D calculation; the falling side of a narrow ring pulls it inward). Charging halos (a broad Gaussian glow of the
pore coverage), surface texture, streaks, debris, slow gain gradients, shot and read noise are
added around it.

Randomness
----------
Every function takes an explicit :class:`numpy.random.Generator`. :func:`image_rng` gives image
``k`` of a dataset its own child of ``SeedSequence(seed)`` (spawn key ``(k,)``), so image ``k``
is the same whatever the dataset size and images can be made in parallel reproducibly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy import stats

from porescope.config import to_mapping
from porescope.synthetic.artefacts import (
    Artefacts,
    charging,
    draw_artefacts,
    draw_overlays,
    fringe_grey,
    fringe_reach,
    jpeg_roundtrip,
    require_non_negative,
    rough_patches,
)
from porescope.synthetic.noise import filtered_noise, smooth
from porescope.synthetic.params import (  # noqa: F401  (re-exported: the names of the choices)
    MASK_CONVENTIONS,
    TILT_DISTRIBUTIONS,
    AppearanceRanges,
    ArtefactRanges,
    SynthesizeParams,
)

#: Columns of the per-pore table, in order (``image_id`` is put first by the stage).
PORE_COLUMNS = (
    "pore_id", "x", "y", "diameter", "major", "minor", "angle_deg", "tilt_deg", "azimuth_deg",
    "core_dx", "core_dy", "area", "centre_inside", "n_pixels",
)

#: Ranges ``[low, high]`` of the appearance parameters; each image draws every value uniformly.
#: These are the built-in dataset's defaults (grey levels are 0-255).
DEFAULT_APPEARANCE_RANGES: dict[str, tuple[float, float]] = {
    k: tuple(v) for k, v in to_mapping(AppearanceRanges()).items()}

#: Params of the built-in dataset (``synthesize`` group of params.yaml, without ``seed``), as
#: plain values: :class:`~porescope.synthetic.params.SynthesizeParams` defaults.
DEFAULT_PARAMS: dict[str, Any] = to_mapping(SynthesizeParams())


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Appearance:
    """Concrete SEM appearance of one image (grey levels 0-255, lengths in output pixels).

    surface_level: mean grey of the flat membrane surface.
    core_level: grey of the dark pore core (nothing escapes from deep in the track).
    crescent_level: grey of the lit inclined wall at the rim; it falls to ``core_level`` at the
        visible depth as ``(1 - depth_fraction) ** wall_gamma``.
    rim_strength, rim_width_px: the bright edge ring outside the opening adds about
        ``rim_strength * exp(-t^2 / (2 rim_width_px^2))`` at distance ``t`` px from the boundary
        (tapered to 0 at ``t = 3 rim_width_px``, see the module docs).
    rim_asymmetry: ring gain ``1 + rim_asymmetry * sin(theta) * cos(angle to the crescent side)``.
    halo_strength, halo_sigma: charging glow ``255 * halo_strength * (G * coverage)`` with a
        Gaussian ``G`` of sigma ``halo_sigma * mean diameter``.
    texture_strength, texture_scale_px: std (grey levels) and correlation length of the grainy
        surface texture. mottle_strength: std of a coarser (~10 px) mottling.
    streak_strength: std of faint streaks along one direction; scratch_count: number of thin
        brighter scratches; debris_density: small debris rings per megapixel.
    gradient_strength: relative amplitude of the slow multiplicative brightness variation.
    blur_sigma_px: Gaussian beam blur. shot_noise: variance per grey level (Poisson-like noise
        of variance ``shot_noise * I``). read_noise: std of additive Gaussian noise.
    """

    surface_level: float = 125.0
    core_level: float = 15.0
    crescent_level: float = 220.0
    wall_gamma: float = 1.2
    rim_strength: float = 60.0
    rim_width_px: float = 1.0
    rim_asymmetry: float = 0.4
    halo_strength: float = 0.1
    halo_sigma: float = 0.6
    texture_strength: float = 7.0
    texture_scale_px: float = 1.0
    mottle_strength: float = 3.0
    streak_strength: float = 2.0
    scratch_count: float = 3.0
    debris_density: float = 10.0
    gradient_strength: float = 0.1
    blur_sigma_px: float = 0.8
    shot_noise: float = 0.5
    read_noise: float = 3.0

    def __post_init__(self) -> None:
        require_non_negative(self)
        if self.rim_width_px <= 0 or self.halo_sigma <= 0 or self.texture_scale_px <= 0:
            raise ValueError("Appearance: rim_width_px, halo_sigma and texture_scale_px must be > 0")

    @classmethod
    def clean(cls, **overrides: float) -> Appearance:
        """No texture, halo, gradient, debris or noise: the bare geometry (for tests/figures)."""
        base = dict(halo_strength=0.0, texture_strength=0.0, mottle_strength=0.0,
                    streak_strength=0.0, scratch_count=0.0, debris_density=0.0,
                    gradient_strength=0.0, shot_noise=0.0, read_noise=0.0)
        base.update(overrides)
        return cls(**base)


@dataclass(frozen=True)
class MembraneSpec:
    """Everything that defines one synthetic micrograph except its random draws.

    height, width: image size in pixels (data bar included).
    porosity: target porosity phi of the Boolean model (the realised one is the truth).
    mean_diameter_px, diameter_cv: track diameter ``d`` ~ normal(mean, cv * mean) cut at +-3 cv.
    tilt_distribution: ``"halfnormal"`` (|N(0, tilt_sigma_deg)| truncated at tilt_max_deg),
        ``"uniform"`` (U(0, tilt_max_deg)) or ``"fixed"`` (every track at tilt_max_deg).
    azimuth_deg, azimuth_spread_deg: preferred irradiation azimuth and the std of a normal
        spread around it (degrees, counter-clockwise on screen).
    core_depth: visible depth of the track wall in units of the pore diameter (sets the core).
    pixel_size_nm: physical pixel size (``None`` if unknown; then no per-cm^2 density).
    supersample: integer supersampling factor of the rendering.
    databar_height_px: height of the black data bar at the bottom (0 = none).
    appearance: the :class:`Appearance` values.
    """

    height: int = 512
    width: int = 512
    porosity: float = 0.15
    mean_diameter_px: float = 25.0
    diameter_cv: float = 0.08
    tilt_distribution: str = "halfnormal"
    tilt_sigma_deg: float = 15.0
    tilt_max_deg: float = 40.0
    azimuth_deg: float = 300.0
    azimuth_spread_deg: float = 25.0
    core_depth: float = 0.8
    pixel_size_nm: float | None = 25.0
    supersample: int = 4
    databar_height_px: int = 0
    appearance: Appearance = field(default_factory=Appearance)
    artefacts: Artefacts | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"MembraneSpec.{name}: {why} (got {getattr(self, name)!r})")

        for name in ("height", "width", "supersample", "databar_height_px"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise bad(name, "must be an integer")
        if self.height < 8 or self.width < 8:
            raise bad("height" if self.height < 8 else "width", "must be >= 8")
        if not 0 <= self.databar_height_px <= self.height - 8:
            raise bad("databar_height_px", "must be in [0, height - 8]")
        if not 1 <= self.supersample <= 16:
            raise bad("supersample", "must be in [1, 16]")
        if not 0.0 <= self.porosity < 0.95:
            raise bad("porosity", "must be in [0, 0.95)")
        if not 1.0 <= self.mean_diameter_px <= min(self.height, self.width):
            raise bad("mean_diameter_px", "must be in [1, min(height, width)]")
        if not 0.0 <= self.diameter_cv <= 0.3:
            raise bad("diameter_cv", "must be in [0, 0.3]")
        if self.tilt_distribution not in TILT_DISTRIBUTIONS:
            raise bad("tilt_distribution", f"must be one of {TILT_DISTRIBUTIONS}")
        if not 0.0 <= self.tilt_max_deg <= 80.0:
            raise bad("tilt_max_deg", "must be in [0, 80]")
        if not self.tilt_sigma_deg >= 0.0:
            raise bad("tilt_sigma_deg", "must be >= 0")
        if not (math.isfinite(self.azimuth_deg) and self.azimuth_spread_deg >= 0):
            raise bad("azimuth_spread_deg", "azimuth must be finite and its spread >= 0")
        if not 0.0 <= self.core_depth <= 10.0:
            raise bad("core_depth", "must be in [0, 10]")
        if self.pixel_size_nm is not None and not self.pixel_size_nm > 0:
            raise bad("pixel_size_nm", "must be > 0 or None")
        if not isinstance(self.appearance, Appearance):
            raise bad("appearance", "must be an Appearance")
        if self.artefacts is not None and not isinstance(self.artefacts, Artefacts):
            raise bad("artefacts", "must be an Artefacts or None")

    @property
    def analysed_height(self) -> int:
        """Rows above the data bar (the analysed region is ``[0, analysed_height) x [0, width)``)."""
        return self.height - self.databar_height_px

    def diameter_bounds(self) -> tuple[float, float]:
        """Truncation interval of the track diameter, px (mean -+ 3 cv, at least 1 px)."""
        lo = max(1.0, self.mean_diameter_px * (1.0 - 3.0 * self.diameter_cv))
        hi = max(lo, self.mean_diameter_px * (1.0 + 3.0 * self.diameter_cv))
        return lo, hi

    def max_tilt_deg(self) -> float:
        """Largest tilt the distribution can produce (degrees)."""
        if self.tilt_distribution == "halfnormal" and self.tilt_sigma_deg == 0:
            return 0.0
        return float(self.tilt_max_deg)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------

def _diameter_dist(spec: MembraneSpec):
    lo, hi = spec.diameter_bounds()
    sd = spec.diameter_cv * spec.mean_diameter_px
    if sd == 0 or hi == lo:
        return None
    return stats.truncnorm((lo - spec.mean_diameter_px) / sd, (hi - spec.mean_diameter_px) / sd,
                           loc=spec.mean_diameter_px, scale=sd)


def expected_opening_area(spec: MembraneSpec) -> float:
    """Mean area (px^2) of one surface opening, ``pi/4 * E[d^2] * E[1/cos(theta)]``.

    Exact for the truncated distributions used by :func:`sample_pores` (``d`` and ``theta`` are
    independent); this is the ``E[A]`` of the Boolean model.
    """
    dist = _diameter_dist(spec)
    e_d2 = float(dist.moment(2)) if dist is not None else spec.diameter_bounds()[0] ** 2
    tmax = math.radians(spec.max_tilt_deg())
    if tmax == 0.0:
        e_sec = 1.0
    elif spec.tilt_distribution == "fixed":
        e_sec = 1.0 / math.cos(tmax)
    elif spec.tilt_distribution == "uniform":
        e_sec = math.log(1.0 / math.cos(tmax) + math.tan(tmax)) / tmax
    else:
        sig = math.radians(spec.tilt_sigma_deg)
        t = np.linspace(0.0, tmax, 4001)
        w = np.exp(-0.5 * (t / sig) ** 2)
        e_sec = float(np.trapezoid(w / np.cos(t), t) / np.trapezoid(w, t))
    return math.pi / 4.0 * e_d2 * e_sec


def boolean_intensity(porosity: float, mean_area: float) -> float:
    """Boolean-model intensity ``lambda = -ln(1 - phi) / E[A]`` (pores per px^2)."""
    if not 0.0 <= porosity < 1.0 or not mean_area > 0:
        raise ValueError(f"boolean_intensity: need 0 <= porosity < 1 and mean_area > 0 "
                         f"(got {porosity!r}, {mean_area!r})")
    return -math.log1p(-porosity) / mean_area


def _bbox_half(a: np.ndarray, b: np.ndarray, angle_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-width and half-height of the axis-aligned bounding box of rotated ellipses."""
    th = np.deg2rad(angle_deg)
    c, s = np.cos(th), np.sin(th)
    return np.sqrt((a * c) ** 2 + (b * s) ** 2), np.sqrt((a * s) ** 2 + (b * c) ** 2)


def sample_pores(spec: MembraneSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the pores of one image (Poisson centres, tilted-track ellipses).

    Centres are uniform in the image window ``[-0.5, W-0.5] x [-0.5, H-0.5]`` extended by the
    largest possible half-major axis on every side; their number is Poisson with mean
    ``lambda * extended area`` where ``lambda`` is :func:`boolean_intensity` of the target
    porosity. Pores whose opening's bounding box does not overlap the image are dropped; the
    rest are "drawn" and listed.

    Returns a DataFrame with one row per drawn pore (draw order) and columns
    ``pore_id`` (0..n-1), ``x``, ``y`` (centre, px), ``diameter`` (track diameter = minor),
    ``major``, ``minor`` (full axes, px), ``angle_deg`` (major-axis orientation, [0, 180), ccw on
    screen from +x), ``tilt_deg``, ``azimuth_deg`` ([0, 360), direction in which the track goes
    deeper; the bright wall is on the opposite side), ``core_dx``, ``core_dy`` (translation of
    the ellipse that defines the core, px), ``area`` (analytic ``pi/4 major minor``),
    ``centre_inside`` (centre in the analysed region ``[-0.5, W-0.5) x [-0.5, H_a-0.5)``) and
    ``n_pixels`` (pixel centres of the analysed region inside this pore's own opening).
    """
    h, w = spec.height, spec.width
    lo, hi = spec.diameter_bounds()
    tmax = spec.max_tilt_deg()
    margin = 0.5 * hi / math.cos(math.radians(tmax)) + 1.0
    x0, x1 = -0.5 - margin, w - 0.5 + margin
    y0, y1 = -0.5 - margin, h - 0.5 + margin
    lam = boolean_intensity(spec.porosity, expected_opening_area(spec))
    n = int(rng.poisson(lam * (x1 - x0) * (y1 - y0)))
    x = rng.uniform(x0, x1, n)
    y = rng.uniform(y0, y1, n)
    dist = _diameter_dist(spec)
    d = dist.rvs(size=n, random_state=rng) if dist is not None else np.full(n, lo)
    if tmax == 0.0:
        tilt = np.zeros(n)
    elif spec.tilt_distribution == "fixed":
        tilt = np.full(n, tmax)
    elif spec.tilt_distribution == "uniform":
        tilt = rng.uniform(0.0, tmax, n)
    else:
        tilt = stats.truncnorm.rvs(0.0, tmax / spec.tilt_sigma_deg, loc=0.0,
                                   scale=spec.tilt_sigma_deg, size=n, random_state=rng)
    az = np.mod(spec.azimuth_deg + spec.azimuth_spread_deg * rng.standard_normal(n), 360.0)

    minor = np.asarray(d, dtype=float)
    cos_t = np.cos(np.deg2rad(tilt))
    major = minor / cos_t
    angle = np.mod(az, 180.0)
    shift = spec.core_depth * minor * np.tan(np.deg2rad(tilt))
    az_r = np.deg2rad(az)
    core_dx = shift * np.cos(az_r)
    core_dy = -shift * np.sin(az_r)

    hx, hy = _bbox_half(major / 2, minor / 2, angle)
    keep = (x + hx >= -0.5) & (x - hx <= w - 0.5) & (y + hy >= -0.5) & (y - hy <= h - 0.5)
    ha = spec.analysed_height
    pores = pd.DataFrame({
        "pore_id": np.arange(int(keep.sum()), dtype=np.int64),
        "x": x[keep], "y": y[keep], "diameter": minor[keep], "major": major[keep],
        "minor": minor[keep], "angle_deg": angle[keep], "tilt_deg": np.asarray(tilt, float)[keep],
        "azimuth_deg": az[keep], "core_dx": core_dx[keep], "core_dy": core_dy[keep],
    })
    pores["area"] = math.pi / 4.0 * pores["major"] * pores["minor"]
    pores["centre_inside"] = _centre_in_region(pores, ha, w)
    pores["n_pixels"] = _own_pixel_counts(pores, (ha, w))
    return pores[list(PORE_COLUMNS)]


def ellipse_inside(px: np.ndarray, py: np.ndarray, x: float, y: float, major: float,
                   minor: float, angle_deg: float) -> np.ndarray:
    """Whether points ``(px, py)`` (broadcastable arrays, px) lie inside one ellipse.

    ``((dx*c - dy*s) / a)**2 + ((dx*s + dy*c) / b)**2 <= 1`` with ``dx = px - x``,
    ``dy = py - y``, ``a = major/2``, ``b = minor/2``, ``c, s = cos, sin(radians(angle_deg))``;
    the angle is counter-clockwise on screen (y down), as in the module docstring.
    """
    th = math.radians(angle_deg)
    c, s = math.cos(th), math.sin(th)
    dx = np.asarray(px, dtype=np.float64) - x
    dy = np.asarray(py, dtype=np.float64) - y
    return ((dx * c - dy * s) / (major / 2.0)) ** 2 + ((dx * s + dy * c) / (minor / 2.0)) ** 2 <= 1.0


def _ellipse_windows(pores: pd.DataFrame, shape: tuple[int, int], dx: np.ndarray | None = None,
                     dy: np.ndarray | None = None):
    """Yield ``(row slice, col slice, inside bool array)`` per pore, pixel-centre test."""
    h, w = shape
    xs = pores["x"].to_numpy(float) + (0.0 if dx is None else dx)
    ys = pores["y"].to_numpy(float) + (0.0 if dy is None else dy)
    maj = pores["major"].to_numpy(float)
    mnr = pores["minor"].to_numpy(float)
    ang = pores["angle_deg"].to_numpy(float)
    hx, hy = _bbox_half(maj / 2, mnr / 2, ang)
    for i in range(len(xs)):
        c0 = max(0, math.ceil(xs[i] - hx[i] - 1e-9))
        c1 = min(w - 1, math.floor(xs[i] + hx[i] + 1e-9))
        r0 = max(0, math.ceil(ys[i] - hy[i] - 1e-9))
        r1 = min(h - 1, math.floor(ys[i] + hy[i] + 1e-9))
        if c1 < c0 or r1 < r0:
            yield i, None, None, None
            continue
        cols = np.arange(c0, c1 + 1, dtype=np.float64)[None, :]
        rows = np.arange(r0, r1 + 1, dtype=np.float64)[:, None]
        yield i, slice(r0, r1 + 1), slice(c0, c1 + 1), ellipse_inside(
            cols, rows, xs[i], ys[i], maj[i], mnr[i], ang[i])


def _own_pixel_counts(pores: pd.DataFrame, shape: tuple[int, int],
                      hidden: np.ndarray | None = None) -> np.ndarray:
    counts = np.zeros(len(pores), dtype=np.int64)
    for i, rs, cs, inside in _ellipse_windows(pores, shape):
        if inside is not None:
            counts[i] = int(inside.sum() if hidden is None else (inside & ~hidden[rs, cs]).sum())
    return counts


def opening_mask(pores: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Boolean opening mask: pixel centres inside the union of the listed ellipses.

    ``pores`` needs columns ``x, y, major, minor, angle_deg``; ``shape = (rows, cols)``. Each
    pore is tested only on the pixel centres of its bounding box (:func:`ellipse_inside`).
    """
    mask = np.zeros(shape, dtype=bool)
    for _, rs, cs, inside in _ellipse_windows(pores, shape):
        if inside is not None:
            mask[rs, cs] |= inside
    return mask


def core_mask(pores: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Boolean dark-core mask: union over pores of opening ∩ (opening translated by core_dx, core_dy).

    ``pores`` needs columns ``x, y, major, minor, angle_deg, core_dx, core_dy``. The translated
    ellipse has centre ``(x + core_dx, y + core_dy)`` and the same axes and angle.
    """
    mask = np.zeros(shape, dtype=bool)
    own = {i: (rs, cs, ins) for i, rs, cs, ins in _ellipse_windows(pores, shape) if ins is not None}
    shifted = _ellipse_windows(pores, shape, pores["core_dx"].to_numpy(float),
                               pores["core_dy"].to_numpy(float))
    for i, rs2, cs2, ins2 in shifted:
        if ins2 is None or i not in own:
            continue
        rs, cs, ins = own[i]
        r0, r1 = max(rs.start, rs2.start), min(rs.stop, rs2.stop)
        c0, c1 = max(cs.start, cs2.start), min(cs.stop, cs2.stop)
        if r1 <= r0 or c1 <= c0:
            continue
        both = (ins[r0 - rs.start:r1 - rs.start, c0 - cs.start:c1 - cs.start]
                & ins2[r0 - rs2.start:r1 - rs2.start, c0 - cs2.start:c1 - cs2.start])
        mask[r0:r1, c0:c1] |= both
    return mask


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def _pore_layer(spec: MembraneSpec, pores: pd.DataFrame
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Supersampled pore rendering, area-downsampled: (coverage in [0, 1], pore-layer grey,
    fringe-gap shade or None).

    The pore layer holds the interior grey (core / lit wall) inside openings and the additive
    ring (and edge-effect fringe, :class:`~porescope.synthetic.artefacts.Artefacts`) outside
    them; the surface is composited later as ``surface * (1 - shade) * (1 - coverage)``.
    """
    ss = spec.supersample
    app = spec.appearance
    H, W = spec.height * ss, spec.width * ss
    interior = np.full((H, W), np.inf, dtype=np.float32)
    inside_any = np.zeros((H, W), dtype=bool)
    ring = np.zeros((H, W), dtype=np.float32)
    wr = float(app.rim_width_px)
    reach = 3.0 * wr + 0.5  # ring drawn out to t = 3 rim widths (tapered to 0 there)
    floor = math.exp(-4.5)
    art = spec.artefacts
    fringe = shade = None
    if art is not None and art.fringe_strength > 0:
        fringe = np.zeros((H, W), dtype=np.float32)
        reach = max(reach, fringe_reach(art) + 0.5)
        if art.fringe_gap_px > 0 and art.fringe_gap_depth > 0:
            shade = np.zeros((H, W), dtype=np.float32)
    core_lv, cres_lv = float(app.core_level), float(app.crescent_level)
    cols = pores[["x", "y", "major", "minor", "angle_deg", "tilt_deg", "core_dx", "core_dy"]]
    for cx, cy, maj, mnr, ang, tilt, sdx, sdy in cols.itertuples(index=False, name=None):
        a, b = maj / 2.0, mnr / 2.0
        th = math.radians(ang)
        c, s = math.cos(th), math.sin(th)
        hx = math.sqrt((a * c) ** 2 + (b * s) ** 2) + reach
        hy = math.sqrt((a * s) ** 2 + (b * c) ** 2) + reach
        j0 = max(0, math.floor((cx - hx + 0.5) * ss - 0.5))
        j1 = min(W - 1, math.ceil((cx + hx + 0.5) * ss - 0.5))
        i0 = max(0, math.floor((cy - hy + 0.5) * ss - 0.5))
        i1 = min(H - 1, math.ceil((cy + hy + 0.5) * ss - 0.5))
        if j1 < j0 or i1 < i0:
            continue
        ex = (np.arange(j0, j1 + 1, dtype=np.float32) + 0.5) / ss - 0.5 - cx  # x - cx
        ey = (np.arange(i0, i1 + 1, dtype=np.float32) + 0.5) / ss - 0.5 - cy  # y - cy
        # normalised coordinates along the major (u) and minor (v) axes (outer sums)
        u = (ex * (c / a))[None, :] - (ey * (s / a))[:, None]
        v = (ex * (s / b))[None, :] + (ey * (c / b))[:, None]
        r2 = u * u
        r2 += v * v
        inside = r2 <= 1.0
        outside = ~inside
        win = (slice(i0, i1 + 1), slice(j0, j1 + 1))
        # interior: a line of sight at (u, v) meets the wall at depth fraction f of the
        # visible depth, where (u - f*sig)^2 + v^2 = 1 (sig: core shift along the major axis
        # in units of a); f >= 1 is the dark core, f < 1 the lit wall (crescent).
        sig = (sdx * c - sdy * s) / a
        if abs(sig) > 1e-9:
            q = v * v
            np.subtract(1.0, q, out=q)
            np.maximum(q, 0.0, out=q)
            np.sqrt(q, out=q)
            q *= math.copysign(1.0, sig)
            q += u
            q *= -1.0 / sig
            q += 1.0  # q = 1 - f, clipped to [0, 1] below; wall grey core + (cres - core) q^gamma
            np.clip(q, 1e-12, 1.0, out=q)
            np.log(q, out=q)
            q *= app.wall_gamma
            np.exp(q, out=q)
            q *= cres_lv - core_lv
            q += core_lv
            np.minimum(interior[win], q, out=interior[win], where=inside)
        else:
            np.minimum(interior[win], np.float32(core_lv), out=interior[win], where=inside)
        inside_any[win] |= inside
        # edge ring outside the opening; distance to the boundary t = (r - 1) / |grad r|
        # to first order, r = sqrt(r2), |grad r| = sqrt((u/a)^2 + (v/b)^2) / r
        gx = (ex * (c / a ** 2))[None, :] - (ey * (s / a ** 2))[:, None]
        gy = (ex * (s / b ** 2))[None, :] + (ey * (c / b ** 2))[:, None]
        gx *= gx
        gy *= gy
        gx += gy
        np.maximum(gx, np.float32(1e-12), out=gx)  # gx = |grad r|^2 r^2
        r = np.sqrt(r2)
        r2 -= r  # r2 = r (r - 1)
        r2 *= r2
        r2 /= gx  # t^2
        if fringe is not None:
            t = np.sqrt(r2)
            np.maximum(fringe[win], fringe_grey(t, ex[None, :], ey[:, None], art),
                       out=fringe[win], where=outside)
            if shade is not None:
                np.maximum(shade[win], np.float32(art.fringe_gap_depth) * (t < art.fringe_gap_px),
                           out=shade[win], where=outside)
        r2 *= np.float32(-0.5 / wr ** 2)
        val = np.exp(r2, out=r2)
        val -= floor
        val *= app.rim_strength / (1.0 - floor)
        if tilt > 0 and app.rim_asymmetry > 0 and abs(sig) > 1e-9:
            # gain 1 + k on the crescent side (opposite to the shift), 1 - k on the far side
            k = app.rim_asymmetry * math.sin(math.radians(tilt)) * -math.copysign(1.0, sig)
            np.maximum(r, np.float32(1e-6), out=r)
            np.divide(u, r, out=r)
            r *= k
            r += 1.0
            val *= r
        np.maximum(ring[win], val, out=ring[win], where=outside)
    if fringe is not None:
        ring += fringe
    layer = np.where(inside_any, interior, ring)
    size = (spec.width, spec.height)
    cov = cv2.resize(inside_any.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    layer = cv2.resize(layer, size, interpolation=cv2.INTER_AREA)
    if shade is not None:
        shade = cv2.resize(shade, size, interpolation=cv2.INTER_AREA)
    return cov, layer, shade


def _surface(spec: MembraneSpec, rng: np.random.Generator) -> np.ndarray:
    """Textured membrane surface (float32 grey levels, before halos, gain and blur)."""
    app = spec.appearance
    shape = (spec.height, spec.width)
    surf = np.full(shape, app.surface_level, dtype=np.float32)
    surf += app.texture_strength * filtered_noise(rng, shape, app.texture_scale_px)
    surf += app.mottle_strength * filtered_noise(rng, shape, 10.0)
    angle = rng.uniform(0.0, 180.0)  # streak / scratch direction (ccw on screen)
    if app.streak_strength > 0:
        length = int(min(61, 2 * (min(shape) // 4) + 1))
        k = np.zeros((length, length), np.float32)
        c = length // 2
        th = math.radians(angle)
        p0 = (int(round(c - c * math.cos(th))), int(round(c + c * math.sin(th))))
        p1 = (int(round(c + c * math.cos(th))), int(round(c - c * math.sin(th))))
        cv2.line(k, p0, p1, 1.0, 1)
        k /= k.sum()
        streaks = cv2.filter2D(rng.standard_normal(shape, dtype=np.float32), -1, k,
                               borderType=cv2.BORDER_REFLECT)
        sd = float(streaks.std())
        surf += app.streak_strength * streaks / (sd if sd > 0 else 1.0)
    n_scr = int(rng.poisson(app.scratch_count)) if app.scratch_count > 0 else 0
    n_deb = (int(rng.poisson(app.debris_density * spec.height * spec.width / 1e6))
             if app.debris_density > 0 else 0)
    if n_scr or n_deb:
        marks = np.zeros(shape, np.uint8)
        for _ in range(n_scr):
            th = math.radians(angle + rng.normal(0.0, 3.0))
            x, y = rng.uniform(0, spec.width), rng.uniform(0, spec.height)
            half = rng.uniform(0.1, 0.6) * max(shape)
            dx, dy = half * math.cos(th), -half * math.sin(th)
            cv2.line(marks, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)),
                     int(rng.integers(60, 160)), 1, cv2.LINE_AA)
        for _ in range(n_deb):
            x, y = int(rng.integers(0, spec.width)), int(rng.integers(0, spec.height))
            filled = bool(rng.uniform() < 0.5)  # bright speck or small ring
            cv2.circle(marks, (x, y), int(rng.integers(1, 3 if filled else 4)),
                       int(rng.integers(120, 255)), -1 if filled else 1, cv2.LINE_AA)
        surf += marks.astype(np.float32) * (0.25 * app.surface_level / 255.0)
    return surf


def _gain_field(spec: MembraneSpec, rng: np.random.Generator) -> np.ndarray:
    """Slow multiplicative brightness variation ``1 + g * field``, field in about [-1, 1]."""
    shape = (spec.height, spec.width)
    coarse = rng.uniform(-1.0, 1.0, (4, 4)).astype(np.float32)
    field_ = cv2.resize(coarse, (spec.width, spec.height), interpolation=cv2.INTER_CUBIC)
    ramp_th = rng.uniform(0.0, 2.0 * math.pi)
    xs = (np.arange(shape[1], dtype=np.float32) / shape[1] - 0.5) * math.cos(ramp_th)
    ys = (np.arange(shape[0], dtype=np.float32) / shape[0] - 0.5) * math.sin(ramp_th)
    ramp = xs[None, :] + ys[:, None]
    return 1.0 + spec.appearance.gradient_strength * (0.5 * field_ + ramp)


def draw_databar(image: np.ndarray, height_px: int, pixel_size_nm: float | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Paint an SEM data bar (black band, white text, scale bar) over the bottom rows, in place.

    The scale bar has a "nice" length (1, 2 or 5 x 10^k nm) of about a fifth of the width when
    ``pixel_size_nm`` is known. Returns ``image``.
    """
    if height_px <= 0:
        return image
    h, w = image.shape
    top = h - height_px
    image[top:] = np.uint8(rng.integers(0, 12))
    scale = max(0.3, height_px / 60.0)
    base = top + int(0.68 * height_px)
    font = cv2.FONT_HERSHEY_SIMPLEX
    kv = int(rng.choice([5, 10, 15, 20]))
    cv2.putText(image, f"{kv}kV", (int(0.02 * w), base), font, scale, 255, 1, cv2.LINE_AA)
    if pixel_size_nm:
        target = 0.2 * w * pixel_size_nm
        k = 10.0 ** math.floor(math.log10(target))
        nice = max((m * k for m in (1, 2, 5) if m * k <= target), default=k)
        length = int(round(nice / pixel_size_nm))
        label = f"{nice / 1000:g} um" if nice >= 1000 else f"{nice:g} nm"
        mag = int(round(1.27e8 / (w * pixel_size_nm) / 10.0) * 10)  # 12.7 cm print width
        cv2.putText(image, f"X{mag:,}", (int(0.2 * w), base), font, scale, 255, 1, cv2.LINE_AA)
        x0 = int(0.42 * w)
        yb = top + int(0.25 * height_px)
        cv2.line(image, (x0, yb), (x0 + length, yb), 255, max(1, height_px // 20))
        cv2.putText(image, label, (x0 + int(0.1 * length), base), font, scale, 255, 1, cv2.LINE_AA)
    cv2.putText(image, "porescope", (int(0.78 * w), base), font, scale * 0.8, 255, 1, cv2.LINE_AA)
    return image


def render_sem(spec: MembraneSpec, pores: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Render the SEM micrograph of ``pores`` (uint8, ``(height, width)``); see module docs.

    Order: supersampled pore layer (core, lit wall, edge ring, edge-effect fringe)
    area-downsampled; textured surface (with rough patches) plus charging halo composited
    outside the openings; slow gain; charging glows, ramp and scan lines; Gaussian beam blur;
    shot noise (variance ``shot_noise * I``) and read noise; data bar on top; then the overlays
    (frame, text, logo, scale bar) and a JPEG round trip of ``spec.artefacts``
    (:mod:`porescope.synthetic.artefacts`, which draws from its own seed, not from ``rng``).
    """
    return _render(spec, pores, rng)[0]


def _render(spec: MembraneSpec, pores: pd.DataFrame, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`render_sem` and the map of the pixels hidden by overlays (None without any)."""
    app = spec.appearance
    art = spec.artefacts
    cov, layer, shade = _pore_layer(spec, pores)
    surf = _surface(spec, rng)
    if art is not None and art.rough_coverage > 0:
        surf += rough_patches(surf.shape, art, spec.mean_diameter_px)
    if app.halo_strength > 0 and len(pores):
        surf += (255.0 * app.halo_strength) * smooth(cov, app.halo_sigma * spec.mean_diameter_px)
    if shade is not None:
        surf *= 1.0 - shade
    img = _gain_field(spec, rng) * (surf * (1.0 - cov) + layer)
    if art is not None and art.charging_strength + art.charging_gradient + art.scanline_strength > 0:
        img = charging(img, art)
    if app.blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), app.blur_sigma_px, borderType=cv2.BORDER_REFLECT)
    noise = rng.standard_normal((2,) + img.shape, dtype=np.float32)
    if app.shot_noise > 0:
        img = img + np.sqrt(np.clip(img, 0.0, None) * app.shot_noise) * noise[0]
    if app.read_noise > 0:
        img = img + app.read_noise * noise[1]
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    out = draw_databar(out, spec.databar_height_px, spec.pixel_size_nm, rng)
    hidden = None
    if art is not None:
        if art.has_overlays():
            hidden = draw_overlays(out, art, spec.pixel_size_nm)
        if art.jpeg_quality > 0:
            out = jpeg_roundtrip(out, art.jpeg_quality)
    return out, hidden


# --------------------------------------------------------------------------------------------
# One image, a dataset
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticImage:
    """One synthetic micrograph with its exact truth.

    image: uint8 ``(height, width)``. mask_opening, mask_core: bool, same shape, False in the
    data-bar rows. pores: the table of :func:`sample_pores`. truth: dict, see
    :func:`synthesize_image`. hidden: bool, same shape, the pixels a burned-in overlay (frame,
    text, logo, scale bar) touched; None without overlays.
    """

    image: np.ndarray
    mask_opening: np.ndarray
    mask_core: np.ndarray
    pores: pd.DataFrame
    truth: dict[str, Any]
    hidden: np.ndarray | None = None


def synthesize_image(spec: MembraneSpec, rng: np.random.Generator) -> SyntheticImage:
    """Draw the pores, render the micrograph and compute the exact truth of one image.

    ``truth`` keys: height, width, analysed_height, databar_height_px, n_drawn (listed pores,
    opening bounding box overlapping the image), n_true (pores whose centre is in the analysed
    region), porosity (opening-mask foreground fraction of the analysed region), porosity_core,
    porosity_target, density_px2 (n_true / analysed area), density_cm2 (with pixel_size_nm,
    else NaN), mean_area_px (mean analytic ``pi/4 major minor`` of the drawn pores),
    expected_area_px (model E[A]), intensity_px2 (Boolean-model lambda used), mean_diameter_px,
    diameter_cv, tilt_distribution, tilt_sigma_deg, tilt_max_deg, azimuth_deg,
    azimuth_spread_deg, core_depth, pixel_size_nm, supersample, and the appearance values
    prefixed ``app_``.

    With ``spec.artefacts`` (not None) ``truth`` also holds ``hidden_fraction`` (share of the
    analysed region under overlays), ``n_hidden`` (pores whose centre is in the analysed region
    but under an overlay) and the artefact values prefixed ``art_``. Overlays (frame, text,
    logo, scale bar) hide what lies below them, like the data bar: both masks are 0 on every
    pixel an overlay touched, so ``porosity`` (mask pixels / analysed pixels, the hidden ones
    included in the denominator) is the *visible* open area; in the pore table ``n_pixels``
    counts only visible pixels and ``centre_inside`` is False for a pore whose centre pixel is
    hidden, so ``n_true`` counts the pores whose centre is visible in the analysed region (a
    pore partly under a logo but with its centre visible counts; one with its centre under
    the logo does not, though a visible part of it may still be a mask object).
    """
    pores = sample_pores(spec, rng)
    shape = (spec.height, spec.width)
    ha = spec.analysed_height
    m_open = opening_mask(pores, shape)
    m_core = core_mask(pores, shape)
    m_open[ha:] = False
    m_core[ha:] = False
    image, hidden = _render(spec, pores, rng)
    n_hidden = 0
    if hidden is not None:
        m_open[hidden] = False
        m_core[hidden] = False
        pores = _hide_pores(pores, hidden, (ha, spec.width))
        n_hidden = int((pores["centre_inside"] != _centre_in_region(pores, ha, spec.width)).sum())
    area = ha * spec.width
    n_true = int(pores["centre_inside"].sum())
    e_a = expected_opening_area(spec)
    truth: dict[str, Any] = {
        "height": spec.height, "width": spec.width, "analysed_height": ha,
        "databar_height_px": spec.databar_height_px,
        "n_drawn": len(pores), "n_true": n_true,
        "porosity": float(m_open[:ha].mean()), "porosity_core": float(m_core[:ha].mean()),
        "porosity_target": spec.porosity,
        "density_px2": n_true / area,
        "density_cm2": (n_true / (area * (spec.pixel_size_nm * 1e-7) ** 2)
                        if spec.pixel_size_nm else float("nan")),
        "mean_area_px": float(pores["area"].mean()) if len(pores) else float("nan"),
        "expected_area_px": e_a,
        "intensity_px2": boolean_intensity(spec.porosity, e_a),
        "mean_diameter_px": spec.mean_diameter_px, "diameter_cv": spec.diameter_cv,
        "tilt_distribution": spec.tilt_distribution, "tilt_sigma_deg": spec.tilt_sigma_deg,
        "tilt_max_deg": spec.tilt_max_deg, "azimuth_deg": spec.azimuth_deg,
        "azimuth_spread_deg": spec.azimuth_spread_deg, "core_depth": spec.core_depth,
        "pixel_size_nm": spec.pixel_size_nm if spec.pixel_size_nm else float("nan"),
        "supersample": spec.supersample,
    }
    truth.update({f"app_{k}": v for k, v in dataclasses.asdict(spec.appearance).items()})
    if spec.artefacts is not None:
        truth["hidden_fraction"] = float(hidden[:ha].mean()) if hidden is not None else 0.0
        truth["n_hidden"] = n_hidden
        truth.update({f"art_{k}": v for k, v in dataclasses.asdict(spec.artefacts).items()})
    return SyntheticImage(image, m_open, m_core, pores, truth, hidden)


def _centre_in_region(pores: pd.DataFrame, analysed_height: int, width: int) -> pd.Series:
    return ((pores["x"] >= -0.5) & (pores["x"] < width - 0.5)
            & (pores["y"] >= -0.5) & (pores["y"] < analysed_height - 0.5))


def _hide_pores(pores: pd.DataFrame, hidden: np.ndarray, region: tuple[int, int]) -> pd.DataFrame:
    """The pore table with ``centre_inside`` False where the centre pixel is ``hidden`` and
    ``n_pixels`` counting only the visible pixels of the analysed ``region`` (rows, cols)."""
    inside = _centre_in_region(pores, *region).to_numpy()
    rows = np.clip(np.floor(pores["y"].to_numpy(float) + 0.5).astype(int), 0, hidden.shape[0] - 1)
    cols = np.clip(np.floor(pores["x"].to_numpy(float) + 0.5).astype(int), 0, hidden.shape[1] - 1)
    out = pores.copy()
    out["centre_inside"] = inside & ~hidden[rows, cols]
    out["n_pixels"] = _own_pixel_counts(pores, region, hidden[:region[0]])
    return out


def image_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of image ``index``: ``SeedSequence(seed, spawn_key=(index,))`` (the ``index``-th
    child that ``SeedSequence(seed).spawn`` would give), independent of the dataset size."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


# Kronecker (Weyl) sequences: frac(offset + k * alpha) with badly approximable alphas, so every
# prefix of the dataset is spread evenly (largest gap < 2.1 / n of the range for any n < 200).
_ALPHA_POROSITY = (math.sqrt(5.0) - 1.0) / 2.0  # golden ratio conjugate
_ALPHA_DIAMETER = math.sqrt(2.0) - 1.0


def dataset_specs(params: SynthesizeParams | Mapping[str, Any], seed: int) -> list[MembraneSpec]:
    """Specs of the ``n_images`` images described by ``synthesize`` params (dataclass or mapping).

    Target porosity and mean diameter are spread evenly over ``[porosity_min, porosity_max]``
    and ``[diameter_min_px, diameter_max_px]`` by Kronecker low-discrepancy sequences
    ``frac(offset + k * alpha)`` (alpha = golden-ratio conjugate and sqrt(2) - 1, offsets drawn
    from the seed): any prefix of the dataset covers both ranges evenly (like an evenly spaced,
    shuffled grid) while image ``k`` does not depend on ``n_images``. The per-image
    preferred azimuth, data bar (with ``databar_probability``) and appearance values (uniform
    in each ``appearance`` range ``[low, high]``) come from a generator seeded by
    ``SeedSequence(seed, spawn_key=(k, 1))``; the image's own draws use :func:`image_rng`.
    ``params`` must hold the keys of :data:`DEFAULT_PARAMS` (``workers`` and ``mask`` unused;
    ``artefacts`` may be missing). When any ``artefacts`` probability is above 0, every image
    gets :class:`~porescope.synthetic.artefacts.Artefacts` drawn from
    ``SeedSequence(seed, spawn_key=(k, 2))`` (else ``artefacts`` is None and the images are
    those of a dataset without artefacts); a ``downsample_factor`` above 1 is applied with
    :func:`downsampled`.
    """
    if isinstance(params, SynthesizeParams):
        params = to_mapping(params)
    offset = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2 ** 31,))).uniform(size=2)
    ranges = params["appearance"]
    art_ranges = params.get("artefacts")
    if isinstance(art_ranges, ArtefactRanges):
        art_ranges = to_mapping(art_ranges)
    elif art_ranges:  # a partial mapping (raw YAML): the missing keys take their defaults
        art_ranges = {**to_mapping(ArtefactRanges()), **art_ranges}
    with_art = bool(art_ranges) and any(
        float(v) > 0 for key, v in art_ranges.items() if key.endswith("_probability"))
    specs = []
    for k in range(int(params["n_images"])):
        u_phi = (offset[0] + k * _ALPHA_POROSITY) % 1.0
        u_d = (offset[1] + k * _ALPHA_DIAMETER) % 1.0
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k, 1)))
        azimuth = float(rng.uniform(0.0, 360.0))
        bar = int(params["databar_height_px"]) if rng.uniform() < float(params["databar_probability"]) else 0
        app = Appearance(**{name: float(rng.uniform(float(lo), float(hi)))
                            for name, (lo, hi) in sorted(ranges.items())})
        art = (draw_artefacts(art_ranges, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k, 2))))
               if with_art else None)
        p_lo, p_hi = float(params["porosity_min"]), float(params["porosity_max"])
        d_lo, d_hi = float(params["diameter_min_px"]), float(params["diameter_max_px"])
        spec = MembraneSpec(
            height=int(params["height"]), width=int(params["width"]),
            porosity=p_lo + u_phi * (p_hi - p_lo), mean_diameter_px=d_lo + u_d * (d_hi - d_lo),
            diameter_cv=float(params["diameter_cv"]),
            tilt_distribution=str(params["tilt_distribution"]),
            tilt_sigma_deg=float(params["tilt_sigma_deg"]),
            tilt_max_deg=float(params["tilt_max_deg"]),
            azimuth_deg=azimuth, azimuth_spread_deg=float(params["azimuth_spread_deg"]),
            core_depth=float(params["core_depth"]),
            pixel_size_nm=float(params["pixel_size_nm"]) if params["pixel_size_nm"] else None,
            supersample=int(params["supersample"]), databar_height_px=bar, appearance=app,
            artefacts=art,
        )
        specs.append(downsampled(spec) if art is not None and art.downsample_factor > 1 else spec)
    return specs


def downsampled(spec: MembraneSpec) -> MembraneSpec:
    """The spec of an image acquired ``f = spec.artefacts.downsample_factor`` times finer and
    reduced by ``f``: pore diameter (at least 1 px), rim, fringe, texture grain and blur
    lengths divided by ``f``, read-noise std by ``f`` and shot-noise variance by ``f^2``
    (averaging ``f^2`` pixels). It is rendered at its final resolution with supersampling, so
    the masks are exact. Apply it once (:func:`dataset_specs` does); the factor stays in
    ``artefacts`` as the record (``art_downsample_factor`` in the truth).

    Examples
    --------
    >>> from porescope.synthetic.artefacts import Artefacts
    >>> s = downsampled(MembraneSpec(mean_diameter_px=24.0, artefacts=Artefacts(downsample_factor=2.0)))
    >>> s.mean_diameter_px, s.appearance.blur_sigma_px, s.artefacts.downsample_factor
    (12.0, 0.4, 2.0)
    """
    art = spec.artefacts
    f = art.downsample_factor if art is not None else 1.0
    if f <= 1:
        return spec
    app = spec.appearance
    app = dataclasses.replace(app, rim_width_px=app.rim_width_px / f,
                              texture_scale_px=app.texture_scale_px / f,
                              blur_sigma_px=app.blur_sigma_px / f, read_noise=app.read_noise / f,
                              shot_noise=app.shot_noise / f ** 2)
    art = dataclasses.replace(art, fringe_width_px=art.fringe_width_px / f,
                              fringe_gap_px=art.fringe_gap_px / f)
    return dataclasses.replace(spec, mean_diameter_px=max(1.0, spec.mean_diameter_px / f),
                               appearance=app, artefacts=art)
