"""Helpers for the node daemon's tests: capture files, a store PKI, Mosquitto
brokers that can be killed and restarted on the same port (plain, or the shipped
TLS + ACL config), node configs, and counting what an aggregator stored.

Everything runs on loopback with real Mosquitto; certificates are made here
with ``cryptography`` (through :mod:`sensing.provision.pki`).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from heatmap.aggregator.broker import RunningBroker, free_port, start_mosquitto
from heatmap.aggregator.pid_class import HOUR_MS
from heatmap.simulate import frames
from sensing.capture.capture_file import CaptureReader
from sensing.node.pipeline import NodePipeline
from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.provision import pki
from sensing.provision.broker_acl import StoreLayout, acl_text
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO / "deploy" / "mosquitto" / "footfall.conf"
STORE = "s1"
T0_MS = 1_795_000_000_000
"""2026-11-19 (a Thursday), well inside key epoch 0 of :func:`store_key`"""


def recent_start_in_one_hour(
    span_s: float, now_ms: int | None = None, ago_ms: int = 600_000, margin_ms: int = 120_000
) -> int:
    """A start time (Unix ms) for ``span_s`` seconds of rows made ``ago_ms`` ago, or
    earlier, so that they end ``margin_ms`` before an hour boundary. Rows that reach past
    the end of their hour let the live aggregator close that hour, and closing it deletes
    its passers-by's rows: a test counting stored rows then fails at about ten past the
    hour (the fault suite did: 23 rows of 3,000 left)."""
    t0 = (int(time.time() * 1000) if now_ms is None else now_ms) - ago_ms
    end = t0 + int(span_s * 1000) + margin_ms
    if (end - 1) // HOUR_MS != t0 // HOUR_MS:
        t0 = end // HOUR_MS * HOUR_MS - int(span_s * 1000) - margin_ms
    return t0


def wait_for(cond: Callable[[], object], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; an AssertionError from it means "not yet"."""
    deadline = time.monotonic() + timeout_s
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except AssertionError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout_s:.0f} s") from last


# ------------------------------------------------------------------ capture files


def _pcap(path: Path, linktype: int, rows: list[tuple[int, bytes]]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for t_ms, data in sorted(rows, key=lambda r: r[0]):
            f.write(struct.pack("<IIII", t_ms // 1000, (t_ms % 1000) * 1000, len(data), len(data)))
            f.write(data)


@dataclass(frozen=True)
class Capture:
    dir: Path
    frames: int
    macs: frozenset[bytes]
    """every transmitter address in the files: canaries for logs and payloads"""


def write_capture(
    out: Path,
    frames_per_s: float = 50.0,
    seconds: float = 60.0,
    devices: int = 40,
    t0_ms: int = T0_MS,
    seed: int = 1,
) -> Capture:
    """``wifi.pcap`` (radiotap probe requests) and ``ble.pcap`` (LL adverts) of one
    node: ``devices`` phones, about ``frames_per_s`` frames a second, half each."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    macs = [bytes([0x02 | (rng.randrange(256) & 0xFC)]) + rng.randbytes(5) for _ in range(devices)]
    wifi: list[tuple[int, bytes]] = []
    ble: list[tuple[int, bytes]] = []
    n = int(frames_per_s * seconds)
    for i in range(n):
        t = t0_ms + int(i * 1000 / frames_per_s) + rng.randrange(5)
        mac = macs[rng.randrange(devices)]
        rssi = rng.randrange(-90, -40)
        if i % 2 == 0:
            ch = rng.choice((1, 6, 11, 36))
            body = frames.probe_request_body(mac, i & 0xFFF, b"", [(1, b"\x02\x04\x0b\x16")], ch)
            wifi.append((t, frames.wifi_frame(body, ch, rssi)))
        else:
            pdu = frames.adv_pdu(mac, frames.adv_data_for("ios", rng.randbytes(5)))
            ble.append((t, frames.ble_frame(pdu, rng.choice((37, 38, 39)), rssi)))
    _pcap(out / "wifi.pcap", 127, wifi)
    _pcap(out / "ble.pcap", 256, ble)
    return Capture(out, n, frozenset(macs))


def store_key(path: Path) -> Path:
    from datetime import date

    KeyFile.provision(path, date(2026, 11, 1), 4, "Europe/Amsterdam", key=bytes(range(32)))
    return path


def expected_observations(capture: Path, keyfile: Path) -> int:
    """Observations the node pipeline makes of a capture directory, counted offline."""
    import heapq

    ring, sched = KeyFile(keyfile).load()
    pipe = NodePipeline(Pseudonymizer(ring, sched))
    readers = [iter(CaptureReader(p)) for p in sorted(capture.glob("*.pcap"))]
    for rec in heapq.merge(*readers, key=lambda r: r.t_ns):
        pipe.process(rec)
    return pipe.emitted


# ------------------------------------------------------------------ brokers


class Broker:
    """A Mosquitto on a fixed loopback port that can be SIGKILLed and restarted
    with its persistence file (the aggregator's session survives)."""

    def __init__(self, workdir: Path, conf_text: str, port: int, tls: TlsFiles | None = None):
        self.workdir = workdir
        self.port = port
        self.tls = tls
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(conf_text)
        self.running: RunningBroker | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port, self.tls)

    def start(self) -> Broker:
        self.running = start_mosquitto(self.workdir, conf=self.conf, port=self.port)
        return self

    def kill9(self) -> None:
        assert self.running is not None and self.running._proc is not None
        self.running._proc.send_signal(signal.SIGKILL)  # what a crash does
        self.running._proc.wait(timeout=10)
        self.running._proc = None
        self.running = None

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""


def _common(workdir: Path, persistence: bool) -> str:
    user = "user root\n" if os.geteuid() == 0 else ""  # else it drops to `mosquitto`
    return (
        f"{user}persistence {'true' if persistence else 'false'}\n"
        f"persistence_location {workdir}/\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
    )


def plain_broker(workdir: Path, port: int | None = None, persistence: bool = True) -> Broker:
    """An open loopback broker (no TLS), persistence on (autosave every second)."""
    port = port or free_port()
    conf = (
        _common(workdir, persistence)
        + f"listener {port} 127.0.0.1\nallow_anonymous true\nautosave_interval 1\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
    )
    return Broker(workdir, conf, port)


@dataclass(frozen=True)
class StorePki:
    dir: Path
    issued: dict[str, pki.Issued]
    rogue: pki.Issued
    """a ``node-n1`` certificate from another CA"""

    def client(self, name: str) -> TlsFiles:
        i = self.issued[name]
        return TlsFiles(self.issued["ca"].cert, i.cert, i.key)

    def rogue_client(self) -> TlsFiles:
        return TlsFiles(self.issued["ca"].cert, self.rogue.cert, self.rogue.key)


LAYOUT = StoreLayout(STORE, {"n1": ("door/main",), "n2": ("floor/tiles",)}, ("dash",))


def make_pki(out: Path, layout: StoreLayout = LAYOUT) -> StorePki:
    issued = pki.provision_store(
        out, layout.store, list(layout.nodes), list(layout.bi_clients), ["localhost", "127.0.0.1"]
    )
    other = pki.make_ca(out / "rogue" / "ca", "someone else's CA")
    rogue = pki.issue(other, out / "rogue", "node-n1")
    return StorePki(out, issued, rogue)


def tls_broker(workdir: Path, store_pki: StorePki, layout: StoreLayout = LAYOUT) -> Broker:
    """Mosquitto with the shipped ``deploy/mosquitto/footfall.conf`` (paths and port
    rewritten for loopback) and the ACL generated for ``layout``."""
    port = free_port()
    root = workdir / "etc"
    tls = root / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "broker"):
        i = store_pki.issued[name]
        (tls / f"{name}.crt").write_bytes(i.cert.read_bytes())
        if name == "broker":
            (tls / "broker.key").write_bytes(i.key.read_bytes())
    (root / "acl").write_text(acl_text(layout))
    shipped = SHIPPED_CONF.read_text()
    assert "listener 8883\n" in shipped and "/etc/mosquitto/footfall" in shipped
    conf = _common(workdir, True) + shipped.replace("/etc/mosquitto/footfall", str(root)).replace(
        "listener 8883\n", f"listener {port} 127.0.0.1\n"
    )
    return Broker(workdir, conf, port, store_pki.client("aggregator-s1"))


# ------------------------------------------------------------------ node configs


def node_toml(
    path: Path, addr: BrokerAddress, state_dir: Path, keyfile: Path, **extra: Any
) -> Path:
    """Write a node.toml for the broker at ``addr``; ``extra`` tables are merged in."""
    b: dict[str, Any] = {"host": addr.host, "port": addr.port, "reconnect_max_s": 1}
    if addr.tls is not None:
        b["ca"] = str(addr.tls.ca)
        if addr.tls.cert is not None and addr.tls.key is not None:
            b["cert"], b["key"] = str(addr.tls.cert), str(addr.tls.key)
    doc: dict[str, Any] = {
        "node": {"store": STORE, "id": "n1", "keyfile": str(keyfile), "state_dir": str(state_dir)},
        "broker": b,
        "clock": {"require_sync": False},
    }
    for k, v in extra.items():
        if isinstance(v, dict):
            doc.setdefault(k, {}).update(v)
        else:
            doc[k] = v
    path.write_text(tomli_w.dumps(doc))
    return path


def footfall(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    """Start ``footfall ARGS`` as a subprocess (stdout/stderr captured)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "sensing.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
        **kw,
    )


# ------------------------------------------------------------------ aggregator side


def stored(db: Path, node: str = "n1") -> tuple[int, int, int]:
    """(obs rows, obs batches, duplicate obs rows) stored by the aggregator."""
    c = sqlite3.connect(db)
    try:
        rows = c.execute("SELECT COUNT(*) FROM obs WHERE node=?", (node,)).fetchone()[0]
        batches = c.execute(
            "SELECT COUNT(*) FROM batches WHERE kind='obs' AND publisher=?", (node,)
        ).fetchone()[0]
        dup = c.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM obs WHERE node=? "
            "GROUP BY t_ms, pid, rssi, band, flags, sig HAVING n > 1)",
            (node,),
        ).fetchone()[0]
    finally:
        c.close()
    return int(rows), int(batches), int(dup)
