"""Every ``footfall`` command against bad inputs (issue 23, case 6): a table test.

Each case runs the real command line in its own process with a 10 s limit and must
end as the CLI promises (``sensing/cli/main.py``): one line ``footfall: error: …``
on stderr and exit 1 (argparse's own usage error and exit 2 for a malformed
argument), never a traceback, never a hang. The inputs are real files: empty,
truncated, non-SQLite and newer-schema databases, directories where a file is
expected, garbage and binary TOML, a certificate where a key is expected, a floor
plan a billion metres wide, another store's floor plan; and absurd numbers and
times on the command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from heatmap.aggregator import db_migrations
from heatmap.aggregator.store_db import StoreDB
from sensing.provision.pki import make_ca

pytestmark = pytest.mark.slow

LIMIT_S = 10.0
"""longest any bad input may keep a command busy, s"""
WORKERS = 2
"""command lines run at once (one fork server each)"""
T0_MS = 1_795_161_600_000
"""2026-11-20 08:00 UTC (09:00 in the demo store's Amsterdam)"""

OTHER_PLAN = """
[store]
id = "corner-shop"
timezone = "Europe/London"
[outline]
points = [[0, 0], [8, 0], [8, 6], [0, 6]]
[[nodes]]
id = "k1"
x = 2
y = 2
[[nodes]]
id = "k2"
x = 6
y = 4
"""

HUGE_PLAN = """
[store]
id = "huge"
[outline]
points = [[0, 0], [1e9, 0], [1e9, 1e9], [0, 1e9]]
[[nodes]]
id = "n1"
x = 5
y = 5
"""

STORE_TOML = """
[aggregator]
store = "demo"
db = "{db}"
{floor}
[broker]
host = "127.0.0.1"
port = 1
"""

NODE_TOML = """
[node]
store = "demo"
id = "n1"
keyfile = "{keyfile}"
state_dir = "{state}"
[broker]
host = "127.0.0.1"
port = 1
{tls}
[wifi]
pcap = "{pcap}"
"""


def _good_db(path: Path) -> None:
    """A real store database: two minutes of phones heard by the demo store's nodes."""
    db = StoreDB(path)
    for seq, node in enumerate(("n1", "n2", "n3", "n4"), start=1):
        rows = [
            [dt, f"{pid:016x}", -60 - pid % 20 - seq, "ble", 0]
            for dt in range(0, 120_000, 1_000)
            for pid in range(1, 4)
        ]
        db.add_obs(node, {"v": 1, "node": node, "seq": seq, "t0": T0_MS, "obs": rows})
    db.commit()
    db.close()


@dataclass(frozen=True)
class Files:
    """The bad (and the few good) inputs, all under one directory."""

    d: Path

    def __getattr__(self, name: str) -> str:
        """``f.text_db`` is the path of ``text.db`` (the last ``_`` is the dot)."""
        stem, _, ext = name.rpartition("_")
        return str(self.d / (f"{stem}.{ext}" if stem else ext))


@pytest.fixture(scope="module")
def f(tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("bad")
    _good_db(d / "good.db")
    raw = (d / "good.db").read_bytes()
    assert len(raw) > 8192
    (d / "trunc.db").write_bytes(raw[: len(raw) // 3])
    (d / "header.db").write_bytes(raw[:60])
    shutil.copy(d / "good.db", d / "newer.db")
    with sqlite3.connect(d / "newer.db") as c:
        c.execute(f"PRAGMA user_version = {db_migrations.LATEST + 1}")
    c.close()
    with sqlite3.connect(d / "foreign.db") as c:  # SQLite, but not a store database
        c.execute("CREATE TABLE notes (x TEXT)")
    c.close()
    (d / "empty.db").write_bytes(b"")
    (d / "text.db").write_text("this is not a database\n" * 200)
    (d / "empty.toml").write_text("")
    (d / "garbage.toml").write_text("[[[ this is = not toml\n")
    (d / "binary.toml").write_bytes(b"\xff\xfe\x00garbage\x80\x81" * 10)
    (d / "nan.toml").write_text(HUGE_PLAN.replace("x = 5", "x = nan"))
    (d / "huge.toml").write_text(HUGE_PLAN)
    (d / "other.toml").write_text(OTHER_PLAN)
    (d / "adir").mkdir()
    (d / "state").mkdir()
    ca = make_ca(d / "ca")
    (d / "cert.pem").write_bytes(ca.cert.read_bytes())
    (d / "garbage.json").write_text("{not json")
    (d / "radio_list.json").write_text("[1, 2, 3]")
    (d / "walk.csv").write_text("t_start,t_end,x,y\nmonday,tuesday,a,b\n")
    (d / "pcap").write_bytes(b"")
    for name, db, floor in (
        ("store_dir.toml", d / "adir", ""),
        ("store_text.toml", d / "text.db", ""),
        ("store_newer.toml", d / "newer.db", ""),
        ("store_huge.toml", d / "good.db", f'floor_plan = "{d / "huge.toml"}"'),
    ):
        (d / name).write_text(STORE_TOML.format(db=db, floor=floor))
    tls_lines = f'ca = "{d / "cert.pem"}"\ncert = "{d / "cert.pem"}"\nkey = "{d / "cert.pem"}"\n'
    (d / "store_tlscert.toml").write_text(STORE_TOML.format(db=d / "agg.db", floor="") + tls_lines)
    tls = f'ca = "{d / "cert.pem"}"\ncert = "{d / "cert.pem"}"\nkey = "{d / "cert.pem"}"'
    for name, keyfile, t in (
        ("node_certkey.toml", d / "cert.pem", ""),
        ("node_nokey.toml", d / "missing.key", ""),
        ("node_tlscert.toml", d / "store.key", tls),
    ):
        (d / name).write_text(
            NODE_TOML.format(keyfile=keyfile, state=d / "state", tls=t, pcap=d / "pcap")
        )
    # a real store key, for the node whose TLS key is a certificate
    subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "keygen", "--out", str(d / "store.key")],
        check=True,
        capture_output=True,
        timeout=LIMIT_S,
    )
    bad_state = d / "badstate"
    bad_state.mkdir()
    (bad_state / "lists.key").write_bytes(ca.cert.read_bytes())
    (bad_state / "optout.json").write_text("{garbage")
    (d / "existing.png").write_text("")
    return Files(d)


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    rc: int = 1
    stdin: str = ""
    doctor: bool = False
    """``footfall doctor``'s verdict: a FAIL line and "NOT fit to run" on stdout, exit 1"""


def _cases(f: Files) -> list[Case]:
    good = f.d / "good.db"
    out = str(f.d / "out")
    c: list[Case] = []

    def add(name: str, *argv: str, rc: int = 1, stdin: str = "", doctor: bool = False) -> None:
        c.append(Case(name, tuple(argv), rc, stdin, doctor))

    # floorplan
    add("floorplan missing", "floorplan", f.missing_toml)
    add("floorplan empty", "floorplan", f.empty_toml)
    add("floorplan garbage", "floorplan", f.garbage_toml)
    add("floorplan binary", "floorplan", f.binary_toml)
    add("floorplan directory", "floorplan", f.adir)
    add("floorplan 1e9 m outline", "floorplan", f.huge_toml)
    add("floorplan nan coordinate", "floorplan", f.nan_toml)
    add("floorplan a database", "floorplan", str(good))
    add("floorplan a store.toml", "floorplan", f.store_dir_toml)
    add("floorplan no argument", "floorplan", rc=2)
    # schema
    add("schema unknown kind", "schema", "bogus", rc=2)
    # db stats / backup / vacuum / retention
    for sub in ("stats", "vacuum", "retention"):
        add(f"db {sub} missing", "db", sub, "--db", f.missing_db)
        add(f"db {sub} empty file", "db", sub, "--db", f.empty_db)
        add(f"db {sub} text file", "db", sub, "--db", f.text_db)
        add(f"db {sub} truncated", "db", sub, "--db", f.trunc_db)
        add(f"db {sub} newer schema", "db", sub, "--db", f.newer_db)
        add(f"db {sub} directory", "db", sub, "--db", f.adir)
    add("db stats header only", "db", "stats", "--db", f.header_db)
    add("db stats foreign sqlite", "db", "stats", "--db", f.foreign_db)
    add("db stats no source", "db", "stats", rc=2)
    add("db stats config missing", "db", "stats", "--config", f.missing_toml)
    add("db stats config garbage", "db", "stats", "--config", f.garbage_toml)
    add("db stats config db is a directory", "db", "stats", "--config", f.store_dir_toml)
    add("db stats config db is text", "db", "stats", "--config", f.store_text_toml)
    add("db backup text file", "db", "backup", "--db", f.text_db, "--to", f"{out}/b1.db")
    add("db backup truncated", "db", "backup", "--db", f.trunc_db, "--to", f"{out}/b2.db")
    add("db backup to existing", "db", "backup", "--db", str(good), "--to", f.text_db)
    add("db backup to under a file", "db", "backup", "--db", str(good), "--to", f"{f.text_db}/x")
    add("db retention bad --now", "db", "retention", "--db", str(good), "--now", "noon")
    add("db retention --now year 1", "db", "retention", "--db", str(good), "--now", "0001-01-01")
    add("db retention hours -5", "db", "retention", "--db", str(good), "--retention-hours", "-5")
    add("db retention hours nan", "db", "retention", "--db", str(good), "--retention-hours", "nan")
    add(
        "db retention hours text",
        "db",
        "retention",
        "--db",
        str(good),
        "--retention-hours",
        "x",
        rc=2,
    )
    # report
    rep = ("report", "-q", "--out", out)
    add("report no database", *rep)
    for what in ("missing", "empty", "text", "trunc", "header", "newer", "foreign"):
        add(f"report db {what}", *rep, "--db", getattr(f, f"{what}_db"))
    add("report db directory", *rep, "--db", f.adir)
    add("report --cell 0.01", *rep, "--db", str(good), "--cell", "0.01")
    add("report --cell -1", *rep, "--db", str(good), "--cell", "-1")
    add("report --cell 0", *rep, "--db", str(good), "--cell", "0")
    add("report --cell nan", *rep, "--db", str(good), "--cell", "nan")
    add("report --cell inf", *rep, "--db", str(good), "--cell", "inf")
    add("report --cell text", *rep, "--db", str(good), "--cell", "big", rc=2)
    add("report --since garbage", *rep, "--db", str(good), "--since", "yesterday noon")
    add("report --since huge epoch", *rep, "--db", str(good), "--since", "9" * 25)
    add("report --until huge epoch", *rep, "--db", str(good), "--since", "0", "--until", "9" * 25)
    add("report --since year 9999", *rep, "--db", str(good), "--since", "9999-12-31T23:59")
    add("report --since year 1", *rep, "--db", str(good), "--since", "0001-01-01T00:00")
    add(
        "report --until before --since",
        *rep,
        "--db",
        str(good),
        "--since",
        "2026-11-20T10:00",
        "--until",
        "2026-11-20T09:00",
    )
    add("report --day garbage", *rep, "--db", str(good), "--day", "2026-13-45")
    add("report --day with --until", *rep, "--db", str(good), "--day", "today", "--until", "0")
    add("report --day and --since", *rep, "--db", str(good), "--day", "today", "--since", "0", rc=2)
    add("report --floor 1e9 m", *rep, "--db", str(good), "--floor", f.huge_toml)
    add("report another store's plan", *rep, "--db", str(good), "--floor", f.other_toml)
    add("report --floor garbage", *rep, "--db", str(good), "--floor", f.garbage_toml)
    add("report --radio missing", *rep, "--db", str(good), "--radio", f.missing_json)
    add("report --radio garbage", *rep, "--db", str(good), "--radio", f.garbage_json)
    add("report --radio a list", *rep, "--db", str(good), "--radio", f.radio_list_json)
    add("report --radio a database", *rep, "--db", str(good), "--radio", str(good))
    add("report --config garbage", *rep, "--config", f.garbage_toml)
    add("report --config newer db", *rep, "--config", f.store_newer_toml)
    add("report --config 1e9 m plan", *rep, "--config", f.store_huge_toml)
    add("report --truth missing", *rep, "--db", str(good), "--truth", f.missing_dir)
    add("report --out is a file", "report", "-q", "--db", str(good), "--out", f.text_db)
    # plan and calibrate
    add("plan 1e9 m outline", "plan", "--floor", f.huge_toml)
    add("plan --floor missing", "plan", "--floor", f.missing_toml)
    add("plan --add 100000", "plan", "--add", "100000")
    add("plan --add -1", "plan", "--add", "-1")
    add("plan --layout 0", "plan", "--layout", "0")
    add("plan --layout 100000", "plan", "--layout", "100000")
    add("plan --cell 0.001", "plan", "--cell", "0.001")
    add("plan --cell -1", "plan", "--cell", "-1")
    add("plan --cell nan", "plan", "--cell", "nan")
    add("plan --frames 0", "plan", "--frames", "0")
    add("plan --frames nan", "plan", "--frames", "nan")
    add("plan --frames 1e300", "plan", "--frames", "1e300")
    add("plan --radio garbage", "plan", "--radio", f.garbage_json)
    add("plan --out under a file", "plan", "--out", f"{f.text_db}/map.png")
    add("plan --add text", "plan", "--add", "many", rc=2)
    for what in ("missing", "empty", "text", "trunc", "newer", "foreign"):
        add(f"calibrate db {what}", "calibrate", "--db", getattr(f, f"{what}_db"), "--out", out)
    add("calibrate db directory", "calibrate", "--db", f.adir)
    add("calibrate --since garbage", "calibrate", "--db", str(good), "--since", "soon")
    add("calibrate --until huge", "calibrate", "--db", str(good), "--until", "9" * 25)
    add("calibrate --walk missing", "calibrate", "--db", str(good), "--walk", f.missing_csv)
    add("calibrate --walk garbage", "calibrate", "--db", str(good), "--walk", f.walk_csv)
    add("calibrate another store's plan", "calibrate", "--db", str(good), "--floor", f.other_toml)
    add("calibrate --map -1", "calibrate", "--db", str(good), "--map", "-1", "--out", out)
    # keygen
    add("keygen --out exists", "keygen", "--out", f.text_db)
    add("keygen --out directory --force", "keygen", "--out", f.adir, "--force")
    add("keygen --out under a file", "keygen", "--out", f"{f.text_db}/k")
    add("keygen bad date", "keygen", "--out", f"{out}/k1", "--start-date", "someday")
    add("keygen roll hour 25", "keygen", "--out", f"{out}/k2", "--roll-hour", "25")
    add("keygen roll hour -1", "keygen", "--out", f"{out}/k3", "--roll-hour", "-1")
    add("keygen unknown zone", "keygen", "--out", f"{out}/k4", "--timezone", "Mars/Olympus")
    add("keygen zone path", "keygen", "--out", f"{out}/k5", "--timezone", "../../etc/passwd")
    # node and doctor
    add("node config missing", "node", "--config", f.missing_toml)
    add("node config garbage", "node", "--config", f.garbage_toml)
    add("node config binary", "node", "--config", f.binary_toml)
    add("node config directory", "node", "--config", f.adir)
    add("node config a store.toml", "node", "--config", f.store_dir_toml)
    add("node certificate as key file", "node", "--config", f.node_certkey_toml)
    add("node key file missing", "node", "--config", f.node_nokey_toml)
    add("node certificate as TLS key", "node", "--config", f.node_tlscert_toml)
    add("doctor config missing", "doctor", "--config", f.missing_toml, doctor=True)
    add("doctor config garbage", "doctor", "--config", f.garbage_toml, doctor=True)
    add("doctor config directory", "doctor", "--config", f.adir, doctor=True)
    add("doctor --serial-wait text", "doctor", "--config", f.adir, "--serial-wait", "x", rc=2)
    # provision
    add("provision acl garbage plan", "provision", "acl", "--floor", f.garbage_toml)
    add("provision acl 1e9 m plan", "provision", "acl", "--floor", f.huge_toml)
    add("provision acl --out under a file", "provision", "acl", "--out", f"{f.text_db}/acl")
    add("provision acl bad BI name", "provision", "acl", "--bi", "bi\n#")
    add(
        "provision certs --out a file",
        "provision",
        "certs",
        "--out",
        f.text_db,
        "--broker-host",
        "a",
    )
    add(
        "provision certs bad BI name",
        "provision",
        "certs",
        "--out",
        f"{out}/pki",
        "--bi",
        "../x",
        "--broker-host",
        "a",
    )
    add(
        "provision certs empty host",
        "provision",
        "certs",
        "--out",
        f"{out}/pki2",
        "--broker-host",
        "",
    )
    add("provision certs no host", "provision", "certs", "--out", f"{out}/pki3", rc=2)
    # optout
    st = ("--state-dir", str(f.d / "state"))
    add("optout add garbage address", "optout", "add", *st, "not-an-address")
    add("optout add short address", "optout", "add", *st, "01:02:03:04:05")
    add("optout add empty stdin", "optout", "add", *st, "-")
    add(
        "optout add state dir is a file",
        "optout",
        "add",
        "--state-dir",
        f.text_db,
        "02:00:00:00:00:01",
    )
    add("optout remove no list", "optout", "remove", "--state-dir", f.adir, "02:00:00:00:00:01")
    add("optout list corrupt", "optout", "list", "--state-dir", f.badstate)
    add("optout add corrupt", "optout", "add", "--state-dir", f.badstate, "02:00:00:00:00:01")
    # demo and simulate
    add("demo --hours 1e9", "demo", "-q", "--out", out, "--hours", "1e9")
    add("demo --hours -1", "demo", "-q", "--out", out, "--hours", "-1")
    add("demo --hours nan", "demo", "-q", "--out", out, "--hours", "nan")
    add("demo --start garbage", "demo", "-q", "--out", out, "--start", "teatime")
    add("demo --cell 0.01", "demo", "-q", "--out", out, "--cell", "0.01")
    add("demo --out is a file", "demo", "-q", "--out", f.text_db)
    add("simulate --hours 1e9", "simulate", "-q", "--out", out, "--hours", "1e9")
    add("simulate --hours 0", "simulate", "-q", "--out", out, "--hours", "0")
    add("simulate 1e9 m plan", "simulate", "-q", "--out", out, "--floor", f.huge_toml)
    add("simulate --start garbage", "simulate", "-q", "--out", out, "--start", "teatime")
    add("simulate --seed -1", "simulate", "-q", "--out", out, "--seed", "-1", "--hours", "1e9")
    # aggregator
    add("aggregator config missing", "aggregator", "--config", f.missing_toml)
    add("aggregator config garbage", "aggregator", "--config", f.garbage_toml)
    add("aggregator db is a directory", "aggregator", "--config", f.store_dir_toml)
    add("aggregator db is text", "aggregator", "--config", f.store_text_toml)
    add("aggregator db is newer", "aggregator", "--config", f.store_newer_toml)
    add("aggregator 1e9 m plan", "aggregator", "--config", f.store_huge_toml)
    add("aggregator certificate as TLS key", "aggregator", "--config", f.store_tlscert_toml)
    add("no command", rc=2)
    add("unknown command", "frobnicate", rc=2)
    return c


@dataclass(frozen=True)
class Outcome:
    case: Case
    rc: int | None
    stdout: str
    stderr: str
    problem: str | None


USAGE_ERROR = re.compile(r"^footfall(?: [\w-]+)*: error: .+")


class ForkServer:
    """``tests/cli_forkserver.py`` in its own process: runs command lines in forked children."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def run(self, argv: tuple[str, ...], stdin: str, cwd: Path, env: dict[str, str]) -> Reply:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {"argv": argv, "stdin": stdin, "cwd": str(cwd), "env": env, "limit_s": LIMIT_S}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return Reply(r["rc"], r["stdout"], r["stderr"], r["seconds"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=LIMIT_S)


@dataclass(frozen=True)
class Reply:
    rc: int | None
    """exit code; None: killed at LIMIT_S"""
    stdout: str
    stderr: str
    seconds: float


def _run(case: Case, cwd: Path, server: ForkServer) -> Outcome:
    env = {**os.environ, "FOOTFALL_STATE_DIR": str(cwd / "state"), "COLUMNS": "200"}
    env.pop("FOOTFALL_DEBUG", None)
    p = server.run(case.argv, case.stdin, cwd, env)
    if p.rc is None:
        return Outcome(case, None, p.stdout, p.stderr, f"ran > {LIMIT_S} s")
    p = subprocess.CompletedProcess(case.argv, p.rc, p.stdout, p.stderr)
    err = p.stderr.strip()
    lines = err.splitlines()
    problem = None
    if "Traceback" in err:
        problem = "traceback"
    elif p.returncode != case.rc:
        problem = f"exit {p.returncode}, expected {case.rc}"
    elif case.doctor:
        if err or "NOT fit to run" not in p.stdout or "FAIL" not in p.stdout:
            problem = "doctor did not report a failed check"
    elif case.rc == 1 and (len(lines) != 1 or not lines[0].startswith("footfall: error: ")):
        problem = "stderr is not one line 'footfall: error: …'"
    elif case.rc == 2 and not (lines and USAGE_ERROR.match(lines[-1])):
        problem = "no usage error line"
    return Outcome(case, p.returncode, p.stdout, p.stderr, problem)


def test_every_command_ends_bad_input_in_one_error_line(f: Files) -> None:
    cases = _cases(f)
    assert len(cases) >= 70 and len({c.name for c in cases}) == len(cases)
    servers = [ForkServer() for _ in range(WORKERS)]
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            outcomes = list(
                pool.map(
                    lambda i: [_run(c, f.d, servers[i]) for c in cases[i::WORKERS]], range(WORKERS)
                )
            )
    finally:
        for s in servers:
            s.close()
    outcomes = [o for part in outcomes for o in part]
    bad = [o for o in outcomes if o.problem]
    report = "\n".join(
        f"{o.case.name} ({' '.join(o.case.argv)[:120]}): {o.problem}\n    "
        + "\n    ".join((o.stderr.strip() or o.stdout.strip()).splitlines()[-3:])
        for o in bad
    )
    assert not bad, f"{len(bad)} of {len(cases)} cases:\n{report}"
