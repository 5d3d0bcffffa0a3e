"""Keyed, rotating pseudonyms (DESIGN.md "Pseudonyms").

``pid = HMAC-SHA256(K_epoch, addr)[:8]`` as hex. Keys come from a forward-secure
ratchet ``K_{e+1} = HMAC-SHA256(K_e, "footfall/ratchet/v1")``: every node of a
store is provisioned with the same ``K_0`` and epoch start, so all agree on
pseudonyms without talking, and a node that rolls forward cannot go back. Epochs
roll daily at a configured local hour (DST-aware).

Erasure
-------
The old key must be unrecoverable from the node once it has rolled (GOALS.md,
"key rotation"). So a key only ever lives in one ``bytearray`` that is zeroed in
place when it is replaced, and nothing else is allowed to hold a copy:

* ``hmac.digest`` and ``hashlib`` take the ``bytearray`` itself (buffer
  protocol, no copy); the per-frame hashes use the key's two prepared SHA-256
  states (:class:`KeyedHash`), which live in OpenSSL contexts that OpenSSL
  cleanses when they are freed, at the roll;
* the one ``bytes`` object a ratchet step cannot avoid (the digest HMAC returns)
  is copied into the new ``bytearray`` and then overwritten in place
  (:func:`wipe_bytes`, CPython only);
* the key file is read with ``readinto`` into a ``bytearray``, the hex digits are
  decoded by hand and blanked before the rest is parsed as JSON, and it is
  written from a ``bytearray`` with ``os.write`` (no ``str`` or ``bytes`` copy of
  the key, no buffered-I/O copy);
* a save writes a new 0600 file, fsyncs it, atomically replaces the old path,
  fsyncs the directory, then overwrites the *old inode* (still open) with zeros.

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
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from firmware_bridge.errors import ConfigError

__all__ = [
    "IE_SIG_INFO",
    "KEY_BYTES",
    "RATCHET_INFO",
    "EpochSchedule",
    "KeyFile",
    "KeyRing",
    "KeyedHash",
    "Pseudonymizer",
    "json_with_key",
    "next_key",
    "random_key",
    "read_private_file",
    "take_hex_key",
    "wipe_bytes",
    "write_private_file",
]

RATCHET_INFO = b"footfall/ratchet/v1"
IE_SIG_INFO = b"footfall/ie-layout/v1"
KEY_BYTES = 32
_ZEROS = bytes(KEY_BYTES)
_HEX_DIGITS = b"0123456789abcdef"
_HEX_VALUE = {c: i for i, c in enumerate(b"0123456789abcdef")} | {
    c: 10 + i for i, c in enumerate(b"ABCDEF")
}
_PLACEHOLDER = "@" * (2 * KEY_BYTES)
_MAX_KEY_FILE = 1 << 16


def wipe_bytes(b: bytes) -> None:
    """Overwrite the buffer of an immutable ``bytes`` object with zeros, in place.

    For the one unavoidable ``bytes`` copy of secret material: the digest that
    ``hmac.digest`` returns. Only on CPython (whose ``bytes`` keep their data at a
    fixed offset after the object header); a no-op elsewhere and for objects that
    may be shared (empty and one-byte ``bytes`` are cached singletons).
    """
    if type(b) is not bytes or len(b) < 2 or sys.implementation.name != "cpython":
        return
    import ctypes

    header = sys.getsizeof(b) - len(b) - 1  # PyBytesObject header, data, trailing NUL
    ctypes.memset(id(b) + header, 0, len(b))


def next_key(key: bytes | bytearray) -> bytearray:
    """One ratchet step ``HMAC-SHA256(key, RATCHET_INFO)``, into a fresh ``bytearray``."""
    d = hmac.digest(key, RATCHET_INFO, "sha256")
    out = bytearray(d)
    wipe_bytes(d)
    return out


def random_key() -> bytearray:
    """32 random bytes read straight into a ``bytearray`` (no ``bytes`` copy)."""
    out = bytearray(KEY_BYTES)
    try:
        with open("/dev/urandom", "rb", buffering=0) as f:
            if f.readinto(out) == KEY_BYTES:
                return out
    except OSError:
        pass
    r = os.urandom(KEY_BYTES)  # platforms without /dev/urandom
    out[:] = r
    wipe_bytes(r)
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

        Kept for callers and tests that compare keys; :class:`KeyFile` does not use
        it, because an immutable copy cannot be erased: call :func:`wipe_bytes` on
        the result when done.
        """
        return bytes(self._key)


@dataclass(frozen=True)
class KeyFile:
    """On-disk node key: JSON with the current key and the schedule, mode 0600.

    ``{"v": 1, "epoch": e, "key": "<64 hex>", "start_date": "YYYY-MM-DD",
    "roll_hour": h, "timezone": "Area/City"}``. Replaced atomically at every roll;
    the previous file's blocks are overwritten with zeros (see module doc). A key
    file readable by group or others is refused.
    """

    path: Path

    @staticmethod
    def provision(
        path: Path,
        start_date: date,
        roll_hour: int,
        timezone: str,
        key: bytes | bytearray | None = None,
    ) -> KeyFile:
        """Write a new store key (random K_0 unless given)."""
        sched = EpochSchedule(start_date, roll_hour, timezone)
        kf = KeyFile(Path(path))
        ring = KeyRing(bytearray(key) if key is not None else random_key(), 0)
        try:
            kf.save(ring, sched)
        finally:
            ring.erase()
        return kf

    def load(self) -> tuple[KeyRing, EpochSchedule]:
        """Read the key and schedule; the key goes straight into a ``bytearray``."""
        try:
            buf = read_private_file(self.path)
        except FileNotFoundError as e:
            raise ConfigError(f"{self.path}: no key file (run `footfall keygen`)") from e
        key = bytearray()
        try:
            key = take_hex_key(buf)
            d = json.loads(buf.decode())
            sched = EpochSchedule(
                date.fromisoformat(d["start_date"]), int(d["roll_hour"]), str(d["timezone"])
            )
            ring = KeyRing(key, int(d["epoch"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            key[:] = bytes(len(key))
            raise ConfigError(f"{self.path}: invalid key file: {e}") from e
        finally:
            buf[:] = bytes(len(buf))
        return ring, sched

    def save(self, ring: KeyRing, sched: EpochSchedule) -> None:
        """Atomically replace the key file with ``ring``'s current key."""
        doc: dict[str, object] = {
            "v": 1,
            "epoch": ring.epoch,
            "start_date": sched.start_date.isoformat(),
            "roll_hour": sched.roll_hour,
            "timezone": sched.timezone,
        }
        buf = json_with_key(doc, ring._key)
        try:
            write_private_file(self.path, buf)
        finally:
            buf[:] = bytes(len(buf))


def read_private_file(path: Path, what: str = "key file") -> bytearray:
    """Read a small secret file with ``readinto`` into a ``bytearray`` (no copies).

    Refuses a file readable or writable by group or others, as ssh does
    (:class:`ConfigError`); ``FileNotFoundError`` passes through.
    """
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e}") from e
    with f:
        st = os.fstat(f.fileno())
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{path}: {what} is accessible to others (mode {mode:04o}); run chmod 600"
            )
        if st.st_size > _MAX_KEY_FILE:
            raise ConfigError(f"{path}: invalid {what}: {st.st_size} bytes")
        buf = bytearray(st.st_size)
        n = 0
        while n < len(buf):
            with memoryview(buf) as mv:
                got = f.readinto(mv[n:])
            if not got:
                break
            n += got
        del buf[n:]
        return buf


def take_hex_key(buf: bytearray, field: str = "key") -> bytearray:
    """Decode the 64-hex-digit JSON string ``field`` of ``buf`` into a 32-byte
    ``bytearray`` and blank its digits in ``buf`` (so the rest can be parsed as
    JSON without making a copy of the key). Raises ``ValueError`` if absent."""
    m = re.search(rb'"' + field.encode() + rb'"\s*:\s*"([0-9A-Fa-f]{64})"', buf)
    if m is None:
        raise ValueError(f"no 64-hex-digit {field!r}")
    s, e = m.span(1)
    key = bytearray(KEY_BYTES)
    hv = _HEX_VALUE
    for i in range(KEY_BYTES):
        key[i] = hv[buf[s + 2 * i]] << 4 | hv[buf[s + 2 * i + 1]]
    buf[s:e] = b"0" * (e - s)
    return key


def hex_into(key: bytearray, buf: bytearray, at: int) -> None:
    """Write ``key`` as lowercase hex digits into ``buf[at:]`` (no ``str`` copy)."""
    for i, b in enumerate(key):
        buf[at + 2 * i] = _HEX_DIGITS[b >> 4]
        buf[at + 2 * i + 1] = _HEX_DIGITS[b & 15]


def json_with_key(doc: dict[str, object], key: bytearray, field: str = "key") -> bytearray:
    """``doc`` as JSON bytes with ``key`` (hex) in ``field``, built in a ``bytearray``.

    The caller zeroes the result after writing it."""
    text = json.dumps({**doc, field: _PLACEHOLDER})
    buf = bytearray(text.encode())
    hex_into(key, buf, buf.index(b'"' + _PLACEHOLDER.encode() + b'"') + 1)
    return buf


def write_private_file(path: Path, data: bytearray | bytes, prefix: str = ".key-") -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600), then overwrite the
    previous file's inode with zeros.

    Order: write a temporary file in the same directory, fsync, ``os.replace``,
    fsync the directory, then zero and fsync the old inode (held open), so a
    crash at any point leaves either the old or the new file at ``path``.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:
        old = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        old = -1
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
        try:
            os.fchmod(fd, 0o600)
            with memoryview(data) as mv:
                off = 0
                while off < len(mv):
                    off += os.write(fd, mv[off:])
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
        if old >= 0:  # the previous file's inode, now unlinked: overwrite its blocks
            size = os.fstat(old).st_size
            os.pwrite(old, bytes(size), 0)
            os.fsync(old)
    finally:
        if old >= 0:
            os.close(old)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


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
