"""Zone-to-zone flows: stays, transitions, k-anonymity, TV distance, truth, report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from heatmap.localizers.base import Windows
from heatmap.report import flows, truth_compare
from heatmap.spatial.floorplan import FloorPlan, Zone, load_default

from conftest import DemoRun

WINDOW_MS = 5000

# three 8 m x 8 m zones in a row with 2 m of corridor (no zone) between them
A_XY, B_XY, C_XY, GAP_XY = (4.0, 4.0), (14.0, 4.0), (24.0, 4.0), (9.0, 4.0)


def _plan() -> FloorPlan:
    def square(x0: float) -> tuple[tuple[float, float], ...]:
        return ((x0, 0.0), (x0 + 8, 0.0), (x0 + 8, 8.0), (x0, 8.0))

    return FloorPlan(
        store_id="t",
        name="test store",
        timezone="UTC",
        outline=((0.0, 0.0), (28.0, 0.0), (28.0, 8.0), (0.0, 8.0)),
        street=None,
        walls=(),
        shelves=(),
        zones=(Zone("A", "A", square(0)), Zone("B", "B", square(10)), Zone("C", "C", square(20))),
        nodes=(),
        doors=(),
        tiles=(),
    )


def _windows(
    tracks: dict[str, list[tuple[tuple[float, float], int]]],
) -> tuple[Windows, np.ndarray]:
    """Windows and track positions from {pid: [(position, windows there), ...]}."""
    pid, t, xy = [], [], []
    for p, legs in tracks.items():
        k = 0
        for pos, n in legs:
            for _ in range(n):
                pid.append(p)
                t.append(1_000_000 + k * WINDOW_MS)
                xy.append(pos)
                k += 1
    n = len(pid)
    win = Windows(
        np.array(pid),
        np.array(t, np.int64),
        np.full(n, "ble"),
        np.zeros((n, 1)),
        np.ones((n, 1)),
        np.ones(n, np.int64),
        WINDOW_MS,
    )
    return win, np.array(xy, float)


def _cells(fm: flows.FlowMatrix) -> dict[tuple[str, str], int]:
    i, j = np.nonzero(fm.transitions)
    return {
        (fm.zones[a], fm.zones[b]): int(fm.transitions[a, b]) for a, b in zip(i, j, strict=True)
    }


def test_a_track_through_three_zones_gives_exactly_those_transitions() -> None:
    win, xy = _windows({"p1": [(A_XY, 6), (GAP_XY, 1), (B_XY, 6), (C_XY, 6)]})
    fm = flows.track_flows(_plan(), win, xy)
    assert _cells(fm) == {("A", "B"): 1, ("B", "C"): 1}
    assert fm.devices[0, 1] == fm.devices[1, 2] == 1
    assert fm.entities == 1 and fm.total == 2


def test_a_corner_cut_under_the_minimum_dwell_does_not_count() -> None:
    # two windows in B: 5 s by the (n - 1) windows rule, under 10 s
    win, xy = _windows({"p1": [(A_XY, 6), (B_XY, 2), (C_XY, 6)]})
    assert _cells(flows.track_flows(_plan(), win, xy)) == {("A", "C"): 1}
    # three windows (10 s) is a stay
    win, xy = _windows({"p1": [(A_XY, 6), (B_XY, 3), (C_XY, 6)]})
    assert _cells(flows.track_flows(_plan(), win, xy)) == {("A", "B"): 1, ("B", "C"): 1}
    # A, a brief visit to B, back to A: one stay in A, no transition
    win, xy = _windows({"p1": [(A_XY, 6), (B_XY, 2), (A_XY, 6)]})
    fm = flows.track_flows(_plan(), win, xy)
    assert fm.total == 0 and fm.entities == 1


def test_positions_outside_every_zone_are_ignored() -> None:
    nan = (math.nan, math.nan)
    win, xy = _windows({"p1": [(A_XY, 4), (GAP_XY, 30), (nan, 5), (B_XY, 4), (GAP_XY, 3)]})
    assert _cells(flows.track_flows(_plan(), win, xy)) == {("A", "B"): 1}
    assert flows.zone_index(_plan(), np.array([A_XY, GAP_XY, nan, C_XY])).tolist() == [0, -1, -1, 2]


def test_transitions_and_distinct_devices_per_cell() -> None:
    legs = [(A_XY, 4), (B_XY, 4), (A_XY, 4), (B_XY, 4)]  # A→B twice, B→A once
    win, xy = _windows({"p1": legs, "p2": [(A_XY, 4), (B_XY, 4)], "p3": [(C_XY, 9)]})
    fm = flows.track_flows(_plan(), win, xy)
    assert _cells(fm) == {("A", "B"): 3, ("B", "A"): 1}
    assert fm.devices[0, 1] == 2 and fm.devices[1, 0] == 1
    assert fm.entities == 3
    # a different pseudonym is a different track: no transition across pseudonyms
    win, xy = _windows({"p1": [(A_XY, 4)], "p2": [(B_XY, 4)]})
    assert flows.track_flows(_plan(), win, xy).total == 0


def test_windows_out_of_order_give_the_same_flows() -> None:
    win, xy = _windows({"b": [(A_XY, 4), (B_XY, 4), (C_XY, 4)], "a": [(C_XY, 3), (A_XY, 5)]})
    perm = np.random.default_rng(3).permutation(len(win))
    fm1 = flows.track_flows(_plan(), win, xy)
    fm2 = flows.track_flows(_plan(), win.take(perm), xy[perm])
    assert _cells(fm1) == _cells(fm2) == {("A", "B"): 1, ("B", "C"): 1, ("C", "A"): 1}
    assert (fm1.devices == fm2.devices).all()
    # windows may carry integer codes for the pseudonyms (heatmap.aggregator.obs_reader)
    codes = np.unique(win.pid, return_inverse=True)[1].astype(np.int32)
    coded = Windows(codes, win.t_ms, win.band, win.rssi, win.counts, win.frames, WINDOW_MS)
    assert _cells(flows.track_flows(_plan(), coded.take(perm), xy[perm])) == _cells(fm1)


def test_tv_distance_known_values() -> None:
    a = np.array([[0, 3, 1], [0, 0, 2], [4, 0, 0]])
    assert flows.tv_distance(a, a) == 0.0
    assert flows.tv_distance(a, 10 * a) == pytest.approx(0.0)  # scale does not matter
    disjoint = np.array([[0, 0, 0], [5, 0, 0], [0, 1, 0]])
    assert flows.tv_distance(a, disjoint) == pytest.approx(1.0)
    # p = (1/2, 1/2), q = (1, 0): half the mass has to move
    assert flows.tv_distance(np.array([[0, 1], [1, 0]]), np.array([[0, 1], [0, 0]])) == 0.5
    assert math.isnan(flows.tv_distance(a, np.zeros((3, 3))))
    with pytest.raises(ValueError):
        flows.tv_distance(a, np.zeros((2, 2)))


def test_k_anonymity_suppresses_small_cells_and_never_writes_them_as_zero(
    tmp_path: Path,
) -> None:
    fm = flows.FlowMatrix(
        ("A", "B", "C"),
        np.array([[0, 9, 4], [6, 0, 0], [0, 7, 0]]),
        np.array([[0, 5, 4], [6, 0, 0], [0, 1, 0]]),
        9,
    )
    table = fm.table(5)
    # suppressed cells last, in zone order (C → B has more moves but must not say so)
    assert [(c.from_zone, c.to_zone, c.transitions, c.devices) for c in table] == [
        ("A", "B", 9, 5),
        ("B", "A", 6, 6),
        ("A", "C", None, None),
        ("C", "B", None, None),
    ]
    assert [c.suppressed for c in table] == [False, False, True, True]
    flows.write_csv(tmp_path / "flows.csv", fm, 5)
    with (tmp_path / "flows.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["from_zone", "to_zone", "transitions", "devices"]
    by_pair = {(r["from_zone"], r["to_zone"]): (r["transitions"], r["devices"]) for r in rows}
    assert by_pair == {
        ("A", "B"): ("9", "5"),
        ("B", "A"): ("6", "6"),
        ("A", "C"): ("suppressed", "suppressed"),
        ("C", "B"): ("suppressed", "suppressed"),
    }


def test_the_flows_picture_draws_only_k_anonymous_pairs() -> None:
    plan = load_default()
    z = [zz.id for zz in plan.zones]
    n = len(z)
    trans, dev = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
    for (a, b), (t, d) in {
        (0, 1): (30, 20),
        (1, 0): (12, 12),  # the reverse direction: its own arrow
        (2, 3): (8, 5),
        (3, 4): (50, 4),  # busiest, but too few devices
    }.items():
        trans[a, b], dev[a, b] = t, d
    fig = flows.flows_figure(plan, flows.FlowMatrix(tuple(z), trans, dev, 40), 5, "t")
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 3
    counts = {t.get_text() for t in fig.axes[0].texts}
    assert {"30", "12", "8"} <= counts and "50" not in counts


def _write_truth(d: Path, visits: list[tuple[int, str, int, int]], phones: set[int]) -> None:
    d.mkdir()
    with (d / "zone_visits.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "zone", "t_start_s", "t_end_s"])
        w.writerows(sorted(visits))  # as the simulator writes it: by person, zone, time
    people = {v[0] for v in visits}
    with (d / "people.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "role", "t_start_s", "t_end_s", "phone_os"])
        for p in sorted(people):
            w.writerow([p, "shopper", 0, 100, "ios" if p in phones else ""])


def test_truth_flows_follow_time_order_and_the_same_dwell_rule(tmp_path: Path) -> None:
    visits = [
        (0, "C", 0, 29),  # C first, then a 5 s corner of A, then B, then A
        (0, "A", 30, 34),
        (0, "B", 40, 69),
        (0, "A", 80, 89),  # 10 s inclusive: a stay
        (1, "B", 0, 20),
        (1, "A", 25, 40),
    ]
    _write_truth(tmp_path / "truth", visits, phones={1})
    fm = truth_compare.flows(tmp_path / "truth", _plan())
    assert _cells(fm) == {("C", "B"): 1, ("B", "A"): 2}
    assert fm.devices[1, 0] == 2
    assert _cells(truth_compare.flows(tmp_path / "truth", _plan(), phones_only=True)) == {
        ("B", "A"): 1
    }
    # at 20 s the last A of person 0 and the A of person 1 are too short
    assert _cells(truth_compare.flows(tmp_path / "truth", _plan(), min_dwell_s=20)) == {
        ("C", "B"): 1
    }


@pytest.mark.slow
def test_demo_writes_k_anonymous_flows(demo_run: DemoRun) -> None:
    """The demo's flows come from the live aggregates: only pairs of at least k devices."""
    rep = demo_run.out / "report"
    with (rep / "flows.csv").open() as f:
        rows = list(csv.DictReader(f))
    s = json.loads((rep / "summary.json").read_text())
    # the demo's half hour is two slots: most pairs have fewer than k devices in a slot
    assert rows or s["suppressed"].get("flow_pairs", 0) > 0, "no zone-to-zone moves at all"
    zones = {z.id for z in load_default().zones}
    for r in rows:
        assert r["from_zone"] in zones and r["to_zone"] in zones and r["from_zone"] != r["to_zone"]
        assert int(r["devices"]) >= 5 and int(r["transitions"]) >= int(r["devices"])
    assert s["k"] == 5 and len(s["moves"]) == len(rows)
    text = (rep / "summary.txt").read_text()
    assert "zone-to-zone moves" in text
