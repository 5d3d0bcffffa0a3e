"""The privacy officer's kit on real data: ``footfall privacy audit`` and a report of fewer
than k visitors.

The audit runs on the database, reports and logs a real demo wrote (nodes → Mosquitto →
aggregator → live aggregates), with every address and SSID of the simulated air as a
canary: it passes. Then the same database, copied, with a raw MAC planted in a table
and in a log line, a count below k, a loosened mode, a widened ACL: each is found, in
one line that does not repeat the address, and the audit fails.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scapy.layers.bluetooth4LE import BTLE_ADV
from scapy.layers.dot11 import Dot11, Dot11Elt
from scapy.utils import PcapReader

import heatmap.spatial.data
from heatmap.spatial.floorplan import load_default
from sensing.cli.main import main
from sensing.privacy.key_file import KeyFile
from sensing.provision.broker_acl import acl_text, layout_from_plan

from conftest import DemoRun

pytestmark = pytest.mark.slow

PLANTED = "3C:22:FB:01:02:5F"
"""a raw MAC address no simulated device has (the simulator's are random)"""
FLOOR = Path(heatmap.spatial.data.__file__).parent / "default_store.toml"


def _store_toml(tmp: Path, db: Path, extra: str = "") -> Path:
    cfg = tmp / "store.toml"
    cfg.write_text(
        f'[aggregator]\nstore = "demo"\ndb = "{db}"\nfloor_plan = "{FLOOR}"\n'
        f'[privacy]\ncontroller = "Demo Retail SARL"\n{extra}'
    )
    return cfg


AIR_FRAMES = 500
"""frames read from each capture file for canaries (scapy reads ~1,500 a second; every
frame of the demo takes 36 s, and tests/test_privacy_canaries.py checks them all)"""


def _air_canaries(demo_run: DemoRun, path: Path) -> int:
    """The transmitter addresses and SSIDs of the first frames of each of the demo's
    capture files, one a line."""
    seen: set[str] = set()
    for pcap in (demo_run.out / "sim" / "capture").rglob("*.pcap"):
        with PcapReader(str(pcap)) as rd:
            for p in itertools.islice(rd, AIR_FRAMES):
                if p.haslayer(Dot11):
                    seen.add(p[Dot11].addr2)
                    el = p[Dot11Elt]
                    if el.ID == 0 and el.info:
                        seen.add(bytes(el.info).decode("utf-8", "replace"))
                elif p.haslayer(BTLE_ADV):
                    seen.add(p[BTLE_ADV].AdvA)
    path.write_text("# the simulated air\n" + "\n".join(sorted(seen)) + "\n")
    return len(seen)


def _copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    os.chmod(dst, 0o600)
    return dst


def _audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["privacy", "audit", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_audit_passes_on_a_clean_demo_run(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canaries = tmp_path / "canaries.txt"
    assert _air_canaries(demo_run, canaries) > 50
    cfg = _store_toml(tmp_path, demo_run.out / "aggregator" / "store.db")
    out = tmp_path / "audit.json"
    rc, text, err = _audit(
        capsys,
        "--config", str(cfg),
        "--reports", str(demo_run.out / "report"),
        "--canary", str(canaries),
        "--at", "watermark",  # the demo's store runs on the simulated clock
        "--json", str(out),
    )  # fmt: skip
    assert rc == 0, text + err
    assert text.splitlines()[-1] == "PASS: 4 checks, no finding"
    rep = json.loads(out.read_text())
    assert rep["passed"] and rep["findings"] == 0
    names = [c["name"] for c in rep["checks"]]
    assert names == [
        "store: raw identifiers (database, logs, reports)",
        "store: retention (standard mode)",
        "store: every stored aggregate k-anonymous (k = 5)",
        "store: file modes",
    ]
    assert "rows" in rep["checks"][0]["checked"] and "aggregates" in rep["checks"][2]["checked"]
    # the same canaries are found where they are: the capture files (the radio's stand-in)
    rc, text, _ = _audit(
        capsys, "--config", str(cfg), "--reports", str(demo_run.out / "sim" / "capture"),
        "--canary", str(canaries), "--at", "watermark",
    )  # fmt: skip
    assert rc == 1 and "canary" in text and ".pcap" in text
    # judged at the wall clock, the simulated day's visitors' rows are long overdue
    rc, text, _ = _audit(capsys, "--config", str(cfg))
    assert rc == 1 and "table obs:" in text and "pseudonymous rows older than 25.08 h" in text


def test_audit_finds_a_planted_mac_in_a_log_line_and_in_a_table(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _copy_db(demo_run.out / "aggregator" / "store.db", tmp_path / "store.db")
    cfg = _store_toml(tmp_path, db)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "footfall-aggregator.log"
    log.write_text("2026-11-20 10:00:01 footfall-aggregator: 6 nodes online\n")
    args = ["--config", str(cfg), "--logs", str(logs), "--at", "watermark"]
    assert _audit(capsys, *args)[0] == 0  # clean so far
    with log.open("a") as f:
        f.write(f"2026-11-20 10:00:02 footfall-aggregator: n1: probe {PLANTED.lower()} -61\n")
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO rejects VALUES (?, 1)", (f"bad frame from {PLANTED}",))
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # else the WAL holds it too (found too)
    rc, text, _ = _audit(capsys, *args)
    assert rc == 1
    found = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("- ")]
    assert len(found) == 2, text
    assert any("table rejects, column reason: 1 × a raw address" in f for f in found)
    assert any("footfall-aggregator.log: 1 × a raw address" in f for f in found)
    assert all("**:**:**:**:**:5f" in f for f in found)
    assert PLANTED.lower() not in text.lower()  # the audit never repeats what it found
    assert text.splitlines()[-1] == "FAIL: 2 findings in 1 of 4 checks"
    # deleted, the row's bytes stay in the file until overwritten: still found, and said so
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA secure_delete = OFF")
        c.execute("DELETE FROM rejects WHERE reason LIKE 'bad frame%'")
    rc, text, _ = _audit(capsys, "--config", str(cfg), "--at", "watermark")
    assert rc == 1 and "outside its live rows (deleted, not overwritten)" in text
    with sqlite3.connect(db) as c:
        c.execute("VACUUM")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # VACUUM's new pages go via the WAL
    assert _audit(capsys, "--config", str(cfg), "--at", "watermark")[0] == 0


def test_audit_finds_counts_below_k_a_loose_mode_and_a_wider_acl(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _copy_db(demo_run.out / "aggregator" / "store.db", tmp_path / "store.db")
    acl = tmp_path / "acl"
    acl.write_text(acl_text(layout_from_plan(load_default(), ("dash",))))
    cfg = _store_toml(tmp_path, db)
    args = ["--config", str(cfg), "--at", "watermark", "--acl", str(acl)]
    rc, text, _ = _audit(capsys, *args)
    assert rc == 0 and "pass  broker: ACL and settings" in text
    with sqlite3.connect(db) as c:
        (period,) = c.execute(
            "SELECT period FROM aggregates WHERE kind = 'zone' AND entity = 'checkout' "
            "AND payload ->> 'unit' = 'slot' AND payload ->> 'visits' >= 5 LIMIT 1"
        ).fetchone()
        c.execute(
            "UPDATE aggregates SET payload = json_set(payload, '$.visits', 3, '$.devices', 3) "
            "WHERE kind = 'zone' AND entity = 'checkout' AND period = ?",
            (period,),
        )
    os.chmod(db, 0o644)
    acl.write_text(
        "topic read #\n"
        + acl.read_text().replace(
            "user bi-dash\n", "user bi-dash\ntopic read footfall/v1/demo/node/+/obs\n"
        )
    )
    rc, text, _ = _audit(capsys, *args)
    assert rc == 1
    assert f"aggregate zone/checkout {period}: visits = 3, below k = 5 and not suppressed" in text
    assert f"aggregate zone/checkout {period}: devices = 3, below k = 5" in text
    assert "the store database is mode 0644, readable by everyone (chmod 0600 or 0640)" in text
    assert "every client may read #" in text
    assert (
        "user bi-dash may read footfall/v1/demo/node/+/obs: the generated ACL does not grant it"
        in text
    )
    assert text.splitlines()[-1] == "FAIL: 5 findings in 3 of 5 checks"


def test_audit_of_the_broker_conf_and_its_persistence(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _copy_db(demo_run.out / "aggregator" / "store.db", tmp_path / "store.db")
    cfg = _store_toml(tmp_path, db)
    acl = tmp_path / "acl"
    acl.write_text(acl_text(layout_from_plan(load_default())))
    state = tmp_path / "mosquitto"
    state.mkdir()
    (state / "mosquitto.db").write_bytes(b"\x00\x01retained footfall/v1/demo/occupancy\x00")
    os.chmod(state / "mosquitto.db", 0o600)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"allow_anonymous false\nacl_file {acl}\npersistence true\npersistence_location {state}\n"
    )
    args = ["--config", str(cfg), "--at", "watermark", "--broker-conf", str(conf)]
    rc, text, _ = _audit(capsys, *args)
    assert rc == 0, text
    assert f"persistence to {state / 'mosquitto.db'}" in text
    # the queue of a persistent session saved with a raw address in it; anonymous access
    (state / "mosquitto.db").write_bytes(b"\x00queued " + PLANTED.encode() + b"\x00")
    conf.write_text(conf.read_text().replace("allow_anonymous false", "allow_anonymous true"))
    rc, text, _ = _audit(capsys, *args)
    assert rc == 1
    assert f"{state / 'mosquitto.db'}: 1 × a raw address (**:**:**:**:**:5f)" in text
    assert "allow_anonymous true: clients without a certificate may connect" in text


def test_node_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyfile = tmp_path / "keys" / "store.key"
    keyfile.parent.mkdir()
    KeyFile.provision(keyfile, date(2026, 11, 20), 4, "Europe/Amsterdam")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    spool = state / "spool.db"
    with sqlite3.connect(spool) as c:
        c.execute("CREATE TABLE batches (seq INTEGER PRIMARY KEY, payload TEXT)")
        c.execute("INSERT INTO batches VALUES (1, ?)", ('{"obs": [["0011223344556677", -60]]}',))
    os.chmod(spool, 0o600)
    node = tmp_path / "node.toml"
    node.write_text(
        f'[node]\nstore = "demo"\nid = "n1"\nkeyfile = "{keyfile}"\nstate_dir = "{state}"\n'
        '[broker]\nhost = "127.0.0.1"\nport = 1\n[ble]\nadapter = "hci0"\n'
    )
    rc, text, err = _audit(capsys, "--node-config", str(node))
    assert rc == 0, text + err
    assert "pass  node: file modes (2 files)" in text
    with sqlite3.connect(spool) as c:
        c.execute("INSERT INTO batches VALUES (2, ?)", (f'{{"mac": "{PLANTED}"}}',))
    os.chmod(keyfile, 0o640)
    rc, text, _ = _audit(capsys, "--node-config", str(node))
    assert rc == 1
    assert f"{spool}: table batches, column payload: 1 × a raw address" in text
    assert f"{keyfile}: the store key is mode 0640, readable by its group (chmod 0600)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "audit what? --config store.toml"),
        (["--node-config", "/nonexistent/node.toml"], "node.toml"),
        (["--config", "{cfg}", "--canary", "/nonexistent"], "--canary /nonexistent: no such"),
        (["--config", "{cfg}", "--logs", "/nonexistent"], "--logs /nonexistent: no such"),
        (["--config", "{cfg}", "--at", "yesterday"], "not ISO 8601"),
        (["--acl", "x"], "audit what?"),
        (["--config", "{cfg}", "--acl", "{bad}"], "the ACL is not UTF-8 text (byte 0)"),
        (["--config", "{cfg}", "--json", "/nonexistent/a.json"], "its folder does not exist"),
    ],
)
def test_audit_refuses_bad_command_lines(
    demo_run: DemoRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    cfg = _store_toml(tmp_path, demo_run.out / "aggregator" / "store.db")
    bad = tmp_path / "acl"
    bad.write_bytes(b"\xff\xfe\x00user node-n1\n")
    rc, out, err = _audit(
        capsys, *(a.replace("{cfg}", str(cfg)).replace("{bad}", str(bad)) for a in args)
    )
    assert rc == 1 and message in err and err.startswith("footfall: error: ")
    assert len(err.strip().splitlines()) == 1 and not out


# ------------------------------------------------------------------ reports of < k visitors


def _heat_pixels(png: Path) -> int:
    """Pixels in the heat colours (YlOrRd's yellows and oranges): the floor plan has none."""
    a = np.asarray(Image.open(png).convert("RGB")).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return int(((r > 220) & (g > 60) & (g < 235) & (b < 170) & (r - b > 90)).sum())


def _only_suppressed(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == [
        "flows.csv",
        "heatmap_total.png",
        "report.html",  # the layout planner's page (docs/report.md), suppressed too
        "summary.json",
        "summary.txt",
        "zones.csv",
    ]
    page = (out / "report.html").read_text()
    assert "Suppressed" in page and "<img" not in page
    assert _heat_pixels(out / "heatmap_total.png") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["suppressed"] is True and s["k"] == 5 and set(s) == {"period", "k", "suppressed"}
    text = (out / "summary.txt").read_text().splitlines()
    assert len(text) == 2 and text[1].startswith("suppressed: fewer than k = 5 visitors")
    zones = (out / "zones.csv").read_text().splitlines()
    assert len(zones) == 1 + len(load_default().zones)
    assert all(set(z.split(",")[1:]) == {"suppressed"} for z in zones[1:])
    assert (out / "flows.csv").read_text().strip() == "from_zone,to_zone,transitions,devices"


def test_a_report_of_fewer_than_k_visitors_shows_nothing_but_suppressed(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(demo_run.out / "aggregator" / "store.db")
    # the control: the demo's busy first slot draws its heat
    full = tmp_path / "full"
    since = ["--since", "2026-11-20T10:00", "--until", "2026-11-20T10:15"]
    assert main(["report", "--db", db, *since, "--out", str(full), "-q"]) == 0
    assert _heat_pixels(full / "heatmap_total.png") > 2000
    capsys.readouterr()
    # a slot after the demo's half hour: nobody came in
    quiet = tmp_path / "quiet"
    since = ["--since", "2026-11-20T10:45", "--until", "2026-11-20T11:00"]
    assert main(["report", "--db", db, *since, "--out", str(quiet), "-q"]) == 0
    assert "suppressed (0 visitors, fewer than k = 5)" in capsys.readouterr().out
    _only_suppressed(quiet)
    # two minutes located again from the rows: two or three people, whose heat it was
    rows = tmp_path / "rows"
    since = ["--since", "2026-11-20T10:00", "--until", "2026-11-20T10:02"]
    assert main(["report", "--db", db, "--from", "rows", *since, "--out", str(rows), "-q"]) == 0
    out = capsys.readouterr().out
    assert "suppressed (" in out and "visitors, fewer than k = 5)" in out
    _only_suppressed(rows)
    assert not list(tmp_path.glob(".footfall-report-*"))  # the located rows' folder is gone
    # the same report into the folder of a full one: its pictures do not stay behind
    assert main(["report", "--db", db, "--from", "rows", *since, "--out", str(full), "-q"]) == 0
    _only_suppressed(full)


# ------------------------------------------------------------------ inventory


def test_inventory_from_the_actual_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from heatmap.aggregator.store_db import StoreDB

    db = tmp_path / "store.db"
    StoreDB(db).close()
    os.chmod(db, 0o640)
    cfg = _store_toml(tmp_path, db, 'contact_email = "dpo@demo-retail.example"\n')
    acl = tmp_path / "acl"
    acl.write_text(
        acl_text(layout_from_plan(load_default(), ("dash",)))
        + "\nuser bi-curious\ntopic read footfall/v1/demo/node/#\n"
    )
    out = tmp_path / "inv"
    args = ["privacy", "inventory", "--config", str(cfg), "--acl", str(acl), "--out", str(out)]
    assert main(args) == 0
    assert "footfall privacy inventory: 11 stores of data" in capsys.readouterr().out
    md = (out / "inventory.md").read_text()
    rows = {r.split(" | ")[0].lstrip("| "): r for r in md.splitlines() if r.startswith("| ")}
    obs = rows["MQTT footfall/v1/demo/node/+/obs (broker 127.0.0.1)"]
    assert obs.endswith("| aggregator-demo, bi-curious |")  # the ACL as it is, widened
    pub = rows["MQTT footfall/v1/demo/footfall/+, zone/+/stats, occupancy"]
    assert pub.endswith("| aggregator-demo, bi-dash |")
    table = rows[f"{db}: table obs"]
    assert "pseudonymous (personal data)" in table and "visitors: 24 h" in table
    assert "group " in table and "(mode 0640)" in table and "everyone" not in table
    assert "Controller: Demo Retail SARL; contact dpo@demo-retail.example" in md
    page = (out / "inventory.html").read_text()
    assert page.count('class="pseudonymous"') == 5 and "bi-curious" in page
    # the store-wide opt-out list: only the store's nodes read its topic
    (lst,) = [r for k, r in rows.items() if "privacy/optout" in k]
    readers = lst.rsplit(" | ", 2)[-1]
    assert "node-" in readers and "bi-" not in readers and "aggregator" not in readers


def test_an_hour_of_fewer_than_k_visitors_is_not_drawn_in_a_rows_report(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's half hour of shoppers, then an hour in which nobody came in: the report
    of both draws the first hour and only "suppressed" for the second."""
    db = str(demo_run.out / "aggregator" / "store.db")
    out = tmp_path / "rows"
    since = ["--since", "2026-11-20T10:00", "--until", "2026-11-20T12:00", "--cell", "2"]
    assert main(["report", "--db", db, "--from", "rows", *since, "--out", str(out), "-q"]) == 0
    assert "suppressed: the hourly heatmaps of 11:00 (fewer than k = 5)" in capsys.readouterr().out
    assert _heat_pixels(out / "heatmap_1000.png") > 2000
    assert (out / "heatmap_1100.png").exists() and _heat_pixels(out / "heatmap_1100.png") == 0
    assert _heat_pixels(out / "heatmap_total.png") > 2000
