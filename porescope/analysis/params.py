"""Parameters of the membrane analysis: the ``analyze`` params group.

:class:`AnalyzeParams` (alias :data:`AnalysisParams`) holds the settings of
:func:`porescope.analysis.membrane.analyse_mask`, with three nested groups: ``counting``
(:class:`CountingParams`), ``split`` (:class:`SplitParams`) and ``spatial``
(:class:`SpatialParams`). The field defaults are the defaults of ``params.yaml``. Build one
from a params mapping with :func:`porescope.config.parse_group` (or
:meth:`AnalyzeParams.from_mapping`): an unknown key at any level is an error that names the
closest valid key.

Examples
--------
>>> p = AnalyzeParams.from_mapping({"split": {"h": 1.0}, "spatial": {"n_sim": 0}})
>>> p.split.h, p.spatial.n_sim, p.counting.small_factor
(1.0, 0, 0.5)
>>> AnalyzeParams.from_mapping({"split": {"hh": 1.0}})
Traceback (most recent call last):
...
porescope.config.ParamsError: params.yaml: analyze.split.hh: unknown parameter; did you mean 'analyze.split.h'? (valid: method, h, min_distance, seed_h)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from porescope.config import Fail, parse_group, to_mapping
from porescope.measure.morphometry import EDGES

__all__ = ["CountingParams", "SplitParams", "SpatialParams", "AnalyzeParams", "AnalysisParams"]


@dataclass(frozen=True)
class CountingParams:
    """Counting estimators, group ``analyze.counting`` (see :mod:`porescope.measure.counting`).

    small_factor, large_factor: the median-area rule's artefact / multi-pore thresholds
        (fractions of the median region area).
    mean_pore_area_px: known ``E[A]`` of one pore in px for the Boolean model (e.g. from the
        nominal pore diameter); ``None`` = estimate it from the isolated single pores.
    single_pore_min_solidity, single_pore_area_band: that estimate's rule (solidity; area band
        as fractions of the median area, ``lo < 1 < hi``).
    split_min_area_px: split objects smaller than this (px) are debris, not counted.
    split_min_area_at_edges: false = an object touching the edge of the analysed region is
        counted whatever its area, as the guard frame wants for a pore cut by an inclusion edge
        (true, the default: ``split_min_area_px`` applies to it too).
    split_max_pores: pores one split object may count for: 1 = one per object; k >= 2 or
        ``None`` (no bound) = ``round(Area / E[A])`` pores, between 1 and k, with ``E[A]`` as
        for the Boolean model (overlapping pores whose union has no neck stay one object; see
        :func:`porescope.measure.counting.split_count_table`). Default 2: on synthetic
        membranes up to 20 % porosity the bound 2 gives all the gain of the area rule (a
        doublet is the overlap such a membrane has), and it keeps a large false object (a
        charging patch, a rough area) from counting as dozens of pores.
    """

    small_factor: float = field(default=0.5, metadata={"ge": 0, "lt": 1})
    large_factor: float = field(default=1.5, metadata={"ge": 1})
    mean_pore_area_px: float | None = field(default=None, metadata={"gt": 0})
    single_pore_min_solidity: float = field(default=0.9, metadata={"gt": 0, "le": 1})
    single_pore_area_band: tuple[float, float] = (0.6, 1.4)
    split_min_area_px: int = field(default=20, metadata={"ge": 1})
    split_min_area_at_edges: bool = True
    split_max_pores: int | None = field(default=2, metadata={"ge": 1})

    def check(self, fail: Fail) -> None:
        lo, hi = self.single_pore_area_band
        if not 0 <= lo < 1 < hi:
            raise fail("single_pore_area_band", "must be [lo, hi] with 0 <= lo < 1 < hi")


@dataclass(frozen=True)
class SplitParams:
    """Watershed split of touching pores, group ``analyze.split``
    (:func:`porescope.segmentation.instances.split_touching`): ``h`` (px of distance) for
    ``h_maxima``, ``min_distance`` (px) for ``peak_local_max``. ``seed_h`` (px, ``None`` = off):
    for a mask with a border class, cut the interiors at necks before they seed the objects
    (:func:`porescope.segmentation.instances.instances_from_three_class`), as
    ``evaluate.objects.seed_h`` does."""

    method: Literal["h_maxima", "peak_local_max"] = "h_maxima"
    h: float = field(default=0.5, metadata={"gt": 0})
    min_distance: int = field(default=5, metadata={"ge": 1})
    seed_h: float | None = field(default=None, metadata={"gt": 0})


@dataclass(frozen=True)
class SpatialParams:
    """Spatial statistics, group ``analyze.spatial`` (:mod:`porescope.measure.spatial`).

    alpha: significance level of the tests. n_sim: Monte-Carlo CSR simulations (0 = skip the
    Monte-Carlo and Ripley tests). nnd_edge_correction, k_edge_correction: edge corrections of
    the mean NND and of Ripley's K. n_radii: radii of Ripley's L, up to min(5 CSR mean NNDs, a
    quarter of the short side).
    """

    alpha: float = field(default=0.05, metadata={"gt": 0, "lt": 1})
    n_sim: int = field(default=99, metadata={"ge": 0, "le": 100_000})
    nnd_edge_correction: Literal["donnelly", "none"] = "donnelly"
    k_edge_correction: Literal["translation", "none"] = "translation"
    n_radii: int = field(default=50, metadata={"ge": 2, "le": 10_000})


@dataclass(frozen=True)
class AnalyzeParams:
    """The ``analyze`` params group (also used by ``validate`` and ``measure``).

    connectivity: 8 (ImageJ) or 4. length_unit: ``um`` or ``nm`` for the physical columns.
    include_edges: guard-frame inclusion edges (objects touching the other edges are not
    counted). objects: what the per-object table and the size statistics describe, ``pores``
    (split) or ``regions`` (connected components, Fiji's *Analyze Particles* without a
    watershed). min_region_area_px: debris filter - foreground regions smaller than this (px)
    that do not touch the edge of the analysed region are removed before anything is measured
    (porosity included); pores cut by the frame are never removed. 0 or 1 = keep everything.
    counting, split, spatial: the nested groups.
    """

    connectivity: Literal[4, 8] = 8
    length_unit: Literal["um", "nm"] = "um"
    include_edges: tuple[str, ...] = ("top", "left")
    objects: Literal["pores", "regions"] = "pores"
    min_region_area_px: int = field(default=20, metadata={"ge": 0})
    counting: CountingParams = field(default_factory=CountingParams)
    split: SplitParams = field(default_factory=SplitParams)
    spatial: SpatialParams = field(default_factory=SpatialParams)

    def check(self, fail: Fail) -> None:
        edges = self.include_edges
        if any(e not in EDGES for e in edges) or len(set(edges)) != len(edges):
            raise fail("include_edges", f"must be a list of distinct edges from {list(EDGES)}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, source: str = "params.yaml",
                     group: str = "analyze") -> "AnalyzeParams":
        """:func:`porescope.config.parse_group` of this class (a ``seed`` key is ignored)."""
        return parse_group(cls, raw, group=group, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), e.g. to record with the results; ``split.seed_h``
        and ``counting.split_min_area_at_edges`` only when not at their defaults (so what runs
        without them record is unchanged)."""
        out = to_mapping(self)
        if self.split.seed_h is None:
            del out["split"]["seed_h"]
        for key in _RECORDED_IF_SET:
            if getattr(self.counting, key) == getattr(CountingParams, key):
                del out["counting"][key]
        return out


#: counting keys recorded by :meth:`AnalyzeParams.to_dict` only when not at their defaults
_RECORDED_IF_SET = ("split_min_area_at_edges",)

#: The former name of :class:`AnalyzeParams`.
AnalysisParams = AnalyzeParams
