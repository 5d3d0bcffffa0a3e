from sensing.node.batcher import Batcher
from sensing.wire import payloads


def test_batches_close_on_size_and_age_and_validate() -> None:
    b = Batcher("obs", header={"node": "n1"}, max_items=3, max_age_ms=1000)
    out = [b.add(t, ["0123456789abcdef", -60, "ble", 0]) for t in (1000, 1100, 1200, 1300)]
    assert out[:3] == [None, None, None]
    first = out[3]
    assert first is not None and first["seq"] == 0 and first["t0"] == 1000
    assert [r[0] for r in first["obs"]] == [0, 100, 200]
    payloads.decode("obs", payloads.encode(first))
    assert b.add(2400, ["0123456789abcdef", -60, "ble", 0])["seq"] == 1  # age limit
    last = b.flush()
    assert last is not None and last["seq"] == 2 and b.flush() is None


def test_time_going_backwards_keeps_dt_non_negative_and_bounded() -> None:
    b = Batcher("ev", max_items=100, max_age_ms=5000)
    assert b.add(10_000, [1]) is None
    assert b.add(9_000, [-1]) is None  # 1 s back: same batch, t0 moves
    closed = b.add(2_000, [1])  # far back: closes the batch first
    assert closed is not None and closed["t0"] == 9_000
    assert sorted(r[0] for r in closed["ev"]) == [0, 1000]
