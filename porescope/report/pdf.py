"""A PDF of the HTML report, for attaching to a certificate: headless Chromium prints the page.

The HTML report is self-contained (inline CSS, figures as ``data:`` URIs, no script, no
network), so printing it needs no server: :func:`html_to_pdf` runs

    chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer \\
        --user-data-dir=<temporary> --print-to-pdf=<pdf> file:///<html>

(A4/Letter from Chromium's defaults, margins from the page's ``@page`` rule, the report's
``@media print`` rules keep figures and tables whole). Chromium is installed by ``.ci/run``
(Debian package ``chromium``); :func:`find_chromium` looks for it on ``PATH``. The PDF is
written to a temporary file beside ``pdf_path`` and renamed into place, so a failed print
leaves no partial PDF.

Examples
--------
>>> find_chromium(["no-such-browser"]) is None
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from porescope.errors import PorescopeError

__all__ = ["BROWSERS", "PdfError", "find_chromium", "html_to_pdf"]

#: Executable names tried, in order.
BROWSERS: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfError(PorescopeError, RuntimeError):
    """The PDF could not be made (no Chromium, or the print failed); the message says why."""


def find_chromium(names: Sequence[str] = BROWSERS) -> str | None:
    """Path of the first of ``names`` found on ``PATH``, or None."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def html_to_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike, *,
                chromium: str | None = None, timeout_s: float = 180.0) -> Path:
    """Print the HTML page ``html_path`` to ``pdf_path`` with headless Chromium.

    Parameters
    ----------
    html_path : a self-contained HTML file (e.g. ``report.html`` of
        :func:`porescope.report.output.write_report`).
    pdf_path : the PDF to write (its folder must exist; replaced atomically).
    chromium : the browser executable; ``None`` = :func:`find_chromium`.
    timeout_s : seconds before the print is abandoned.

    Returns
    -------
    ``Path(pdf_path)``.

    Raises
    ------
    PdfError
        no HTML file, no Chromium (install the ``chromium`` package), the browser failed or
        timed out, or it wrote no PDF.
    """
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path)
    if not html_path.is_file():
        raise PdfError(f"{html_path}: HTML file not found")
    if not pdf_path.parent.is_dir():
        raise PdfError(f"{pdf_path}: folder {pdf_path.parent} does not exist")
    exe = chromium or find_chromium()
    if exe is None:
        raise PdfError(f"cannot print {html_path.name} to PDF: no Chromium found on PATH (tried "
                       f"{', '.join(BROWSERS)}); install it, e.g. `apt-get install chromium`")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".tmp", dir=pdf_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="porescope-chromium-") as profile:
            cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--no-pdf-header-footer", f"--user-data-dir={profile}",
                   f"--print-to-pdf={tmp}", html_path.as_uri()]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise PdfError(f"{exe}: printing {html_path.name} took more than {timeout_s:g} s") from None
            except OSError as e:
                raise PdfError(f"{exe}: could not start ({e})") from None
        with open(tmp, "rb") as f:
            head = f.read(5)
        if done.returncode != 0 or head != b"%PDF-":
            tail = (done.stderr or "").strip().splitlines()[-3:]
            raise PdfError(f"{exe}: printing {html_path.name} failed (exit {done.returncode}, "
                           f"no PDF written): {' | '.join(tail)}")
        os.replace(tmp, pdf_path)
    finally:
        tmp.unlink(missing_ok=True)
    return pdf_path
