"""The notice's words, from the translation catalogues, filled in from the store's config.

The texts live in ``heatmap/privacy/locale/{lang}/LC_MESSAGES/notice.po`` (gettext, one
catalogue a language); a message's ``msgid`` is its key (``purpose``, ``optout_limits``)
and its ``msgstr`` the text, so no sentence of the notice is in the code, English
included. The ``.po`` files are read and compiled to gettext's ``.mo`` form in memory
by babel at each run: nothing compiled is committed that could fall behind its source,
and there is no build step to forget (compiling five catalogues takes milliseconds).

:func:`notice_text` builds what every rendering shows (the signs, the page): title,
sections of heading and paragraphs, the QR caption. What it says follows the store:
its k, its ``retention_hours``, its privacy mode (``retention_standard`` or
``retention_strict``, each naming its mode), whether it has door beams or floor tiles.

>>> sorted(LANGUAGES)
['de', 'en', 'es', 'fr', 'it']
>>> catalogue("fr").gettext("h_rights")
'Vos droits'
"""

from __future__ import annotations

import gettext
import io
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from firmware_bridge.errors import ConfigError

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "notice"
LANGUAGES = ("en", "fr", "it", "de", "es")

SECTIONS = (
    ("h_purpose", ("purpose",)),
    ("h_sensed", ("sensed_radio", "sensed_doors", "sensed_tiles")),
    ("h_never", ("never",)),
    ("h_rotation", ("rotation",)),
    ("h_retention", ("retention_standard",)),
    ("h_k", ("k",)),
    ("h_optout", ("optout", "optout_limits")),
    ("h_rights", ("rights",)),
)
"""the notice's sections after "who is responsible", in order: heading key, paragraph keys"""
KEYS = (
    "title",
    "subtitle",
    "h_who",
    "controller",
    "contact",
    "email",
    *(k for h, ps in SECTIONS for k in (h, *ps)),
    "retention_strict",
    "qr",
    "html_title",
)
"""every message the notice uses"""

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def messages(lang: str) -> dict[str, str]:
    """The catalogue of ``lang`` as key → text (read with babel)."""
    with po_path(lang).open("rb") as f:
        cat = read_po(f, locale=lang, domain=DOMAIN)
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str)}


@cache
def catalogue(lang: str) -> gettext.GNUTranslations:
    """``lang``'s catalogue compiled to ``.mo`` in memory, as gettext reads it."""
    if lang not in LANGUAGES:
        raise ConfigError(f"--lang {lang}: one of {', '.join(LANGUAGES)}")
    with po_path(lang).open("rb") as f:
        cat = read_po(f, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, cat)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def check_catalogue(lang: str) -> list[str]:
    """What is wrong with ``lang``'s catalogue: a key missing or untranslated, a
    placeholder that is not the English text's."""
    have, en = messages(lang), messages("en")
    out = []
    for key in KEYS:
        text = have.get(key)
        if not text:
            out.append(f"{po_path(lang)}: {key!r} missing or empty")
        elif set(_PLACEHOLDER.findall(text)) != set(_PLACEHOLDER.findall(en.get(key, ""))):
            out.append(f"{po_path(lang)}: {key!r} has other placeholders than the English")
    return out


@dataclass(frozen=True)
class NoticeText:
    lang: str
    title: str
    subtitle: str
    who_heading: str
    who: list[str]
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    qr_caption: str = ""
    url: str = ""
    html_title: str = ""

    def all_texts(self) -> list[str]:
        """Every text the notice shows, in order (what a test finds in the PDF)."""
        out = [self.title, self.subtitle, self.who_heading, *self.who]
        for h, ps in self.sections:
            out += [h, *ps]
        return [*out, self.qr_caption]


@dataclass(frozen=True)
class NoticeFacts:
    """What the notice states about the store (from store.toml and its floor plan)."""

    store: str
    controller: str
    contact: str | None
    email: str | None
    url: str
    k: int
    retention_hours: float
    doors: bool = True
    tiles: bool = False
    mode: str = "standard"
    """the privacy mode: ``standard`` or ``strict``"""


def notice_text(lang: str, facts: NoticeFacts) -> NoticeText:
    """The notice in ``lang`` for the store ``facts`` describes."""
    problems = check_catalogue(lang)
    if problems:
        raise ConfigError(problems[0])
    t = catalogue(lang).gettext
    values = {
        "controller": facts.controller,
        "contact": facts.contact or "",
        "email": facts.email or "",
        "url": facts.url,
        "store": facts.store,
        "k": str(facts.k),
        "hours": format_decimal(facts.retention_hours, locale=lang),
    }

    def say(key: str) -> str:
        return t(key) % values if "%(" in t(key) else t(key)

    who = [say("controller")]
    who += [say("contact")] if facts.contact else []
    who += [say("email")] if facts.email else []
    skip = {"sensed_doors"} if not facts.doors else set()
    skip |= {"sensed_tiles"} if not facts.tiles else set()
    retention = f"retention_{facts.mode}"
    sections = [
        (say(h), [say(retention if p == "retention_standard" else p) for p in ps if p not in skip])
        for h, ps in SECTIONS
    ]
    return NoticeText(
        lang,
        say("title"),
        say("subtitle"),
        say("h_who"),
        who,
        sections,
        say("qr"),
        facts.url,
        say("html_title"),
    )
