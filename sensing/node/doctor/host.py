"""``footfall doctor``'s checks of the node's own host: the key file, the clock and
the spool's disk."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from firmware_bridge.errors import FootfallError
from sensing.node.clock_sync import ClockProbe, KernelClock
from sensing.node.config import NodeConfig
from sensing.node.doctor.check import Check
from sensing.privacy.key_file import KeyFile

__all__ = ["SPOOL_MARGIN_BYTES", "clock_sync", "key_file", "spool_disk"]

SPOOL_MARGIN_BYTES = 50 << 20
"""free disk the spool check wants beyond the spool's own bound, bytes"""


def key_file(cfg: NodeConfig) -> Iterator[Check]:
    """The store key: present, mode 0600, readable, its directory writable, its epoch
    not ahead of today (a live node) nor of the capture files' frames (a replay:
    else every frame is dropped as ``stale_epoch``), owned by this user."""
    path = cfg.keyfile
    try:
        st = path.stat()
    except OSError:
        yield Check(
            "key file",
            "FAIL",
            f"{path} is missing",
            "copy the store key there (made once per store by `footfall keygen`)",
        )
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        yield Check(
            "key file",
            "FAIL",
            f"{path} is mode {mode:04o}: others can read the store key",
            f"chmod 600 {path}",
        )
        return
    try:
        ring, sched = KeyFile(path).load()
    except FootfallError as e:
        yield Check("key file", "FAIL", str(e), "copy the store key again from provisioning")
        return
    today = sched.epoch_of(int(time.time() * 1000))
    epoch = ring.epoch
    ring.erase()
    if not os.access(path.parent, os.W_OK):
        yield Check(
            "key file",
            "FAIL",
            f"{path.parent} is not writable: the key cannot "
            "roll forward (the old key would stay on disk)",
            f"chown the directory to the node's user (or move the key to {cfg.state_dir})",
        )
        return
    span = _capture_span(cfg.file_sources)
    if span is not None:
        first, last = sched.epoch_of(span[0]), sched.epoch_of(span[1])
        if last < epoch:
            yield Check(
                "key file",
                "FAIL",
                f"{path}: key epoch {epoch} is later than every frame of the capture files "
                f"(epochs {first}..{last}): all would be dropped as stale_epoch",
                "replay with the store key provisioned before the capture (its start "
                "date at or before the capture's first day)",
            )
            return
        if first < epoch:
            yield Check(
                "key file",
                "warn",
                f"{path}: key epoch {epoch} is later than the capture's start (epoch "
                f"{first}): its frames before epoch {epoch} are dropped as stale_epoch",
                "replay with the store key provisioned before the capture",
            )
            return
    elif cfg.live and epoch > today:
        yield Check(
            "key file",
            "FAIL",
            f"{path}: key epoch {epoch} is ahead of today's {today}: every frame until "
            "then is dropped as stale_epoch",
            "check the clock; re-provision the key if the clock is right",
        )
        return
    if st.st_uid != os.geteuid():
        yield Check(
            "key file",
            "warn",
            f"{path} belongs to uid {st.st_uid}, this is uid {os.geteuid()}",
            f"chown footfall {path} (the service's user)",
        )
        return
    yield Check("key file", "ok", f"{path}: epoch {epoch}, mode {mode:04o}")


def _capture_span(paths: list[Path]) -> tuple[int, int] | None:
    """(first, last) frame time of the capture files, Unix ms; None without files or
    if they cannot be read (the radio checks say why). Reads every record."""
    from sensing.capture.capture_file import CaptureReader

    lo = hi = None
    try:
        for p in paths:
            for rec in CaptureReader(p):
                t = rec.t_ns // 1_000_000
                lo = t if lo is None or t < lo else lo
                hi = t if hi is None or t > hi else hi
    except (FootfallError, OSError):
        return None
    return None if lo is None or hi is None else (lo, hi)


def clock_sync(cfg: NodeConfig, clock: ClockProbe | None) -> Iterator[Check]:
    """The clock is synchronized: a node that requires it (``[clock] require_sync``)
    refuses every frame and event otherwise, so that is a failure, live or replay."""
    state = (clock or KernelClock()).read()
    if state.synced:
        extra = []
        if state.offset_ms is not None:
            extra.append(f"offset {state.offset_ms:.1f} ms")
        if state.max_error_ms is not None:
            extra.append(f"max error {state.max_error_ms:.0f} ms")
        yield Check(
            "clock",
            "ok",
            f"synchronized ({state.source}" + (f", {', '.join(extra)}" if extra else "") + ")",
        )
        return
    fix = (
        "enable time sync: sudo timedatectl set-ntp true (or install chrony), then "
        "`timedatectl timesync-status`; every node must reach the same NTP server"
    )
    if cfg.require_sync:
        yield Check(
            "clock",
            "FAIL",
            f"not synchronized ({state.source}) and [clock] require_sync is on: every "
            "frame and event is refused (clock_unsynced)",
            fix
            if cfg.live
            else "capture files carry their own time: set [clock] require_sync = false",
        )
    else:
        yield Check(
            "clock",
            "warn",
            f"not synchronized ({state.source}); "
            "[clock] require_sync is off, so frames are taken at its time",
            fix,
        )


def spool_disk(cfg: NodeConfig) -> Iterator[Check]:
    """The state directory is writable, has room for the spool, and the spool is sound."""
    d = cfg.state_dir
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        yield Check(
            "spool",
            "FAIL",
            f"{d} is not writable by uid {os.geteuid()}",
            f"sudo install -d -o footfall {d} (systemd's StateDirectory does it)",
        )
        return
    free = shutil.disk_usage(probe).free
    need = cfg.spool_max_bytes + SPOOL_MARGIN_BYTES
    if free < need:
        yield Check(
            "spool",
            "FAIL",
            f"{free >> 20} MB free on {probe}, the spool may need {need >> 20} MB",
            "free disk space or lower [spool] max_mb",
        )
        return
    path = cfg.spool_path
    if path.exists():
        from sensing.node.spool import Spool, SpoolError

        try:
            with Spool(path, cfg.spool_max_batches, cfg.spool_max_bytes) as sp:
                ok, depth = sp.integrity(), sp.depth
        except SpoolError as e:
            ok, depth = str(e), 0
        if ok != "ok":
            yield Check(
                "spool",
                "FAIL",
                f"{path} is damaged: {ok}",
                f"mv {path} {path}.bad (its unsent batches are lost)",
            )
            return
        yield Check("spool", "ok", f"{path}: {depth} batches waiting; {free >> 20} MB free")
        return
    yield Check(
        "spool",
        "ok",
        f"{d}{'' if d.exists() else ' (to be created)'}: {free >> 20} MB free "
        f"(spool bound {cfg.spool_max_bytes >> 20} MB)",
    )
