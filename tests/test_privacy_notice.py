"""``footfall privacy notice``: the signs and the page in all five languages.

The catalogues are read here with babel, independently of the notice's code, and every
text they hold (filled in from the store.toml) must be in the text pypdf extracts from
each sign's PDF and in the HTML page; the PNG is the PDF's page, with a QR code.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from babel.messages.pofile import read_po
from PIL import Image
from pypdf import PdfReader

import heatmap.spatial.data
from heatmap.privacy.notice_text import LANGUAGES, check_catalogue, po_path
from sensing.cli.main import main

FLOOR = Path(heatmap.spatial.data.__file__).parent / "default_store.toml"
PRIVACY = """
[privacy]
controller = "Démo Retail SARL"
contact = "Démo Retail, 1 rue de l'Exemple, 75001 Paris"
contact_email = "dpo@demo-retail.example"
notice_url = "https://demo-retail.example/footfall-privacy"
"""
VALUES = {
    "controller": "Démo Retail SARL",
    "contact": "Démo Retail, 1 rue de l'Exemple, 75001 Paris",
    "email": "dpo@demo-retail.example",
    "url": "https://demo-retail.example/footfall-privacy",
    "store": "Demo Store",
    "k": "7",
    "hours": "36",
}


def _store(tmp: Path, privacy: str = PRIVACY) -> Path:
    cfg = tmp / "store.toml"
    cfg.write_text(
        f'[aggregator]\nstore = "demo"\ndb = "{tmp / "store.db"}"\nfloor_plan = "{FLOOR}"\n'
        f"k = 7\n[retention]\nretention_hours = 36\n{privacy}"
    )
    return cfg


@pytest.fixture(scope="module")
def notice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("notice")
    out = tmp / "out"
    langs = [x for lang in LANGUAGES for x in ("--lang", lang)]
    assert main(["privacy", "notice", "--config", str(_store(tmp)), *langs, "--out", str(out)]) == 0
    return out


def _squash(s: str) -> str:
    """Text without any white space: a sign wraps lines where it must (inside an address
    too), the page indents; the words and their order are what is compared."""
    return re.sub(r"\s+", "", s)


def _catalogue_texts(lang: str) -> dict[str, str]:
    with po_path(lang).open("rb") as f:
        cat = read_po(f, locale=lang)
    return {m.id: m.string % VALUES if "%(" in m.string else m.string for m in cat if m.id}


def test_the_catalogues_agree() -> None:
    ids = {lang: set(_catalogue_texts(lang)) for lang in LANGUAGES}
    assert all(v == ids["en"] for v in ids.values())
    assert len(ids["en"]) == 28
    for lang in LANGUAGES:
        assert check_catalogue(lang) == []
        texts = _catalogue_texts(lang)
        assert all(texts.values()), lang
        if lang != "en":  # translated, not copied
            en = _catalogue_texts("en")
            same = [k for k in texts if texts[k] == en[k]]
            assert not same, (lang, same)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_sign_and_page_says_every_text_of_its_catalogue(notice: Path, lang: str) -> None:
    texts = _catalogue_texts(lang)
    # a standard store's notice: the strict mode's retention text is not on it
    on_sign = {k: v for k, v in texts.items() if k not in ("html_title", "retention_strict")}
    for paper in ("A4", "A5"):
        pdf = PdfReader(notice / f"notice-{lang}-{paper}.pdf")
        assert len(pdf.pages) == 1
        got = _squash(pdf.pages[0].extract_text())
        missing = [k for k, v in on_sign.items() if _squash(v) not in got]
        assert not missing, (paper, missing)
        assert pdf.metadata is not None and pdf.metadata.title == texts["title"]
        png = Image.open(notice / f"notice-{lang}-{paper}.png")
        w_mm = {"A4": 210, "A5": 148}[paper]
        assert abs(png.width - w_mm / 25.4 * 150) <= 2  # the PDF's page at 150 dpi
        ink = (np.asarray(png.convert("L")) < 128).mean()
        assert 0.03 < ink < 0.4, ink  # text, the dark band, the QR code: not blank
    page = (notice / f"notice-{lang}.html").read_text(encoding="utf-8")
    assert f'<html lang="{lang}">' in page and "<svg" in page
    body = _squash(re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'"))
    missing = [k for k, v in texts.items() if _squash(v) not in body]
    assert missing == ["retention_strict"], missing
    assert sum(f'href="notice-{o}.html"' in page for o in LANGUAGES) == 4


def test_the_sign_reads_like_a_sign(notice: Path) -> None:
    """One page, the text as large as fits: the A4 entrance sign's body at 10 pt or more."""
    pdf = PdfReader(notice / "notice-fr-A4.pdf")
    sizes: list[float] = []

    def visit(text: str, cm: object, tm: list[float], fd: object, size: float) -> None:
        if text.strip():
            sizes.append(size * tm[0])

    pdf.pages[0].extract_text(visitor_text=visit)
    assert min(sizes) >= 10.0, min(sizes)
    a5 = PdfReader(notice / "notice-fr-A5.pdf")
    assert float(a5.pages[0].mediabox.width) == pytest.approx(148 / 25.4 * 72, abs=0.5)


@pytest.mark.parametrize(
    ("privacy", "args", "message"),
    [
        ("", [], "[privacy] needs controller, notice_url, contact or contact_email"),
        (
            PRIVACY + 'mode = "strict"\n[live]\nenabled = false\n',
            [],
            "privacy.mode strict needs the live aggregator",
        ),
        (PRIVACY, ["--lang", "nl"], "--lang nl: one of en, fr, it, de, es"),
        (PRIVACY.replace("https://", "ftp://"), [], "notice_url: not an http(s) address"),
    ],
)
def test_notice_refuses_what_it_cannot_state(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    privacy: str,
    args: list[str],
    message: str,
) -> None:
    cfg = _store(tmp_path, privacy)
    rc = main(["privacy", "notice", "--config", str(cfg), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_strict_store_s_notice_states_the_strict_mode(tmp_path: Path) -> None:
    """The mode is on the sign and the page: the strict text, not the standard one."""
    cfg = _store(tmp_path, PRIVACY + 'mode = "strict"\n')
    out = tmp_path / "o"
    assert main(["privacy", "notice", "--config", str(cfg), "--lang", "de", "--out", str(out)]) == 0
    texts = _catalogue_texts("de")
    for f in ("notice-de-A5.pdf", "notice-de-A4.pdf"):
        got = _squash(PdfReader(out / f).pages[0].extract_text())
        assert _squash(texts["retention_strict"]) in got and "5Minuten" in got
        assert _squash(texts["retention_standard"]) not in got
    page = _squash((out / "notice-de.html").read_text(encoding="utf-8"))
    assert "StrengerModus" in page and "Standardmodus" not in page


@pytest.mark.parametrize(
    "name",
    [
        "sensing.privacy.raw_identifiers",
        "sensing.privacy.file_modes",
        "sensing.privacy.audit_report",
        "sensing.provision.acl_audit",
        "heatmap.privacy.notice_text",
        "heatmap.report.aggregate_report",
    ],
)
def test_the_kits_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("paper", ["A4", "A5"])
def test_the_signs_qr_code_is_the_pages_address(notice: Path, paper: str) -> None:
    """Every module of the QR code in the PNG, sampled at its centre, is the module of the
    notice_url's code (segno's, quiet zone included)."""
    import segno

    from heatmap.privacy.notice_pdf import PAPERS, PNG_DPI

    p = PAPERS[paper]
    rows = [list(r) for r in segno.make(VALUES["url"], error="m").matrix_iter(border=4)]
    px = np.asarray(Image.open(notice / f"notice-de-{paper}.png").convert("L"))
    per_mm = PNG_DPI / 25.4
    x0 = (p.width_mm - p.margin_mm - p.qr_mm) * per_mm
    y0 = (p.height_mm - p.margin_mm - p.qr_mm) * per_mm
    m = p.qr_mm * per_mm / len(rows)
    seen = [
        [int(px[int(y0 + (r + 0.5) * m), int(x0 + (c + 0.5) * m)] < 128) for c in range(len(row))]
        for r, row in enumerate(rows)
    ]
    assert seen == [[int(bool(v)) for v in row] for row in rows]
