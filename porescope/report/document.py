"""The report's document model: a report is a list of blocks, rendered twice from the same content.

Blocks: :class:`Heading`, :class:`Paragraph`, :class:`Bullets`, :class:`Table`, :class:`Figure`,
:class:`Note`; their text is final (numbers already formatted, :mod:`porescope.report.formatting`)
with ``code`` spans and **bold** as the only inline markup. The renderers are
:func:`porescope.report.markdown.render_markdown` and :func:`porescope.report.html.render_html`;
:func:`porescope.report.output.render_report` runs both.

Examples
--------
>>> t = Table(("image", "porosity (%)"), (("a", "20.50"),), ("l", "r"), "Per image")
>>> t.rows[0][1]
'20.50'
>>> Table(("image", "porosity (%)"), (("a",),))
Traceback (most recent call last):
...
ValueError: table '': row 0 has 1 cells for 2 columns
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["Heading", "Paragraph", "Bullets", "Table", "Figure", "Note", "Block"]


@dataclass(frozen=True)
class Heading:
    """A section heading; ``level`` 1 (title) to 4."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Text; ``code`` spans and **bold** are the only inline markup."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """An unordered list of inline-markup items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of already-formatted cells; ``align`` per column, ``"l"`` or ``"r"``."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...] = ()
    caption: str = ""

    def __post_init__(self) -> None:
        for k, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.caption!r}: row {k} has {len(row)} cells for "
                                 f"{len(self.columns)} columns")


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``name`` is its file name under ``figures/``; ``data`` the PNG bytes."""

    name: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Note:
    """A short highlighted remark (e.g. an input that is not available)."""

    text: str


Block = Union[Heading, Paragraph, Bullets, Table, Figure, Note]
