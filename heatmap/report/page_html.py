"""What every planner page shares: the Jinja environment over ``templates/``, the
filters that write a figure or "suppressed (fewer than k)", and pictures as data URIs
(a page is one self-contained file)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

SUPPRESSED = "suppressed (fewer than k)"


def pct(v: float | None, digits: int = 0) -> str:
    """A share as a percentage, or suppressed.

    >>> pct(0.4567, 1), pct(None)
    ('45.7 %', 'suppressed (fewer than k)')
    """
    return SUPPRESSED if v is None else f"{v * 100:.{digits}f} %"


def num(v: float | None, fmt: str = "{:.0f}") -> str:
    return SUPPRESSED if v is None else fmt.format(v)


def dwell(v: float | None) -> str:
    """A stay in seconds, or minutes from 90 s on.

    >>> dwell(42.0), dwell(150.0)
    ('42 s', '2.5 min')
    """
    if v is None:
        return SUPPRESSED
    return f"{v:.0f} s" if v < 90 else f"{v / 60:.1f} min"


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def env() -> Any:
    """The templates' environment: autoescaped, undefined names are errors."""
    import jinja2

    e = jinja2.Environment(
        loader=jinja2.PackageLoader("heatmap.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    e.filters["pct"] = pct
    e.filters["num"] = num
    e.filters["dwell"] = dwell
    return e
