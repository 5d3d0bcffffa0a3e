"""A store up from ``footfall provision store`` output alone (issue 22), all over TLS.

The site is provisioned for the bundled plan (6 nodes, a BI client ``dash``) with
``--broker-host 127.0.0.1 --port P`` (a free loopback port), ``--broker-etc`` the site's
own broker folder and ``--state-dir`` a test folder, so that what runs is what was
written:

* Mosquitto with the generated ``broker/footfall.conf`` (its TLS files and ACL by the
  paths written in it; the listener bound to loopback, and the test harness's lines
  Debian's mosquitto.conf would hold: log and persistence location);
* ``footfall aggregator --config aggregator/store.toml`` as generated;
* six ``footfall node`` processes, each on its generated ``node.toml`` with the installer's
  dry run applied (deploy/README.md): ``footfall simulate`` captures of the last minutes
  as sources instead of the radios and boards, the node's own state folder (six nodes
  share one disk here) and no clock-sync gate;
* a BI client on the generated BI certificate, receiving the retained aggregates.

Then the site is provisioned again with a plan holding a seventh node: its bundle is
added, the broker reloads the regenerated ACL (SIGHUP, as ``systemctl reload
mosquitto``), the seventh node delivers and the six, on their unchanged certificates,
deliver again.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
import tomli_w

from heatmap.aggregator.broker import free_port
from heatmap.spatial.data import __file__ as _data_init
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles, connect, make_client
from sensing.wire import payloads

from broker_fixtures import Broker, _common, expected_observations, footfall, wait_for
from ingest_fixtures import start_aggregator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PLAN = Path(_data_init).parent / "default_store.toml"
NODES = ("n1", "n2", "n3", "n4", "n5", "n6")
STORE = "demo"


def _provision(site: Path, plan: Path, port: int, state: Path) -> str:
    p = footfall(
        "provision", "store", "--floor", str(plan), "--out", str(site),
        "--broker-host", "127.0.0.1", "--bi", "dash", "--port", str(port),
        "--broker-etc", str(site / "broker"), "--state-dir", str(state),
    )  # fmt: skip
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return out


def _dry_run_node(
    site: Path, node: str, capture: Path, state: Path, speed: float | None = None
) -> Path:
    """The generated node.toml with the dry run of deploy/README.md: capture files
    instead of the radios (and the boards' recorded streams), its own state folder."""
    box = site / f"node-{node}"
    doc: dict[str, Any] = tomllib.loads((box / "node.toml").read_text())
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy2(box / "store.key", state / "store.key")  # the installer's step
    doc["node"]["state_dir"] = str(state)
    doc["node"]["keyfile"] = str(state / "store.key")
    doc["wifi"] = {"pcap": str(capture / "wifi.pcap")}
    doc["ble"] = {"pcap": str(capture / "ble.pcap")}
    boards = [
        {"replay": str(f), "door": f.name[len("door-") : -len(".uart")]}
        for f in sorted(capture.glob("door-*.uart"))
    ] + [
        {"replay": str(f), "floor": f.name[len("tiles-") : -len(".uart")]}
        for f in sorted(capture.glob("tiles-*.uart"))
    ]
    if boards:
        doc["boards"] = boards
    doc["clock"] = {"require_sync": False}
    doc["broker"]["reconnect_max_s"] = 1
    doc["replay"] = {"exit_when_done": True}
    if speed is not None:  # at the recorded pace, sped up
        doc["replay"] |= {"realtime": True, "speed": speed}
    out = box / "node-dry-run.toml"
    out.write_text(tomli_w.dumps(doc))
    return out


def _stored_obs(db: Path) -> dict[str, int]:
    """Observations stored per node, from the aggregator's batch ledger (retention may
    already have deleted passers-by's rows of a closed hour; the ledger stays)."""
    c = sqlite3.connect(db)
    try:
        rows = c.execute(
            "SELECT publisher, SUM(n) FROM batches WHERE kind = 'obs' GROUP BY publisher"
        ).fetchall()
    finally:
        c.close()
    return {str(p): int(n) for p, n in rows}


def _stored_is(db: Path, want: dict[str, int]) -> bool:
    got = _stored_obs(db)
    assert got == want, f"stored {got}, expected {want}"
    return True


def _start_nodes(configs: dict[str, Path]) -> dict[str, subprocess.Popen[str]]:
    return {n: footfall("node", "--config", str(c)) for n, c in configs.items()}


def _finish_nodes(procs: dict[str, subprocess.Popen[str]], timeout_s: float = 120) -> None:
    for n, p in procs.items():
        try:
            _, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for q in procs.values():
                q.kill()
            raise AssertionError(f"node {n} did not finish its replay in {timeout_s} s") from None
        assert p.returncode == 0, (n, err[-3000:])


def _midday_plan(out: Path) -> tuple[Path, str]:
    """The bundled plan in a time zone where it is midday now: the store's last minutes
    are busy (and away from the key roll) whatever hour the tests run at. Evening in
    Amsterdam, the simulator's arrival profile is 0.1 of the peak and 12 minutes may hold
    no entry at all."""
    offset = 12 - dt.datetime.now(dt.UTC).hour  # -11 .. +12 hours
    tz = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"  # POSIX sign: Etc/GMT-2 is UTC+2
    doc = PLAN.read_text()
    assert 'timezone = "Europe/Amsterdam"' in doc
    out.write_text(doc.replace('timezone = "Europe/Amsterdam"', f'timezone = "{tz}"'))
    return out, tz


def _simulate(out: Path, plan: Path, tz: str) -> None:
    """The last 12 minutes of the store (local time), so the occupancy is today's."""
    start = dt.datetime.now(ZoneInfo(tz)) - dt.timedelta(minutes=13)
    p = footfall(
        "simulate", "--out", str(out), "--floor", str(plan), "--hours", "0.2",
        "--start", start.replace(tzinfo=None, microsecond=0).isoformat(), "--seed", "5", "-q",
    )  # fmt: skip
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err


def test_a_store_runs_from_provision_store_output_alone(tmp_path: Path) -> None:
    site, port, state = tmp_path / "site", free_port(), tmp_path / "agg-state"
    plan, tz = _midday_plan(tmp_path / "plan.toml")
    _provision(site, plan, port, state)

    # every secret 0600, every folder 0700
    for p in site.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir():
            assert mode == 0o700, p
        elif p.suffix == ".key":
            assert mode == 0o600, p

    # the broker, on the config as written
    conf = (site / "broker" / "footfall.conf").read_text()
    assert f"listener {port}\n" in conf and f"cafile {site}/broker/tls/ca.crt" in conf
    run = tmp_path / "mosquitto"
    run.mkdir()
    text = _common(run, True) + conf.replace(f"listener {port}\n", f"listener {port} 127.0.0.1\n")
    broker = Broker(run, text, port).start()
    agg: subprocess.Popen[bytes] | None = None
    bi: mqtt.Client | None = None
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        agg = start_aggregator(site / "aggregator" / "store.toml", tmp_path / "aggregator.log")
        wait_for(lambda: " as aggregator-demo " in broker.log(), 30, "the aggregator connected")

        seen: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        box = site / "bi-dash"
        addr = BrokerAddress(
            "127.0.0.1", port, TlsFiles(box / "ca.crt", box / "bi-dash.crt", box / "bi-dash.key")
        )
        bi = make_client(addr, "dash")

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            with lock:
                seen[m.topic] = json.loads(m.payload)

        bi.on_message = on_message
        connect(bi, addr)
        bi.subscribe(f"footfall/v1/{STORE}/occupancy", qos=1)
        bi.subscribe(f"footfall/v1/{STORE}/footfall/+", qos=1)

        sim = tmp_path / "sim"
        _simulate(sim, plan, tz)
        key = site / "pki" / "store.key"
        want = {n: expected_observations(sim / "capture" / n, key) for n in NODES}
        assert all(v > 0 for v in want.values()), want
        # the 12 minutes at 30x: about 24 s of streaming, the seventh node added meanwhile
        procs |= _start_nodes(
            {
                n: _dry_run_node(site, n, sim / "capture" / n, tmp_path / "state" / n, 30.0)
                for n in NODES
            }
        )
        db = state / "store.db"
        wait_for(
            lambda: db.exists() and set(_stored_obs(db)) == set(NODES), 60, "all six delivering"
        )

        # a seventh node: re-provision with it in the plan, while the six stream
        before = {
            p.relative_to(site): p.read_bytes()
            for p in site.rglob("*")
            if p.is_file() and p.suffix in (".crt", ".key")
        }
        plan7 = tmp_path / "plan7.toml"
        plan7.write_text(
            plan.read_text()
            + '\n[[nodes]]\nid = "n7"\nx = 10.0\ny = 10.0\nz = 3.0\nwifi_channel = 1\n'
        )
        out = _provision(site, plan7, port, state)
        assert "new certificates: node-n7\n" in out, out
        changed = [str(p) for p, b in before.items() if (site / p).read_bytes() != b]
        assert not changed, f"re-provisioning touched {changed}"
        assert (site / "node-n7" / "node-n7.crt").exists()
        assert "user node-n7" in (site / "broker" / "acl").read_text()
        assert broker.running is not None and broker.running._proc is not None
        broker.running._proc.send_signal(signal.SIGHUP)  # systemctl reload mosquitto
        wait_for(lambda: "Reloading config" in broker.log(), 10, "the broker reloaded")
        mid = _stored_obs(db)
        assert all(mid[n] < want[n] for n in NODES), f"a replay ended before the reload: {mid}"

        # the seventh node replays a copy of n1's capture; the six go on to the end
        procs["n7"] = footfall(
            "node",
            "--config",
            str(_dry_run_node(site, "n7", sim / "capture" / "n1", tmp_path / "state" / "n7")),
        )
        _finish_nodes(procs)
        wait_for(
            lambda: _stored_is(db, want | {"n7": want["n1"]}), 30, "the seven nodes' observations"
        )
        conn = sqlite3.connect(db)
        doors = conn.execute("SELECT COUNT(*) FROM door_events").fetchone()[0]
        conn.close()
        assert doors > 0, "the door boards' recorded streams were delivered"

        # the BI client reads the retained occupancy (door-based: the plan has beams)
        topic = f"footfall/v1/{STORE}/occupancy"
        wait_for(lambda: topic in seen, 30, "the occupancy at the BI client")
        with lock:
            occ = seen[topic]
        payloads.validate("occupancy", occ)
        assert occ["source"] == "door" and occ["k"] == 5
        print(f"stored per node {_stored_obs(db)}, door events {doors}, occupancy {occ}")
        assert agg.poll() is None, (tmp_path / "aggregator.log").read_text()[-3000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if bi is not None:
            bi.disconnect()
            bi.loop_stop()
        if agg is not None:
            agg.terminate()
            agg.wait(timeout=60)
        broker.stop()
