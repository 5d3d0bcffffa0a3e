"""Door/RF fusion: RF devices inside are fitted against the door's occupancy, and
devices inside regardless of it (staff) are held apart from the scaling."""

from __future__ import annotations

import numpy as np

from heatmap.analytics import DoorFlow, fuse
from heatmap.localizers.base import Posterior, Windows

T0 = 1_760_000_000_000
WINDOW_MS = 5000


def _day(per_person: float, resident: int, seed: int = 0) -> tuple[Windows, Posterior, DoorFlow]:
    """Two hours: occupancy rising and falling; each 5 s window holds
    round(per_person × occupancy + resident) devices inside and 2 outside."""
    rng = np.random.default_rng(seed)
    n_sec = 7200
    occ = np.round(12 + 10 * np.sin(np.arange(n_sec) / n_sec * 2 * np.pi)).astype(np.int64)
    pid, t, p_in = [], [], []
    for k in range(n_sec * 1000 // WINDOW_MS):
        s = k * WINDOW_MS // 1000
        n = int(rng.poisson(per_person * occ[s])) + resident
        pid += [f"d{k}-{i}" for i in range(n + 2)]
        t += [T0 + k * WINDOW_MS] * (n + 2)
        p_in += [1.0] * n + [0.0] * 2
    w = len(pid)
    win = Windows(
        np.array(pid),
        np.array(t, np.int64),
        np.full(w, "ble"),
        np.full((w, 3), -70.0, np.float32),
        np.ones((w, 3), np.uint8),
        np.ones(w, np.int64),
        WINDOW_MS,
    )
    loc = Posterior(np.zeros((w, 2)), np.array(p_in), np.zeros(4), np.zeros((1, 4)))
    return win, loc, DoorFlow(T0, 100, 100, occ)


def test_staff_devices_are_held_apart_from_the_scale() -> None:
    win, loc, door = _day(per_person=0.8, resident=3)
    f = fuse(win, loc, door)
    assert f.bins == 24
    assert abs(f.devices_per_visitor - 0.8) < 0.05
    assert abs(f.resident_devices - 3) < 0.5
    assert abs(f.scale - 1 / 0.8) < 0.08
    # the plain ratio of totals would have counted the 3 staff phones as visitors
    rf_total = float(loc.p_inside.sum() * WINDOW_MS / 1000)
    assert door.person_seconds / rf_total < 0.8 * f.scale


def test_without_staff_the_fit_is_the_plain_ratio() -> None:
    win, loc, door = _day(per_person=1.1, resident=0, seed=1)
    f = fuse(win, loc, door)
    rf_total = float(loc.p_inside.sum() * WINDOW_MS / 1000)
    assert f.resident_devices < 0.5
    assert abs(f.scale - door.person_seconds / rf_total) / f.scale < 0.05


def test_short_or_flat_periods_fall_back_to_the_ratio() -> None:
    win, loc, door = _day(per_person=1.0, resident=2)
    flat = DoorFlow(T0, 10, 10, np.full(len(door.occupancy), 12, np.int64))
    f = fuse(win, loc, flat)
    rf_total = float(loc.p_inside.sum() * WINDOW_MS / 1000)
    assert f.bins == 0 and f.scale == flat.person_seconds / rf_total
    short = DoorFlow(T0, 10, 10, door.occupancy[:1200])  # 20 min: 4 bins
    assert fuse(win, loc, short).bins == 0
    empty = DoorFlow(T0, 0, 0, np.zeros(7200, np.int64))
    assert fuse(win, loc, empty).scale == 1.0
