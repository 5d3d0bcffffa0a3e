"""The door board's C direction state machine mirrors firmware_bridge.door_direction:
the same edges through both give the same crossings and the same counters.

Three ways: the C state machine built for the host (door_tool) on thousands of
random edge sequences; the same on seeded door scenarios; and the real firmware
under simavr with beams driven on its pins (debounce and glitches included).
"""

from __future__ import annotations

import struct
import subprocess
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.door_direction import DoorDirection
from firmware_bridge.door_scenario import Edge, beam_edges, passages, truth_count
from firmware_bridge.protocol import DoorCrossing, Hello, encode
from firmware_bridge.simavr_board import TICK_LAG_MS, FirmwareBuild, SimavrBoard, SimScript

from conftest_hw import firmware_build  # noqa: F401

STAT_NAMES = ("in", "out", "tailgate", "half_crossing", "timeout")


def python_run(
    edges: list[Edge], timeout_ms: int = 3000
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    d = DoorDirection(timeout_ms)
    crossings = [
        (t, r) for t, beam, blocked in edges if (r := d.edge(t, beam, blocked)) is not None
    ]
    return crossings, {k: d.stats[k] for k in STAT_NAMES}


def c_run(
    build: FirmwareBuild,
    edges: list[Edge],
    timeout_ms: int = 3000,
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    stdin = "".join(f"{t} {beam} {int(blocked)}\n" for t, beam, blocked in edges)
    out = subprocess.run(
        [str(build.door_tool), str(timeout_ms)],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    crossings: list[tuple[int, int]] = []
    stats: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "cross":
            crossings.append((int(parts[1]), int(parts[2])))
        elif parts[0] == "stats":
            stats = dict(zip(STAT_NAMES, map(int, parts[1:]), strict=True))
    return crossings, stats


edge_lists = st.lists(
    st.tuples(st.integers(0, 4000), st.sampled_from("AB"), st.booleans()),
    min_size=1,
    max_size=60,
).map(
    lambda steps: [
        (sum(s[0] for s in steps[: i + 1]), b, lvl) for i, (_, b, lvl) in enumerate(steps)
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edges=edge_lists, timeout_ms=st.sampled_from([500, 3000]))
def test_host_c_matches_python_on_random_edges(
    firmware_build: FirmwareBuild,  # noqa: F811
    edges: list[Edge],
    timeout_ms: int,
) -> None:
    assert c_run(firmware_build, edges, timeout_ms) == python_run(edges, timeout_ms)


@pytest.mark.parametrize("seed", range(5))
def test_host_c_matches_python_on_scenarios(
    firmware_build: FirmwareBuild,  # noqa: F811
    seed: int,
) -> None:
    ps = passages(np.random.default_rng(seed), 400)
    edges = beam_edges(ps)
    crossings, stats = python_run(edges)
    assert c_run(firmware_build, edges) == (crossings, stats)
    truth = truth_count(ps)
    assert (stats["in"], stats["out"]) == (truth["in"], truth["out"])


def with_glitches(edges: list[Edge], rng: np.random.Generator) -> list[tuple[float, str, bool]]:
    """Pin-level events: the edges plus 1–3 ms pulses in the middle of stable
    stretches, which the firmware's 5 ms debounce must swallow."""
    out: list[tuple[float, str, bool]] = [(float(t), b, lvl) for t, b, lvl in edges]
    for beam in "AB":
        times = [0] + [t for t, b, _ in edges if b == beam]
        levels = [False] + [lvl for _, b, lvl in edges if b == beam]
        for (t0, level), t1 in zip(zip(times, levels, strict=True), times[1:], strict=False):
            if t1 - t0 > 60 and rng.uniform() < 0.5:
                mid = (t0 + t1) // 2
                width = int(rng.integers(1, 4))
                out += [(float(mid), beam, not level), (float(mid + width), beam, level)]
    return sorted(out, key=lambda e: (e[0], e[1]))


@pytest.mark.slow
def test_firmware_under_simavr_matches_python(firmware_build: FirmwareBuild) -> None:  # noqa: F811
    rng = np.random.default_rng(42)
    ps = passages(rng, 150, tailgate_p=0.2, half_p=0.08, step_back_p=0.06, linger_p=0.05)
    edges = beam_edges(ps)
    script = SimScript()
    for t, beam, blocked in with_glitches(edges, rng):
        script.beam(t, beam, blocked)
    script.end(edges[-1][0] + 2000)
    addr, size = firmware_build.symbol(firmware_build.door_elf, "door_stats")
    with SimavrBoard(firmware_build, firmware_build.door_elf, script, dumps=[(addr, size)]) as sim:
        result, wire = sim.collect(timeout_s=120)

    decoder = StreamDecoder()
    frames = decoder.feed(wire)
    fw_crossings = [
        (f.msg.tick_ms, f.msg.direction) for f in frames if isinstance(f.msg, DoorCrossing)
    ]
    fw_stats = dict(zip(STAT_NAMES, struct.unpack("<5I", result.mem[addr]), strict=True))

    # the firmware stamps an edge at t ms with tick t + 1
    py_crossings, py_stats = python_run([(t + TICK_LAG_MS, b, lvl) for t, b, lvl in edges])
    assert fw_crossings == py_crossings
    assert fw_stats == py_stats
    kinds = Counter(p.kind for p in ps)
    assert py_stats["tailgate"] == kinds["tailgate"] > 0
    assert py_stats["timeout"] == kinds["linger"] > 0
    # a lingerer who backs out is a timeout, then (restarted from the beam levels)
    # a half crossing
    assert py_stats["half_crossing"] == kinds["half"] + kinds["step_back"] + kinds["linger"] > 0
    # the bytes are exactly what protocol.encode makes of the same messages
    assert isinstance(frames[0].msg, Hello)
    assert b"".join(encode(f.msg, f.board, f.seq) for f in frames) == wire
    assert decoder.stats.seq_gaps == 0 and not decoder.stats.rejects
    assert result.tx_bytes == len(wire)


def test_lingerer_who_then_walks_in_is_counted() -> None:
    """Someone who stands in beam A past the timeout and then walks in still counts."""
    py, stats = python_run(
        [(0, "A", True), (4000, "B", True), (4200, "A", False), (4350, "B", False)]
    )
    assert [d for _, d in py] == [1] and stats["timeout"] == 1 and stats["in"] == 1
