"""``footfall`` subcommands of a ceiling node: node, doctor, provision.

* ``footfall node --config node.toml`` runs the node daemon (systemd unit in
  ``deploy/systemd/``); exit 0 on a clean stop or a finished replay.
* ``footfall doctor --config node.toml`` checks the node is fit to run; exit 0
  if it is, 1 if not.
* ``footfall provision acl|certs`` makes the broker's ACL and the store's
  certificates from the floor plan (run once per store, on the installer's
  machine or the aggregator).
* ``footfall provision store`` makes a whole store at once (key, CA and certificates,
  ACL, Mosquitto config, the aggregator's config, one folder per box) and grows it by
  the nodes new in the plan; ``footfall provision renew`` renews the certificates of
  such a site that expire soon.
* ``footfall provision central`` makes the chain's central broker (CA, certificates
  of the store bridges, consumers and BI, its config and ACL); ``footfall provision
  bridge`` the bridge stanza that carries one store's aggregates there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_node(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.node import config as node_config
    from sensing.node import log as node_log
    from sensing.node.daemon import NodeDaemon
    from sensing.privacy.key_file import KeyFile
    from sensing.runtime.private_files import private_umask

    cfg = node_config.load(a.config)
    # the files the daemon needs first, checked before it starts (and logs)
    ring, _ = KeyFile(cfg.keyfile).load()
    ring.erase()
    checks.tls_files(cfg.broker.address().tls, a.config)
    node_log.setup(a.log_level or cfg.log_level)
    private_umask()  # the spool and the state it writes are private, systemd or not
    s = NodeDaemon(cfg).run()
    return 0 if s.state in ("done", "stopped") else 1


def cmd_doctor(a: argparse.Namespace) -> int:
    from sensing.node import config as node_config
    from sensing.node.doctor.check import Check, fit
    from sensing.node.doctor.runner import Doctor

    try:
        cfg = node_config.load(a.config)
    except Exception as e:
        print(Check("config", "FAIL", str(e), "see deploy/node.example.toml").line())
        print("footfall doctor: this node is NOT fit to run (1 problem)")
        return 1
    checks = Doctor(cfg, serial_wait_s=a.serial_wait).run()
    print(f"ok    {'config':<13} {a.config}: store {cfg.store}, node {cfg.node}")
    for c in checks:
        print(c.line())
    problems = sum(c.level == "FAIL" for c in checks)
    warnings = sum(c.level == "warn" for c in checks)
    if fit(checks):
        tail = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
        print(f"footfall doctor: node {cfg.node} is fit to run{tail}")
        return 0
    print(
        f"footfall doctor: node {cfg.node} is NOT fit to run "
        f"({problems} problem{'s' if problems != 1 else ''})"
    )
    return 1


def _plan(path: str | None) -> Any:
    from heatmap.spatial.floorplan import load, load_default

    return load(path) if path else load_default()


def cmd_provision_acl(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.provision.broker_acl import acl_text, layout_from_plan

    if a.out:
        checks.output_file(a.out, "--out")
    text = acl_text(layout_from_plan(_plan(a.floor), a.bi or []))
    if a.out:
        Path(a.out).write_text(text)
        print(f"wrote {a.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_provision_certs(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.provision.pki import check_server_names, provision_store

    out = checks.output_dir(a.out, "--out")
    hosts = check_server_names(a.broker_host, "--broker-host")
    plan = _plan(a.floor)
    if (out / "ca.key").exists() and not a.force:
        from firmware_bridge.errors import FootfallError

        raise FootfallError(f"{out} already holds a CA; use --force to make a new one")
    issued = provision_store(out, plan.store_id, [n.id for n in plan.nodes], a.bi or [], hosts)
    print(f"wrote a CA and {len(issued) - 1} certificates to {out}:")
    for name, f in issued.items():
        print(f"  {name:<22} {f.cert.name}  {f.key.name} (0600)")
    print(
        "keep ca.key offline; copy node-{id}.crt/.key to each node, broker.* and ca.crt to "
        "the broker (deploy/README.md)"
    )
    return 0


def cmd_provision_bridge(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.provision.bridge_config import (
        BridgeSettings,
        bridge_conf_text,
        check_bridge_files,
        parse_host_port,
    )

    out = checks.output_file(a.out, "--out") if a.out else None
    host, port = parse_host_port(a.central, "--central")
    ca, cert, key = (Path(p).absolute() for p in (a.ca, a.cert, a.key))
    s = BridgeSettings(a.store, host, port, ca, cert, key, protocol=a.protocol)
    check_bridge_files(a.store, ca, cert, key)
    text = bridge_conf_text(s)
    if out:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_provision_central(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.provision.central_broker import (
        DEFAULT_ETC,
        CentralLayout,
        CentralSettings,
        acl_text,
        conf_text,
        parse_names,
        provision_central,
    )
    from sensing.provision.pki import check_server_names

    out = checks.output_dir(a.out, "--out")
    hosts = check_server_names(a.host, "--host")
    layout = CentralLayout(
        parse_names(a.stores, "--stores"),
        parse_names(",".join(a.consumer or ["main"]), "--consumer"),
        parse_names(",".join(a.bi), "--bi") if a.bi else (),
    )
    etc = Path(a.etc).absolute() if a.etc else DEFAULT_ETC
    settings = CentralSettings(port=a.port, bind=a.bind, etc=etc)
    made = provision_central(out, layout, hosts, new_ca=a.force)
    (out / "acl").write_text(acl_text(layout))
    (out / "mosquitto.conf").write_text(conf_text(settings))
    kept = [n for n in made.issued if n not in made.new]
    print(f"wrote to {out}: mosquitto.conf, acl, {len(made.new)} new certificates")
    for name in made.new:
        f = made.issued[name]
        print(f"  {name:<24} {f.cert.name}  {f.key.name} (0600)")
    if kept:
        more = ", ..." if len(kept) > 5 else ""
        print(f"  kept {len(kept)} from before ({', '.join(kept[:5])}{more})")
    print(
        f"keep ca.key offline; install ca.crt broker.crt broker.key acl in {etc} and "
        "mosquitto.conf as /etc/mosquitto/conf.d/footfall-central.conf; each store gets "
        "ca.crt and its bridge-{store}.crt/.key (deploy/README.md, Chain)"
    )
    return 0


def _plan_text(path: str | None) -> str:
    from importlib import resources

    if path:
        return Path(path).read_text()
    return resources.files("heatmap.spatial.data").joinpath("default_store.toml").read_text()


def cmd_provision_store(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.provision.bridge_config import BridgeSettings, parse_host_port
    from sensing.provision.store_site import SiteOptions, provision_site

    out = checks.output_dir(a.out, "--out")
    plan = _plan(a.floor)
    central = [a.central_ca, a.bridge_cert, a.bridge_key]
    bridge = None
    if a.central or any(central):
        if not (a.central and all(central)):
            from firmware_bridge.errors import ConfigError

            raise ConfigError(
                "--central needs --central-ca, --bridge-cert and --bridge-key (and they need it)"
            )
        host, port = parse_host_port(a.central, "--central")
        ca, cert, key = (Path(p).absolute() for p in central)
        bridge = BridgeSettings(plan.store_id, host, port, ca, cert, key)
    opts = SiteOptions(
        broker_hosts=a.broker_host or (),
        bi_clients=a.bi or (),
        port=a.port,
        broker_etc=Path(a.broker_etc).absolute() if a.broker_etc else None,
        state_dir=Path(a.state_dir).absolute() if a.state_dir else None,
        bridge=bridge,
    )
    r = provision_site(out, plan, _plan_text(a.floor), opts)
    new = ", ".join(r.new_certs) or "none"
    print(f"site of store {r.store} in {out}: new certificates: {new}")
    if r.kept_certs:
        print(f"  kept from before: the CA and {len(r.kept_certs) - 1} certificates")
    if r.new_key:
        print("  a new store key (pki/store.key, copied to every node folder, never to others)")
    if r.new_list_key:
        print("  a new list key (pki/lists.key, for the store-wide opt-out: aggregator and nodes)")
    for box in r.boxes:
        print(f"  {box + '/':<20} {'new' if box in r.new_boxes else 'updated'}")
    for box in r.orphans:
        print(f"  {box + '/':<20} not in the plan any more: left, out of the ACL")
    print(
        "secrets are 0600 in 0700 folders: copy each folder to its box (deploy/README.md); "
        "keep pki/ offline"
    )
    return 0


def cmd_provision_renew(a: argparse.Namespace) -> int:
    from sensing.provision.store_site import renew

    site = Path(a.site)
    done = renew(site, a.days_before)
    renewed = [r for r in done if r.renewed]
    print(
        f"{site}: {len(renewed)} of {len(done)} certificates expire within "
        f"{a.days_before} days and were renewed"
    )
    for r in done:
        what = f"renewed, copied to {r.copies} box folder(s)" if r.renewed else "kept"
        print(f"  {r.name:<24} until {r.not_after:%Y-%m-%d}  {what}")
    if renewed:
        print("copy the renewed files to their boxes and restart their services")
    return 0


def register(sub: Any) -> None:
    n = sub.add_parser("node", help="run the node daemon (sources → MQTT, spool, status)")
    n.add_argument("--config", required=True, help="node.toml (see deploy/node.example.toml)")
    n.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    n.set_defaults(func=cmd_node)

    d = sub.add_parser("doctor", help="check that this node is fit to run; exit 0 if it is")
    d.add_argument("--config", required=True)
    d.add_argument(
        "--serial-wait",
        type=float,
        default=3.0,
        help="seconds to wait for each board to answer (%(default)s)",
    )
    d.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "provision", help="broker ACL and certificates for a store; the chain's bridge and centre"
    )
    psub = p.add_subparsers(dest="what", required=True)
    acl = psub.add_parser("acl", help="Mosquitto ACL from the floor plan")
    acl.add_argument("--floor", help="floor plan TOML (default: the bundled demo store)")
    acl.add_argument("--bi", action="append", help="a BI client name (repeatable)")
    acl.add_argument("--out", help="write here instead of stdout")
    acl.set_defaults(func=cmd_provision_acl)
    certs = psub.add_parser("certs", help="store CA, broker, aggregator, node and BI certificates")
    certs.add_argument("--floor", help="floor plan TOML (default: the bundled demo store)")
    certs.add_argument("--out", required=True)
    certs.add_argument("--bi", action="append", help="a BI client name (repeatable)")
    certs.add_argument(
        "--broker-host",
        action="append",
        required=True,
        help="DNS name or IP address nodes use for the broker (repeatable)",
    )
    certs.add_argument("--force", action="store_true")
    certs.set_defaults(func=cmd_provision_certs)
    bridge = psub.add_parser(
        "bridge", help="Mosquitto bridge stanza: this store's aggregates to the central broker"
    )
    bridge.add_argument("--store", required=True, help="the store id")
    bridge.add_argument("--central", required=True, help="the central broker, HOST:PORT")
    bridge.add_argument("--ca", required=True, help="the chain CA certificate (ca.crt)")
    bridge.add_argument("--cert", required=True, help="bridge-{store}.crt of the chain CA")
    bridge.add_argument("--key", required=True, help="bridge-{store}.key")
    bridge.add_argument(
        "--protocol",
        choices=("mqttv311", "mqttv50"),
        default="mqttv311",
        help="MQTT version spoken to the centre (%(default)s)",
    )
    bridge.add_argument("--out", help="write here (e.g. conf.d/footfall-bridge.conf), not stdout")
    bridge.set_defaults(func=cmd_provision_bridge)
    store = psub.add_parser(
        "store",
        help="a whole store from its floor plan: key, certificates, ACL, broker and aggregator "
        "config, one folder per box; run again to add nodes",
    )
    store.add_argument("--floor", help="floor plan TOML (default: the bundled demo store)")
    store.add_argument("--out", required=True, help="the site folder (made or grown)")
    store.add_argument(
        "--broker-host",
        action="append",
        help="DNS name or IP address nodes use for the broker (repeatable; the first goes "
        "into node.toml; needed the first time)",
    )
    store.add_argument("--bi", action="append", help="a BI client name (repeatable)")
    store.add_argument("--port", type=int, help="the broker's TLS port (8883)")
    store.add_argument(
        "--broker-etc",
        help="where the broker folder is installed, as written into its Mosquitto config "
        "(default /etc/mosquitto/footfall)",
    )
    store.add_argument(
        "--state-dir", help="the daemons' state folder on each box (default /var/lib/footfall)"
    )
    store.add_argument("--central", help="the chain's central broker, HOST:PORT (a bridge)")
    store.add_argument("--central-ca", help="the chain CA certificate")
    store.add_argument("--bridge-cert", help="bridge-{store}.crt of the chain CA")
    store.add_argument("--bridge-key", help="bridge-{store}.key")
    store.set_defaults(func=cmd_provision_store)
    renew = psub.add_parser(
        "renew", help="renew a site's certificates that expire soon (same CA, same names)"
    )
    renew.add_argument("--site", required=True, help="the folder of `footfall provision store`")
    renew.add_argument(
        "--days-before",
        type=int,
        default=30,
        help="renew what expires within this many days (%(default)s)",
    )
    renew.set_defaults(func=cmd_provision_renew)
    central = psub.add_parser(
        "central", help="the chain's central broker: CA, certificates, mosquitto.conf and ACL"
    )
    central.add_argument("--stores", required=True, help="store ids, comma-separated")
    central.add_argument("--out", required=True)
    central.add_argument(
        "--host",
        action="append",
        required=True,
        help="DNS name or IP address the bridges use for the central broker (repeatable)",
    )
    central.add_argument(
        "--consumer", action="append", help="a chain consumer name (repeatable; default main)"
    )
    central.add_argument("--bi", action="append", help="a central BI client name (repeatable)")
    central.add_argument("--port", type=int, default=8883, help="TLS port (%(default)s)")
    central.add_argument("--bind", help="listen on this address only (default: all)")
    central.add_argument(
        "--etc",
        help="where ca.crt, broker.crt, broker.key and acl will be installed, as written into "
        "mosquitto.conf (default /etc/mosquitto/footfall-central)",
    )
    central.add_argument("--force", action="store_true", help="a new CA (every cert reissued)")
    central.set_defaults(func=cmd_provision_central)
