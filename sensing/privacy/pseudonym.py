"""Keyed, rotating pseudonyms: the ratchet, the key ring, the epoch schedule and the
pseudonymizer (docs/architecture.md, "Pseudonyms and the ratchet").

``pid = HMAC-SHA256(K_epoch, addr)[:8]`` as hex. Keys come from a forward-secure
ratchet ``K_{e+1} = HMAC-SHA256(K_e, "footfall/ratchet/v1")``: every node of a
store is provisioned with the same ``K_0`` and epoch start, so all agree on
pseudonyms without talking, and a node that rolls forward cannot go back. Epochs
roll daily at a configured local hour (DST-aware).

Erasure
-------
The old key must be unrecoverable from the node once it has rolled (the project
goal "key rotation"). So a key only ever lives in one ``bytearray`` that is zeroed in
place when it is replaced, and nothing else is allowed to hold a copy:

* ``hmac.digest`` and ``hashlib`` take the ``bytearray`` itself (buffer
  protocol, no copy); the per-frame hashes use the key's two prepared SHA-256
  states (:class:`KeyedHash`), which live in OpenSSL contexts that OpenSSL
  cleanses when they are freed, at the roll;
* the one ``bytes`` object a ratchet step cannot avoid (the digest HMAC returns)
  is copied into the new ``bytearray`` and then overwritten in place
  (:func:`~sensing.privacy.key_memory.wipe_bytes`, CPython only);
* the key file (:class:`~sensing.privacy.key_file.KeyFile`) is read with
  ``readinto`` into a ``bytearray``, the hex digits are decoded by hand and
  blanked before the rest is parsed as JSON, and it is written from a
  ``bytearray`` with ``os.write`` (no ``str`` or ``bytes`` copy of the key, no
  buffered-I/O copy; :mod:`sensing.privacy.key_memory`);
* a save writes a new 0600 file, fsyncs it, atomically replaces the old path,
  fsyncs the directory, then overwrites the *old inode* (still open) with zeros
  (:func:`~sensing.privacy.key_file.write_private_file`).

Limits, said plainly: zeroing a file in place overwrites its blocks on ext4 and
similar file systems, not on copy-on-write file systems (btrfs, ZFS) nor below
an SD card's wear levelling; a node with swap may page a key out (disable swap
or encrypt it); a crash dump taken before a roll holds that epoch's key.
``tests/test_key_roll.py`` scans a real process's memory and files after a roll.

>>> ring = KeyRing(bytearray(32), epoch=0)
>>> ring.pid(b"\\x02\\x00\\x00\\x00\\x00\\x01")
'308aac412a8b0d9a'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firmware_bridge.errors import ConfigError
from sensing.privacy.key_memory import KEY_BYTES, wipe_bytes

if TYPE_CHECKING:
    from sensing.privacy.key_file import KeyFile

__all__ = [
    "IE_SIG_INFO",
    "RATCHET_INFO",
    "EpochSchedule",
    "KeyRing",
    "KeyedHash",
    "Pseudonymizer",
    "next_key",
]

RATCHET_INFO = b"footfall/ratchet/v1"
IE_SIG_INFO = b"footfall/ie-layout/v1"
_ZEROS = bytes(KEY_BYTES)


def next_key(key: bytes | bytearray) -> bytearray:
    """One ratchet step ``HMAC-SHA256(key, RATCHET_INFO)``, into a fresh ``bytearray``."""
    d = hmac.digest(key, RATCHET_INFO, "sha256")
    out = bytearray(d)
    wipe_bytes(d)
    return out


class KeyedHash:
    """HMAC-SHA256 under one key, with the key's two padded blocks hashed once.

    ``hmac.digest`` costs about 3 µs a call with OpenSSL 3 (it looks the
    algorithm up every time); copying two prepared SHA-256 states costs about
    1 µs, and the node hashes every frame two or three times. The prepared
    states stand for the key (whoever holds them can compute the HMAC), so they
    live only in OpenSSL hash contexts, which OpenSSL cleanses when they are
    freed; the padded key blocks are built in a ``bytearray`` and zeroed.
    ``HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m))`` (RFC 2104).

    >>> KeyedHash(bytearray(32)).digest(b"m") == hmac.digest(bytes(32), b"m", "sha256")
    True
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytearray) -> None:
        if len(key) > 64:
            raise ConfigError("keys longer than a SHA-256 block are not supported")
        pad = bytearray(64)
        try:
            pad[: len(key)] = key
            for i in range(64):
                pad[i] ^= 0x36
            self._inner = hashlib.sha256(pad)
            for i in range(64):
                pad[i] ^= 0x36 ^ 0x5C
            self._outer = hashlib.sha256(pad)
        finally:
            pad[:] = bytes(64)

    def digest(self, *parts: bytes) -> bytes:
        """HMAC-SHA256 of the concatenation of ``parts`` (32 bytes)."""
        h = self._inner.copy()
        for p in parts:
            h.update(p)
        o = self._outer.copy()
        o.update(h.digest())
        return o.digest()


@dataclass(frozen=True, slots=True)
class EpochSchedule:
    """Epoch e covers local [start_date + e days at roll_hour, +1 day)."""

    start_date: date
    """local date of epoch 0"""
    roll_hour: int
    """local hour (0-23) at which an epoch ends and the next begins"""
    timezone: str
    """IANA zone of the store, e.g. "Europe/Amsterdam" """

    def __post_init__(self) -> None:
        if not 0 <= self.roll_hour <= 23:
            raise ConfigError(f"roll_hour must be 0..23, got {self.roll_hour}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"unknown timezone {self.timezone!r}") from e

    def epoch_of(self, t_ms: int) -> int:
        """The epoch of Unix epoch milliseconds ``t_ms``."""
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
    """Holds only the current epoch key; rolls forward, never back.

    The ring takes ownership of ``key`` (a ``bytearray``) and zeroes it when it
    rolls past it. Not thread-safe: roll and hash from one thread.
    """

    def __init__(self, key: bytearray, epoch: int) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(f"key must be {KEY_BYTES} bytes, got {len(key)}")
        if not isinstance(key, bytearray):  # the caller keeps its own immutable copy
            key = bytearray(key)
        self._key = key
        self._mac: KeyedHash | None = KeyedHash(key)
        self.epoch = epoch

    def roll_to(self, epoch: int) -> bool:
        """Advance to ``epoch`` (erasing every older key); False if it is in the past."""
        if epoch < self.epoch:
            return False
        if epoch == self.epoch:
            return True
        self._mac = None  # the old key's prepared hash states go first
        while self.epoch < epoch:
            old = self._key
            self._key = next_key(old)
            old[:] = _ZEROS  # erase the old key in place (same length: no reallocation)
            self.epoch += 1
        self._mac = KeyedHash(self._key)
        return True

    def pid(self, addr: bytes) -> str:
        """16 hex chars: ``HMAC-SHA256(K_epoch, addr)[:8]``."""
        return self._mac.digest(addr)[:8].hex()  # type: ignore[union-attr]

    def sig(self, ie_layout: bytes) -> str:
        """Short keyed hash of a Wi-Fi IE layout (never contains SSIDs)."""
        return self._mac.digest(IE_SIG_INFO, ie_layout)[:4].hex()  # type: ignore[union-attr]

    def erase(self) -> None:
        """Zero the current key (the ring is unusable afterwards)."""
        self._mac = None
        self._key[:] = _ZEROS

    def key_bytes_for_store(self) -> bytes:
        """A ``bytes`` copy of the current key.

        Kept for callers and tests that compare keys;
        :class:`~sensing.privacy.key_file.KeyFile` does not use it, because an
        immutable copy cannot be erased: call
        :func:`~sensing.privacy.key_memory.wipe_bytes` on the result when done.
        """
        return bytes(self._key)


class Pseudonymizer:
    """Turns addresses into pseudonyms of the epoch their frame belongs to.

    Parameters
    ----------
    ring, schedule
        the current key and the store's epoch schedule (``KeyFile.load()``).
    keyfile
        where to persist each roll (a live node must pass it, or the old key
        stays on disk); ``None`` for replays that must not touch the key file.
    clock_ms
        wall clock, Unix epoch ms; when given, a frame stamped more than
        ``max_ahead_ms`` in the future cannot roll the key (it is dropped and
        counted in ``future``). A replay passes ``None`` and trusts frame times.
    max_ahead_ms
        allowed clock skew of frame times ahead of ``clock_ms``.
    """

    def __init__(
        self,
        ring: KeyRing,
        schedule: EpochSchedule,
        keyfile: KeyFile | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
        max_ahead_ms: int = 5 * 60_000,
    ) -> None:
        self.ring, self.schedule, self.keyfile = ring, schedule, keyfile
        self.clock_ms = clock_ms
        self.max_ahead_ms = max_ahead_ms
        self.stale = 0
        """frames older than the current epoch (their key is gone): dropped"""
        self.future = 0
        """frames stamped too far ahead of ``clock_ms`` to roll the key: dropped"""
        self.rolls = 0
        """epochs rolled by this pseudonymizer"""
        self._lo, self._hi = self.schedule.bounds_ms(ring.epoch)

    def epoch_for(self, t_ms: int) -> int | None:
        """The epoch of a frame at ``t_ms``, rolling the key forward if it is newer;
        None (counted in ``stale`` or ``future``) if it cannot be pseudonymized."""
        if self._lo <= t_ms < self._hi:
            return self.ring.epoch
        e = self.schedule.epoch_of(t_ms)
        if e < self.ring.epoch:
            self.stale += 1
            return None
        if e > self.ring.epoch:
            if self.clock_ms is not None and t_ms > self.clock_ms() + self.max_ahead_ms:
                self.future += 1
                return None
            self._roll(e)
        return e

    def tick(self, now_ms: int | None = None) -> bool:
        """Roll by the wall clock even when no frame arrives (a closed store at
        night must still erase yesterday's key at the roll hour). True if rolled.

        A live node calls this every few seconds from the thread that calls
        :meth:`epoch_for`.
        """
        if now_ms is None:
            if self.clock_ms is None:
                return False
            now_ms = self.clock_ms()
        if now_ms < self._hi:
            return False
        self._roll(self.schedule.epoch_of(now_ms))
        return True

    def _roll(self, epoch: int) -> None:
        before = self.ring.epoch
        self.ring.roll_to(epoch)
        if self.keyfile is not None:
            self.keyfile.save(self.ring, self.schedule)
        self.rolls += self.ring.epoch - before
        self._lo, self._hi = self.schedule.bounds_ms(self.ring.epoch)
