"""Rendering the report's blocks as GitHub-flavoured Markdown.

Examples
--------
>>> from porescope.report.document import Heading, Table
>>> print(render_markdown([Heading(1, "Report"), Table(("a", "n"), (("x|y", "3"),), ("l", "r"), "T")]), end="")
# Report
<BLANKLINE>
*T*
<BLANKLINE>
| a | n |
|---|---:|
| x\\|y | 3 |
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from porescope.report.document import Block, Bullets, Figure, Heading, Note, Paragraph, Table

__all__ = ["render_markdown"]


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown; figures as ``![caption](figures/<name>)`` with a numbered
    caption line, tables with right-aligned numeric columns and an italic caption above."""
    out: list[str] = []
    n_fig = 0
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Note):
            out += [f"> {b.text}", ""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            align = b.align or ("l",) * len(b.columns)
            out.append("| " + " | ".join(_md_cell(c) for c in b.columns) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            n_fig += 1
            alt = _md_cell(b.caption).replace("[", "(").replace("]", ")")
            out += [f"![{alt}](figures/{quote(b.name)})", "",
                    f"*Figure {n_fig}. {b.caption}*", ""]
        else:  # pragma: no cover - Block is closed
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n".join(out).rstrip("\n") + "\n"
