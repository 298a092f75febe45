"""Rendering the report's blocks as one self-contained, printable HTML page.

CSS inline, every figure a ``data:image/png;base64`` URI, no script, no font or other network
resource.

Examples
--------
>>> from porescope.report.document import Heading, Paragraph
>>> page = render_html([Heading(1, "Report"), Paragraph("uses `split_labels` **here**")], "Report")
>>> page.startswith("<!DOCTYPE html>"), "<p>uses <code>split_labels</code> <strong>here</strong></p>" in page
(True, True)
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

from porescope.report.document import Block, Bullets, Figure, Heading, Note, Paragraph, Table
from porescope.report.figures import png_size

__all__ = ["NARROW_FIGURE_PX", "render_html"]

_CODE = re.compile(r"`([^`]+)`")
#: figures at most this wide (px) are laid out two per row in the HTML
NARROW_FIGURE_PX = 640
_BOLD = re.compile(r"\*\*(.+?)\*\*")

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1b1b1b;
line-height:1.45;margin:0;background:#fff}
main{max-width:1150px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.7em;border-bottom:2px solid #2a5d8f;padding-bottom:6px;margin-top:0}
h2{font-size:1.3em;color:#2a5d8f;border-bottom:1px solid #ccd;padding-bottom:3px;margin-top:1.8em}
h3{font-size:1.08em;margin-top:1.4em}h4{font-size:1em}
code{font-family:Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.9em;background:#f2f4f7;
padding:0 3px;border-radius:3px}
.tw{overflow-x:auto;margin:.6em 0 1em}
table{border-collapse:collapse;font-size:12.5px}
caption{caption-side:top;text-align:left;font-style:italic;color:#444;padding:2px 0 5px}
th,td{border:1px solid #c9ced6;padding:3px 7px;vertical-align:top}
th{background:#e9eef5;text-align:left}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#f7f9fb}
figure{margin:1em 0 1.4em;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
.grid{display:flex;flex-wrap:wrap;justify-content:center;column-gap:2%}
.grid figure{width:48%;margin:.6em 0 1em}
figcaption{font-size:.9em;color:#444;font-style:italic;margin-top:4px}
.note{border-left:4px solid #d39e00;background:#fff8e5;padding:6px 10px;margin:.8em 0}
nav.toc{background:#f5f7fa;border:1px solid #dde3ea;padding:6px 16px;margin:1em 0 1.5em;
font-size:.95em}
nav.toc ol{margin:4px 0;padding-left:22px}
a{color:#2a5d8f}
@media print{main{max-width:none;padding:0}.tw{overflow:visible}
h2{break-after:avoid}figure,table,.note{break-inside:avoid}a{color:inherit;text-decoration:none}}
@page{margin:15mm}
""".strip()


def _inline_html(text: str) -> str:
    s = html.escape(str(text), quote=False)
    s = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", s)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", s)


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page: inline CSS, figures as ``data:`` URIs (consecutive figures
    at most :data:`NARROW_FIGURE_PX` wide two per row), a table of contents of the level-2
    headings (with three or more) after the title; no script, no external resource."""
    body: list[str] = []
    toc: list[str] = []
    n_fig = n_sec = 0
    in_grid = False
    for b in blocks:
        narrow = isinstance(b, Figure) and png_size(b.data)[0] <= NARROW_FIGURE_PX
        if in_grid and not narrow:
            body.append("</div>")
            in_grid = False
        elif narrow and not in_grid:
            body.append('<div class="grid">')
            in_grid = True
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 4)
            if level == 2:
                n_sec += 1
                anchor = f"s{n_sec}"
                toc.append(f'<li><a href="#{anchor}">{_inline_html(b.text)}</a></li>')
                body.append(f'<h2 id="{anchor}">{_inline_html(b.text)}</h2>')
            else:
                body.append(f"<h{level}>{_inline_html(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Note):
            body.append(f'<p class="note">{_inline_html(b.text)}</p>')
        elif isinstance(b, Table):
            align = b.align or ("l",) * len(b.columns)
            cls = [' class="r"' if a == "r" else "" for a in align]
            head = "".join(f"<th{c}>{_inline_html(t)}</th>" for c, t in zip(cls, b.columns))
            rows = "".join("<tr>" + "".join(f"<td{c}>{_inline_html(t)}</td>" for c, t in zip(cls, row))
                           + "</tr>" for row in b.rows)
            cap = f"<caption>{_inline_html(b.caption)}</caption>" if b.caption else ""
            body.append(f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead>'
                        f"<tbody>{rows}</tbody></table></div>")
        elif isinstance(b, Figure):
            n_fig += 1
            w, h = png_size(b.data)
            uri = "data:image/png;base64," + base64.b64encode(b.data).decode("ascii")
            alt = html.escape(b.caption, quote=True)
            body.append(f'<figure><img src="{uri}" width="{w}" height="{h}" alt="{alt}">'
                        f"<figcaption>Figure {n_fig}. {_inline_html(b.caption)}</figcaption></figure>")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(b).__name__}")
    if in_grid:
        body.append("</div>")
    if len(toc) >= 3:
        # right after the title (or at the top when there is none)
        first = next((i + 1 for i, s in enumerate(body) if s.startswith("<h1>")), 0)
        body.insert(first, '<nav class="toc"><strong>Contents</strong><ol>' + "".join(toc) + "</ol></nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
