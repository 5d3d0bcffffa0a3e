"""``footfall`` subcommands of a ceiling node: node, doctor, provision.

* ``footfall node --config node.toml`` runs the node daemon (systemd unit in
  ``deploy/systemd/``); exit 0 on a clean stop or a finished replay.
* ``footfall doctor --config node.toml`` checks the node is fit to run; exit 0
  if it is, 1 if not.
* ``footfall provision acl|certs`` makes the broker's ACL and the store's
  certificates from the floor plan (run once per store, on the installer's
  machine or the aggregator).
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
    from firmware_bridge.errors import ConfigError
    from sensing.cli import checks
    from sensing.provision.pki import provision_store

    out = checks.output_dir(a.out, "--out")
    for host in a.broker_host:
        if not host.strip() or any(c.isspace() for c in host):
            raise ConfigError(f"--broker-host {host!r}: a DNS name or an IP address")
    plan = _plan(a.floor)
    if (out / "ca.key").exists() and not a.force:
        from firmware_bridge.errors import FootfallError

        raise FootfallError(f"{out} already holds a CA; use --force to make a new one")
    issued = provision_store(
        out, plan.store_id, [n.id for n in plan.nodes], a.bi or [], a.broker_host
    )
    print(f"wrote a CA and {len(issued) - 1} certificates to {out}:")
    for name, f in issued.items():
        print(f"  {name:<22} {f.cert.name}  {f.key.name} (0600)")
    print(
        "keep ca.key offline; copy node-{id}.crt/.key to each node, broker.* and ca.crt to "
        "the broker (deploy/README.md)"
    )
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

    p = sub.add_parser("provision", help="broker ACL and certificates for a store")
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
