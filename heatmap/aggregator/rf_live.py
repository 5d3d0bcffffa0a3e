"""The RF-only count in the live aggregates of a store without door beams.

:func:`apply` is the one hook the live aggregator calls
(:func:`heatmap.aggregator.live.period_figures.compute`, stores without doors): it
replaces the ``footfall``/``store`` payload's ``visitors``, ``passersby``,
``occupancy_mean`` and ``person_seconds_inside`` with the RF-only count of
:mod:`heatmap.aggregator.rf_count` (people = devices × the store's people per device,
:mod:`heatmap.aggregator.rf_factor`), k-guarded, and adds what it counted under
``rf_count``. ``occupancy_source`` stays ``"rf"``, which
the BI payload carries as ``source`` (:mod:`heatmap.aggregator.publish.bi_payloads`).

A slot or an hour is counted from the ``obs`` rows around it (the presence gap
after it; before it, the ``static_min_s`` that tell a static device): the hour is
written before its passers-by's rows are deleted. A day is the sum of its stored
hours (arrivals add up; the passers-by's rows are gone by then), and in ``strict``
privacy mode, where rows stay in memory for 35 min only, an hour is the sum of its
stored slots; their occupancy is the mean of the pieces'. A piece whose figure was
suppressed (fewer than k devices) adds nothing: a quiet store's day undercounts,
as the live aggregator's passers-by of a day do.

In ``strict`` mode only the last 35 min of rows exist, so static devices (which
take ``static_min_s`` to show) are not told apart there: they count as visitors
inside.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

import numpy as np

from heatmap.aggregator.live import k_guard
from heatmap.aggregator.rf_count import CountSettings, count_devices
from heatmap.aggregator.rf_devices import Frames
from heatmap.aggregator.rf_factor import load as load_factor

HOUR_MS = 3_600_000
PIECE_MS = {"hour": 900_000, "day": HOUR_MS}
"""what an hour and a day are composed of (the live slots, the hours)"""


def read_frames(conn: sqlite3.Connection, t0_ms: int, t1_ms: int) -> Frames:
    """The ``obs`` rows of [t0, t1) as :class:`~heatmap.aggregator.rf_devices.Frames`,
    with the nodes' ``chain`` where the table has that column (a database of schema
    v4 or older opened read-only is not migrated)."""
    cols = "t_ms, node, pid, rssi, band, flags, sig"
    if "chain" in {r[1] for r in conn.execute("PRAGMA table_info(obs)")}:
        cols += ", chain"
    rows = conn.execute(
        f"SELECT {cols} FROM obs WHERE t_ms >= ? AND t_ms < ?", (t0_ms, t1_ms)
    ).fetchall()
    return Frames.from_rows(rows)


def figures(
    conn: sqlite3.Connection, t0_ms: int, t1_ms: int, s: CountSettings | None = None
) -> dict[str, Any]:
    """The RF-only count of [t0, t1) as stored under ``rf_count`` (not yet k-guarded)."""
    s = s or CountSettings()
    reach = int(s.presence_gap_s * 1000)
    span = t1_ms - t0_ms
    # the hours before: a static device (staff phone, equipment) shows as one over them
    f = read_frames(conn, t0_ms - max(reach, int(s.static_min_s * 1000)), t1_ms + reach)
    c = count_devices(f, t0_ms, t1_ms, replace(s, bin_ms=span))
    k = load_factor(conn)
    return {
        "visitor_devices": int(c.visitors.sum()),
        "passerby_devices": int(c.passersby.sum()),
        "devices_inside_mean": round(float(c.present.mean()), 3),
        "static_devices": c.static_devices,
        "band": c.band,
        "visitors": round(float(c.visitors.sum()) * k.visitors),
        "passersby": round(float(c.passersby.sum()) * k.passersby),
        "occupancy_mean": round(float(c.present.mean()) * k.occupancy, 2),
        "person_seconds_inside": round(float(c.present.mean()) * k.occupancy * span / 1000, 1),
        "people_per_device": {"visitors": k.visitors, "passersby": k.passersby,
                              "occupancy": k.occupancy, "source": k.source},
    }  # fmt: skip


def composed_figures(
    conn: sqlite3.Connection, t0_ms: int, t1_ms: int, piece_ms: int
) -> dict[str, Any] | None:
    """A period's RF-only count from its stored pieces of ``piece_ms`` (an hour's slots,
    a day's hours; None if none has one): the pieces' published figures summed
    (suppressed ones are left out, as a day's passers-by from its hours), the
    occupancy their mean."""
    rows = conn.execute(
        "SELECT payload FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
        "AND t0_ms >= ? AND t1_ms <= ? AND t1_ms - t0_ms = ?",
        (t0_ms, t1_ms, piece_ms),
    ).fetchall()
    hours = [p for p in (json.loads(r[0]) for r in rows) if p.get("rf_count")]
    if not hours:
        return None

    def total(vals: list[Any]) -> int:
        return int(sum(v for v in vals if v is not None))

    rc = [h["rf_count"] for h in hours]
    occ = [h["occupancy_mean"] for h in hours if h.get("occupancy_mean") is not None]
    ps = [h["person_seconds_inside"] for h in hours if h.get("person_seconds_inside") is not None]
    inside = [r["devices_inside_mean"] for r in rc if r.get("devices_inside_mean") is not None]
    return {
        "visitor_devices": total([r["visitor_devices"] for r in rc]),
        "passerby_devices": total([r["passerby_devices"] for r in rc]),
        "static_devices": max(r["static_devices"] or 0 for r in rc),
        "devices_inside_mean": round(float(np.mean(inside)), 3) if inside else 0.0,
        "band": rc[-1]["band"],
        "people_per_device": rc[-1]["people_per_device"],
        "visitors": total([h["visitors"] for h in hours]),
        "passersby": total([h["passersby"] for h in hours]),
        "occupancy_mean": round(float(np.mean(occ)), 2) if occ else 0.0,
        "person_seconds_inside": round(float(sum(ps)), 1),
    }


def _strict(conn: sqlite3.Connection) -> bool:
    """Whether ``conn`` is the strict mode's working memory (the store attached as
    ``disk``, :mod:`heatmap.aggregator.live.strict_memory`)."""
    return any(row[1] == "disk" for row in conn.execute("PRAGMA database_list"))


def apply(
    conn: sqlite3.Connection, store: dict[str, Any], unit: str, t0_ms: int, t1_ms: int, k: int
) -> None:
    """Put the RF-only count into a no-beams ``footfall``/``store`` payload (module doc).
    Every figure is k-guarded by the devices it comes from."""
    rf = None
    if unit == "day" or (unit == "hour" and _strict(conn)):
        rf = composed_figures(conn, t0_ms, t1_ms, PIECE_MS[unit])
    if rf is None:
        rf = figures(conn, t0_ms, t1_ms)
    vdev, pdev = rf["visitor_devices"], rf["passerby_devices"]
    inside = rf["devices_inside_mean"]
    crowd = int(np.ceil(inside))
    store["rf_count"] = {
        "visitor_devices": k_guard.count(vdev, k),
        "passerby_devices": k_guard.count(pdev, k),
        "static_devices": k_guard.count(rf["static_devices"], k),
        "devices_inside_mean": k_guard.figure(inside, crowd, k),
        "band": rf["band"],
        "people_per_device": rf["people_per_device"],
    }
    vis, pas = rf["visitors"], rf["passersby"]
    store["visitors"] = k_guard.figure(vis, min(vis, vdev), k)
    store["passersby"] = k_guard.figure(pas, min(pas, pdev), k)
    store["occupancy_mean"] = k_guard.figure(rf["occupancy_mean"], crowd, k)
    # what the in-progress hour and day are composed from (occupancy = person-seconds / span)
    store["person_seconds_inside"] = k_guard.figure(
        rf["person_seconds_inside"], max(min(vis, vdev), crowd), k
    )
    store["occupancy_source"] = "rf"
    store["capture_rate"] = k_guard.figure(
        round(vis / (vis + pas), 4) if vis + pas else None, min(vis, vdev, pas + vis), k
    )
