"""End to end: people cross the beams of the door firmware running under simavr;
its UART bytes come through a pty into SerialLink; the events become v1 door
payloads that validate against the schema and hold the right in/out counts. The
board is reset halfway, as a store's might be."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_bridge_payloads import event_batches

from firmware_bridge.door_scenario import beam_edges, passages, truth_count
from firmware_bridge.events import BoardEvent, DoorEvent, TileEvent
from firmware_bridge.serial_link import SerialLink
from firmware_bridge.simavr_board import FirmwareBuild, SimavrBoard, SimResult, SimScript
from sensing.wire import payloads, topics

from conftest_hw import firmware_build  # noqa: F401


def run_live(
    build: FirmwareBuild, elf: str, script: SimScript, timeout_s: float = 120
) -> tuple[list[BoardEvent], SerialLink, SimResult]:
    """Run the simulation while SerialLink reads its pty, as a node would."""
    events: list[BoardEvent] = []
    path = build.door_elf if elf == "door" else build.floor_elf
    with SimavrBoard(build, path, script) as sim, SerialLink(sim.port) as link:
        sim.start()
        deadline = time.monotonic() + timeout_s
        result = None
        while result is None or link.stats.bytes < result.tx_bytes:
            assert time.monotonic() < deadline, "simulation or pty stalled"
            events += link.read(0.05)
            result = result or sim.poll()
    return events, link, result


@pytest.mark.slow
def test_door_counts_through_pty_and_payloads(
    firmware_build: FirmwareBuild,  # noqa: F811
) -> None:
    ps = passages(np.random.default_rng(2024), 240)
    edges = beam_edges(ps)
    script = SimScript()
    for t, beam, blocked in edges:
        script.beam(t, beam, blocked)
    # pull the reset line in the first quiet second after the middle passage
    mid = ps[len(ps) // 2]
    after = ps[len(ps) // 2 + 1]
    assert after.t_ms - mid.end_ms > 100, "scenario has no quiet moment there"
    script.reset((mid.end_ms + after.t_ms) / 2)
    script.end(edges[-1][0] + 1500)

    events, link, result = run_live(firmware_build, "door", script)

    truth = truth_count(ps)
    doors = [e for e in events if isinstance(e, DoorEvent)]
    assert sum(e.direction > 0 for e in doors) == truth["in"]
    assert sum(e.direction < 0 for e in doors) == truth["out"]
    stats = link.stats
    assert (stats.resets, stats.seq_gaps, stats.duplicates, dict(stats.rejects)) == (1, 0, 0, {})
    assert stats.bytes == result.tx_bytes
    assert link.boards[1].reset_cause == 2  # external reset, from the HELLO after it
    assert [e.t_ms for e in doors] == sorted(e.t_ms for e in doors)

    ins = outs = 0
    topic = topics.door_topic("store1", "main")
    assert topics.parse(topic) == topics.Topic("door_events", "store1", "main")
    for i, p in enumerate(event_batches(list(doors), board=stats.as_dict())):
        decoded = payloads.decode("door_events", payloads.encode(p))
        assert decoded["board"] == stats.as_dict()
        assert decoded["seq"] == i
        ins += sum(1 for _, d in decoded["ev"] if d == 1)
        outs += sum(1 for _, d in decoded["ev"] if d == -1)
    assert (ins, outs) == (truth["in"], truth["out"])


@pytest.mark.slow
def test_floor_changes_through_pty_and_payloads(
    firmware_build: FirmwareBuild,  # noqa: F811
) -> None:
    script = SimScript(matrix=True)
    steps = [(300, 14), (700, 15), (1100, 16), (1500, 22)]  # someone walking across
    for t, tile in steps:
        script.tile(t, tile, True)
        script.tile(t + 550, tile, False)
    script.end(3000)
    events, link, _ = run_live(firmware_build, "floor", script)
    tiles = [e for e in events if isinstance(e, TileEvent)]
    assert [(e.tick_ms, e.tile, e.state) for e in tiles] == sorted(
        [(t + 1, tile, 1) for t, tile in steps] + [(t + 551, tile, 0) for t, tile in steps]
    )
    (p,) = event_batches(list(tiles), board=link.stats.as_dict())
    decoded = payloads.decode("floor_events", payloads.encode(p))
    assert [(tile, state) for _, tile, state in decoded["ev"]] == [
        (e.tile, e.state) for e in sorted(tiles, key=lambda e: e.t_ms)
    ]
    assert link.boards[1].channels == 36
