r"""A rendered report (Markdown, one HTML page, figure files) and writing it to a folder.

Examples
--------
>>> from porescope.report.document import Heading, Paragraph
>>> report = render_report([Heading(1, "Report"), Paragraph("No figures.")], "Report")
>>> report.markdown
'# Report\n\nNo figures.\n'
>>> report.figures
{}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from porescope.io.atomic import output_dir, write_bytes, write_text
from porescope.report.document import Block, Figure
from porescope.report.html import render_html
from porescope.report.markdown import render_markdown

__all__ = ["Report", "render_report", "write_report"]


@dataclass(frozen=True)
class Report:
    """A rendered report: Markdown text, one HTML page, and ``{file name: PNG}`` for figures/."""

    markdown: str
    html: str
    figures: dict[str, bytes]


def render_report(blocks: Sequence[Block], title: str) -> Report:
    """Render ``blocks`` as Markdown and as an HTML page titled ``title``; collect the figures.

    Raises ``ValueError`` when two different figures share a file name.
    """
    figures: dict[str, bytes] = {}
    for b in blocks:
        if isinstance(b, Figure):
            if b.name in figures and figures[b.name] != b.data:
                raise ValueError(f"two different figures named {b.name!r}")
            figures[b.name] = b.data
    return Report(render_markdown(blocks), render_html(blocks, title), figures)


def write_report(report: Report, out: str | os.PathLike) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out``, atomically.

    The folder is built under a temporary name and swapped in whole
    (:func:`porescope.io.atomic.output_dir`): a failure leaves the previous folder untouched.
    """
    out = Path(out)
    with output_dir(out) as tmp:
        write_text(tmp / "report.md", report.markdown)
        write_text(tmp / "report.html", report.html)
        for name in sorted(report.figures):
            write_bytes(tmp / "figures" / name, report.figures[name])
    return out
