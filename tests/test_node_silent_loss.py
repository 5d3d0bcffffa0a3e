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
from heatmap.aggregator.store_db import Claim, StoreDB
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


T0 = 1_795_000_000_000


def _door_batch(seq: int, rows: list[list[int]], t0: int = T0) -> dict[str, object]:
    return {"v": 1, "seq": seq, "t0": t0, "ev": rows}


def test_the_same_door_and_tile_events_are_stored_once(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "store.db")
    rows = [[0, 1], [850, -1], [2000, 1]]
    assert db.add_door("main", _door_batch(0, rows)) is Claim.NEW
    # the same stream again under other seqs (a second replay, a live board re-fed)
    assert db.add_door("main", _door_batch(7, rows)) is Claim.DUPLICATE
    assert db.add_door("main", _door_batch(8, [*rows[1:], [2500, -1]])) is Claim.NEW
    tiles = {"v": 1, "seq": 0, "t0": T0, "ev": [[0, 3, 1], [40, 3, 0]]}
    assert db.add_floor("f1", tiles) is Claim.NEW
    assert db.add_floor("f1", {**tiles, "seq": 1}) is Claim.DUPLICATE
    db.commit()
    assert db.count("door_events") == 4 and db.count("floor_events") == 2
    # another door, and the same door's other direction at the same instant, are other events
    assert db.add_door("side", _door_batch(0, rows)) is Claim.NEW
    assert db.add_door("main", _door_batch(9, [[0, -1]])) is Claim.NEW
    assert db.count("door_events") == 8


def test_a_reimaged_board_restarting_its_seq_is_stored_not_rejected(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "store.db")
    for seq in range(3):
        db.add_door("main", _door_batch(seq, [[i * 100, 1] for i in range(25)], T0 + seq * 10_000))
    later = T0 + 3_600_000  # the re-imaged node's spool numbers from 0 again
    out = [[i * 100, -1] for i in range(25)]
    claims = [db.add_door("main", _door_batch(s, out, later + s * 10_000)) for s in range(3)]
    assert claims == [Claim.NEW] * 3
    db.commit()
    assert db.count("door_events") == 150  # 75 + the re-imaged node's 75 crossings
