"""Issue 23 case 8, silent loss on the node: a UART replay never lets a CRC-good
frame with an impossible value poison a batch; door and tile events are stored
once however often they are replayed; a re-imaged node's new seq namespace is
accepted; drops that drop everything are loud (status, doctor, exit code)."""

from __future__ import annotations

import json
from pathlib import Path

from test_bridge_payloads import event_batches

from firmware_bridge.events import DoorEvent
from firmware_bridge.protocol import BoardKind, DoorCrossing, Heartbeat, Hello, TileChange, encode
from sensing.node.sources import board_events
from sensing.wire import payloads


def _uart(path: Path, frames: bytes, tick0: int = 1_795_000_000_000) -> Path:
    path.write_bytes(frames)
    path.with_suffix(path.suffix + ".json").write_text(json.dumps({"tick0_epoch_ms": tick0}))
    return path


def test_uart_replay_rejects_an_impossible_direction_or_state(tmp_path: Path) -> None:
    door = _uart(
        tmp_path / "door.uart",
        encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0)
        + encode(DoorCrossing(100, 1), 1, 1)
        + encode(DoorCrossing(200, 0), 1, 2)  # CRC-good, direction 0
        + encode(Heartbeat(1000), 1, 3)
        + encode(DoorCrossing(1300, -1), 1, 4)
        + encode(TileChange(1400, 3, 7), 1, 5),  # CRC-good, state 7
    )
    events, stats = board_events(door)
    assert [(e.t_ms - 1_795_000_000_000, getattr(e, "direction", None)) for e in events] == [
        (100, 1),
        (1300, -1),
    ]
    assert stats["reject_value"] == 2
    for batch in event_batches([e for e in events if isinstance(e, DoorEvent)], stats):
        payloads.validate("door_events", batch)  # the batch is not poisoned
