"""Self-contained DVC plots HTML: no CDN scripts, no linked image files.

``dvc plots show`` / ``dvc plots diff`` (DVC 3.67, dvc-render 1.0.x) write ``<out>/index.html``
in which

* Vega-Lite plots (training curves, tables of metrics) are drawn by vega, vega-lite and
  vega-embed pulled from ``cdn.jsdelivr.net``: without network the plots stay blank. The
  template ``porescope/report/resources/vega/offline_template.html`` (see ``build_template.py`` there)
  inlines those libraries; DVC uses it with ``--html-template`` or, by default, through
  ``plots.html_template`` in ``.dvc/config`` (a relative path there is joined to the ``.dvc``
  folder, not to the working directory);
* image plots (PNG overlays, box plots rendered by matplotlib) are copied to
  ``<out>/static/<rev>_<path>`` and linked by a relative ``<img src>``: the page works only
  while that folder travels with it. :func:`embed_images` rewrites each such link into a
  ``data:`` URI so ``index.html`` alone can be mailed or archived.

:func:`run_dvc_plots` runs DVC with the template and embeds the images in one call.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from porescope.io.atomic import write_text

#: The offline page template (vega 5 / vega-lite 5 / vega-embed 6 inlined).
OFFLINE_TEMPLATE: Path = (
    Path(__file__).resolve().parent / "resources" / "vega" / "offline_template.html"
)

_SRC_ATTR = re.compile(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.I)
_REMOTE = re.compile(r"^(?:https?:)?//", re.I)

# (tag, attribute) pairs that make a browser fetch something when the page loads.
_FETCHING_ATTRS = {
    ("script", "src"),
    ("img", "src"),
    ("link", "href"),
    ("iframe", "src"),
    ("source", "src"),
    ("video", "src"),
    ("audio", "src"),
    ("embed", "src"),
}


class _TagScanner(HTMLParser):
    """Collect start tags with their character offsets; ``<script>`` bodies are opaque text,
    so markup that the inlined JavaScript builds in strings is not mistaken for tags."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.tags: list[tuple[str, int, str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line, col = self.getpos()
        raw = self.get_starttag_text() or ""
        self.tags.append((tag, self._line_starts[line - 1] + col, raw, attrs))

    handle_startendtag = handle_starttag


def _scan(text: str) -> list[tuple[str, int, str, list[tuple[str, str | None]]]]:
    scanner = _TagScanner(text)
    scanner.feed(text)
    scanner.close()
    return scanner.tags


def find_remote_resources(page: str) -> list[str]:
    """URLs that ``page`` (HTML text) would fetch from the network when opened.

    Looks at the fetching attributes of ``script``, ``img``, ``link``, ``iframe``, ``source``,
    ``video``, ``audio`` and ``embed`` tags and returns the ``http:``, ``https:`` and
    protocol-relative (``//host/...``) ones in document order; an empty list means the page
    loads nothing from elsewhere through its markup (scripts may still do so at run time).
    """
    found = []
    for tag, _, _, attrs in _scan(page):
        for name, value in attrs:
            if (tag, name) in _FETCHING_ATTRS and value and _REMOTE.match(value.strip()):
                found.append(value.strip())
    return found


def _sniff_mime(data: bytes, name: str) -> str:
    """MIME type of image bytes by their signature, else by the file extension."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"<svg" in data[:2048].lower():
        return "image/svg+xml"
    guessed, _ = mimetypes.guess_type(name)
    if guessed and guessed.startswith("image/"):
        return guessed
    raise ValueError(f"{name}: not a recognised image (PNG, JPEG, GIF, WebP or SVG)")


def _local_image(src: str, base: Path, html_path: Path) -> Path:
    """The file a relative/absolute/``file:`` ``src`` points to (raw path first, as DVC writes
    it unencoded; then percent-decoded, as a browser would read it)."""
    if src.lower().startswith("file:"):
        candidates = [Path(url2pathname(urlsplit(src).path))]
    else:
        candidates = [base / src, base / unquote(urlsplit(src).path)]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{html_path}: image '{src}' not found (looked for {candidates[0]})")


def _data_uri(src: str, base: Path, html_path: Path) -> str | None:
    """The ``data:`` URI replacing ``src``, or ``None`` when ``src`` is already a proper one."""
    if src.lower().startswith("data:"):
        header, sep, payload = src.partition(",")
        if not sep:
            raise ValueError(f"{html_path}: malformed data URI in <img src> ({src[:40]}...)")
        mime = header[5:].split(";")[0]
        if mime and mime != "image":  # already typed, e.g. data:image/png;base64
            return None
        # dvc-render embeds images as 'data:image;base64,...' (no subtype); give it the real one
        if not header.lower().endswith(";base64"):
            raise ValueError(f"{html_path}: untyped data URI that is not base64 ({src[:40]}...)")
        data = base64.b64decode(payload, validate=True)
        return f"data:{_sniff_mime(data, 'inline image')};base64,{payload}"
    scheme = urlsplit(src).scheme.lower()
    # a one-letter "scheme" is a Windows drive letter, i.e. a path
    if _REMOTE.match(src) or (len(scheme) > 1 and scheme != "file"):
        raise ValueError(f"{html_path}: image '{src}' is not a local file and cannot be embedded")
    path = _local_image(src, base, html_path)
    data = path.read_bytes()
    return f"data:{_sniff_mime(data, str(path))};base64,{base64.b64encode(data).decode('ascii')}"


def embed_images(
    html_path: str | os.PathLike, out_path: str | os.PathLike | None = None
) -> Path:
    """Rewrite every ``<img src>`` of a DVC plots page into a ``data:`` URI.

    Parameters
    ----------
    html_path
        The page DVC wrote (``<out>/index.html``). Relative ``src`` values are resolved against
        its folder, as a browser would; absolute paths and ``file:`` URLs are read as they are.
        ``data:image;base64`` sources (dvc-render's untyped inline form) get their real MIME
        type; already typed ``data:image/...`` sources are left unchanged.
    out_path
        Where to write the self-contained page; default: overwrite ``html_path``. Written
        atomically, so a failure leaves any existing file untouched.

    Returns
    -------
    Path
        ``out_path`` (or ``html_path``).

    Raises
    ------
    FileNotFoundError
        The page, or an image it links, does not exist (the message names both).
    ValueError
        An image is remote (``http(s)://``) or not a recognised image format.

    Notes
    -----
    Only the markup is scanned (``<script>`` bodies are skipped), so strings in the inlined
    JavaScript are never touched. Base64 makes each image ~4/3 of its file size: embedding a
    folder of full-resolution micrograph overlays gives a large page.
    """
    html_path = Path(html_path)
    try:
        text = html_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{html_path}: plots HTML not found") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{html_path}: not UTF-8 text ({exc})") from None
    base = html_path.resolve().parent

    pieces: list[str] = []
    cursor = 0
    for tag, offset, raw, _ in _scan(text):
        if tag != "img":
            continue
        if text[offset : offset + len(raw)] != raw:  # parser position out of step with the text
            raise RuntimeError(f"{html_path}: could not locate <img> tag at offset {offset}")
        match = _SRC_ATTR.search(raw)
        if match is None:
            continue
        group = next(g for g in (1, 2, 3) if match.group(g) is not None)
        src = html.unescape(match.group(group)).strip()
        uri = _data_uri(src, base, html_path)
        if uri is None:
            continue
        start = offset + match.start(group)
        pieces += [text[cursor:start], uri]
        cursor = offset + match.end(group)
    pieces.append(text[cursor:])
    return write_text(out_path if out_path is not None else html_path, "".join(pieces))


def run_dvc_plots(
    repo_dir: str | os.PathLike,
    revisions: Sequence[str] | None = None,
    *,
    targets: Sequence[str] = (),
    out_dir: str | os.PathLike = "dvc_plots",
    template: str | os.PathLike | None = None,
    embed: bool = True,
    dvc: Sequence[str] | None = None,
) -> Path:
    """Run ``dvc plots show`` (``revisions=None``) or ``dvc plots diff REV...`` and return the
    page, with images embedded when ``embed``.

    Parameters
    ----------
    repo_dir
        Working directory for DVC (the repository root or a folder inside it).
    revisions
        ``None`` for ``plots show`` (workspace); otherwise git revisions for ``plots diff``
        (an empty list compares the workspace with ``HEAD``, as DVC does).
    targets
        Plot ids or files to restrict to (default: all plots in ``dvc.yaml``).
    out_dir
        DVC's ``-o`` folder, relative to ``repo_dir`` unless absolute; the page is
        ``<out_dir>/index.html``.
    template
        A page template for ``--html-template``; ``None`` leaves the choice to DVC, i.e. the
        repository's ``plots.html_template`` config (porescope points it at
        :data:`OFFLINE_TEMPLATE`), else DVC's CDN page.
    embed
        Post-process the page with :func:`embed_images` (in place).
    dvc
        The command that runs DVC; default ``[sys.executable, "-m", "dvc"]``.

    Raises
    ------
    RuntimeError
        DVC failed or wrote no page (e.g. no plots matched); the message carries DVC's output.
    """
    repo_dir = Path(repo_dir)
    if not repo_dir.is_dir():
        raise FileNotFoundError(f"{repo_dir}: repository folder not found")
    cmd = list(dvc) if dvc is not None else [sys.executable, "-m", "dvc"]
    if revisions is None:
        cmd += ["plots", "show", *targets]
    else:
        cmd += ["plots", "diff", *revisions]
        if targets:
            cmd += ["--targets", *targets]
    cmd += ["-o", os.fspath(out_dir)]
    if template is not None:
        template = Path(template)
        if not template.is_file():
            raise FileNotFoundError(f"{template}: HTML template not found")
        cmd += ["--html-template", os.fspath(template.resolve())]
    proc = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True, check=False)
    page = (repo_dir / out_dir).resolve() / "index.html"
    # DVC prints the page's file:// URI only when it wrote the page; an old index.html left
    # from an earlier run must not be mistaken for a fresh one.
    if proc.returncode != 0 or page.as_uri() not in proc.stdout:
        raise RuntimeError(
            f"{' '.join(cmd)} (in {repo_dir}) wrote no {page} (exit {proc.returncode}):\n"
            f"{proc.stdout.strip()}\n{proc.stderr.strip()}"
        )
    if embed:
        embed_images(page)
    return page
