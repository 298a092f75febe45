"""The report's layout parameters (params group ``report``).

Examples
--------
>>> from porescope.config import parse_group
>>> parse_group(ReportParams, {"max_rows": 20}, group="report").max_rows
20
>>> parse_group(ReportParams, {"max_rows": 0}, group="report")
Traceback (most recent call last):
...
porescope.config.ParamsError: params.yaml: report.max_rows: expected a value >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass, field

from porescope.config import Fail

__all__ = ["ReportParams"]


@dataclass(frozen=True)
class ReportParams:
    """How the report is laid out; the defaults are those of ``params.yaml``.

    Attributes
    ----------
    title : str
        The document title (not empty).
    max_figure_width_px : int
        Figures wider than this (px) are downscaled, aspect kept, before they are copied and
        embedded.
    thumbnail_width_px : int
        Width (px) of the outline thumbnails of measured micrographs.
    max_overlays : int
        At most this many thumbnails.
    max_rows : int
        Per-image tables are cut after this many rows (the CSV files hold all rows).
    """

    title: str = "porescope membrane report"
    max_figure_width_px: int = field(default=1100, metadata={"ge": 64})
    thumbnail_width_px: int = field(default=480, metadata={"ge": 32})
    max_overlays: int = field(default=6, metadata={"ge": 0})
    max_rows: int = field(default=100, metadata={"ge": 1})

    def check(self, fail: Fail) -> None:
        if not self.title.strip():
            raise fail("title", "must be a non-empty string")
