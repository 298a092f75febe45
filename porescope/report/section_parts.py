"""Small pieces every report section uses: row cuts, table rows as dicts, figure blocks and
'not available' notes.

Examples
--------
>>> import pandas as pd
>>> t, cut = cut_rows(pd.DataFrame({"image_id": ["a", "b", "c"]}), 2)
>>> records(t), cut
([{'image_id': 'a'}, {'image_id': 'b'}], ' (first 2 of 3 rows)')
>>> not_available("the scores", "metrics/evaluate.json", "evaluate").text
'Not available: the scores (`metrics/evaluate.json` not found; run the `evaluate` stage).'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from porescope.report.document import Block, Figure, Note
from porescope.report.figures import fit_png
from porescope.report.params import ReportParams

__all__ = ["cut_rows", "records", "figure_blocks", "not_available"]


def cut_rows(table: pd.DataFrame, max_rows: int) -> tuple[pd.DataFrame, str]:
    """The first ``max_rows`` rows of ``table`` and the caption suffix saying so (``""`` if all)."""
    if len(table) <= max_rows:
        return table, ""
    return table.iloc[:max_rows], f" (first {max_rows} of {len(table)} rows)"


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``table`` as ``{column: value}`` dicts, in order."""
    return [dict(zip(table.columns, row)) for row in table.itertuples(index=False, name=None)]


def figure_blocks(figures: Mapping[str, bytes], key: str, name: str, caption: str,
                  settings: ReportParams) -> list[Block]:
    """``[Figure]`` of input figure ``key`` named ``name`` (downscaled to the maximum width),
    or ``[]`` when that input is absent."""
    data = figures.get(key)
    if data is None:
        return []
    return [Figure(name, fit_png(data, settings.max_figure_width_px), caption)]


def not_available(what: str, path: str, stage: str) -> Note:
    """The note of a section whose input ``path`` (written by ``stage``) was not found."""
    return Note(f"Not available: {what} (`{path}` not found; run the `{stage}` stage).")
