"""The in-store sign: one page, A4 or A5, as PDF (fpdf2) and PNG (the PDF rasterized).

The page: a dark band with the title and "no cameras, no images, no raw addresses", who
is responsible, the sections of :class:`~heatmap.privacy.notice_text.NoticeText`, and at
the foot a QR code (segno, drawn as vector squares) to the notice's page with its address
spelled out. The text is set as large as fits on the page, from 13 pt down to 6 pt.

The font is DejaVu Sans, the copy matplotlib ships (``mpl-data/fonts/ttf``, Bitstream
Vera licence): matplotlib is already a dependency of the aggregator, so no system package
or bundled font file is needed, and DejaVu covers every accent of the five languages (and
far more). fpdf2 embeds the subset used with its Unicode map, so the PDF's text can be
searched and extracted (the tests check it against the catalogue).

The PNG is the PDF's own page rendered by PDFium (pypdfium2), so sign and picture cannot
differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pypdfium2
import segno
from fpdf import FPDF

from heatmap.privacy.notice_text import NoticeText

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVu"
INK = (20, 40, 70)
"""dark blue of the band and the headings"""
PNG_DPI = 150


@dataclass(frozen=True)
class Paper:
    name: str
    width_mm: float
    height_mm: float
    margin_mm: float
    qr_mm: float
    max_pt: float


PAPERS = {
    "A4": Paper("A4", 210, 297, 14, 38, 13),
    "A5": Paper("A5", 148, 210, 9, 27, 10),
}
MIN_PT = 6.0


def _pdf(paper: Paper, text: NoticeText) -> FPDF:
    pdf = FPDF(orientation="P", unit="mm", format=(paper.width_mm, paper.height_mm))
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(False)
    pdf.set_margins(paper.margin_mm, paper.margin_mm, paper.margin_mm)
    pdf.set_title(text.title)
    pdf.set_lang(text.lang)
    pdf.set_creator("footfall privacy notice")
    return pdf


def _qr(pdf: FPDF, url: str, x: float, y: float, size: float) -> None:
    """The QR code of ``url`` as filled squares, its quiet zone included, ``size`` mm wide."""
    qr = segno.make(url, error="m")
    rows = list(qr.matrix_iter(border=4))
    m = size / len(rows)
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                pdf.rect(x + start * m, y + r * m, (c - start) * m, m, style="F")
            else:
                c += 1


def _layout(pdf: FPDF, paper: Paper, text: NoticeText, pt: float) -> float:
    """A new page of ``pdf`` with body text of ``pt`` points; returns the share of the room
    above the QR code that its text takes (at most 1: it fits)."""
    pdf.add_page()
    w = paper.width_mm - 2 * paper.margin_mm
    lh = pt * 0.3528 * 1.3  # line height, mm
    band_top = paper.margin_mm
    title_pt, title_lh = pt * 1.9, pt * 1.9 * 0.3528 * 1.2
    pdf.set_font(FONT, "B", title_pt)
    n_title = len(pdf.multi_cell(w - 6, title_lh, text.title, dry_run=True, output="LINES"))
    pdf.set_font(FONT, "", pt * 1.05)
    n_sub = len(pdf.multi_cell(w - 6, lh * 1.1, text.subtitle, dry_run=True, output="LINES"))
    band_h = 6 + n_title * title_lh + n_sub * lh * 1.1 + 1
    pdf.set_fill_color(*INK)
    pdf.rect(paper.margin_mm, band_top, w, band_h, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_xy(paper.margin_mm + 3, band_top + 3)
    pdf.set_font(FONT, "B", title_pt)
    pdf.multi_cell(w - 6, title_lh, text.title, align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "", pt * 1.05)
    pdf.multi_cell(w - 6, lh * 1.1, text.subtitle, align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_y(band_top + band_h + lh * 0.6)
    pdf.set_text_color(*INK)

    def heading(s: str) -> None:
        pdf.set_font(FONT, "B", pt * 1.15)
        pdf.set_text_color(*INK)
        pdf.multi_cell(w, lh * 1.1, s, align="L", new_x="LMARGIN", new_y="NEXT")

    def para(s: str) -> None:
        pdf.set_font(FONT, "", pt)
        pdf.set_text_color(25, 25, 25)
        pdf.multi_cell(w, lh, s, align="L", new_x="LMARGIN", new_y="NEXT")

    heading(text.who_heading)
    for s in text.who:
        para(s)
    for h, ps in text.sections:
        pdf.ln(lh * 0.45)
        heading(h)
        for p in ps:
            para(p)
    foot = paper.height_mm - paper.margin_mm - paper.qr_mm
    used = (pdf.get_y() - paper.margin_mm) / (foot - lh * 0.5 - paper.margin_mm)
    _qr(pdf, text.url, paper.width_mm - paper.margin_mm - paper.qr_mm, foot, paper.qr_mm)
    pdf.set_xy(paper.margin_mm, foot + paper.qr_mm / 2 - lh)
    pdf.set_font(FONT, "B", pt)
    pdf.set_text_color(*INK)
    pdf.multi_cell(
        w - paper.qr_mm - 4, lh, text.qr_caption, align="L", new_x="LMARGIN", new_y="NEXT"
    )
    return used


def sign_pdf(text: NoticeText, paper: str) -> bytes:
    """The sign on ``paper`` (``A4`` or ``A5``), its text as large as fits: tried at the
    largest size, then at the size the text's area (which grows with the square of the
    size) says fits, a quarter point smaller until it does. The tries are pages of a
    scratch document (loading the font is most of the time); the sign is drawn again
    alone at the size found."""
    p = PAPERS[paper]
    scratch = _pdf(p, text)
    pt, used = p.max_pt, _layout(scratch, p, text, p.max_pt)
    if used > 1:
        pt = math.floor(p.max_pt / math.sqrt(used) * 4) / 4
        while _layout(scratch, p, text, pt) > 1 and pt > MIN_PT:
            pt -= 0.25
    pdf = _pdf(p, text)
    _layout(pdf, p, text, pt)
    return bytes(pdf.output())


def pdf_to_png(pdf: bytes, path: Path, dpi: int = PNG_DPI) -> Path:
    """The PDF's first page rendered at ``dpi`` into ``path``."""
    doc = pypdfium2.PdfDocument(pdf)
    try:
        doc[0].render(scale=dpi / 72).to_pil().save(path)
    finally:
        doc.close()
    return path
