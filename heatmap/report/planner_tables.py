"""The planner report's tables as CSV files (``table_{name}.csv``): every table of the
page, suppressed figures written as such, never as 0."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heatmap.report.page_html import SUPPRESSED

if TYPE_CHECKING:
    from heatmap.report.planner_report import PlannerReport

TABLES = ("summary", "zones", "entrance", "flows", "hours")
"""the CSVs: ``table_{name}.csv``"""


def _cell(v: Any) -> Any:
    return SUPPRESSED if v is None else v


def _round(v: float | None, digits: int) -> Any:
    return _cell(None if v is None else round(v, digits))


def write_tables(rep: PlannerReport, out: Path) -> list[Path]:
    """``table_*.csv`` of ``rep`` into ``out``."""
    rows: dict[str, tuple[Sequence[str], list[list[Any]]]] = {
        "summary": (("figure", "value"), [list(r) for r in rep.summary]),
        "zones": (
            (
                "zone",
                "visits_per_100_visitors",
                "dwell_p50_s",
                "share_of_visitor_time",
                "reach_share",
                "people_present_mean",
            ),
            [
                [
                    z["zone"],
                    _cell(z["visits_per_100"]),
                    _cell(z["dwell_p50_s"]),
                    _round(z["share"], 4),
                    _cell(z["reach"]),
                    _round(z["people"], 2),
                ]
                for z in rep.zones
            ],
        ),
        "entrance": (
            ("from", "to", "moves", "share_of_moves_out"),
            [
                [rep.entrance["zone"], n["to"], n["moves"], round(n["share"], 4)]
                for n in rep.entrance["next"]
            ],
        ),
        "flows": (
            ("rank", "from", "to", "moves", "devices", "share_of_moves_out_of_from"),
            [
                [
                    m["rank"],
                    m["from"],
                    m["to"],
                    m["moves"],
                    m["devices"],
                    _round(m["share_of_from"], 4),
                ]
                for m in rep.flows
            ],
        ),
        "hours": (
            ("hour", "days_open", "visitors"),
            [[h["hour"], h["days"], h["visitors"]] for h in rep.hours_open],
        ),
    }
    paths = []
    for name, (head, body) in rows.items():
        p = out / f"table_{name}.csv"
        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            w.writerows(body)
        paths.append(p)
    return paths
