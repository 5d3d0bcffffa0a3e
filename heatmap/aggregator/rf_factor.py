"""People per RF device: fitted against door counts, or from an installer's head count.

Not every person carries a phone with its radio on, a phone may be two devices
(a watch), a chain may break where a phone rotates its address: devices are not
people. The RF-only count (:mod:`heatmap.aggregator.rf_count`) multiplies its device
counts by three factors, people per device:

* ``visitors``: visitor devices counted in a bin → people who came in (from a head
  count: the occupancy's factor, unless the installer also counted who walked in);
* ``passersby``: passer-by devices → people who walked past (the street has no
  beams: the same as ``visitors`` unless an installer counted passers-by);
* ``occupancy``: devices inside (mean over a bin) → people inside.

Where beams exist the factors are **fitted** against the door (:func:`fit_door`):
ratio of sums over the fitted bins where radio heard a device (door ins over
visitor devices; door occupancy over devices inside), robust to the many bins with
a handful of people (:func:`people_per_device`). Where they do not, an installer
counts the customers inside (not the staff, whose all-day phones are static devices)
for 15 minutes once, and best also who walked in (``footfall calibrate headcount
--config store.toml --at ISO --people N --entered N --minutes 15``); :func:`headcount`
turns that count and the devices in those minutes into the factors.

The factors are stored **in the store's database**, table ``meta``, key
``rf_people_per_device`` (JSON), next to the radio calibration the aggregator
keeps there; the aggregator reads them at each period it writes (:func:`load`).
Without a stored factor, one person per device (``source: "default"``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_bridge.errors import ConfigError
from heatmap.aggregator.rf_count import CountSettings, count_devices
from heatmap.aggregator.rf_devices import Frames

F = NDArray[np.float64]
META_KEY = "rf_people_per_device"
MIN_DEVICES = 1.0
"""a head count over fewer devices inside (mean) than this cannot be turned into a factor"""


@dataclass(frozen=True)
class Factor:
    """People per RF device, and where that comes from."""

    visitors: float = 1.0
    passersby: float = 1.0
    occupancy: float = 1.0
    source: str = "default"
    """default | door | headcount"""
    detail: dict[str, Any] = field(default_factory=dict)
    """what it was fitted on (bins, totals; the head count's time, people and devices)"""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Factor:
        try:
            d = json.loads(text)
            f = cls(
                float(d["visitors"]),
                float(d["passersby"]),
                float(d["occupancy"]),
                str(d["source"]),
                dict(d.get("detail") or {}),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"stored {META_KEY} is not a factor: {e}") from e
        for v in (f.visitors, f.passersby, f.occupancy):
            if not 0 < v < 100:
                raise ConfigError(f"stored {META_KEY} has a factor out of range: {v}")
        return f


def people_per_device(people: F, devices: F) -> float | None:
    """Ratio of sums over the bins where radio heard a device: a bin without one says
    nothing about how many people a device stands for (people there without a phone,
    or a ground truth that counts someone who left). None without any device."""
    people, devices = np.asarray(people, float), np.asarray(devices, float)
    heard = devices > 0
    d = float(devices[heard].sum())
    return float(people[heard].sum()) / d if d > 0 else None


def fit_door(
    visitor_devices: F, door_ins: F, devices_inside: F | None = None, occupancy: F | None = None
) -> Factor:
    """Factors from bins where beams exist: ins per visitor device; occupancy per device
    inside (when given; else the visitors' factor). Raises ConfigError without devices."""
    kv = people_per_device(door_ins, visitor_devices)
    if kv is None:
        raise ConfigError("no visitor devices in the fitted bins: cannot fit people per device")
    ko = None
    if devices_inside is not None and occupancy is not None:
        ko = people_per_device(occupancy, devices_inside)
    detail = {
        "bins": len(visitor_devices),
        "door_ins": float(np.sum(door_ins)),
        "visitor_devices": float(np.sum(visitor_devices)),
    }
    return Factor(kv, kv, ko if ko is not None else kv, "door", detail)


def headcount(
    frames: Frames,
    at_ms: int,
    minutes: float,
    people: float,
    s: CountSettings,
    passersby: float | None = None,
    entered: float | None = None,
) -> Factor:
    """Factors from a manual count: ``people`` inside during [at, at + minutes) (the
    installer's head count of the customers, not the staff; their mean if it
    changed), and optionally ``passersby`` who walked past and ``entered`` who walked
    in during those minutes (arrivals per device differ from presence per device:
    a device heard loud at the shop window is inside for a while before its person
    is, and a phone whose chain breaks arrives twice).
    ``frames``: the rows around that time (``presence_gap_s`` after it, and
    ``static_min_s`` before it so that all-day devices are known as static)."""
    if not 1 <= minutes <= 120:
        raise ConfigError(f"--minutes must be 1..120, got {minutes:g}")
    if people < 0 or any(v is not None and v < 0 for v in (passersby, entered)):
        raise ConfigError("a head count cannot be negative")
    t1 = at_ms + int(minutes * 60_000)
    c = count_devices(frames, at_ms, t1, replace(s, bin_ms=60_000))
    inside = float(c.present.mean()) if len(c.present) else 0.0
    if inside < MIN_DEVICES:
        raise ConfigError(
            f"only {inside:.1f} devices inside on average in those {minutes:g} min: "
            "count at a busier time (or check that the nodes were sending)"
        )
    k = people / inside
    kp = kv = k
    detail: dict[str, Any] = {
        "at_ms": at_ms,
        "minutes": minutes,
        "people": people,
        "devices_inside": round(inside, 3),
        "band": c.band,
    }
    if passersby is not None:
        pas = int(c.passersby.sum())
        if pas < 1:
            raise ConfigError("no passer-by devices in those minutes: cannot fit their factor")
        kp = passersby / pas
        detail.update(passersby=passersby, passerby_devices=pas)
    if entered is not None:
        arr = int(c.visitors.sum())
        if arr < 1:
            raise ConfigError("no visitor device arrived in those minutes: cannot fit visitors")
        kv = entered / arr
        detail.update(entered=entered, visitor_devices=arr)
    return Factor(kv, kp, k, "headcount", detail)


def store(conn: sqlite3.Connection, f: Factor) -> None:
    """Keep ``f`` in the store's database (the caller commits)."""
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY, f.to_json()))


def load(conn: sqlite3.Connection) -> Factor:
    """The stored factor, or the default (one person per device)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    return Factor() if row is None else Factor.from_json(row[0])
