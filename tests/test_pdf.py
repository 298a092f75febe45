"""The PDF of the report (headless Chromium): every figure and every table of the HTML page is
in the PDF; its pages render to PNG."""

import re

import cv2
import numpy as np
import pandas as pd
import pytest

from porescope.analysis.specimens import specimen_statistics
from porescope.report.document import Figure, Heading, Paragraph, Table
from porescope.report.output import render_report, write_report
from porescope.report.pdf import PdfError, find_chromium, html_to_pdf
from porescope.report.sections_specimens import specimen_blocks

pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (dev extra) is needed to read the PDF")
pdfium_raw = pytest.importorskip("pypdfium2.raw")


def _png(seed: int, width: int, height: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    cv2.circle(img, (width // 2, height // 2), min(width, height) // 3, (20, 40, 200), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _report():
    summary = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "analysed_px": [40000] * 4,
                            "analysed_area_cm2": [2.5e-5] * 4, "porosity": [0.14, 0.16, 0.15, 0.3],
                            "count_split_labels": [80.0, 90.0, 85.0, 40.0]})
    stats = specimen_statistics(summary, {"a": "S1", "b": "S1", "c": "S1", "d": "S2"}, n_boot=200)
    blocks = [Heading(1, "Certificate test"), Paragraph("A report with figures and tables.")]
    blocks += specimen_blocks(stats)
    blocks.append(Table(("image", "marker"), (("a", "QZX-1"), ("b", "QZX-2")), ("l", "r"),
                        "Marker table"))
    # two narrow figures (laid out side by side) and one wide one
    blocks += [Figure("f1.png", _png(1, 300, 200), "first figure"),
               Figure("f2.png", _png(2, 320, 240), "second figure"),
               Figure("f3.png", _png(3, 900, 400), "wide figure")]
    return render_report(blocks, "Certificate test"), blocks


def _squash(text: str) -> str:
    # pdfium marks a hyphen where a line was broken after it as U+FFFE
    return re.sub(r"\s+", "", text.replace("\ufffe", "-"))


def test_missing_inputs_are_clear_errors(tmp_path, monkeypatch):
    import porescope.report.pdf as pdf

    with pytest.raises(PdfError, match="HTML file not found"):
        html_to_pdf(tmp_path / "none.html", tmp_path / "x.pdf")
    (tmp_path / "r.html").write_text("<p>x</p>")
    with pytest.raises(PdfError, match="does not exist"):
        html_to_pdf(tmp_path / "r.html", tmp_path / "no" / "x.pdf")
    monkeypatch.setattr(pdf, "find_chromium", lambda names=pdf.BROWSERS: None)
    with pytest.raises(PdfError, match="no Chromium found"):
        html_to_pdf(tmp_path / "r.html", tmp_path / "x.pdf")
    with pytest.raises(PdfError, match="could not start"):
        html_to_pdf(tmp_path / "r.html", tmp_path / "x.pdf", chromium=str(tmp_path / "nobrowser"))
    assert not (tmp_path / "x.pdf").exists() and not list(tmp_path.glob(".x.pdf.*"))


@pytest.mark.skipif(find_chromium() is None,
                    reason="no Chromium on PATH (installed by .ci/run; apt-get install chromium)")
def test_pdf_has_every_figure_and_table(tmp_path):
    report, blocks = _report()
    out = write_report(report, tmp_path / "report")
    pdf_path = html_to_pdf(out / "report.html", tmp_path / "report.pdf")
    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        assert len(doc) > 0
        text, n_images = "", 0
        for i in range(len(doc)):
            page = doc[i]
            text += page.get_textpage().get_text_range() + "\n"
            n_images += sum(1 for _ in page.get_objects(filter=(pdfium_raw.FPDF_PAGEOBJ_IMAGE,),
                                                        max_depth=4))
            png = page.render(scale=1).to_numpy()
            assert png.ndim == 3 and png.std() > 0          # not a blank page
            if i == 0:
                ok, buf = cv2.imencode(".png", png)
                (tmp_path / "page1.png").write_bytes(buf.tobytes())
    finally:
        doc.close()
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert report.html.count("<img ") == len(figures) == 3
    assert n_images == len(figures)
    flat = _squash(text)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) >= 3
    for t in tables:
        assert _squash(t.caption) in flat, t.caption
        for cell in [c for row in t.rows for c in row] + list(t.columns):
            assert _squash(cell) in flat, (t.caption, cell)
    for f in figures:
        assert _squash(f.caption) in flat
