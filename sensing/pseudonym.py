"""Keyed, rotating pseudonyms (DESIGN.md "Pseudonyms").

``pid = HMAC-SHA256(K_epoch, addr)[:8]`` as hex. Keys come from a forward-secure
ratchet ``K_{e+1} = HMAC-SHA256(K_e, "footfall/ratchet/v1")``: every node of a
store is provisioned with the same ``K_0`` and epoch start, so all agree on
pseudonyms without talking, and a node that rolls forward cannot go back. The
old key is overwritten in memory (a ``bytearray`` zeroed in place) and on disk
(atomic replace of the 0600 key file). Epochs roll daily at a local hour.

>>> ring = KeyRing(bytearray(32), epoch=0)
>>> ring.pid(b"\\x02\\x00\\x00\\x00\\x00\\x01")
'308aac412a8b0d9a'
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sensing.errors import ConfigError

RATCHET_INFO = b"footfall/ratchet/v1"
IE_SIG_INFO = b"footfall/ie-layout/v1"
KEY_BYTES = 32


def next_key(key: bytes | bytearray) -> bytearray:
    """One ratchet step."""
    return bytearray(hmac.digest(bytes(key), RATCHET_INFO, "sha256"))


@dataclass(frozen=True, slots=True)
class EpochSchedule:
    """Epoch e covers local [start_date + e days at roll_hour, +1 day)."""

    start_date: date
    roll_hour: int
    timezone: str

    def epoch_of(self, t_ms: int) -> int:
        local = datetime.fromtimestamp(t_ms / 1000, ZoneInfo(self.timezone))
        shifted = (local - timedelta(hours=self.roll_hour)).date()
        return (shifted - self.start_date).days

    def bounds_ms(self, epoch: int) -> tuple[int, int]:
        """[start, end) of ``epoch`` in Unix epoch ms (DST-aware: a day may be 23/25 h)."""
        tz = ZoneInfo(self.timezone)

        def start(e: int) -> int:
            d = self.start_date + timedelta(days=e)
            local = datetime(d.year, d.month, d.day, self.roll_hour, tzinfo=tz)
            return int(local.timestamp() * 1000)

        return start(epoch), start(epoch + 1)


class KeyRing:
    """Holds only the current epoch key; rolls forward, never back."""

    def __init__(self, key: bytearray, epoch: int) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(f"key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self.epoch = epoch

    def roll_to(self, epoch: int) -> bool:
        """Advance to ``epoch`` (erasing every older key); False if it is in the past."""
        if epoch < self.epoch:
            return False
        while self.epoch < epoch:
            new = next_key(self._key)
            self._key[:] = b"\x00" * KEY_BYTES  # erase the old key in place
            self._key = new
            self.epoch += 1
        return True

    def pid(self, addr: bytes) -> str:
        return hmac.digest(self._key, addr, "sha256")[:8].hex()

    def sig(self, ie_layout: bytes) -> str:
        """Short keyed hash of a Wi-Fi IE layout (never contains SSIDs)."""
        return hmac.digest(self._key, IE_SIG_INFO + ie_layout, "sha256")[:4].hex()

    def erase(self) -> None:
        self._key[:] = b"\x00" * KEY_BYTES

    def key_bytes_for_store(self) -> bytes:
        """The current key, to persist in the key file only."""
        return bytes(self._key)


@dataclass(frozen=True)
class KeyFile:
    """On-disk node key: JSON with the current key and the schedule, mode 0600.

    Replaced atomically at every roll so the previous key is never left on disk.
    """

    path: Path

    @staticmethod
    def provision(
        path: Path, start_date: date, roll_hour: int, timezone: str, key: bytes | None = None
    ) -> KeyFile:
        """Write a new store key (random K_0 unless given)."""
        kf = KeyFile(Path(path))
        k0 = key if key is not None else secrets.token_bytes(KEY_BYTES)
        kf._write(
            {
                "v": 1,
                "epoch": 0,
                "key": k0.hex(),
                "start_date": start_date.isoformat(),
                "roll_hour": roll_hour,
                "timezone": timezone,
            }
        )
        return kf

    def load(self) -> tuple[KeyRing, EpochSchedule]:
        try:
            d = json.loads(self.path.read_text())
            sched = EpochSchedule(
                date.fromisoformat(d["start_date"]), int(d["roll_hour"]), str(d["timezone"])
            )
            ZoneInfo(sched.timezone)
            ring = KeyRing(bytearray.fromhex(d["key"]), int(d["epoch"]))
        except FileNotFoundError as e:
            raise ConfigError(f"{self.path}: no key file (run `footfall keygen`)") from e
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{self.path}: invalid key file: {e}") from e
        return ring, sched

    def save(self, ring: KeyRing, sched: EpochSchedule) -> None:
        self._write(
            {
                "v": 1,
                "epoch": ring.epoch,
                "key": ring.key_bytes_for_store().hex(),
                "start_date": sched.start_date.isoformat(),
                "roll_hour": sched.roll_hour,
                "timezone": sched.timezone,
            }
        )

    def _write(self, d: dict[str, object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".key-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(d, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class Pseudonymizer:
    """Turns addresses into pseudonyms of the epoch their frame belongs to."""

    def __init__(
        self, ring: KeyRing, schedule: EpochSchedule, keyfile: KeyFile | None = None
    ) -> None:
        self.ring, self.schedule, self.keyfile = ring, schedule, keyfile
        self.stale = 0
        """frames older than the current epoch (their key is gone): dropped"""
        self._lo, self._hi = self.schedule.bounds_ms(ring.epoch)

    def epoch_for(self, t_ms: int) -> int | None:
        """The epoch of a frame at ``t_ms``, rolling the key forward if it is newer;
        None (counted in ``stale``) if its epoch's key is already erased."""
        if self._lo <= t_ms < self._hi:
            return self.ring.epoch
        e = self.schedule.epoch_of(t_ms)
        if e != self.ring.epoch:
            if not self.ring.roll_to(e):
                self.stale += 1
                return None
            if self.keyfile is not None:
                self.keyfile.save(self.ring, self.schedule)
            self._lo, self._hi = self.schedule.bounds_ms(e)
        return e
