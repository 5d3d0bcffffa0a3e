"""``footfall doctor``'s checks of the sensor boards on their serial ports (or their
recordings) and of the GPIO beam pins."""

from __future__ import annotations

import time
from collections.abc import Iterator

from firmware_bridge.errors import FootfallError
from sensing.node.config import NodeConfig
from sensing.node.doctor.check import Check

__all__ = ["beams", "boards"]


def boards(cfg: NodeConfig, serial_wait_s: float) -> Iterator[Check]:
    """Each sensor board answers on its serial port (or its recording reads)."""
    for b in cfg.boards:
        if b.replay is not None:
            from sensing.node.sources import board_events

            try:
                events, _ = board_events(b.replay)
            except FootfallError as e:
                yield Check(b.name, "FAIL", str(e), "check the recording path")
                continue
            yield Check(b.name, "ok", f"recording {b.replay}: {len(events)} events")
            continue
        yield _serial(b.name, str(b.port), b.baudrate, serial_wait_s)


def _serial(name: str, port: str, baudrate: int, serial_wait_s: float) -> Check:
    from firmware_bridge.serial_link import SerialLink

    try:
        link = SerialLink(port, baudrate=baudrate)
    except FootfallError as e:
        fix = (
            "add the service user to the dialout group"
            if "ermission" in str(e)
            else "check the cable; `ls /dev/serial/by-id/`"
        )
        return Check(name, "FAIL", str(e), fix)
    try:
        deadline = time.monotonic() + serial_wait_s
        while time.monotonic() < deadline and not link.stats.frames:
            link.read(0.2)
        stats, boards = link.stats, dict(link.boards)
    finally:
        link.close()
    if stats.frames:
        fw = [
            f"board {i} fw {b.fw_version[0]}.{b.fw_version[1]}" if b.fw_version else f"board {i}"
            for i, b in sorted(boards.items())
        ]
        return Check(name, "ok", f"{port}: {', '.join(fw) or 'a board'} answering")
    if stats.bytes:
        return Check(
            name,
            "FAIL",
            f"{port}: {stats.bytes} bytes but no valid frame in {serial_wait_s:.0f} s",
            f"check the baud rate ({baudrate}) and that the board runs footfall firmware",
        )
    return Check(
        name,
        "FAIL",
        f"{port}: silent for {serial_wait_s:.0f} s (boards send a heartbeat every second)",
        "check the board's power and the TX/RX wiring",
    )


def beams(cfg: NodeConfig) -> Iterator[Check]:
    """Each door's beam pins can be opened."""
    for bm in cfg.beams:
        from sensing.node.sources import pin_factory

        try:
            f = pin_factory(bm.pin_factory)
            pins = [f.pin(bm.pin_a), f.pin(bm.pin_b)]
            for p in pins:
                p.close()
        except Exception as e:
            yield Check(
                f"door/{bm.door}",
                "FAIL",
                f"GPIO pins {bm.pin_a}/{bm.pin_b}: {e}",
                "install python3-lgpio and add the user to the gpio group",
            )
            continue
        yield Check(
            f"door/{bm.door}", "ok", f"beam pins {bm.pin_a}/{bm.pin_b} open ({bm.pin_factory})"
        )
