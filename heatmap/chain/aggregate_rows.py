"""What one store's aggregate becomes at the chain's centre: a row of its table.

A message of the outbound contract (``footfall/v1/{store}/...``, docs/mqtt.md) is
checked here beyond its JSON Schema (the period's text agrees with the topic's
period level and with the unit; a zone's id with the topic's) and turned into the
row :mod:`heatmap.chain.clickhouse_store` inserts. Every row carries its identity
(the columns a table is ordered by) and a version: the table keeps, of the rows of
one identity, the one with the highest version, so a redelivered or re-published
aggregate replaces the earlier one and never adds to it.

Versions are ``(as_of, final) << 64 | received_ns``: the aggregate that reaches
later wins; of two that reach as far, the closed one wins over the one in progress
(the hour in progress and the closed hour have the same identity: the same period);
and of two alike, the one received later (a re-publish after late data).

>>> r = footfall_row("s1", "2026-11-20T10", {"v": 1,
...     "period": "2026-11-20T10:00:00+01:00/2026-11-20T11:00:00+01:00", "unit": "hour",
...     "final": True, "as_of": 1795683600000, "k": 5, "suppressed": False, "visitors": 7,
...     "dwell_s": {"p50": 60.0, "p90": None}}, "{}", 1)
>>> r["period_start"], r["local_date"], r["local_hour"], r["visitors"], r["door_in"]
('2026-11-20 09:00:00.000', '2026-11-20', 10, 7, None)
>>> r["not_measured"][:2]
['in', 'out']
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from firmware_bridge.errors import PayloadError

FOOTFALL_INTS = {
    "in": "door_in",
    "out": "door_out",
    "in_implied": "in_implied",
    "visitors": "visitors",
    "passersby": "passersby",
    "visits": "visits",
}
"""payload key → column (``in`` is an SQL keyword: the door counts are ``door_in``/``door_out``)"""
FOOTFALL_FLOATS = ("capture_rate", "occupancy_mean", "occupancy_max", "dwell_mean_s")
DWELL_KEYS = ("p25", "p50", "p75", "p90")
FOOTFALL_FIGURES = (
    *FOOTFALL_INTS.values(),
    *FOOTFALL_FLOATS,
    *(f"dwell_{p}" for p in DWELL_KEYS),
)
"""every figure column of the footfall table, in the payload's order"""

ZONE_FIGURES = ("occupancy", "visits", "dwell_p50", "dwell_p90", "person_seconds", "reach_share")

_CLOSED_HOUR = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2})(b?)")
_CLOSED_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_FRACTION = re.compile(r"\.(\d{1,9})")


_EPOCH = datetime(1970, 1, 1)


def _ts(ms: int) -> str:
    """Epoch ms as ClickHouse's DateTime64(3, 'UTC') text."""
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


def version(as_of_ms: int, final: bool, received_ns: int) -> int:
    """The row version: later ``as_of`` first, then closed over in progress, then the
    later arrival (a UInt128)."""
    return ((as_of_ms * 2 + int(final)) << 64) | (received_ns & 0xFFFF_FFFF_FFFF_FFFF)


def parse_period(period: str) -> tuple[datetime, datetime]:
    """The two ends of an ISO 8601 interval ``start/end`` (with their UTC offsets).

    >>> a, b = parse_period("2026-11-20T00:00+01:00/2026-11-21T00:00:00.000000001+01:00")
    >>> a.isoformat(), (b - a).total_seconds()
    ('2026-11-20T00:00:00+01:00', 86400.0)
    """
    ends = []
    for part in period.split("/"):
        # Python reads at most 6 fraction digits; the schema allows 9
        text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), part)
        try:
            ends.append(datetime.fromisoformat(text))
        except ValueError as e:
            raise PayloadError(f"period {period[:80]!r}: {e}", "bad_period") from e
    if len(ends) != 2 or ends[0].tzinfo is None or ends[1].tzinfo is None:
        raise PayloadError(f"period {period[:80]!r} is not start/end with offsets", "bad_period")
    if ends[1] <= ends[0]:
        raise PayloadError(f"period {period[:80]!r} ends before it starts", "bad_period")
    return ends[0], ends[1]


def _check_length(unit: str, a: datetime, b: datetime, period: str) -> None:
    s = (b - a).total_seconds()
    ok = s == 3600 if unit == "hour" else 23 * 3600 <= s <= 25 * 3600
    if not ok:
        raise PayloadError(f"period {period[:80]!r} is not one {unit}", "bad_period")


def _check_level(level: str, unit: str, a: datetime) -> None:
    """The topic's period level agrees with the payload: ``hour``/``today`` with the
    unit, ``YYYY-MM-DDTHH[b]``/``YYYY-MM-DD`` with the unit and the local start."""
    want: tuple[str, str | None]
    if level == "hour":
        want = ("hour", None)
    elif level == "today":
        want = ("day", None)
    elif m := _CLOSED_HOUR.fullmatch(level):
        want = ("hour", f"{m.group(1)}T{m.group(2)}")
    elif _CLOSED_DAY.fullmatch(level):
        want = ("day", level)
    else:
        raise PayloadError(f"period level {level!r} is not hour, today or a date", "bad_topic")
    start = a.strftime("%Y-%m-%dT%H") if unit == "hour" else a.strftime("%Y-%m-%d")
    if want[0] != unit or (want[1] is not None and want[1] != start):
        raise PayloadError(
            f"topic period {level!r} disagrees with the payload's {unit} from {start}",
            "period_mismatch",
        )


def _utc_ms(dt: datetime) -> int:
    return (dt - _EPOCH.replace(tzinfo=UTC)) // timedelta(milliseconds=1)


def _offset(dt: datetime) -> timedelta:
    off = dt.utcoffset()
    return off if off is not None else timedelta(0)


def _common(store: str, p: dict[str, Any], raw: str, received_ns: int) -> dict[str, Any]:
    a, b = parse_period(p["period"])
    _check_length(p["unit"], a, b, p["period"])
    return {
        "store": store,
        "unit": p["unit"],
        "period_start": _ts(_utc_ms(a)),
        "period_end": _ts(_utc_ms(b)),
        "utc_offset_min": int(_offset(a).total_seconds() // 60),
        "local_date": a.strftime("%Y-%m-%d"),
        "final": p["final"],
        "as_of": _ts(p["as_of"]),
        "k": p["k"],
        "suppressed": p["suppressed"],
        "raw": raw,
        "received_at": _ts(received_ns // 1_000_000),
        "ver": str(version(p["as_of"], p["final"], received_ns)),
    }


def footfall_row(
    store: str, level: str, p: dict[str, Any], raw: str, received_ns: int
) -> dict[str, Any]:
    """The footfall table's row of a validated footfall payload on period level ``level``.

    A figure that is null (suppressed: fewer than k) and one that is absent (not
    measured) are both NULL; ``not_measured`` names the absent ones."""
    row = _common(store, p, raw, received_ns)
    a, _b = parse_period(p["period"])
    _check_level(level, p["unit"], a)
    row["local_hour"] = a.hour if p["unit"] == "hour" else 0
    row["level"] = level
    row["source"] = p.get("source")
    for key, column in FOOTFALL_INTS.items():
        row[column] = p.get(key)
    for key in FOOTFALL_FLOATS:
        row[key] = p.get(key)
    dwell = p.get("dwell_s") or {}
    for q in DWELL_KEYS:
        row[f"dwell_{q}"] = dwell.get(q)
    absent = [k for k in (*FOOTFALL_INTS, *FOOTFALL_FLOATS) if k not in p]
    absent += [f"dwell_{q}" for q in DWELL_KEYS if q not in dwell]
    row["not_measured"] = absent
    return row


def zone_row(
    store: str, zone: str, p: dict[str, Any], raw: str, received_ns: int
) -> dict[str, Any]:
    """The zone table's row of a validated zone_stats payload of topic zone ``zone``."""
    if p["zone"] != zone:
        raise PayloadError(
            f"payload zone {p['zone']!r} is not the topic's zone {zone!r}", "zone_mismatch"
        )
    row = _common(store, p, raw, received_ns)
    row["zone"] = zone
    row["name"] = p.get("name")
    row["occupancy"] = p["occupancy"]
    occ_as_of = p.get("occupancy_as_of")
    row["occupancy_as_of"] = _ts(occ_as_of) if occ_as_of is not None else None
    row["visits"] = p["visits"]
    row["dwell_p50"] = p["dwell_s"].get("p50")
    row["dwell_p90"] = p["dwell_s"].get("p90")
    row["person_seconds"] = p.get("person_seconds")
    row["reach_share"] = p.get("reach_share")
    return row


def occupancy_row(store: str, p: dict[str, Any], raw: str, received_ns: int) -> dict[str, Any]:
    """The occupancy table's row (one per store: the latest estimate wins)."""
    as_of = p.get("as_of", p["t"])
    return {
        "store": store,
        "t": _ts(p["t"]),
        "as_of": _ts(as_of),
        "occupancy": p["occupancy"],
        "low": p["low"],
        "high": p["high"],
        "confidence": p["confidence"],
        "source": p["source"],
        "k": p["k"],
        "suppressed": p["suppressed"],
        "raw": raw,
        "received_at": _ts(received_ns // 1_000_000),
        "ver": str(version(p["t"], True, received_ns)),
    }


def status_row(store: str, p: dict[str, Any], raw: str, received_ns: int) -> dict[str, Any]:
    """The store status table's row (one per store: the latest received wins, so the
    broker's ``offline`` last will replaces the aggregator's last ``online``)."""
    return {
        "store": store,
        "state": p["state"],
        "t": _ts(p["t"]) if "t" in p else None,
        "version": p.get("version"),
        "uptime_s": p.get("uptime_s"),
        "raw": raw,
        "received_at": _ts(received_ns // 1_000_000),
        "ver": str(received_ns),
    }


def bridge_row(store: str, payload: bytes, received_ns: int) -> dict[str, Any]:
    """The bridge state table's row: whether ``store``'s bridge is connected to the
    centre (its notification ``1`` or ``0``; the central broker publishes ``0`` as the
    bridge's last will when the store drops off)."""
    if payload not in (b"1", b"0"):
        raise PayloadError(
            f"bridge state of {store} is {payload[:20]!r}, not 1 or 0", "bad_bridge_state"
        )
    return {
        "store": store,
        "connected": payload == b"1",
        "received_at": _ts(received_ns // 1_000_000),
        "ver": str(received_ns),
    }
