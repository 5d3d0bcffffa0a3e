"""Secret files on disk: the node's key file, and how every secret file is read and written.

:class:`KeyFile` is the store key of a node (the current epoch key and the epoch
schedule) as a mode-0600 JSON file, replaced at every key roll. The same two
helpers read and write every secret file of the node (the key file, the list
key, the opt-out list, the learned infrastructure):

* :func:`read_private_file` reads with ``readinto`` into a ``bytearray`` (no
  ``str`` or ``bytes`` copy, no buffered-I/O copy) and refuses a file others can
  read, as ssh does;
* :func:`write_private_file` writes a new 0600 file from a ``bytearray`` with
  ``os.write``, fsyncs it, atomically replaces the old path, fsyncs the
  directory, then overwrites the *old inode* (still open) with zeros.

The key's hex digits are decoded by hand and blanked before the rest of the file
is parsed as JSON (:mod:`sensing.privacy.key_memory`). What this can and cannot
erase is said in :mod:`sensing.privacy.pseudonym`, "Erasure".
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from firmware_bridge.errors import ConfigError
from sensing.privacy.key_memory import json_with_key, random_key, take_hex_key
from sensing.privacy.pseudonym import EpochSchedule, KeyRing

__all__ = ["KeyFile", "read_private_file", "write_private_file"]

_MAX_KEY_FILE = 1 << 16


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
        buf = json_with_key(doc, ring._key)  # the ring's own bytearray: no copy
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
