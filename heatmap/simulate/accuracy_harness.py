"""Accuracy harness: seeded simulated store-days run through the real locators.

Position error needs to know who was where. Rather than reverse the keyed
pseudonyms (the aggregator never holds the key), the harness draws the day
with the simulator's own code and seed — the same people, phones, advertising
events and received RSSI that ``footfall simulate`` writes to the capture
files — and groups the received frames per advertising address and window
exactly as the aggregator groups pseudonyms (:func:`make_windows`). Addresses
are replaced by their index ("a00042"): no address is kept or written. The
truth of a window is the mean position of the phone over the frames it sent
in that window. The heatmap metric, by contrast, goes through the whole
pipeline (``footfall demo``: pcap → node → MQTT → SQLite → ``analyze``).

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.simulate.scenario import Scenario
>>> sw = simulate_windows(load_default(), Scenario(hours=0.05, seed=3))
>>> len(sw.windows) == len(sw.truth_xy) > 10
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.calibration import LinkStats, link_stats
from heatmap.localizers.base import Windows, make_windows
from heatmap.simulate import node_beacons, truth
from heatmap.simulate.heard_ble import heard_ble
from heatmap.simulate.scenario import RadioTruth, Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]


@dataclass(frozen=True)
class SimWindows:
    """Windows of a simulated day with the truth behind each."""

    windows: Windows
    truth_xy: F
    """(W, 2) mean true position of the phone over the frames it sent in the window, m"""
    person: NDArray[np.int64]
    """(W,) person index"""
    role: NDArray[np.str_]
    """(W,) shopper | passerby | staff"""
    sent: NDArray[np.int64]
    """(W,) advertising events the phone sent in the window"""
    offset_db: F
    """(W,) the phone's true transmit offset, dB"""
    truth_cells: F
    """person-seconds per cell of a 1 m grid over the plan (everyone, phone or not)"""
    observations: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], F] | None = None
    """the frames heard, one row per (frame, node): (t_ms, node index, address code, RSSI),
    when asked for (the rows the aggregator would store)"""


def oracle_model(plan: FloorPlan, truth: RadioTruth) -> RadioModel:
    """The radio model that generated the simulated RSSI (for reference runs only)."""
    m = RadioModel.from_plan(plan)
    n = len(plan.nodes)
    p0 = {
        b: np.full(n, truth.p0_wifi_dbm + (v[0] - plan.radio.p0_wifi_dbm)) for b, v in m.p0.items()
    }
    p0["ble"] = np.full(n, truth.p0_ble_dbm)
    return m.replace(
        p0=p0,
        exponent=np.full(n, truth.path_loss_exponent),
        sigma_db=truth.shadowing_db,
        sensitivity_dbm=truth.sensitivity_dbm,
        phone_height_m=truth.phone_height_m,
        offset_sigma_db=truth.phone_offset_db,
        frame_loss=truth.frame_loss,
        source="simulator truth (oracle)",
    )


def with_shadowing(sc: Scenario, shadowing_db: float) -> Scenario:
    return dataclasses.replace(sc, radio=dataclasses.replace(sc.radio, shadowing_db=shadowing_db))


def simulate_windows(
    plan: FloorPlan, sc: Scenario, window_ms: int = 5000, keep_observations: bool = False
) -> SimWindows:
    """The BLE windows of a simulated day, drawn as :func:`heatmap.simulate.store_day.simulate`
    draws them (same seed, same calls, same order)."""
    h = heard_ble(plan, sc, np.random.default_rng(sc.seed))
    people, phone_list, em, pos, rssi = h.people, h.phones, h.em, h.pos, h.rssi
    addr_code = h.addr_code
    offsets = np.array([ph.offset_db for ph in phone_list])
    t_ms = sc.t0_ms + np.round(em.t * 1000).astype(np.int64)
    f, j = np.nonzero(~np.isnan(rssi))
    pid_of = np.char.add("a", np.char.zfill(addr_code.astype(str), 6))
    win = make_windows(
        t_ms[f], j, pid_of[f], rssi[f, j], np.full(len(f), "ble"), len(plan.nodes), window_ms
    )
    # truth per window: every frame sent (heard or not) in the (address, window)
    key_sent = pid_of.astype(object) + ":" + (t_ms // window_ms).astype(str).astype(object)
    key_win = win.pid.astype(object) + ":" + (win.t_ms // window_ms).astype(str).astype(object)
    uk, inv = np.unique(key_sent.astype(str), return_inverse=True)
    n_sent = np.bincount(inv, minlength=len(uk))
    sx = np.bincount(inv, pos[:, 0], minlength=len(uk)) / n_sent
    sy = np.bincount(inv, pos[:, 1], minlength=len(uk)) / n_sent
    first = np.zeros(len(uk), np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    at = np.searchsorted(uk, key_win.astype(str))
    person = np.array([phone_list[k].person for k in em.phone[first[at]]], np.int64)
    roles = np.array([p.role for p in people])
    tr = truth.sample_positions(people, plan, sc.duration_s)
    g1 = WalkableGrid.build(plan, cell_m=1.0)
    per_cell = np.bincount(g1.cells_of(tr.xy), minlength=g1.nx * g1.ny).astype(float)
    return SimWindows(
        win,
        np.column_stack([sx[at], sy[at]]),
        person,
        roles[person] if len(person) else np.zeros(0, str),
        n_sent[at],
        offsets[em.phone[first[at]]],
        per_cell,
        (t_ms[f], j, addr_code[f], rssi[f, j]) if keep_observations else None,
    )


def errors(est_xy: F, truth_xy: F) -> F:
    """Euclidean error per window, m."""
    return np.hypot(*(est_xy - truth_xy).T)


def heatmap_r(plan: FloorPlan, sw: SimWindows, person_seconds_1m: F) -> float:
    """Pearson r of person-seconds per 1 m cell inside the store (estimate on the 1 m grid)."""
    g1 = WalkableGrid.build(plan, cell_m=1.0)
    ins = g1.inside
    a, b = person_seconds_1m[ins], sw.truth_cells[ins]
    return float(np.corrcoef(a, b)[0, 1])


def simulate_links(plan: FloorPlan, sc: Scenario) -> LinkStats:
    """Node-to-node link statistics of a simulated day, as the aggregator would gather them.

    Same draws as :func:`heatmap.simulate.node_beacons.add_to_captures` (its own
    random stream), without going through capture files.
    """
    rng = np.random.default_rng([sc.seed, node_beacons.RNG_STREAM])
    _, tx = node_beacons.beacon_times(plan, sc.duration_s, rng)
    rssi = node_beacons.received(plan, sc, tx, rng)
    e, j = np.nonzero(~np.isnan(rssi))
    pid = np.array([f"node{i}" for i in range(len(plan.nodes))])[tx[e]]
    beacons = {f"node{i}": i for i in range(len(plan.nodes))}
    return link_stats(pid, j, rssi[e, j], beacons, len(plan.nodes), sc.radio.frame_loss)
