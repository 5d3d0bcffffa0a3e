"""``footfall simulate``: a virtual store day written as real capture files.

Output layout (``out`` directory)::

    capture/{node}/wifi.pcap       radiotap probe requests the node heard
    capture/{node}/ble.pcap        BLE advertising PDUs (LINKTYPE 256): phones, other nodes
    capture/{node}/door-{id}.uart  door board UART bytes (+ .json sidecar)
    capture/{node}/tiles-{id}.uart floor board UART bytes (+ .json sidecar)
    truth/                         positions, door crossings, zone visits, people
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from heatmap.report.truth_compare import zone_visits
from heatmap.simulate import boards, capture_writer, node_beacons, phones, radio, truth
from heatmap.simulate.people import populate
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.runtime.progress import NoProgress, Progress

DOOR_BOARD_ID = 1
TILE_BOARD_ID = 2


@dataclass(frozen=True)
class SimResult:
    out: Path
    people: dict[str, int]
    phones: int
    wifi_frames: dict[str, int]
    ble_frames: dict[str, int]
    door_in_truth: int
    door_out_truth: int
    door_board_counts: dict[str, int]


def simulate(
    plan: FloorPlan, sc: Scenario, out: Path, progress: Progress | None = None
) -> SimResult:
    prog = progress or NoProgress()
    sc = replace(sc, timezone=plan.timezone)  # the store's local clock is its plan's
    step = prog.task("simulate: people", 6)
    rng = np.random.default_rng(sc.seed)
    grid = WalkableGrid.build(plan, cell_m=0.5)
    people = populate(plan, grid, sc, rng)
    step(1)
    phone_list = phones.make_phones(people, sc, rng)
    offsets = np.array([ph.offset_db for ph in phone_list])
    t0_s = sc.t0_ms / 1000.0
    cap = out / "capture"

    ble = phones.ble_events(phone_list, people, sc, rng)
    pos = _positions(people, phone_list, ble)
    rssi_ble = radio.received(pos, offsets[ble.phone], sc.radio.p0_ble_dbm, plan, sc.radio, rng)
    ble_counts = capture_writer.write_ble(cap, plan, ble, rssi_ble, phone_list, t0_s, rng)
    # every node also advertises and hears the others (radio calibration); own RNG stream
    for node_id, n in node_beacons.add_to_captures(cap, plan, sc, t0_s).items():
        ble_counts[node_id] = ble_counts.get(node_id, 0) + n
    step(1)

    wifi = phones.wifi_frames(phone_list, people, sc, rng, {n.wifi_channel for n in plan.nodes})
    pos = _positions(people, phone_list, wifi)
    rssi_wifi = radio.received(pos, offsets[wifi.phone], sc.radio.p0_wifi_dbm, plan, sc.radio, rng)
    wifi_counts = capture_writer.write_wifi(cap, plan, wifi, rssi_wifi, phone_list, t0_s)
    step(1)

    crossings = []
    board_counts: dict[str, int] = {}
    for door in plan.doors:
        cr = [
            c
            for c in boards.door_crossings(people, door, plan.outline_polygon)
            if 0 <= c.t < sc.duration_s
        ]
        crossings += cr
        msgs, stats = boards.door_messages(cr, door, sc.duration_s)
        (cap / door.node).mkdir(parents=True, exist_ok=True)
        boards.write_stream(cap / door.node / f"door-{door.id}.uart", msgs, DOOR_BOARD_ID, sc.t0_ms)
        board_counts.update({f"{door.id}:{k}": v for k, v in stats.items()})
    for arr in plan.tiles:
        msgs = boards.tile_messages(people, arr, sc.duration_s)
        (cap / arr.node).mkdir(parents=True, exist_ok=True)
        boards.write_stream(cap / arr.node / f"tiles-{arr.id}.uart", msgs, TILE_BOARD_ID, sc.t0_ms)
    step(1)

    tr = truth.sample_positions(people, plan, sc.duration_s)
    visits = zone_visits(tr, plan)
    step(1)
    roles = {r: sum(p.role == r for p in people) for r in ("shopper", "passerby", "staff")}
    meta = {
        "store": plan.store_id,
        "t0_ms": sc.t0_ms,
        "duration_s": sc.duration_s,
        "seed": sc.seed,
        "people": roles,
        "phones": len(phone_list),
        "scenario": truth.scenario_meta(sc),
    }
    truth.write(out / "truth", tr, people, phone_list, crossings, visits, meta)
    step(1)
    return SimResult(
        out,
        roles,
        len(phone_list),
        wifi_counts,
        ble_counts,
        sum(c.direction > 0 for c in crossings),
        sum(c.direction < 0 for c in crossings),
        board_counts,
    )


def _positions(people: list, phone_list: list[phones.Phone], em: phones.Emissions) -> np.ndarray:
    pos = np.zeros((len(em.t), 2))
    for i, ph in enumerate(phone_list):
        rows = np.flatnonzero(em.phone == i)
        if len(rows):
            pos[rows] = people[ph.person].position(em.t[rows])
    return pos
