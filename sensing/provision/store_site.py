"""One command from a floor plan to everything a store's boxes need: ``footfall provision store``.

:func:`provision_site` writes a *site* folder, one sub-folder per box, each 0700, every
secret in it 0600 (nothing secret is ever printed)::

    site/
      site.json        what the site was made with (store, broker names, port, BI clients...)
      pki/             the store CA (ca.key: keep it offline) and the master copy of every
                       certificate and key, the store's pseudonym key store.key and
                       its list key lists.key (the store-wide opt-out list is signed
                       and tagged with it: the aggregator and every node need it)
      broker/          -> /etc/mosquitto/footfall/ (``--broker-etc``): footfall.conf (the
                       Mosquitto config: TLS listener, client certificates, ACL, persistence,
                       the bridge stanza when a central broker is named), acl, tls/ca.crt,
                       tls/broker.crt, tls/broker.key (and tls/central-ca.crt,
                       tls/bridge-{store}.crt/.key for the bridge)
      aggregator/      -> /etc/footfall/: store.toml ([live] on), floorplan.toml, ca.crt,
                       aggregator-{store}.crt/.key, lists.key (-> the state folder
                       beside the database; never the store key)
      node-{id}/       -> /etc/footfall/: node.toml (its id, the broker's address), ca.crt,
                       node-{id}.crt/.key, store.key (-> the node's state folder: it
                       rolls), lists.key (-> the same state folder)
      bi-{name}/       ca.crt, bi-{name}.crt/.key for a BI client (or Home Assistant)

The boxes' configs name the files of their own folder by relative paths (``node.toml``
and ``store.toml`` resolve them against their own directory), so a folder copied whole
to ``/etc/footfall/`` works as it is; the Mosquitto config names absolute paths under
``--broker-etc``. State (the database, the spool, the rolling store key) goes under
``--state-dir`` (``/var/lib/footfall``).

Running it again on the same site is how a store grows: the CA, the store key and every
certificate that exists are kept byte for byte; a node (or BI client) new in the plan
gets its certificate and its folder; the ACL and the configs are written again. The
broker certificate is issued again only when its names change. :func:`renew` issues
again, with the same CA and the same names, the certificates that expire within a
number of days, and copies them to the boxes' folders.

The floor plan is passed in (anything with ``store_id``, ``nodes``, ``doors`` and
``tiles``, as :func:`sensing.provision.broker_acl.layout_from_plan` takes) with its TOML
text: the provisioning side never imports the aggregator's packages.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError, FootfallError
from sensing.privacy.optout import LIST_KEY_FILE, ListKey
from sensing.provision import pki
from sensing.provision.bridge_config import (
    BridgeSettings,
    bridge_conf_text,
    bridge_user,
    check_bridge_files,
    key_matches,
)
from sensing.provision.broker_acl import (
    StoreLayout,
    acl_text,
    aggregator_user,
    bi_user,
    layout_from_plan,
    node_user,
)
from sensing.runtime.private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, private_dir

DEFAULT_BROKER_ETC = Path("/etc/mosquitto/footfall")
"""where the broker folder is installed, as written into its Mosquitto config"""
DEFAULT_STATE_DIR = Path("/var/lib/footfall")
"""the daemons' state folder (database, spool, the rolling store key)"""
LOCAL_NAMES = ("localhost", "127.0.0.1")
"""always in the broker certificate: the aggregator connects to the broker on its own box"""
MANIFEST = "site.json"
PKI = "pki"
BROKER = "broker"
AGGREGATOR = "aggregator"


@dataclass(frozen=True)
class SiteOptions:
    """What ``footfall provision store`` was asked for (``None``: as before, or default)."""

    broker_hosts: Sequence[str] = ()
    """names (DNS or IP) the nodes use for the broker; the first goes into node.toml"""
    bi_clients: Sequence[str] = ()
    port: int | None = None
    broker_etc: Path | None = None
    state_dir: Path | None = None
    bridge: BridgeSettings | None = None


@dataclass
class SiteResult:
    """What one run did."""

    site: Path
    store: str
    new_certs: list[str] = field(default_factory=list)
    kept_certs: list[str] = field(default_factory=list)
    new_boxes: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    """node folders of nodes no longer in the plan (left, out of the ACL)"""
    new_key: bool = False
    new_list_key: bool = False


# ------------------------------------------------------------------ files


def _write(path: Path, data: bytes | str, secret: bool = False) -> None:
    """Write ``path`` (0600 when ``secret``, else 0644) in a 0700 folder; an identical
    file is left untouched (its bytes and its time stay)."""
    raw = data.encode() if isinstance(data, str) else data
    private_dir(path.parent)
    mode = PRIVATE_FILE_MODE if secret else 0o644
    if path.is_file() and path.read_bytes() == raw:
        os.chmod(path, mode)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _copy(src: Path, dst: Path) -> None:
    _write(dst, src.read_bytes(), secret=src.suffix == ".key")


def _q(text: str | Path) -> str:
    """A TOML basic string (JSON's escaping is TOML's for these)."""
    return json.dumps(str(text), ensure_ascii=False)


# ------------------------------------------------------------------ configs


def mosquitto_conf_text(etc: Path, port: int, bridge: BridgeSettings | None = None) -> str:
    """The store broker's config: ``deploy/mosquitto/footfall.conf``'s settings with the
    paths under ``etc``, ``persistence true``, and the bridge stanza if any."""
    text = f"""# footfall store broker, generated by `footfall provision store`: TLS with client
# certificates, per-client ACL. Install as /etc/mosquitto/conf.d/footfall.conf with this
# folder's acl and tls/ in {etc} (deploy/README.md). Debian's mosquitto.conf sets pid_file,
# persistence_location and log_dest, and includes conf.d; see
# deploy/mosquitto/footfall.conf for why each setting is there.

per_listener_settings false
allow_anonymous false
acl_file {etc}/acl

listener {port}
protocol mqtt
cafile {etc}/tls/ca.crt
certfile {etc}/tls/broker.crt
keyfile {etc}/tls/broker.key
require_certificate true
use_identity_as_username true
use_username_as_clientid true

# the aggregator's persistent session and what is queued for it survive a restart
persistence true
autosave_interval 5
max_queued_messages 100000
max_inflight_messages 100
max_packet_size 8388608
"""
    if bridge is not None:
        text += "\n" + bridge_conf_text(bridge)
    return text


def store_toml_text(store: str, state_dir: Path, port: int) -> str:
    """The aggregator's ``store.toml``: files of its folder by relative paths, the live
    aggregator on, the broker on the same box."""
    user = aggregator_user(store)
    return f"""# footfall aggregator of store {store!r}, generated by `footfall provision store`.
# Install this folder as /etc/footfall/ (footfall aggregator --config /etc/footfall/store.toml),
# lists.key beside the database (the Debian package moves it there): the opt-out list's key.
# Every key: deploy/store.example.toml and heatmap/aggregator/config_model.py.

[aggregator]
store = {_q(store)}
db = {_q(state_dir / "store.db")}
floor_plan = "floorplan.toml"           # its nodes are expected online
k = 5                                   # k-anonymity of every aggregate

[live]                                  # the live aggregator (docs/live.md)
enabled = true

[broker]                                # the store broker, on this box
host = "127.0.0.1"
port = {port}
ca = "ca.crt"
cert = "{user}.crt"
key = "{user}.key"
"""


def node_toml_text(
    store: str, node: str, host: str, port: int, state_dir: Path, boards: Sequence[str]
) -> str:
    """A node's ``node.toml``: its id, the broker's address, its certificate (relative to
    the file), the store key in its state folder (it rolls there), live radios."""
    user = node_user(node)
    lines = [
        f"# footfall node {node!r} of store {store!r}, generated by `footfall provision store`.",
        "# Install this folder as /etc/footfall/, store.key and lists.key in the state folder",
        "# below (the Debian package moves them there);",
        "# then `footfall doctor --config /etc/footfall/node.toml`. Every key:",
        "# deploy/node.example.toml and sensing/node/config_model.py.",
        "",
        "[node]",
        f"store = {_q(store)}",
        f"id = {_q(node)}",
        f"keyfile = {_q(state_dir / 'store.key')}     # the store key: it rolls daily here",
        f"state_dir = {_q(state_dir)}",
        "",
        "[broker]",
        f"host = {_q(host)}                   # a name in the broker certificate",
        f"port = {port}",
        'ca = "ca.crt"',
        f'cert = "{user}.crt"',
        f'key = "{user}.key"',
        "",
        "[wifi]",
        'interface = "wlan1"                     # the USB adapter in monitor mode',
        "",
        "[ble]",
        'adapter = "hci0"',
    ]
    for stream in boards:
        kind, _, ident = stream.partition("/")
        lines += [
            "",
            f"# the {'door-beam' if kind == 'door' else 'floor-tile'} board of {stream}: "
            "uncomment with its serial device",
            "# (ls /dev/serial/by-id/; `footfall doctor` checks it answers)",
            "# [[boards]]",
            '# port = "/dev/serial/by-id/..."',
            f"# {kind} = {_q(ident)}",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the site


def _manifest(site: Path) -> dict[str, Any]:
    p = site / MANIFEST
    if not p.exists():
        return {}
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p}: unreadable ({e}); it records how the site was made") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: not a JSON object")
    return d


def _load_ca(pki_dir: Path) -> pki.Issued:
    ca = pki.Issued(pki_dir / "ca.crt", pki_dir / "ca.key")
    if not ca.cert.exists():
        raise FootfallError(f"{pki_dir}: ca.key without ca.crt; restore ca.crt from a backup")
    if not pki.cert_info(ca.cert).is_ca:
        raise ConfigError(f"{ca.cert}: not a CA certificate")
    if not key_matches(ca.cert, ca.key, "CA key"):
        raise ConfigError(f"{ca.key}: is not the key of {ca.cert}; new certificates would fail")
    return ca


def server_names(cert: Path) -> list[str]:
    """The DNS names and IP addresses of a server certificate (its subjectAltName)."""
    from cryptography import x509

    c = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        str(v)
        for v in (*san.get_values_for_type(x509.DNSName), *san.get_values_for_type(x509.IPAddress))
    ]


def provision_site(site: Path, plan: Any, plan_text: str, opts: SiteOptions) -> SiteResult:
    """Make or grow the site folder for ``plan`` (see the module doc)."""
    layout: StoreLayout = layout_from_plan(plan)
    store = layout.store
    before = _manifest(site)
    if before and before.get("store") != store:
        raise FootfallError(
            f"{site} is the site of store {before.get('store')!r}, the plan is of {store!r}"
        )
    hosts = pki.check_server_names(
        list(opts.broker_hosts) or list(before.get("broker_hosts", [])), "--broker-host"
    )
    if not hosts:
        raise ConfigError("--broker-host: give the name (or address) nodes use for the broker")
    bi = list(dict.fromkeys([*before.get("bi", []), *opts.bi_clients]))
    layout = StoreLayout(store, layout.nodes, tuple(bi))
    port = opts.port or int(before.get("port", 8883))
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: within 1..65535")
    etc = opts.broker_etc or Path(before.get("broker_etc", DEFAULT_BROKER_ETC))
    state = opts.state_dir or Path(before.get("state_dir", DEFAULT_STATE_DIR))
    timezone = str(getattr(plan, "timezone", None) or "UTC")  # the store key rolls there
    for what, p in (("--broker-etc", etc), ("--state-dir", state)):
        if not p.is_absolute() or any(c.isspace() for c in str(p)):
            raise ConfigError(f"{what} {p}: an absolute path without spaces")

    res = SiteResult(site, store)
    private_dir(site)
    os.chmod(site, PRIVATE_DIR_MODE)
    pki_dir = site / PKI
    private_dir(pki_dir)
    if (pki_dir / "ca.key").exists():
        ca = _load_ca(pki_dir)
        res.kept_certs.append("ca")
    else:
        if any(pki_dir.glob("*.crt")):
            raise FootfallError(f"{pki_dir}: certificates without ca.key; restore it first")
        ca = pki.make_ca(pki_dir / "ca", f"footfall {store} CA")
        res.new_certs.append("ca")

    def cert(user: str, names: list[str] | None = None) -> pki.Issued:
        i = pki.Issued(pki_dir / f"{user}.crt", pki_dir / f"{user}.key")
        if i.cert.exists() and i.key.exists():
            same = names is None or sorted(server_names(i.cert)) == sorted(names)
            if same and pki.cert_info(i.cert).common_name == user:
                res.kept_certs.append(user)
                return i
        res.new_certs.append(user)
        return pki.issue(ca, pki_dir, user, names)

    keyfile = pki_dir / "store.key"
    if not keyfile.exists():
        from sensing.privacy.key_file import KeyFile

        KeyFile.provision(keyfile, dt.date.today(), 4, timezone)
        res.new_key = True

    lists = pki_dir / LIST_KEY_FILE  # the store-wide opt-out list's key
    if not lists.exists():
        ListKey.create(lists)
        res.new_list_key = True

    # the broker's box
    broker = cert("broker", [*hosts, *(n for n in LOCAL_NAMES if n not in hosts)])
    bdir = site / BROKER
    res.new_boxes += [] if bdir.exists() else [BROKER]
    _copy(ca.cert, bdir / "tls" / "ca.crt")
    _copy(broker.cert, bdir / "tls" / "broker.crt")
    _copy(broker.key, bdir / "tls" / "broker.key")
    _write(bdir / "acl", acl_text(layout))
    bridge = opts.bridge
    if bridge is not None:
        try:
            check_bridge_files(store, bridge.ca, bridge.cert, bridge.key)
        except ConfigError as e:  # named by this command's options
            text = str(e)
            for a, b in (("--ca ", "--central-ca "), ("--cert ", "--bridge-cert "),
                         ("--key ", "--bridge-key ")):  # fmt: skip
                text = text.replace(a, b)
            raise ConfigError(text) from e
        user = bridge_user(store)
        _copy(bridge.ca, bdir / "tls" / "central-ca.crt")
        _copy(bridge.cert, bdir / "tls" / f"{user}.crt")
        _copy(bridge.key, bdir / "tls" / f"{user}.key")
        bridge = BridgeSettings(
            store, bridge.host, bridge.port, etc / "tls" / "central-ca.crt",
            etc / "tls" / f"{user}.crt", etc / "tls" / f"{user}.key", protocol=bridge.protocol,
        )  # fmt: skip
    elif before.get("bridge"):
        b = before["bridge"]
        bridge = BridgeSettings(
            store, b["host"], int(b["port"]), Path(b["ca"]), Path(b["cert"]), Path(b["key"]),
            protocol=b.get("protocol", "mqttv311"),
        )  # fmt: skip
    _write(bdir / "footfall.conf", mosquitto_conf_text(etc, port, bridge))
    res.boxes.append(BROKER)

    # the aggregator's box
    agg = cert(aggregator_user(store))
    adir = site / AGGREGATOR
    res.new_boxes += [] if adir.exists() else [AGGREGATOR]
    _copy(ca.cert, adir / "ca.crt")
    _copy(agg.cert, adir / agg.cert.name)
    _copy(agg.key, adir / agg.key.name)
    _write(adir / "floorplan.toml", plan_text)
    _write(adir / "store.toml", store_toml_text(store, state, port))
    _copy(lists, adir / LIST_KEY_FILE)
    res.boxes.append(AGGREGATOR)

    for node, hosted in sorted(layout.nodes.items()):
        user = node_user(node)
        n = cert(user)
        ndir = site / user
        res.new_boxes += [] if ndir.exists() else [user]
        _copy(ca.cert, ndir / "ca.crt")
        _copy(n.cert, ndir / n.cert.name)
        _copy(n.key, ndir / n.key.name)
        _copy(keyfile, ndir / "store.key")
        _copy(lists, ndir / LIST_KEY_FILE)
        _write(ndir / "node.toml", node_toml_text(store, node, hosts[0], port, state, hosted))
        res.boxes.append(user)
    for name in bi:
        user = bi_user(name)
        b = cert(user)
        bdir_ = site / user
        res.new_boxes += [] if bdir_.exists() else [user]
        _copy(ca.cert, bdir_ / "ca.crt")
        _copy(b.cert, bdir_ / b.cert.name)
        _copy(b.key, bdir_ / b.key.name)
        res.boxes.append(user)
    res.orphans = sorted(
        p.name for p in site.glob("node-*") if p.is_dir() and p.name not in res.boxes
    )
    manifest: dict[str, Any] = {
        "store": store,
        "broker_hosts": hosts,
        "bi": bi,
        "port": port,
        "broker_etc": str(etc),
        "state_dir": str(state),
        "timezone": timezone,
    }
    if bridge is not None:
        manifest["bridge"] = {
            "host": bridge.host, "port": bridge.port, "ca": str(bridge.ca),
            "cert": str(bridge.cert), "key": str(bridge.key), "protocol": bridge.protocol,
        }  # fmt: skip
    _write(site / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return res


# ------------------------------------------------------------------ renewal


@dataclass(frozen=True)
class Renewal:
    """One certificate looked at by :func:`renew`."""

    name: str
    not_after: dt.datetime
    renewed: bool
    copies: int
    """box folders it was copied to"""


def renew(site: Path, days_before: int, now: dt.datetime | None = None) -> list[Renewal]:
    """Issue again (same CA, same common name, same server names) every certificate of
    ``site`` that expires within ``days_before`` days, and copy it with its new key to
    every box folder that holds it; the others are kept. The CA itself is not renewed
    here (a ConfigError says so when it expires within the window)."""
    if not (site / MANIFEST).exists() or not (site / PKI / "ca.key").exists():
        raise ConfigError(f"--site {site}: not a site made by `footfall provision store`")
    pki_dir = site / PKI
    ca = _load_ca(pki_dir)
    now = now or dt.datetime.now(dt.UTC)
    limit = now + dt.timedelta(days=days_before)
    ca_info = pki.cert_info(ca.cert)
    if ca_info.not_after <= limit:
        raise ConfigError(
            f"{ca.cert}: the store CA expires {ca_info.not_after:%Y-%m-%d}; a new CA means "
            "new certificates everywhere (provision the site again into a new folder)"
        )
    out: list[Renewal] = []
    for crt in sorted(pki_dir.glob("*.crt")):
        if crt.name == "ca.crt":
            continue
        info = pki.cert_info(crt)
        if info.not_after > limit:
            out.append(Renewal(crt.stem, info.not_after, False, 0))
            continue
        names = server_names(crt) or None
        new = pki.issue(ca, pki_dir, info.common_name, names)
        copies = 0
        for box in sorted(p for p in site.iterdir() if p.is_dir() and p.name != PKI):
            for old in box.rglob(crt.name):
                _copy(new.cert, old)
                _copy(new.key, old.with_suffix(".key"))
                copies += 1
        out.append(Renewal(crt.stem, pki.cert_info(new.cert).not_after, True, copies))
    return out
