"""Pseudonyms: HMAC ratchet vectors, agreement across nodes, erasure at roll."""

from __future__ import annotations

import hashlib
import hmac
import stat
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import RATCHET_INFO, EpochSchedule, KeyRing, Pseudonymizer

K0 = bytes(range(32))
ADDR = bytes.fromhex("5a1b2c3d4e5f")
TZ = "Europe/Amsterdam"


def ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def test_pid_is_first_8_bytes_of_hmac_sha256() -> None:
    ring = KeyRing(bytearray(K0), 0)
    assert ring.pid(ADDR) == hmac.new(K0, ADDR, hashlib.sha256).digest()[:8].hex()


def test_ratchet_follows_the_design() -> None:
    ring = KeyRing(bytearray(K0), 0)
    ring.roll_to(2)
    k1 = hmac.new(K0, RATCHET_INFO, hashlib.sha256).digest()
    k2 = hmac.new(k1, RATCHET_INFO, hashlib.sha256).digest()
    assert ring.key_bytes_for_store() == k2
    assert not ring.roll_to(1)  # never backwards


def test_nodes_agree_without_talking(tmp_path: Path) -> None:
    a = KeyFile.provision(tmp_path / "a.key", date(2026, 11, 20), 4, TZ, key=K0)
    b = KeyFile.provision(tmp_path / "b.key", date(2026, 11, 20), 4, TZ, key=K0)
    pa, pb = (Pseudonymizer(*kf.load(), keyfile=kf) for kf in (a, b))
    t_day3 = ms(2026, 11, 22, 12)
    pb.epoch_for(ms(2026, 11, 21, 9))  # node b rolled once earlier, a jumps straight
    assert pa.epoch_for(t_day3) == pb.epoch_for(t_day3) == 2
    assert pa.ring.pid(ADDR) == pb.ring.pid(ADDR)


def test_epoch_rolls_at_local_hour_across_dst() -> None:
    s = EpochSchedule(date(2026, 3, 28), 4, TZ)
    assert s.epoch_of(ms(2026, 3, 28, 3, 59)) == -1
    assert s.epoch_of(ms(2026, 3, 28, 4, 0)) == 0
    assert s.epoch_of(ms(2026, 3, 29, 3, 30)) == 0  # DST starts that night in Europe
    assert s.epoch_of(ms(2026, 3, 29, 4, 0)) == 1
    lo, hi = s.bounds_ms(0)
    assert hi - lo == 23 * 3600 * 1000


def test_roll_erases_old_key_in_memory_and_on_disk(tmp_path: Path) -> None:
    kf = KeyFile.provision(tmp_path / "store.key", date(2026, 11, 20), 4, TZ, key=K0)
    assert stat.S_IMODE((tmp_path / "store.key").stat().st_mode) == 0o600
    ring, sched = kf.load()
    old_buffer = ring._key  # the bytearray holding K_0
    p = Pseudonymizer(ring, sched, keyfile=kf)
    assert p.epoch_for(ms(2026, 11, 21, 10)) == 1
    assert bytes(old_buffer) == bytes(32)  # overwritten in place
    assert K0.hex() not in (tmp_path / "store.key").read_text()
    assert not any(
        K0 in f.read_bytes() or K0.hex().encode() in f.read_bytes() for f in tmp_path.iterdir()
    )
    assert stat.S_IMODE((tmp_path / "store.key").stat().st_mode) == 0o600
    # a frame of the erased epoch can no longer be pseudonymized: dropped, counted
    assert p.epoch_for(ms(2026, 11, 20, 23)) is None and p.stale == 1
