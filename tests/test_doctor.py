"""``footfall doctor``: every check says what is wrong and how to fix it, and the
exit code says whether the node is fit. Real broker (TLS + ACL), real pty board;
the radio and sysfs are faked through the doctor's seams."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_bridge.protocol import BoardKind, Heartbeat
from firmware_bridge.pty_board import PtyBoard
from heatmap.aggregator.broker import free_port
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.config import BleConfig, BoardConfig, NodeConfig, WifiConfig
from sensing.node.doctor.check import Check, fit
from sensing.node.doctor.runner import Doctor
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import payloads, topics

from broker_fixtures import (
    STORE,
    Broker,
    StorePki,
    make_pki,
    node_toml,
    plain_broker,
    store_key,
    tls_broker,
    write_capture,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StorePki, Broker, Path]]:
    d = tmp_path_factory.mktemp("doctor")
    p = make_pki(d / "pki")
    b = tls_broker(d / "broker", p).start()
    cap = write_capture(d / "cap", frames_per_s=10, seconds=10).dir
    yield p, b, cap
    b.stop()


def _cfg(tmp_path: Path, addr: BrokerAddress, cap: Path, **extra: object) -> NodeConfig:
    key = store_key(tmp_path / "state" / "store.key")
    toml = node_toml(
        tmp_path / "node.toml", addr, tmp_path / "state", key,
        wifi={"pcap": str(cap / "wifi.pcap")}, ble={"pcap": str(cap / "ble.pcap")}, **extra,
    )  # fmt: skip
    return node_config.load(toml)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _retain_ack(p: StorePki, b: Broker, payload: bytes) -> None:
    """Publish (as the aggregator) the retained acknowledgement of node-n1."""
    addr = BrokerAddress("127.0.0.1", b.port, p.client("aggregator-s1"))
    c = make_client(addr, "doctor-test-agg", v5=True)
    connect(c, addr)
    try:
        info = c.publish(topics.ack_topic(STORE, "obs", "n1"), payload, qos=1, retain=True)
        info.wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def test_the_aggregators_acknowledgement_is_checked(
    store: tuple[StorePki, Broker, Path], tmp_path: Path
) -> None:
    """None retained (an ACL or aggregator without acknowledgements): a warning saying
    the node keeps every batch; one retained: ok with its seq."""
    p, b, cap = store
    cfg = _cfg(tmp_path, BrokerAddress("127.0.0.1", b.port, p.client("node-n1")), cap)
    _retain_ack(p, b, b"")  # clears it
    got = _by_name(Doctor(cfg, clock=FixedClock(True), broker_timeout_s=1).run())
    assert got["aggregator ack"].level == "warn", got["aggregator ack"].line()
    assert "keeps every batch" in got["aggregator ack"].message
    assert "footfall provision acl" in (got["aggregator ack"].fix or "")
    _retain_ack(p, b, payloads.encode({"v": 1, "seq": 41, "runs": [[0, 41]], "t": 1}))
    got = _by_name(Doctor(cfg, clock=FixedClock(True)).run())
    assert got["aggregator ack"].level == "ok" and "up to seq 41" in got["aggregator ack"].message
    off = replace(cfg, keep_until_stored=False)
    assert "aggregator ack" not in _by_name(Doctor(off, clock=FixedClock(True)).run())


def test_a_healthy_node_is_fit(store: tuple[StorePki, Broker, Path], tmp_path: Path) -> None:
    p, b, cap = store
    cfg = _cfg(tmp_path, BrokerAddress("127.0.0.1", b.port, p.client("node-n1")), cap)
    _retain_ack(p, b, payloads.encode({"v": 1, "seq": 7, "runs": [[0, 7]], "t": 1}))
    checks = Doctor(cfg, clock=FixedClock(True)).run()
    assert fit(checks), "\n".join(c.line() for c in checks)
    got = _by_name(checks)
    assert {
        "key file",
        "clock",
        "spool",
        "wifi",
        "ble",
        "broker tls",
        "broker",
        "broker acl",
        "aggregator ack",
    } <= set(got)
    assert all(c.level == "ok" for c in checks), "\n".join(c.line() for c in checks)
    assert got["broker acl"].message == "may publish its own topics, not other nodes'"
    assert got["key file"].message.endswith("mode 0600")


def test_each_problem_says_what_and_how_to_fix(
    store: tuple[StorePki, Broker, Path], tmp_path: Path
) -> None:
    p, b, cap = store
    cfg = _cfg(tmp_path, BrokerAddress("127.0.0.1", b.port, p.client("node-n2")), cap)
    cfg = replace(cfg, boards=(BoardConfig(replay=tmp_path / "nope.uart", door="main"),))
    cfg.keyfile.chmod(0o644)
    checks = Doctor(cfg, clock=FixedClock(False)).run()
    got = _by_name(checks)
    assert not fit(checks)
    assert got["key file"].level == "FAIL" and got["key file"].fix == f"chmod 600 {cfg.keyfile}"
    assert got["broker tls"].level == "FAIL" and "is for 'node-n2'" in got["broker tls"].message
    assert got["door/main"].level == "FAIL"
    assert got["clock"].level == "warn"  # files and require_sync off: a warning only
    for c in checks:
        line = c.line()
        assert "\n" not in line
        if c.level == "FAIL":
            assert " — fix: " in line, line


def test_broker_problems(store: tuple[StorePki, Broker, Path], tmp_path: Path) -> None:
    p, b, cap = store
    down = _cfg(tmp_path / "a", BrokerAddress("127.0.0.1", free_port(), p.client("node-n1")), cap)
    got = _by_name(Doctor(down, clock=FixedClock(True), broker_timeout_s=2).run())
    assert got["broker"].level == "FAIL" and "refused" in got["broker"].message.lower()
    rogue = _cfg(tmp_path / "b", BrokerAddress("127.0.0.1", b.port, p.rogue_client()), cap)
    got = _by_name(Doctor(rogue, clock=FixedClock(True), broker_timeout_s=3).run())
    assert got["broker"].level == "FAIL" and got["broker"].fix
    # an open broker without ACL: reachable, but the doctor warns
    open_broker = plain_broker(tmp_path / "open").start()
    try:
        cfg = _cfg(tmp_path / "c", open_broker.address, cap)
        got = _by_name(Doctor(cfg, clock=FixedClock(True)).run())
        assert got["broker tls"].level == "warn" and got["broker acl"].level == "warn"
        assert got["broker"].level == "ok"
    finally:
        open_broker.stop()


IW_PHY = "Wiphy phy1\n\t\t\t* 2412 MHz [1] (20.0 dBm)\n\t\t\t* 5180 MHz [36] (20.0 dBm)\n"
MODES = "\tSupported interface modes:\n\t\t * managed\n\t\t * monitor\n"


def _fake_sys(tmp_path: Path, iface: str | None, hci: str | None, blocked: bool = False) -> Path:
    root = tmp_path / "sys" / "class"
    if iface:
        (root / "net" / iface / "phy80211").mkdir(parents=True)
        (root / "net" / iface / "phy80211" / "name").write_text("phy1\n")
    if hci:
        rf = root / "bluetooth" / hci / "rfkill3"
        rf.mkdir(parents=True)
        (rf / "soft").write_text("1\n" if blocked else "0\n")
    return root


def _runner(monitor: bool, in_monitor: bool) -> object:
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        if argv[1] == "phy":
            return subprocess.CompletedProcess(argv, 0, IW_PHY + (MODES if monitor else ""), "")
        typ = "monitor" if in_monitor else "managed"
        return subprocess.CompletedProcess(argv, 0, f"Interface wlan1\n\ttype {typ}\n", "")

    return run


def test_radio_checks(tmp_path: Path) -> None:
    base = NodeConfig(
        store="s1", node="n1", keyfile=tmp_path / "k", state_dir=tmp_path,
        wifi=WifiConfig(interface="wlan1"), ble=BleConfig(adapter="hci0"),
    )  # fmt: skip

    def run(sys_root: Path, runner: object, iw: str | None = "/usr/sbin/iw") -> dict[str, Check]:
        d = Doctor(base, runner=runner, sys_class=sys_root, which=lambda _n: iw)  # type: ignore[arg-type]
        return {c.name: c for c in [*d.wifi(), *d.ble()]}

    ok = run(_fake_sys(tmp_path / "1", "wlan1", "hci0"), _runner(True, True))
    assert ok["wifi"].level == "warn" and "149" in ok["wifi"].message  # plan wider than radio
    assert ok["ble"].level in ("ok", "FAIL")  # FAIL only if bleak is not installed
    no_iw = run(_fake_sys(tmp_path / "2", "wlan1", None), _runner(True, True), iw=None)
    assert no_iw["wifi"].fix == "sudo apt-get install iw"
    assert no_iw["ble"].level == "FAIL" and "no BLE adapter hci0" in no_iw["ble"].message
    no_mon = run(_fake_sys(tmp_path / "3", "wlan1", "hci0", blocked=True), _runner(False, False))
    assert (
        no_mon["wifi"].level == "FAIL" and "does not support monitor mode" in no_mon["wifi"].message
    )
    assert no_mon["ble"].fix == "sudo rfkill unblock bluetooth"
    managed = run(_fake_sys(tmp_path / "4", "wlan1", "hci0"), _runner(True, False))
    assert "set type monitor" in managed["wifi"].fix
    gone = run(_fake_sys(tmp_path / "5", None, None), _runner(True, True))
    assert gone["wifi"].message == "no network interface wlan1"


def test_serial_board_answering_or_silent(tmp_path: Path) -> None:
    cfg = NodeConfig(store="s1", node="n1", keyfile=tmp_path / "k", state_dir=tmp_path)
    with PtyBoard(board=4) as board:
        stop = threading.Event()

        def beat() -> None:
            board.hello(BoardKind.DOOR)
            t = 0
            while not stop.wait(0.2):
                t += 200
                board.send(Heartbeat(t))

        th = threading.Thread(target=beat, daemon=True)
        th.start()
        try:
            c = Doctor(
                replace(cfg, boards=(BoardConfig(port=board.port, door="main"),)),
                serial_wait_s=2,
            )
            (answer,) = list(c.boards())
        finally:
            stop.set()
            th.join()
        assert answer.level == "ok" and "answering" in answer.message
    with PtyBoard(board=5) as silent:
        d = Doctor(replace(cfg, boards=(BoardConfig(port=silent.port, door="x"),)),
                   serial_wait_s=0.5)  # fmt: skip
        (quiet,) = list(d.boards())
        assert quiet.level == "FAIL" and "silent" in quiet.message
    gone = Doctor(replace(cfg, boards=(BoardConfig(port="/dev/ttyNOPE9", door="x"),)))
    (missing,) = list(gone.boards())
    assert missing.level == "FAIL" and missing.fix


def test_cli_prints_one_line_per_check_and_exits_by_fitness(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=5, seconds=5).dir
    key = store_key(tmp_path / "state" / "store.key")
    toml = node_toml(
        tmp_path / "node.toml", BrokerAddress("127.0.0.1", free_port()), tmp_path / "state", key,
        wifi={"pcap": str(cap / "wifi.pcap")},
    )  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "doctor", "--config", str(toml)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    lines = r.stdout.splitlines()
    assert r.returncode == 1, r.stdout + r.stderr
    assert lines[0].startswith("ok    config")
    assert any(x.startswith("FAIL  broker ") for x in lines)
    assert lines[-1] == "footfall doctor: node n1 is NOT fit to run (1 problem)"
    bad = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "doctor", "--config", str(tmp_path / "no.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stdout.startswith("FAIL  config")
