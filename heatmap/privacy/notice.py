"""``footfall privacy notice``: the in-store signs and the notice's web page, per language.

From the store's ``store.toml`` (``[privacy]``: controller, contact, e-mail, the page's
address; ``[aggregator] k``; ``[retention] retention_hours``) and its floor plan (door
beams, floor tiles), for each language asked:

* ``notice-{lang}-A4.pdf`` and ``.png``: the sign for the entrance;
* ``notice-{lang}-A5.pdf`` and ``.png``: the smaller sign for inside;
* ``notice-{lang}.html``: the page the signs' QR code points to (publish it at
  ``notice_url``), rendered by jinja2 from ``templates/notice.html.j2`` with links to the
  other languages written.

The words are the catalogues' (:mod:`heatmap.privacy.notice_text`), the sign is drawn by
:mod:`heatmap.privacy.notice_pdf`. A notice states what the store does, so the config
must say who is responsible and where the page lives; it states the store's privacy
mode (``standard``, or ``strict``: no pseudonymous row older than 5 minutes on disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from firmware_bridge.errors import ConfigError
from heatmap.privacy.notice_pdf import PAPERS, pdf_to_png, sign_pdf
from heatmap.privacy.notice_text import NoticeFacts, NoticeText, notice_text
from heatmap.privacy.store_setup import StoreSetup

TEMPLATES = Path(__file__).parent / "templates"


def facts_of(st: StoreSetup) -> NoticeFacts:
    """What the notice states, from the store's config; ConfigError for what it lacks."""
    pv = st.privacy
    missing = [k for k in ("controller", "notice_url") if getattr(pv, k) is None]
    if pv.contact is None and pv.contact_email is None:
        missing.append("contact or contact_email")
    if missing:
        raise ConfigError(
            f"{st.path}: [privacy] needs {', '.join(missing)} for a notice (who is "
            "responsible, how to reach them, where the page is)"
        )
    if pv.mode == "strict" and st.config.live is None:
        raise ConfigError(
            f"{st.path}: privacy.mode strict needs the live aggregator (a floor plan, [live] "
            "enabled): the aggregator refuses to start without it, so a notice would promise "
            "what it does not do"
        )
    assert pv.controller is not None and pv.notice_url is not None
    return NoticeFacts(
        store=st.name,
        controller=pv.controller,
        contact=pv.contact,
        email=pv.contact_email,
        url=pv.notice_url,
        k=st.config.k,
        retention_hours=st.retention_hours,
        doors=bool(st.plan.doors),
        tiles=bool(st.plan.tiles),
        mode=pv.mode,
    )


def html_page(text: NoticeText, others: Sequence[tuple[str, str]] = ()) -> str:
    """The notice's web page; ``others``: (language, file name) of its translations."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    svg = segno.make(text.url, error="m").svg_inline(scale=4, title=text.qr_caption)
    return env.get_template("notice.html.j2").render(
        n=text, qr_svg=Markup(svg), others=list(others)
    )


def write_notice(st: StoreSetup, langs: Sequence[str], out: Path) -> list[Path]:
    """Every sign and page of ``langs`` into ``out``; returns the files written."""
    facts = facts_of(st)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for lang in langs:
        text = notice_text(lang, facts)
        for paper in PAPERS:
            pdf = sign_pdf(text, paper)
            p = out / f"notice-{lang}-{paper}.pdf"
            p.write_bytes(pdf)
            written += [p, pdf_to_png(pdf, p.with_suffix(".png"))]
        others = [(o, f"notice-{o}.html") for o in langs if o != lang]
        page = out / f"notice-{lang}.html"
        page.write_text(html_page(text, others), encoding="utf-8")
        written.append(page)
    return written
