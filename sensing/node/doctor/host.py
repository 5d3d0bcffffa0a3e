"""``footfall doctor``'s checks of the node's own host: the key file, the clock and
the spool's disk."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator

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
    not ahead of today, owned by this user."""
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
    if ring.epoch > today:
        yield Check(
            "key file",
            "warn",
            f"{path}: key epoch {ring.epoch} is ahead of "
            f"today's {today}: frames until then are dropped",
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
    yield Check("key file", "ok", f"{path}: epoch {ring.epoch}, mode {mode:04o}")


def clock_sync(cfg: NodeConfig, clock: ClockProbe | None) -> Iterator[Check]:
    """The clock is synchronized (a live node that requires it refuses frames otherwise)."""
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
    if cfg.require_sync and cfg.live:
        yield Check(
            "clock",
            "FAIL",
            f"not synchronized ({state.source}): the node will refuse to publish observations",
            fix,
        )
    else:
        yield Check(
            "clock",
            "warn",
            f"not synchronized ({state.source}); "
            "[clock] require_sync is off or the sources are files",
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
