"""People from radio alone: devices per time bin, visitors inside and passers-by outside.

Where a store has no door beams (or for the street outside, where no store has
any), the only count is the radio's. Counting pseudonyms overcounts many-fold:
a phone rotates its addresses, so one person is several pseudonyms a day. The
count goes pseudonyms → devices → people:

1. **devices**: pseudonyms that continue one another are chained
   (:func:`heatmap.aggregator.rf_devices.chain_devices`: band, IE-layout hash
   ``sig``, timing, RSSI continuity). One band family is counted: BLE where the
   period has BLE rows (every phone advertises, every second or two), Wi-Fi probe
   requests otherwise (a phone with both would be counted twice).
2. **static devices** are taken out and counted apart: a device heard over at
   least ``static_min_s`` and in at least ``static_share`` of the 10-minute slots
   of that span in which anything was heard (over all the frames given: pass the
   hours before the period too) — equipment the node filter did not learn and staff phones
   that are in all day. Randomized Wi-Fi chains are never static: chaining by
   ``sig`` cannot tell two phones of one model apart, so such a chain may be
   several visitors in turn.
3. each remaining device is a **visitor** when its strong frames (RSSI at least
   ``ble_strong_dbm`` / ``wifi_strong_dbm``, as :mod:`heatmap.aggregator.pid_class`)
   span at least ``visitor_span_s``, a **passer-by** otherwise. A visitor is counted
   in the bin of its first strong frame, a passer-by in the bin of its first frame
   (so counts add up over bins); a visitor is **present** in every bin where it
   has a strong frame.
4. **people** = devices × people per device (:mod:`heatmap.aggregator.rf_factor`: fitted
   against door counts where beams exist, or an installer's 15-minute head count).

Nothing here writes or returns a pseudonym: :class:`DeviceCounts` holds numbers.

Example
-------
>>> f = Frames.from_rows(
...     [(t * 1000, "n1", "v1", -60, "ble", 1, None) for t in range(0, 300, 2)]
...     + [(t * 1000, "n1", "p1", -88, "ble", 1, None) for t in range(100, 120, 2)]
... )
>>> c = count_devices(f, 0, 600_000, CountSettings())
>>> int(c.visitors.sum()), int(c.passersby.sum()), round(float(c.present[0]), 2)
(1, 1, 0.55)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.rf_devices import ChainSettings, Frames, chain_devices

F = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]
HOUR_MS = 3_600_000
STATIC_SLOT_MS = 600_000
"""the static rule's time slots (10 min)"""


@dataclass(frozen=True)
class CountSettings:
    """How devices are counted (module doc)."""

    bin_ms: int = 600_000
    """length of a counting bin (10 min), ms"""
    ble_strong_dbm: float = -80.0
    """a BLE frame at least this strong is heard inside, dBm"""
    wifi_strong_dbm: float = -70.0
    """a Wi-Fi frame at least this strong is heard inside, dBm"""
    visitor_span_s: float = 60.0
    """strong frames spanning at least this long make a visitor, s"""
    static_share: float = 0.75
    """a device heard in this share of the active 10-minute slots of its span is static"""
    static_min_s: float = 3 * 3600.0
    """... and over at least this long, s"""
    presence_gap_s: float = 900.0
    """a visitor is inside between two strong frames at most this far apart (a phone in
    a pocket scans every few minutes), s"""
    presence_pad_s: float = 30.0
    """and this long around each strong frame, s"""
    chain: ChainSettings = field(default_factory=ChainSettings)


@dataclass(frozen=True)
class DeviceCounts:
    """Devices per bin of [t0, t1) (bins of ``bin_ms``; the last may be short)."""

    t0_ms: I64
    """bin starts"""
    bin_ms: int
    visitors: I64
    """visitor devices counted in the bin (first strong frame)"""
    passersby: I64
    """passer-by devices counted in the bin (first frame)"""
    present: F
    """visitor devices inside, mean over the bin (device-seconds inside / bin length)"""
    static_devices: int
    """devices taken out as static (equipment, all-day staff phones)"""
    devices: int
    """devices after chaining, static ones included"""
    pseudonyms: int
    """distinct pseudonyms of the counted band family"""
    distinct_per_bin: I64
    """distinct pseudonyms per bin, all of them (the naive count)"""
    band: str
    """"ble" or "wifi": the band family counted"""


def band_family(f: Frames) -> tuple[Frames, str]:
    """The rows of the band family that is counted (module doc, step 1)."""
    if f.ble.any():
        return f.select(f.ble), "ble"
    return f.select(~f.ble), "wifi"


def count_devices(frames: Frames, t0_ms: int, t1_ms: int, s: CountSettings) -> DeviceCounts:
    """Devices per bin of [t0, t1) from the frames of that period (frames outside it
    help chaining and the visitor rule; nothing is counted in a bin outside it)."""
    if t1_ms <= t0_ms:
        raise ValueError("empty period")
    f, band = band_family(frames)
    devices = chain_devices(f, s.chain)
    edges = np.arange(t0_ms, t1_ms, s.bin_ms, dtype=np.int64)
    nb = len(edges)
    zeros = np.zeros(nb, np.int64)
    if len(f) == 0:
        return DeviceCounts(edges, s.bin_ms, zeros, zeros, zeros, 0, 0, 0, zeros, band)
    dev = devices.frame_device
    nd = devices.n_devices
    b = (f.t_ms - t0_ms) // s.bin_ms  # bins; < 0 or >= nb outside the period
    inb = (b >= 0) & (b < nb)
    # naive: distinct pseudonyms per bin
    pb = np.unique(devices.frame_pid[inb] * nb + b[inb])
    distinct = np.bincount(pb % nb, minlength=nb).astype(np.int64)
    first = np.full(nd, np.iinfo(np.int64).max)
    last = np.full(nd, np.iinfo(np.int64).min)
    np.minimum.at(first, dev, f.t_ms)
    np.maximum.at(last, dev, f.t_ms)
    static = _static(f, dev, nd, first, last, band, s)
    # visitors: strong frames spanning visitor_span_s
    thr = np.where(f.ble, s.ble_strong_dbm, s.wifi_strong_dbm)
    strong = f.rssi >= thr
    sf = np.full(nd, np.iinfo(np.int64).max)
    sl = np.full(nd, np.iinfo(np.int64).min)
    np.minimum.at(sf, dev[strong], f.t_ms[strong])
    np.maximum.at(sl, dev[strong], f.t_ms[strong])
    visitor = (sl - sf >= s.visitor_span_s * 1000) & ~static
    passer = ~visitor & ~static
    vb = (sf[visitor] - t0_ms) // s.bin_ms
    pbin = (first[passer] - t0_ms) // s.bin_ms
    visitors = np.bincount(vb[(vb >= 0) & (vb < nb)], minlength=nb).astype(np.int64)
    passersby = np.bincount(pbin[(pbin >= 0) & (pbin < nb)], minlength=nb).astype(np.int64)
    present = _presence(f.t_ms[strong], dev[strong], visitor, t0_ms, nb, s)
    return DeviceCounts(
        edges,
        s.bin_ms,
        visitors,
        passersby,
        present,
        int(static.sum()),
        nd,
        len(devices.pids),
        distinct,
        band,
    )


def _static(f: Frames, dev: I64, nd: int, first: I64, last: I64, band: str, s: CountSettings) -> B:
    """Devices heard over at least ``static_min_s`` and in at least ``static_share`` of
    the 10-minute slots of their span in which anything was heard, over all the
    frames given (not only the counted period)."""
    slot = (f.t_ms - f.t_ms.min()) // STATIC_SLOT_MS
    n_slots = int(slot.max()) + 1
    active = np.zeros(n_slots + 1, np.int64)
    active[1:][np.unique(slot)] = 1
    cum = np.cumsum(active)  # active slots before slot i: cum[i]
    s_first = (first - f.t_ms.min()) // STATIC_SLOT_MS
    s_last = (last - f.t_ms.min()) // STATIC_SLOT_MS
    span_active = cum[s_last + 1] - cum[s_first]
    heard = np.bincount(np.unique(dev * n_slots + slot) // n_slots, minlength=nd)
    rnd_wifi = np.zeros(nd, bool)
    if band == "wifi":
        rnd_wifi[dev[f.randomized]] = True
    return (
        (last - first >= s.static_min_s * 1000)
        & (heard >= s.static_share * np.maximum(span_active, 1))
        & ~rnd_wifi
    )


def _presence(t_ms: I64, dev: I64, visitor: B, t0_ms: int, nb: int, s: CountSettings) -> F:
    """Mean visitor devices inside per bin: each visitor is inside ``presence_pad_s``
    around each strong frame and between strong frames at most ``presence_gap_s``
    apart; the union of that per device, spread over the bins."""
    keep = visitor[dev]
    t, d = t_ms[keep], dev[keep]
    order = np.lexsort((t, d))
    t, d = t[order], d[order]
    if not len(t):
        return np.zeros(nb)
    pad = int(s.presence_pad_s * 1000)
    lo, hi = t - pad, t + pad
    # join a frame's interval to the next frame's when they are one device's and close
    join = (d[1:] == d[:-1]) & (t[1:] - t[:-1] <= s.presence_gap_s * 1000)
    starts = np.flatnonzero(np.r_[True, ~join])
    ends = np.r_[starts[1:], len(t)] - 1
    a, b = lo[starts], hi[ends]
    t1 = t0_ms + nb * s.bin_ms
    a, b = np.clip(a, t0_ms, t1), np.clip(b, t0_ms, t1)
    # device-ms per bin: cumulative coverage at the bin edges
    edges = t0_ms + np.arange(nb + 1, dtype=np.int64) * s.bin_ms
    covered = np.array(
        [np.clip(np.minimum(b, e) - a, 0, None).sum() for e in edges.tolist()], float
    )
    return np.diff(covered) / s.bin_ms


@dataclass(frozen=True)
class PeopleCounts:
    """People per bin: devices × people per device (rounded to whole people per bin
    only where published)."""

    t0_ms: I64
    visitors: F
    passersby: F
    occupancy: F
    """people inside during the bin (present devices × people per device)"""
    static_devices: int


def people(
    c: DeviceCounts, visitor_k: float, passerby_k: float, occupancy_k: float
) -> PeopleCounts:
    """Devices → people with the store's factors (:class:`~heatmap.aggregator.rf_factor.Factor`)."""
    return PeopleCounts(
        c.t0_ms,
        c.visitors * visitor_k,
        c.passersby * passerby_k,
        c.present * occupancy_k,
        c.static_devices,
    )
