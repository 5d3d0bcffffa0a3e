"""``footfall doctor``: is this node fit to run? One line per check, each saying
what is wrong and how to fix it; the exit code says fit (0) or not (1).

Checks, in the order an installer meets problems: the key file, the clock, the
spool's disk, the Wi-Fi radio (monitor mode, channel plan), the BLE adapter, the
sensor boards answering on their serial ports, GPIO beams, the broker's TLS with
the node's own certificate, and the broker's ACL (can the node publish its own
topics, and only those). Hardware and the system are read through small seams
(a command runner, the sysfs roots, a clock probe) that tests replace.

Example output::

    ok    key file      /var/lib/footfall/store.key: epoch 3, mode 0600
    FAIL  clock         not synchronized (adjtimex) — fix: sudo timedatectl set-ntp true …
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmware_bridge.errors import BrokerError, FootfallError
from sensing.capture.channel_plan import parse_phy_info, unsupported
from sensing.node.clock_sync import ClockProbe, KernelClock
from sensing.node.config import NodeConfig
from sensing.privacy.key_file import KeyFile
from sensing.provision import broker_acl
from sensing.runtime.mqtt_link import connect, make_client, probe_publish

Level = Literal["ok", "warn", "FAIL", "skip"]
Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]
SPOOL_MARGIN_BYTES = 50 << 20
CERT_WARN_DAYS = 30


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check."""

    name: str
    level: Level
    message: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{self.level:<5} {self.name:<13} {self.message}{fix}"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


@dataclass
class Doctor:
    """Runs the checks for one node config."""

    cfg: NodeConfig
    runner: Runner = _run
    clock: ClockProbe | None = None
    sys_class: Path = Path("/sys/class")
    serial_wait_s: float = 3.0
    broker_timeout_s: float = 5.0
    which: Callable[[str], str | None] = shutil.which

    def run(self) -> list[Check]:
        out: list[Check] = []
        for check in (
            self.key_file,
            self.clock_sync,
            self.spool_disk,
            self.wifi,
            self.ble,
            self.boards,
            self.beams,
            self.broker,
        ):
            try:
                out.extend(check())
            except Exception as e:  # a check that crashes is a finding, not a traceback
                out.append(Check(check.__name__, "FAIL", f"check crashed: {e}"))
        return out

    # ------------------------------------------------------------------ key, clock, disk

    def key_file(self) -> Iterator[Check]:
        path = self.cfg.keyfile
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
                f"chown the directory to the node's user (or move the key to {self.cfg.state_dir})",
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

    def clock_sync(self) -> Iterator[Check]:
        state = (self.clock or KernelClock()).read()
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
        if self.cfg.require_sync and self.cfg.live:
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

    def spool_disk(self) -> Iterator[Check]:
        d = self.cfg.state_dir
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
        need = self.cfg.spool_max_bytes + SPOOL_MARGIN_BYTES
        if free < need:
            yield Check(
                "spool",
                "FAIL",
                f"{free >> 20} MB free on {probe}, the spool may need {need >> 20} MB",
                "free disk space or lower [spool] max_mb",
            )
            return
        path = self.cfg.spool_path
        if path.exists():
            from sensing.node.spool import Spool, SpoolError

            try:
                with Spool(path, self.cfg.spool_max_batches, self.cfg.spool_max_bytes) as sp:
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
            f"(spool bound {self.cfg.spool_max_bytes >> 20} MB)",
        )

    # ------------------------------------------------------------------ radios

    def wifi(self) -> Iterator[Check]:
        w = self.cfg.wifi
        if w.pcap is not None:
            yield self._capture("wifi", w.pcap)
            return
        if not w.interface:
            yield Check("wifi", "skip", "no Wi-Fi source configured")
            return
        iface = w.interface
        iw = self.which("iw")
        if iw is None:
            yield Check(
                "wifi",
                "FAIL",
                "the iw tool is missing (monitor mode, channel hops)",
                "sudo apt-get install iw",
            )
            return
        net = self.sys_class / "net" / iface
        if not net.exists():
            yield Check(
                "wifi",
                "FAIL",
                f"no network interface {iface}",
                "plug in the USB Wi-Fi adapter; `iw dev` lists the radios",
            )
            return
        try:
            phy = (net / "phy80211" / "name").read_text().strip()
        except OSError:
            yield Check(
                "wifi",
                "FAIL",
                f"{iface} is not a Wi-Fi interface",
                "set [wifi] interface to a radio listed by `iw dev`",
            )
            return
        r = self.runner([iw, "phy", phy, "info"])
        info = parse_phy_info(r.stdout)
        if not info.monitor:
            yield Check(
                "wifi",
                "FAIL",
                f"{iface} ({phy}) does not support monitor mode",
                "use an adapter whose driver can monitor (e.g. mt7612u, mt7921u, "
                "ath9k_htc, rt2800usb); the Pi's built-in radio cannot",
            )
            return
        dev = self.runner([iw, "dev", iface, "info"])
        if "type monitor" not in dev.stdout:
            yield Check(
                "wifi",
                "FAIL",
                f"{iface} supports monitor mode but is not in it",
                f"sudo ip link set {iface} down && sudo iw dev {iface} set type monitor "
                f"&& sudo ip link set {iface} up (the unit's ExecStartPre does this)",
            )
            return
        missing = unsupported(w.plan, info)
        if missing:
            yield Check(
                "wifi",
                "warn",
                f"{iface} ({phy}) in monitor mode, but cannot tune to "
                f"channel(s) {','.join(map(str, missing))} of the plan",
                "remove them from [wifi] channels",
            )
            return
        yield Check(
            "wifi",
            "ok",
            f"{iface} ({phy}) in monitor mode; plan "
            f"{','.join(map(str, w.plan.channels))} every {w.plan.cycle_ms} ms",
        )

    def ble(self) -> Iterator[Check]:
        b = self.cfg.ble
        if b.pcap is not None:
            yield self._capture("ble", b.pcap)
            return
        if not b.adapter:
            yield Check("ble", "skip", "no BLE source configured")
            return
        dev = self.sys_class / "bluetooth" / b.adapter
        if not dev.exists():
            yield Check(
                "ble",
                "FAIL",
                f"no BLE adapter {b.adapter}",
                "enable Bluetooth (no dtoverlay=disable-bt in config.txt) or plug a "
                "USB dongle; `bluetoothctl list` shows adapters",
            )
            return
        for soft in dev.glob("rfkill*/soft"):
            if soft.read_text().strip() == "1":
                yield Check(
                    "ble",
                    "FAIL",
                    f"{b.adapter} is blocked by rfkill",
                    "sudo rfkill unblock bluetooth",
                )
                return
        try:
            import bleak  # noqa: F401
        except ImportError:
            yield Check(
                "ble", "FAIL", "the bleak package is missing", "pip install 'footfall[live]'"
            )
            return
        yield Check("ble", "ok", f"adapter {b.adapter} present")

    def _capture(self, name: str, path: Path) -> Check:
        from sensing.capture.capture_file import CaptureReader

        try:
            reader = CaptureReader(path)
            first = next(iter(reader), None)
            reader.close()
        except FootfallError as e:
            return Check(name, "FAIL", str(e), "point the config at a pcap/pcapng/btsnoop file")
        if first is None:
            return Check(name, "warn", f"{path}: no frames in the capture file")
        return Check(name, "ok", f"capture file {path} ({reader.stats.format})")

    # ------------------------------------------------------------------ boards

    def boards(self) -> Iterator[Check]:
        for b in self.cfg.boards:
            if b.replay is not None:
                from sensing.node.sources import board_events

                try:
                    events, _ = board_events(b.replay)
                except FootfallError as e:
                    yield Check(b.name, "FAIL", str(e), "check the recording path")
                    continue
                yield Check(b.name, "ok", f"recording {b.replay}: {len(events)} events")
                continue
            yield self._serial(b.name, str(b.port), b.baudrate)

    def _serial(self, name: str, port: str, baudrate: int) -> Check:
        from firmware_bridge.serial_link import SerialLink

        try:
            link = SerialLink(port, baudrate=baudrate)
        except FootfallError as e:
            fix = (
                "add the service user to the dialout group"
                if "ermission" in str(e)
                else "check the cable; `ls /dev/serial/by-id/`"
            )
            return Check(name, "FAIL", str(e), fix)
        try:
            deadline = time.monotonic() + self.serial_wait_s
            while time.monotonic() < deadline and not link.stats.frames:
                link.read(0.2)
            stats, boards = link.stats, dict(link.boards)
        finally:
            link.close()
        if stats.frames:
            fw = [
                f"board {i} fw {b.fw_version[0]}.{b.fw_version[1]}"
                if b.fw_version
                else f"board {i}"
                for i, b in sorted(boards.items())
            ]
            return Check(name, "ok", f"{port}: {', '.join(fw) or 'a board'} answering")
        if stats.bytes:
            return Check(
                name,
                "FAIL",
                f"{port}: {stats.bytes} bytes but no valid frame in {self.serial_wait_s:.0f} s",
                f"check the baud rate ({baudrate}) and that the board runs footfall firmware",
            )
        return Check(
            name,
            "FAIL",
            f"{port}: silent for {self.serial_wait_s:.0f} s (boards send a heartbeat every second)",
            "check the board's power and the TX/RX wiring",
        )

    def beams(self) -> Iterator[Check]:
        for bm in self.cfg.beams:
            from sensing.node.sources import pin_factory

            try:
                f = pin_factory(bm.pin_factory)
                pins = [f.pin(bm.pin_a), f.pin(bm.pin_b)]
                for p in pins:
                    p.close()
            except Exception as e:
                yield Check(
                    f"door/{bm.door}",
                    "FAIL",
                    f"GPIO pins {bm.pin_a}/{bm.pin_b}: {e}",
                    "install python3-lgpio and add the user to the gpio group",
                )
                continue
            yield Check(
                f"door/{bm.door}", "ok", f"beam pins {bm.pin_a}/{bm.pin_b} open ({bm.pin_factory})"
            )

    # ------------------------------------------------------------------ broker

    def broker(self) -> Iterator[Check]:
        b = self.cfg.broker
        addr = b.address()
        if b.ca is None:
            yield Check(
                "broker tls",
                "warn",
                f"{addr} without TLS: observations cross the "
                "network in clear and any client may publish",
                "give [broker] ca, cert and key (deploy/README.md)",
            )
        else:
            files = yield from self._tls_files()
            if not files:
                return
        client = make_client(addr, f"footfall-doctor-{self.cfg.node}-{os.getpid()}", v5=True)
        try:
            connect(client, addr, timeout_s=self.broker_timeout_s)
        except BrokerError as e:
            yield Check("broker", "FAIL", str(e), _broker_fix(str(e)))
            return
        try:
            who = f"node-{self.cfg.node}'s certificate" if b.cert else "the connection"
            yield Check("broker", "ok", f"{addr} accepted {who}")
            own = broker_acl.doctor_topic(self.cfg.store, self.cfg.node)
            denied = probe_publish(client, own, b"footfall doctor", self.broker_timeout_s)
            if denied:
                yield Check(
                    "broker acl",
                    "FAIL",
                    f"publishing its own topics is refused ({denied})",
                    "regenerate the ACL: footfall provision acl "
                    "(deploy/README.md), and reload mosquitto",
                )
                return
            other = broker_acl.doctor_topic(self.cfg.store, f"{self.cfg.node}-doctor-other")
            if probe_publish(client, other, b"footfall doctor", self.broker_timeout_s) is None:
                yield Check(
                    "broker acl",
                    "warn",
                    "the broker lets this node publish other nodes' topics: no ACL is active",
                    "install deploy/mosquitto/footfall.conf with its acl_file",
                )
                return
            yield Check("broker acl", "ok", "may publish its own topics, not other nodes'")
        finally:
            client.loop_stop()
            client.disconnect()

    def _tls_files(self) -> Generator[Check, None, bool]:
        b = self.cfg.broker
        for label, p in (("ca", b.ca), ("cert", b.cert), ("key", b.key)):
            if p is not None and not os.access(p, os.R_OK):
                yield Check(
                    "broker tls",
                    "FAIL",
                    f"[broker] {label} {p} is missing or unreadable",
                    "copy the node's files from `footfall provision certs`",
                )
                return False
        if b.key is not None and stat.S_IMODE(b.key.stat().st_mode) & 0o077:
            yield Check(
                "broker tls", "FAIL", f"{b.key} is readable by others", f"chmod 600 {b.key}"
            )
            return False
        if b.cert is not None:
            try:
                from sensing.provision.pki import cert_info

                info = cert_info(b.cert)
            except FootfallError as e:
                yield Check("broker tls", "warn", f"cannot inspect {b.cert}: {e}")
                return True
            want = broker_acl.node_user(self.cfg.node)
            now = dt.datetime.now(dt.UTC)
            if info.common_name != want:
                yield Check(
                    "broker tls",
                    "FAIL",
                    f"{b.cert} is for {info.common_name!r}, this "
                    f"node is {want!r}: the ACL would refuse its topics",
                    f"install {want}.crt/.key from provisioning",
                )
                return False
            if info.not_after < now:
                yield Check(
                    "broker tls",
                    "FAIL",
                    f"{b.cert} expired on {info.not_after:%Y-%m-%d}",
                    "issue a new node certificate",
                )
                return False
            days = (info.not_after - now).days
            if days < CERT_WARN_DAYS:
                yield Check(
                    "broker tls",
                    "warn",
                    f"{b.cert} expires in {days} days",
                    "issue a new node certificate soon",
                )
                return True
            yield Check(
                "broker tls",
                "ok",
                f"certificate {info.common_name}, valid until {info.not_after:%Y-%m-%d}",
            )
        return True


def _broker_fix(err: str) -> str:
    e = err.lower()
    if "certificate verify failed" in e:
        return (
            "the broker's certificate is not signed by [broker] ca, or its name does not "
            "match [broker] host"
        )
    if "refused the connection" in e or "before connack" in e or "alert" in e:
        return "the broker refused this certificate: is it from the store's CA?"
    if "refused" in e:
        return "is mosquitto running on that host and port? (systemctl status mosquitto)"
    return "check [broker] host/port, the network and the firewall (port 8883)"


def fit(checks: list[Check]) -> bool:
    """True if no check failed (warnings do not make a node unfit)."""
    return not any(c.level == "FAIL" for c in checks)
