"""Fixtures for the sensor-board tests; import them explicitly:

    from conftest_hw import firmware_build  # noqa: F401

``golden_examples()`` parses the golden table of hardware/protocol.md.
``firmware_build`` builds hardware/firmware (door/floor ELFs, host tools,
simavr harness) once per session into a temporary directory, or skips with
the missing tools named when avr-gcc/simavr are not installed (CI has them).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from firmware_bridge.protocol import BoardKind, DoorCrossing, Heartbeat, Hello, Message, TileChange
from firmware_bridge.simavr_board import FirmwareBuild, build, missing_tools

DOC = Path(__file__).resolve().parent.parent / "hardware" / "protocol.md"
_ROW = re.compile(r"^\| `(\w+)\(([^)]*)\)` \| (\d+) \| (\d+) \| `([0-9a-f ]+)` \|$")
_TYPES: dict[str, type[Heartbeat] | type[DoorCrossing] | type[TileChange]] = {
    "Heartbeat": Heartbeat,
    "DoorCrossing": DoorCrossing,
    "TileChange": TileChange,
}


def golden_examples() -> list[tuple[Message, int, int, bytes]]:
    text = DOC.read_text()
    body = text.split("<!-- golden:", 1)[1]
    out: list[tuple[Message, int, int, bytes]] = []
    for line in body.splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        name, args, board, seq, wire = m.groups()
        values = [
            int(BoardKind[a.strip()]) if a.strip() in ("DOOR", "FLOOR") else int(a)
            for a in args.split(",")
        ]
        msg: Message
        if name == "Hello":
            fw_major, fw_minor, kind, channels, reset_cause = values
            msg = Hello(fw_major, fw_minor, BoardKind(kind), channels, reset_cause)
        else:
            msg = _TYPES[name](*values)
        out.append((msg, int(board), int(seq), bytes.fromhex(wire)))
    return out


_BUILD: list[FirmwareBuild] = []


@pytest.fixture(scope="session")
def firmware_build(tmp_path_factory: pytest.TempPathFactory) -> FirmwareBuild:
    # every test module that imports this fixture gets its own copy of it, so the
    # build itself is shared here: once per session
    missing = missing_tools()
    if missing:
        pytest.skip(
            "firmware toolchain missing: "
            + ", ".join(missing)
            + " (apt-get install gcc-avr avr-libc simavr libsimavr-dev)"
        )
    if not _BUILD:
        _BUILD.append(build(tmp_path_factory.mktemp("firmware")))
    return _BUILD[0]
