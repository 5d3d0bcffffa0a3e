"""The chain report: the stores side by side over one ISO week, from the chain's ClickHouse.

For each store: the week's visitors, capture rate and mean dwell (from its closed and
in-progress days), its busiest hour of the week and a stores × hour-of-day table of
the mean visitors per hour (from its hours). Written as CSV (one tidy table per file)
and one PNG a chain manager reads.

A figure a store published as suppressed (fewer than k people) stays suppressed: it is
empty in the CSV with its status ``suppressed``, grey in the picture, and never
estimated. The week's figures of a store are over the days that have them (the days
suppressed, not measured or missing are counted beside them), so a quiet Sunday
suppressed by its store does not hide the week's other six days.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from heatmap.chain.clickhouse_store import ChainStore, week_days_sql, week_hours_sql

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_STORES_DRAWN = 40
"""stores drawn in the PNG (the most visited; the CSV has every store)"""


def iso_week(text: str) -> tuple[date, date]:
    """First and last day of ISO week ``YYYY-Www``.

    >>> iso_week("2026-W47")
    (datetime.date(2026, 11, 16), datetime.date(2026, 11, 22))
    """
    try:
        year_s, week_s = text.strip().upper().split("-W")
        first = date.fromisocalendar(int(year_s), int(week_s), 1)
    except ValueError as e:
        raise ConfigError(f"--week {text!r}: expected an ISO week such as 2026-W47") from e
    return first, first + timedelta(days=6)


@dataclass
class Day:
    """One store's local day as published (None: suppressed or not measured)."""

    day: date
    final: bool
    suppressed: bool
    visitors: int | None
    passersby: int | None
    capture_rate: float | None
    dwell_mean_s: float | None
    visitors_measured: bool

    @property
    def status(self) -> str:
        if not self.visitors_measured:
            return "not measured"
        if self.visitors is None:
            return "suppressed"
        return "closed" if self.final else "in progress"


@dataclass
class StoreWeek:
    """One store's week: its days, its hours' visitors and what they add up to."""

    store: str
    days: dict[date, Day] = field(default_factory=dict)
    hours: dict[tuple[date, int], int | None] = field(default_factory=dict)
    """visitors of each (day, local hour); None: suppressed"""

    @property
    def visitors(self) -> int | None:
        known = [d.visitors for d in self.days.values() if d.visitors is not None]
        return sum(known) if known else None

    @property
    def days_counted(self) -> int:
        return sum(1 for d in self.days.values() if d.visitors is not None)

    @property
    def days_suppressed(self) -> int:
        return sum(1 for d in self.days.values() if d.status == "suppressed")

    @property
    def capture_rate(self) -> float | None:
        """visitors / (visitors + passers-by) over the days that have both"""
        both = [
            (d.visitors, d.passersby)
            for d in self.days.values()
            if d.visitors is not None and d.passersby is not None
        ]
        total = sum(v + p for v, p in both)
        return sum(v for v, _ in both) / total if total else None

    @property
    def dwell_mean_s(self) -> float | None:
        """mean dwell weighted by the visitors, over the days that have both"""
        both = [
            (d.visitors, d.dwell_mean_s)
            for d in self.days.values()
            if d.visitors and d.dwell_mean_s is not None
        ]
        n = sum(v for v, _ in both)
        return sum(v * s for v, s in both) / n if n else None

    @property
    def busiest_hour(self) -> tuple[date, int, int] | None:
        """(day, hour, visitors) of the hour of the week with the most visitors"""
        known = [(v, d, h) for (d, h), v in self.hours.items() if v is not None]
        if not known:
            return None
        v, d, h = max(known, key=lambda x: (x[0], -x[1].toordinal(), -x[2]))
        return d, h, v

    def hour_of_day(self, hour: int) -> tuple[float | None, int, int]:
        """(mean visitors, hours counted, hours suppressed) of ``hour`` over the week"""
        vals = [v for (_d, h), v in self.hours.items() if h == hour]
        known = [v for v in vals if v is not None]
        mean = sum(known) / len(known) if known else None
        return mean, len(known), len(vals) - len(known)


@dataclass
class ChainWeek:
    """The report's figures and how long its queries took."""

    first: date
    last: date
    stores: list[StoreWeek]
    query_s: float


def load_week(
    store: ChainStore, first: date, last: date, stores: Sequence[str] | None
) -> ChainWeek:
    """Read the week's days and hours of ``stores`` (every store if None)."""
    t0 = time.perf_counter()
    day_rows = store.rows(week_days_sql(first.isoformat(), last.isoformat(), stores))
    hour_rows = store.rows(week_hours_sql(first.isoformat(), last.isoformat(), stores))
    query_s = time.perf_counter() - t0
    weeks: dict[str, StoreWeek] = {s: StoreWeek(s) for s in stores or ()}
    for r in day_rows:
        s, d, final, suppressed, vis, pas, cap, dwell, vis_absent, _p_absent, _d_absent = r
        w = weeks.setdefault(s, StoreWeek(s))
        day = date.fromisoformat(d)
        w.days[day] = Day(day, bool(final), bool(suppressed), vis, pas, cap, dwell, not vis_absent)
    for s, d, hour, _final, _suppressed, vis in hour_rows:
        w = weeks.setdefault(s, StoreWeek(s))
        # a repeated (fall-back) local hour adds to its hour of day
        key = (date.fromisoformat(d), int(hour))
        if key in w.hours and w.hours[key] is not None and vis is not None:
            w.hours[key] = (w.hours[key] or 0) + vis
        elif key not in w.hours:
            w.hours[key] = vis
    ordered = sorted(weeks.values(), key=lambda w: (-(w.visitors or -1), w.store))
    return ChainWeek(first, last, ordered, query_s)


def _cell(v: float | int | None, digits: int = 4) -> str:
    if v is None:
        return ""
    return str(v) if isinstance(v, int) else f"{v:.{digits}f}"


def write_csv(week: ChainWeek, out: Path) -> list[Path]:
    """``chain_week_stores.csv`` (a row per store), ``chain_week_days.csv`` (per store and
    day) and ``chain_week_hours.csv`` (per store and hour of day)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "chain_week_stores.csv", out / "chain_week_days.csv"]
    paths.append(out / "chain_week_hours.csv")
    with paths[0].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "store",
                "visitors",
                "days_counted",
                "days_suppressed",
                "capture_rate",
                "dwell_mean_s",
                "busiest_day",
                "busiest_hour",
                "busiest_hour_visitors",
            ]
        )
        for s in week.stores:
            b = s.busiest_hour
            w.writerow(
                [
                    s.store,
                    _cell(s.visitors),
                    s.days_counted,
                    s.days_suppressed,
                    _cell(s.capture_rate),
                    _cell(s.dwell_mean_s, 1),
                    b[0].isoformat() if b else "",
                    b[1] if b else "",
                    b[2] if b else "",
                ]
            )
    with paths[1].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["store", "day", "status", "visitors", "passersby", "capture_rate", "dwell_mean_s"]
        )
        for s in week.stores:
            for i in range(7):
                d = week.first + timedelta(days=i)
                day = s.days.get(d)
                if day is None:
                    w.writerow([s.store, d.isoformat(), "missing", "", "", "", ""])
                    continue
                w.writerow(
                    [
                        s.store,
                        d.isoformat(),
                        day.status,
                        _cell(day.visitors),
                        _cell(day.passersby),
                        _cell(day.capture_rate),
                        _cell(day.dwell_mean_s, 1),
                    ]
                )
    with paths[2].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["store", "hour", "mean_visitors", "hours_counted", "hours_suppressed"])
        for s in week.stores:
            for h in range(24):
                mean, n, sup = s.hour_of_day(h)
                if n or sup:
                    w.writerow([s.store, h, _cell(mean, 2), n, sup])
    return paths


def write_png(week: ChainWeek, path: Path, title: str) -> Path:
    """Bars of the week's visitors, capture rate and mean dwell per store, and the
    stores × hour-of-day table of mean visitors; suppressed figures grey and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    stores = week.stores[:MAX_STORES_DRAWN]
    n = max(len(stores), 1)
    seen = {h for s in stores for (_d, h) in s.hours}
    hours = list(range(min(seen), max(seen) + 1)) if seen else list(range(24))
    fig_h = 2.2 + 0.32 * n
    fig = plt.figure(figsize=(16, fig_h), dpi=110)
    gs = fig.add_gridspec(1, 4, width_ratios=[1.2, 0.8, 0.8, 2.2], wspace=0.08)
    y = np.arange(n)
    names = [s.store for s in stores]
    grey = "#c8c8c8"

    # why a store's figure is missing: its store published it suppressed, or nothing came
    why = [
        "suppressed" if any(d.status == "suppressed" for d in st.days.values()) else "no data"
        for st in stores
    ]

    def bars(ax: Any, values: list[float | None], fmt: str, color: str, label: str) -> None:
        top = max([v for v in values if v is not None] or [1.0])
        for i, v in enumerate(values):
            if v is None:
                ax.barh(i, top, color="none", edgecolor=grey, hatch="///", linewidth=0)
                ax.text(top * 0.02, i, why[i], va="center", fontsize=8, color="#707070")
            else:
                ax.barh(i, v, color=color)
                ax.text(v, i, " " + fmt.format(v), va="center", fontsize=8)
        ax.set_xlim(0, top * 1.28)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(n - 0.5, -0.5)
        ax.tick_params(axis="x", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(3))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    ax0 = fig.add_subplot(gs[0])
    bars(ax0, [s.visitors for s in stores], "{:,.0f}", "#2c6fbb", "visitors in the week")
    labels = [
        f"{st.store} ({st.days_suppressed} d suppressed)" if st.days_suppressed else st.store
        for st in stores
    ]
    ax0.set_yticks(y, labels, fontsize=8)
    ax1 = fig.add_subplot(gs[1], sharey=ax0)
    caps = [None if s.capture_rate is None else 100 * s.capture_rate for s in stores]
    bars(ax1, caps, "{:.0f} %", "#3a9a5b", "capture rate")
    ax1.tick_params(axis="y", labelleft=False)
    ax2 = fig.add_subplot(gs[2], sharey=ax0)
    dwell = [None if s.dwell_mean_s is None else s.dwell_mean_s / 60 for s in stores]
    bars(ax2, dwell, "{:.1f} min", "#b5632b", "mean dwell, min")
    ax2.tick_params(axis="y", labelleft=False)

    ax3 = fig.add_subplot(gs[3])
    grid = np.full((n, len(hours)), np.nan)
    supp = np.zeros((n, len(hours)), dtype=bool)
    for i, s in enumerate(stores):
        for j, h in enumerate(hours):
            mean, _counted, sup = s.hour_of_day(h)
            if mean is not None:
                grid[i, j] = mean
            elif sup:
                supp[i, j] = True
    cmap = matplotlib.colormaps["YlOrRd"].copy()
    cmap.set_bad("white")
    im = ax3.imshow(grid, aspect="auto", cmap=cmap, vmin=0, interpolation="nearest")
    for i, j in zip(*np.nonzero(supp), strict=True):
        ax3.add_patch(
            plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=grey, edgecolor="white", lw=0.5)
        )
    for i, s in enumerate(stores):
        b = s.busiest_hour
        if b is not None and b[1] in hours:
            ax3.text(hours.index(b[1]), i, "●", ha="center", va="center", fontsize=7, color="k")
    ax3.set_xticks(range(len(hours)), [f"{h:02d}" for h in hours], fontsize=8)
    ax3.set_yticks(y, names, fontsize=8)
    ax3.yaxis.tick_right()
    ax3.set_title(
        "mean visitors per hour of day (grey: under k, suppressed; ● busiest hour of the week)",
        fontsize=10,
    )
    fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    fig.subplots_adjust(left=0.12, right=0.9, top=1 - 0.9 / fig_h, bottom=1.25 / fig_h)
    # the colour scale in its own axes below, so the table's rows line up with the bars'
    x0, _y0, w, _h = ax3.get_position().bounds
    cax = fig.add_axes((x0 + w * 0.2, 0.5 / fig_h, w * 0.6, 0.12 / fig_h))
    cb = fig.colorbar(im, cax=cax, orientation="horizontal")
    cb.set_label("visitors per hour", fontsize=8)
    cb.ax.tick_params(labelsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path


def report(
    store: ChainStore, week_text: str, out: Path, stores: Sequence[str] | None = None
) -> tuple[ChainWeek, list[Path]]:
    """Write the chain report of ISO week ``week_text`` into ``out``; the figures and files."""
    first, last = iso_week(week_text)
    week = load_week(store, first, last, stores)
    paths = write_csv(week, out)
    shown = len(week.stores[:MAX_STORES_DRAWN])
    title = (
        f"Chain week {week_text.upper()} ({first:%d %b} – {last:%d %b %Y}), "
        f"{len(week.stores)} stores"
        + (f", the {shown} most visited drawn" if shown < len(week.stores) else "")
    )
    hidden = [s.store for s in week.stores[MAX_STORES_DRAWN:] if s.visitors is None]
    if hidden:
        more = f" and {len(hidden) - 3} more" if len(hidden) > 3 else ""
        title += f"; no visitor figure (suppressed or missing): {', '.join(hidden[:3])}{more}"
    paths.append(write_png(week, out / "chain_week.png", title))
    return week, paths
