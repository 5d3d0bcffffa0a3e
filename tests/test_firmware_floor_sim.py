"""The floor board's firmware under simavr: a 6 × 6 tile matrix scanned on its pins
(rows driven, columns read, a diode per tile modelled by the harness), each tile
debounced, every change one TILE_CHANGE frame with the right tick."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import BoardKind, Hello, TileChange, encode
from firmware_bridge.simavr_board import TICK_LAG_MS, TILES, FirmwareBuild, SimavrBoard, SimScript

from conftest_hw import firmware_build  # noqa: F401

TileEdge = tuple[int, int, int]  # t_ms, tile, state


def tile_scenario(
    rng: np.random.Generator, duration_ms: int
) -> tuple[list[TileEdge], list[tuple[float, int, int]]]:
    """Clean per-tile edges (presses ≥ 40 ms, gaps ≥ 40 ms) and the pin-level events:
    the same plus 1–12 ms bounces that the 20 ms debounce must swallow."""
    clean: list[TileEdge] = []
    raw: list[tuple[float, int, int]] = []
    for tile in range(TILES):
        t = int(rng.integers(50, 400))
        while True:
            press = int(rng.integers(40, 900))
            if t + press + 100 > duration_ms:
                break
            clean += [(t, tile, 1), (t + press, tile, 0)]
            raw += [(t, tile, 1), (t + press, tile, 0)]
            if press > 60 and rng.uniform() < 0.3:  # a bounce while pressed
                mid = t + press // 2
                raw += [(mid, tile, 0), (mid + int(rng.integers(1, 13)), tile, 1)]
            t += press + int(rng.integers(40, 1200))
    return sorted(clean), sorted(raw, key=lambda e: (e[0], e[1]))


def run(
    build: FirmwareBuild,
    raw: list[tuple[float, int, int]],
    end_ms: int,
) -> tuple[list[TileChange], StreamDecoder, bytes]:
    script = SimScript(matrix=True)
    for t, tile, state in raw:
        script.tile(t, tile, bool(state))
    script.end(end_ms)
    with SimavrBoard(build, build.floor_elf, script) as sim:
        result, wire = sim.collect(timeout_s=120)
    assert result.tx_bytes == len(wire)
    decoder = StreamDecoder()
    frames = decoder.feed(wire)
    assert frames[0].msg == Hello(1, 0, BoardKind.FLOOR, TILES, 1)
    assert b"".join(encode(f.msg, f.board, f.seq) for f in frames) == wire
    assert decoder.stats.seq_gaps == 0 and not decoder.stats.rejects
    return [f.msg for f in frames if isinstance(f.msg, TileChange)], decoder, wire


def per_tile(changes: list[TileEdge]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t, tile, state in changes:
        out[tile].append((t, state))
    return dict(out)


@pytest.mark.slow
def test_random_presses_with_bounce(firmware_build: FirmwareBuild) -> None:  # noqa: F811
    clean, raw = tile_scenario(np.random.default_rng(7), 20_000)
    got, _, _ = run(firmware_build, raw, 20_500)
    expected = [(t + TICK_LAG_MS, tile, state) for t, tile, state in clean]
    assert per_tile([(c.tick_ms, c.tile, c.state) for c in got]) == per_tile(expected)
    assert len(got) == len(clean) > 400


@pytest.mark.slow
def test_whole_floor_at_once_waits_for_the_line(
    firmware_build: FirmwareBuild,  # noqa: F811
) -> None:
    # 36 changes in one tick: 540 bytes, more than the 256-byte transmit ring;
    # the rest waits in the tiles and follows, nothing lost, seq without gaps
    raw = [(1000.0, i, 1) for i in range(TILES)] + [(1600.0, i, 0) for i in range(TILES)]
    got, decoder, _ = run(firmware_build, raw, 2500)
    assert sorted((c.tick_ms, c.tile, c.state) for c in got) == sorted(
        [(1001, i, 1) for i in range(TILES)] + [(1601, i, 0) for i in range(TILES)]
    )
    assert decoder.stats.frames == 1 + 2 * TILES + 2  # hello, changes, heartbeats at 1 s, 2 s


@pytest.mark.slow
def test_rows_and_columns_shared(firmware_build: FirmwareBuild) -> None:  # noqa: F811
    # three corners of a rectangle pressed together: the diodes keep the fourth
    # (row 1, column 1 = tile 7) from reading as pressed
    raw = [
        (500.0, 0, 1),
        (500.0, 1, 1),
        (500.0, 6, 1),
        (900.0, 0, 0),
        (900.0, 1, 0),
        (900.0, 6, 0),
        (1200.0, 35, 1),
        (1300.0, 35, 0),
    ]
    got, decoder, _ = run(firmware_build, raw, 1500)
    assert [(c.tick_ms, c.tile, c.state) for c in got] == [
        (501, 0, 1),
        (501, 1, 1),
        (501, 6, 1),
        (901, 0, 0),
        (901, 1, 0),
        (901, 6, 0),
        (1201, 35, 1),
        (1301, 35, 0),
    ]
    assert decoder.stats.frames == 1 + 8 + 1  # hello, changes, the heartbeat at 1 s
