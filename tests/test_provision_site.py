"""``footfall provision store`` and ``renew`` on disk: what a site holds, what a re-run keeps,
what renewal replaces, and the one-line errors (the store itself runs in
tests/test_provision_store.py)."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sensing.provision import pki
from sensing.provision.bridge_config import key_matches
from sensing.provision.store_site import renew, server_names

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO / "deploy" / "mosquitto" / "footfall.conf"


def _footfall(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    r = _footfall(
        "provision", "store", "--out", str(out), "--broker-host", "aggregator.local",
        "--broker-host", "192.168.10.2", "--bi", "dash",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def _directives(text: str) -> set[str]:
    return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}


def test_a_site_has_one_private_folder_per_box(site: Path) -> None:
    boxes = sorted(p.name for p in site.iterdir() if p.is_dir())
    nodes = [f"node-n{i}" for i in range(1, 7)]
    assert boxes == sorted(["aggregator", "bi-dash", "broker", "pki", *nodes])
    for p in [site, *site.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir():
            assert mode == 0o700, p
        elif p.suffix == ".key":
            assert mode == 0o600, p
    # the store key goes to the nodes, never to the aggregator, the broker or BI
    assert sorted(p.parent.name for p in site.rglob("store.key")) == sorted(["pki", *nodes])
    # the opt-out list's key goes to the aggregator and every node (one key: the nodes
    # verify the list the aggregator publishes with it), never to the broker or BI
    lists = sorted(site.rglob("lists.key"))
    assert sorted(p.parent.name for p in lists) == sorted(["pki", "aggregator", *nodes])
    assert len({p.read_bytes() for p in lists}) == 1
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in lists)
    n3 = (site / "node-n3" / "node.toml").read_text()
    assert 'id = "n3"' in n3 and 'host = "aggregator.local"' in n3
    assert 'cert = "node-n3.crt"' in n3
    assert key_matches(site / "node-n3" / "node-n3.crt", site / "node-n3" / "node-n3.key")
    assert pki.cert_info(site / "node-n3" / "node-n3.crt").common_name == "node-n3"
    names = server_names(site / "broker" / "tls" / "broker.crt")
    assert names == ["aggregator.local", "localhost", "192.168.10.2", "127.0.0.1"]


def test_the_generated_broker_config_is_the_shipped_one_and_persistence(site: Path) -> None:
    conf = (site / "broker" / "footfall.conf").read_text()
    assert "cafile /etc/mosquitto/footfall/tls/ca.crt" in conf
    assert _directives(SHIPPED_CONF.read_text()) <= _directives(conf)
    assert "persistence true" in _directives(conf)


def test_nothing_secret_is_printed(tmp_path: Path) -> None:
    r = _footfall("provision", "store", "--out", str(tmp_path / "s"), "--broker-host", "a.local")
    assert r.returncode == 0, r.stderr
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    key = json.loads((tmp_path / "s" / "pki" / "store.key").read_text())["key"]
    assert key not in r.stdout + r.stderr
    lists = tmp_path / "s" / "pki" / "lists.key"
    assert json.loads(lists.read_text())["key"] not in r.stdout + r.stderr
    assert "a new list key" in r.stdout
    before = lists.read_bytes()
    again = _footfall(
        "provision", "store", "--out", str(tmp_path / "s"), "--broker-host", "a.local"
    )
    assert again.returncode == 0, again.stderr
    assert "a new list key" not in again.stdout and lists.read_bytes() == before


def test_renew_replaces_what_expires_soon_and_keeps_the_rest(tmp_path: Path) -> None:
    r = _footfall("provision", "store", "--out", str(tmp_path / "s"), "--broker-host", "a.local")
    assert r.returncode == 0, r.stderr
    s = tmp_path / "s"
    ca = pki.Issued(s / "pki" / "ca.crt", s / "pki" / "ca.key")
    # node-n2's certificate issued 800 days ago: it expires in 25 days
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=800)
    pki.issue(ca, s / "pki", "node-n2", not_before=old)
    for name in ("node-n2.crt", "node-n2.key"):
        (s / "node-n2" / name).write_bytes((s / "pki" / name).read_bytes())
    n1 = (s / "node-n1" / "node-n1.crt").read_bytes()
    r = _footfall("provision", "renew", "--site", str(s), "--days-before", "30")
    assert r.returncode == 0, r.stderr
    assert "1 of 8 certificates expire within 30 days" in r.stdout, r.stdout
    info = pki.cert_info(s / "node-n2" / "node-n2.crt")
    assert info.common_name == "node-n2" and info.issuer == "footfall demo CA"
    assert info.not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=800)
    assert key_matches(s / "node-n2" / "node-n2.crt", s / "node-n2" / "node-n2.key")
    assert stat.S_IMODE((s / "node-n2" / "node-n2.key").stat().st_mode) == 0o600
    assert (s / "node-n1" / "node-n1.crt").read_bytes() == n1
    # the broker keeps its names when it is renewed
    names = server_names(s / "broker" / "tls" / "broker.crt")
    done = renew(s, 900)
    assert all(d.renewed for d in done)
    assert server_names(s / "broker" / "tls" / "broker.crt") == names
    # the CA is not renewed here: a renewal window past its end is a one-line error
    r = _footfall("provision", "renew", "--site", str(s), "--days-before", "5000")
    assert r.returncode != 0 and "the store CA expires" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["store", "--out", "{d}/s"], "--broker-host: give the name"),
        (
            ["store", "--out", "{d}/s", "--broker-host", "a", "--central", "c:8883"],
            "--central needs --central-ca",
        ),
        (["store", "--out", "{d}/s", "--broker-host", "a b"], "a DNS name or an IP address"),
        (
            ["store", "--out", "{d}/s", "--broker-host", "a", "--broker-etc", "/a b"],
            "an absolute path without spaces",
        ),
        (["renew", "--site", "{d}"], "not a site made by `footfall provision store`"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = _footfall("provision", *(a.format(d=tmp_path) for a in args))
    assert r.returncode != 0
    assert r.stderr.startswith("footfall: error:") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_site_of_another_store_is_refused(tmp_path: Path) -> None:
    r = _footfall("provision", "store", "--out", str(tmp_path / "s"), "--broker-host", "a")
    assert r.returncode == 0, r.stderr
    plan = tmp_path / "other.toml"
    default = REPO / "heatmap" / "spatial" / "data" / "default_store.toml"
    plan.write_text(default.read_text().replace('id = "demo"', 'id = "other"', 1))
    r = _footfall("provision", "store", "--floor", str(plan), "--out", str(tmp_path / "s"))
    assert r.returncode != 0 and "is the site of store 'demo'" in r.stderr, r.stderr


def test_a_central_broker_adds_the_bridge_stanza_and_its_files(tmp_path: Path) -> None:
    chain = tmp_path / "chain"
    r = _footfall("provision", "central", "--stores", "demo", "--out", str(chain), "--host", "c.ex")
    assert r.returncode == 0, r.stderr
    bridge = [
        "--central", "c.ex:8883", "--central-ca", str(chain / "ca.crt"),
        "--bridge-cert", str(chain / "bridge-demo.crt"),
    ]  # fmt: skip
    s = tmp_path / "s"
    wrong = [*bridge, "--bridge-key", str(chain / "ca.key")]
    r = _footfall("provision", "store", "--out", str(s), "--broker-host", "a", *wrong)
    assert r.returncode != 0 and "--bridge-key" in r.stderr and "is not the key" in r.stderr
    right = [*bridge, "--bridge-key", str(chain / "bridge-demo.key")]
    r = _footfall("provision", "store", "--out", str(s), "--broker-host", "a", *right)
    assert r.returncode == 0, r.stderr
    conf = (s / "broker" / "footfall.conf").read_text()
    assert "connection footfall-central\naddress c.ex:8883\n" in conf
    assert "bridge_keyfile /etc/mosquitto/footfall/tls/bridge-demo.key" in conf
    key = s / "broker" / "tls" / "bridge-demo.key"
    assert key.read_bytes() == (chain / "bridge-demo.key").read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # a re-run without the options keeps the bridge
    r = _footfall("provision", "store", "--out", str(s))
    assert r.returncode == 0, r.stderr
    assert (s / "broker" / "footfall.conf").read_text() == conf
