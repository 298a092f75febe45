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
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

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
    crescent_level: Range = (150.0, 245.0)
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
        for f in fields(self):
            low, high = getattr(self, f.name)
            floor = "0 < low" if f.name in POSITIVE_RANGES else "0 <= low"
            if not (0 <= low <= high) or (f.name in POSITIVE_RANGES and low <= 0):
                raise fail(f.name, f"must be [low, high] with {floor} <= high")


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
