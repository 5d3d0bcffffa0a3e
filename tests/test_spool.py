"""The node's offline spool: order, seq across restarts, the bound, kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensing.node.spool import Spool

TOPIC = "footfall/v1/s1/node/n1/obs"


def _put(sp: Spool, n_items: int = 3, stream: str = "obs", **kw: object) -> int:
    return sp.put(stream, TOPIC, {"v": 1, "obs": [[i] for i in range(n_items)]}, n_items, **kw).id


def test_fifo_seq_and_ack(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as sp:
        ids = [_put(sp) for _ in range(5)]
        _put(sp, stream="door/main")
        got = sp.after(0, 100)
        assert [b.id for b in got] == sorted(b.id for b in got)
        assert [b.seq for b in got if b.stream == "obs"] == [0, 1, 2, 3, 4]
        assert [b.seq for b in got if b.stream == "door/main"] == [0]
        assert json.loads(got[2].payload)["seq"] == 2  # the seq is in the payload
        assert sp.ack(ids[:3]) == 3
        assert sp.ack(ids[:3]) == 0  # a second PUBACK of the same batch is harmless
        assert [b.seq for b in sp.after(0, 100) if b.stream == "obs"] == [3, 4]
        assert sp.depth == 3
        assert [b.id for b in sp.after(ids[3], 100)] == [ids[4], got[-1].id]


def test_seq_and_cursor_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path) as sp:
        for _ in range(4):
            _put(sp, cursor=("capture", 1234))
        sp.ack([b.id for b in sp.after(0, 100)])
        assert sp.depth == 0
    with Spool(path) as sp:
        assert sp.next_seq("obs") == 4 and sp.last_seq("obs") == 3
        assert sp.last_seq("door/x") is None
        assert sp.cursor("capture") == 1234 and sp.cursor("other") == 0
        assert sp.put("obs", TOPIC, {"v": 1}, 0).seq == 4


def test_bound_drops_oldest_and_counts_never_inflight(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", max_batches=5) as sp:
        ids = [_put(sp, n_items=10) for _ in range(5)]
        inflight = {ids[0]}  # handed to the broker link, waiting for PUBACK
        _put(sp, n_items=10, inflight=inflight)
        _put(sp, n_items=10, inflight=inflight)
        left = sp.after(0, 100)
        assert [b.seq for b in left] == [0, 3, 4, 5, 6]  # seq 1 and 2 dropped, 0 in flight
        st = sp.stats()
        assert (st.depth, st.dropped_batches, st.dropped_items) == (5, 2, 20)
    with Spool(tmp_path / "s.db", max_batches=5) as sp:  # the counts are persisted
        assert sp.stats().dropped_batches == 2


def test_byte_bound(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", max_bytes=2000) as sp:
        for _ in range(50):
            _put(sp, n_items=20)
        st = sp.stats()
        assert st.bytes <= 2000 and st.dropped_batches > 0
        assert st.depth + st.dropped_batches == 50


WRITER = """
import sys, time
from pathlib import Path
from sensing.node.spool import Spool
sp = Spool(Path(sys.argv[1]))
i = 0
while True:
    b = sp.put("obs", "t", {"v": 1, "obs": [[i, "x" * 200]] * 50}, 50, cursor=("capture", i))
    if i % 3 == 0:
        sp.ack([b.id])
    i += 1
    if i == 20:
        print("go", flush=True)
"""


@pytest.mark.timeout(60)
def test_kill9_mid_write_leaves_a_consistent_spool(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "go"
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    with Spool(path) as sp:
        assert sp.integrity() == "ok"
        rows = sp.after(0, 1_000_000)
        seqs = [b.seq for b in rows]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # every third batch was acknowledged (the kill may fall between the last
        # put and its ack); all the others are there, nothing torn, nothing lost
        last = sp.last_seq("obs")
        assert last is not None and last >= 19
        want = {s for s in range(last + 1) if s % 3 != 0}
        assert want <= set(seqs) <= want | {last}
        assert sp.cursor("capture") == last  # the cursor moved with the last batch
        for b in rows:
            assert json.loads(b.payload)["seq"] == b.seq
