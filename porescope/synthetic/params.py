"""Parameters of the built-in synthetic dataset: the ``synthesize`` params group.

:class:`SynthesizeParams` (with its nested :class:`AppearanceRanges`) is built from the group
with :func:`porescope.config.parse_group`; its field defaults are the group's defaults.

Examples
--------
>>> from porescope.config import parse_group
>>> p = parse_group(SynthesizeParams, {"n_images": 3, "appearance": {"core_level": [0, 10]}},
...                 group="synthesize")
>>> p.n_images, p.appearance.core_level, p.appearance.read_noise
(3, (0.0, 10.0), (1.0, 5.0))
>>> p.artefacts.any_on()
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from porescope.config import Fail

TILT_DISTRIBUTIONS = ("halfnormal", "uniform", "fixed")
MASK_CONVENTIONS = ("opening", "core")

Range = tuple[float, float]

#: Appearance ranges whose low end must be > 0 (lengths that divide or set a kernel width).
POSITIVE_RANGES = ("rim_width_px", "halo_sigma", "texture_scale_px")


@dataclass(frozen=True)
class AppearanceRanges:
    """``synthesize.appearance``: per image, each value is drawn uniformly in ``[low, high]``.

    Grey levels are 0-255, lengths px; see :class:`porescope.synthetic.membranes.Appearance` for
    what each value does.
    """

    surface_level: Range = (100.0, 150.0)
    core_level: Range = (0.0, 25.0)
    crescent_level: Range = (60.0, 150.0)
    wall_gamma: Range = (0.7, 2.0)
    rim_strength: Range = (70.0, 170.0)
    rim_width_px: Range = (0.4, 1.1)
    rim_asymmetry: Range = (0.2, 1.0)
    halo_strength: Range = (0.0, 0.6)
    halo_sigma: Range = (0.3, 1.0)
    texture_strength: Range = (3.0, 12.0)
    texture_scale_px: Range = (0.6, 1.5)
    mottle_strength: Range = (0.0, 4.0)
    streak_strength: Range = (0.0, 5.0)
    scratch_count: Range = (0.0, 8.0)
    debris_density: Range = (0.0, 40.0)
    gradient_strength: Range = (0.0, 0.15)
    blur_sigma_px: Range = (0.35, 1.0)
    shot_noise: Range = (0.1, 1.0)
    read_noise: Range = (1.0, 5.0)

    def check(self, fail: Fail) -> None:
        check_ranges(self, fail, POSITIVE_RANGES)


def check_ranges(group: object, fail: Fail, positive: tuple[str, ...]) -> None:
    """Every ``(low, high)`` field of ``group`` has ``0 <= low <= high`` (``0 < low`` for the
    names in ``positive``); scalar fields are left to their metadata bounds."""
    for f in fields(group):
        value = getattr(group, f.name)
        if not isinstance(value, tuple):
            continue
        low, high = value
        floor = "0 < low" if f.name in positive else "0 <= low"
        if not (0 <= low <= high) or (f.name in positive and low <= 0):
            raise fail(f.name, f"must be [low, high] with {floor} <= high")


def _probability(default: float = 0.0) -> Any:  # a dataclass field: probability in [0, 1], 0 = off
    return field(default=default, metadata={"ge": 0.0, "le": 1.0})


@dataclass(frozen=True)
class ArtefactRanges:
    """``synthesize.artefacts``: what real SEM exports show besides the membrane.

    Each artefact is on in an image with its ``*_probability`` (0 = off; all 0: the images are
    those of a dataset without this group); its other values are drawn uniformly in their
    ``[low, high]`` per image. The defaults were sized on the real SEM micrographs of
    ``data/reference/track-membranes-sem`` (fringe +50-100 grey, 2-4.5 px wide, brightest below
    the pore; see README "Real SEM micrographs"). Grey levels 0-255, lengths px of the final
    image. See :class:`porescope.synthetic.artefacts.Artefacts` for what each value does.
    """

    fringe_probability: float = _probability(0.8)
    fringe_strength: Range = (50.0, 100.0)      # edge-effect fringe, grey above the surface
    fringe_width_px: Range = (2.0, 4.5)         # width of the bright band
    fringe_gap_px: Range = (0.0, 0.5)           # dark gap between the opening edge and the band
    fringe_gap_depth: Range = (0.0, 0.3)        # relative darkening of the surface in the gap
    fringe_asymmetry: Range = (0.2, 0.6)        # gain (1 + a cos(angle - direction)) / (1 + a)
    fringe_direction_deg: Range = (240.0, 300.0)  # brightest side, ccw on screen (270 = down)
    rough_probability: float = _probability(0.3)
    rough_coverage: Range = (0.05, 0.5)         # fraction of the image in rough patches
    rough_strength: Range = (15.0, 40.0)        # grain contrast, std of grey levels
    rough_grain: Range = (0.08, 0.3)            # grain size, in mean pore diameters
    frame_probability: float = _probability(0.4)
    frame_width_px: Range = (1.0, 6.0)          # band along 1-4 image sides
    text_probability: float = _probability(0.25)
    text_count: Range = (1.0, 5.0)              # number of burned-in labels
    text_height_px: Range = (5.0, 16.0)         # cap height of the labels
    logo_probability: float = _probability(0.15)
    logo_size_px: Range = (15.0, 45.0)          # logo height
    scalebar_probability: float = _probability(0.2)
    scalebar_length: Range = (0.1, 0.3)         # bar length, fraction of the width
    charging_probability: float = _probability(0.3)
    charging_strength: Range = (5.0, 30.0)     # grey of broad charging glows
    charging_gradient: Range = (0.05, 0.25)      # relative linear brightness ramp
    scanline_strength: Range = (0.0, 4.0)       # std of per-row brightness jumps, grey
    jpeg_probability: float = _probability(0.7)
    jpeg_quality: Range = (30.0, 90.0)          # cv2.imencode JPEG quality (1-100)
    downsample_probability: float = _probability(0.3)
    downsample_factor: Range = (1.5, 2.5)       # acquired f x finer, reduced by f (>= 1)

    def any_on(self) -> bool:
        """Whether any artefact has a probability above 0."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_probability"))

    def check(self, fail: Fail) -> None:
        check_ranges(self, fail, ("fringe_width_px", "rough_grain", "logo_size_px", "text_height_px"))
        if self.jpeg_quality[0] < 1 or self.jpeg_quality[1] > 100:
            raise fail("jpeg_quality", "must be within [1, 100]")
        if self.downsample_factor[0] < 1:
            raise fail("downsample_factor", "must be >= 1 (1 = not down-sampled)")
        if self.scalebar_length[1] > 0.9:
            raise fail("scalebar_length", "must be <= 0.9 (a fraction of the width)")



def artefacts_off() -> dict[str, Any]:
    """The raw ``synthesize.artefacts`` mapping with every ``*_probability`` 0: the images of a
    generator without artefacts (validation's clean membranes, tests of the plain generator).

    Examples
    --------
    >>> off = artefacts_off()
    >>> off["fringe_probability"], off["fringe_width_px"] == ArtefactRanges().fringe_width_px
    (0.0, True)
    """
    return {f.name: (0.0 if f.name.endswith("_probability") else getattr(ArtefactRanges(), f.name))
            for f in fields(ArtefactRanges)}

@dataclass(frozen=True)
class SynthesizeParams:
    """``synthesize``: the built-in synthetic track-etched-membrane dataset (METHODS.md s.7).

    Image sizes and lengths are px; angles deg; ``pixel_size_nm`` nm per pixel (``None`` =
    unknown).
    """

    n_images: int = field(default=24, metadata={"ge": 1, "le": 100_000})
    height: int = field(default=512, metadata={"ge": 32, "le": 16384})
    width: int = field(default=512, metadata={"ge": 32, "le": 16384})
    pixel_size_nm: float | None = field(default=25.0, metadata={"gt": 0.0, "le": 1e7})
    porosity_min: float = field(default=0.03, metadata={"ge": 0.0, "lt": 0.95})
    porosity_max: float = field(default=0.35, metadata={"ge": 0.0, "lt": 0.95})
    diameter_min_px: float = field(default=15.0, metadata={"ge": 1.0})
    diameter_max_px: float = field(default=40.0, metadata={"ge": 1.0})
    diameter_cv: float = field(default=0.08, metadata={"ge": 0.0, "le": 0.3})
    tilt_distribution: Literal["halfnormal", "uniform", "fixed"] = "halfnormal"
    tilt_sigma_deg: float = field(default=20.0, metadata={"ge": 0.0, "le": 90.0})
    tilt_max_deg: float = field(default=45.0, metadata={"ge": 0.0, "le": 80.0})
    azimuth_spread_deg: float = field(default=25.0, metadata={"ge": 0.0, "le": 360.0})
    core_depth: float = field(default=0.8, metadata={"ge": 0.0, "le": 10.0})
    supersample: int = field(default=4, metadata={"ge": 1, "le": 16})
    mask: Literal["opening", "core"] = "opening"
    databar_probability: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0})
    databar_height_px: int = field(default=40, metadata={"ge": 0})
    workers: int = field(default=1, metadata={"ge": 1, "le": 256})
    appearance: AppearanceRanges = field(default_factory=AppearanceRanges)
    artefacts: ArtefactRanges = field(default_factory=ArtefactRanges)

    def check(self, fail: Fail) -> None:
        if self.porosity_max < self.porosity_min:
            raise fail("porosity_max", f"must be >= porosity_min ({self.porosity_min})")
        side = min(self.height, self.width)
        for key in ("diameter_min_px", "diameter_max_px"):
            if getattr(self, key) > side:
                raise fail(key, f"must be <= the smaller image side ({side} px)")
        if self.diameter_max_px < self.diameter_min_px:
            raise fail("diameter_max_px", f"must be >= diameter_min_px ({self.diameter_min_px})")
        if self.databar_height_px > self.height - 8:
            raise fail("databar_height_px", f"must be <= height - 8 ({self.height - 8})")
