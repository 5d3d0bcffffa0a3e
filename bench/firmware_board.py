"""The door and floor firmware: size on the ATmega328P, and end-to-end counts under
simavr through a pty into SerialLink, against the scenario's truth.

    python bench/firmware_board.py --people 1000 --seed 1

(from the repository root, with the package installed: ``pip install -e .``, or
``PYTHONPATH=.``)

Needs gcc-avr, avr-libc, simavr, libsimavr-dev (builds into a temp dir).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from firmware_bridge.door_direction import DoorDirection
from firmware_bridge.door_scenario import beam_edges, passages, truth_count
from firmware_bridge.events import BoardEvent, DoorEvent, TileEvent
from firmware_bridge.serial_link import SerialLink
from firmware_bridge.simavr_board import (
    TILES,
    FirmwareBuild,
    SimavrBoard,
    SimScript,
    build,
    missing_tools,
)


def run_live(
    fw: FirmwareBuild,
    elf: Path,
    script: SimScript,
) -> tuple[list[BoardEvent], SerialLink, float, int]:
    events: list[BoardEvent] = []
    t = time.perf_counter()
    with SimavrBoard(fw, elf, script) as sim, SerialLink(sim.port) as link:
        sim.start()
        result = None
        while result is None or link.stats.bytes < result.tx_bytes:
            events += link.read(0.05)
            result = result or sim.poll()
    return events, link, time.perf_counter() - t, result.cycles


def door(fw: FirmwareBuild, n: int, seed: int) -> None:
    ps = passages(np.random.default_rng(seed), n)
    edges = beam_edges(ps)
    script = SimScript()
    for t, beam, blocked in edges:
        script.beam(t, beam, blocked)
    script.end(edges[-1][0] + 1500)
    events, link, wall, cycles = run_live(fw, fw.door_elf, script)
    doors = [e for e in events if isinstance(e, DoorEvent)]
    truth = truth_count(ps)
    ref = DoorDirection()
    for e in edges:
        ref.edge(*e)
    kinds = Counter(p.kind for p in ps)
    sim_s = cycles / 16e6
    print(
        f"\ndoor board, {n} passages (seed {seed}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    )
    print(f"  truth        in {truth['in']:5d}  out {truth['out']:5d}")
    print(
        f"  firmware     in {sum(e.direction > 0 for e in doors):5d}  "
        f"out {sum(e.direction < 0 for e in doors):5d}   (simavr -> pty -> SerialLink)"
    )
    print(
        f"  python twin  in {ref.stats['in']:5d}  out {ref.stats['out']:5d}   "
        f"tailgate {ref.stats['tailgate']}, half {ref.stats['half_crossing']}, "
        f"timeout {ref.stats['timeout']}"
    )
    print(f"  link: {link.stats.as_dict()}")
    print(
        f"  {sim_s:,.0f} s of board time in {wall:.1f} s wall ({sim_s / wall:,.0f}x real time), "
        f"{link.stats.bytes / sim_s:.1f} B/s on the line"
    )


def floor(fw: FirmwareBuild, seed: int, duration_ms: int = 120_000) -> None:
    rng = np.random.default_rng(seed)
    script = SimScript(matrix=True)
    truth = 0
    for tile in range(TILES):
        t = int(rng.integers(50, 500))
        while True:
            press = int(rng.integers(40, 2000))
            if t + press + 100 > duration_ms:
                break
            script.tile(t, tile, True)
            script.tile(t + press, tile, False)
            if press > 100:  # contact bounce 1..12 ms in the middle of the press
                mid = t + press // 2
                script.tile(mid, tile, False)
                script.tile(mid + int(rng.integers(1, 13)), tile, True)
            truth += 2
            t += press + int(rng.integers(40, 3000))
    script.end(duration_ms + 500)
    events, link, wall, cycles = run_live(fw, fw.floor_elf, script)
    tiles = [e for e in events if isinstance(e, TileEvent)]
    print(f"\nfloor board, {TILES} tiles, {duration_ms / 1000:.0f} s with bounce (seed {seed}):")
    print(f"  truth changes {truth}, firmware changes {len(tiles)}   link: {link.stats.as_dict()}")
    print(f"  {cycles / 16e6:,.0f} s of board time in {wall:.1f} s wall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    missing = missing_tools()
    if missing:
        sys.exit("footfall: error: missing " + ", ".join(missing))
    with tempfile.TemporaryDirectory() as tmp:
        fw = build(Path(tmp))
        print("ATmega328P (32 KiB flash, 2 KiB RAM), avr-gcc -Os:")
        for name, elf in (("door", fw.door_elf), ("floor", fw.floor_elf)):
            s = fw.size(elf)
            print(
                f"  {name:5s} flash {s['flash']:5d} B ({s['flash'] / 32768:.1%})   "
                f"RAM {s['ram']:4d} B static ({s['ram'] / 2048:.1%})"
            )
        door(fw, args.people, args.seed)
        floor(fw, args.seed)


if __name__ == "__main__":
    main()
