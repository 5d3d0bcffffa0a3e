"""``footfall privacy notice|audit|inventory|optout``: the privacy officer's kit (docs/privacy.md).

* ``notice``: the in-store signs (A4 and A5, PDF and PNG) and the HTML page, in English,
  French, Italian, German or Spanish, from ``store.toml`` (:mod:`heatmap.privacy.notice`);
* ``audit``: raw identifiers where none may be, retention, k, file modes, the broker's ACL
  and persistence, on the aggregator (``--config``) and on a node (``--node-config``);
  a pass/fail report, exit 1 on a finding;
* ``inventory``: what is stored where, for how long, who can read it, for an impact
  assessment (:mod:`heatmap.privacy.inventory`);
* ``optout``: the store-wide opt-out list (:mod:`sensing.cli.privacy_optout`).

Light at import time: the handlers import what they need.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError


def _paths(values: list[str] | None, flag: str) -> list[Path]:
    out = []
    for v in values or []:
        p = Path(v)
        if not p.exists():
            raise ConfigError(f"{flag} {v}: no such file or folder")
        out.append(p)
    return out


def _text(path: Path, what: str) -> str:
    """A text file's content; ConfigError for one that is not UTF-8 text."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from e


def _canaries(path: str | None) -> Any:
    from sensing.privacy.raw_identifiers import Canaries

    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--canary {path}: no such file")
    c = Canaries.load(p)
    if not len(c):
        raise ConfigError(f"--canary {path}: no canary in it (one address or SSID a line)")
    return c


def _at_ms(value: str, conn: Any) -> int:
    """``--at``: now, the live aggregator's clock (``watermark``), or a time."""
    from heatmap.privacy.store_audit import watermark_ms
    from sensing.cli.report import parse_local_time_ms

    if value == "now":
        return int(time.time() * 1000)
    if value == "watermark":
        w = watermark_ms(conn)
        if w is None:
            raise ConfigError("--at watermark: the live aggregator has not run on this database")
        return w
    return parse_local_time_ms(value, "UTC")


def _store_checks(a: argparse.Namespace, report: Any, logs: list[Path], canaries: Any) -> None:
    import sqlite3

    from heatmap.aggregator import store_db
    from heatmap.aggregator.db_migrations import DatabaseError
    from heatmap.privacy.store_audit import Limits, k_findings, retention_findings
    from heatmap.privacy.store_setup import load_store
    from sensing.privacy.file_modes import PSEUDONYMOUS, SECRET, mode_finding
    from sensing.privacy.raw_identifiers import findings_in
    from sensing.provision.acl_audit import acl_findings, broker_conf
    from sensing.provision.broker_acl import layout_from_plan

    st = load_store(a.config)
    cfg = st.config
    db = Path(cfg.db)
    if not db.is_file():
        raise ConfigError(f"{a.config}: aggregator.db {db}: no such store database")
    db_files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    conf = broker_conf(_paths([a.broker_conf], "--broker-conf")[0]) if a.broker_conf else None
    scanned = [*db_files, *logs, *_paths(a.reports, "--reports")]
    if conf is not None and conf.persistence_file is not None and conf.persistence_file.exists():
        scanned.append(conf.persistence_file)
    found, checked = findings_in(scanned, canaries)
    report.add("store: raw identifiers (database, logs, reports)", found, checked)
    conn = store_db.connect(db, readonly=True)
    try:
        now = _at_ms(a.at, conn)
        limits = Limits(st.privacy.mode, st.retention_hours, cfg.retention.aggregate_after_s, cfg.k)
        found, checked = retention_findings(conn, now, limits, str(db))
        report.add(f"store: retention ({st.privacy.mode} mode)", found, checked)
        found, checked = k_findings(conn, cfg.k, str(db))
        report.add(f"store: every stored aggregate k-anonymous (k = {cfg.k})", found, checked)
    except sqlite3.Error as e:
        raise DatabaseError(f"{db}: {e}") from e
    finally:
        conn.close()
    files = [(p, "the store database", PSEUDONYMOUS) for p in db_files]
    if cfg.broker.tls and cfg.broker.tls.key:
        files.append((cfg.broker.tls.key, "the aggregator's TLS key", SECRET))
    if conf is not None and conf.persistence_file is not None and conf.persistence_file.exists():
        files.append((conf.persistence_file, "the broker's persistence file", PSEUDONYMOUS))
    # the store-wide opt-out list and its key, beside the database
    for name, what, bits in (
        ("lists.key", "the store's list key", SECRET),
        ("store_optout.json", "the store-wide opt-out list", PSEUDONYMOUS),
    ):
        if (Path(db).parent / name).exists():
            files.append((Path(db).parent / name, what, bits))
    modes = [m for p, what, bits in files if (m := mode_finding(Path(p), what, bits))]
    report.add("store: file modes", modes, f"{len(files)} files")
    if a.acl or conf is not None:
        acl_path = Path(a.acl) if a.acl else conf.acl_file if conf else None
        broker: list[str] = []
        if conf is not None:
            if conf.allow_anonymous:
                broker.append(
                    f"{conf.path}: allow_anonymous true: clients without a certificate may connect"
                )
            if conf.acl_file is None:
                broker.append(f"{conf.path}: no acl_file: every client may read every topic")
        if acl_path is not None:
            if not acl_path.is_file():
                broker.append(f"{acl_path}: the ACL file does not exist")
            else:
                layout = layout_from_plan(st.plan)
                broker += acl_findings(_text(acl_path, "the ACL"), layout, str(acl_path))
        what = ", ".join(
            (["ACL against the generated one"] if acl_path else [])
            + (["mosquitto.conf"] if conf else [])
        )
        if conf is not None and conf.persistence:
            what += f", persistence to {conf.persistence_file}"
        report.add("broker: ACL and settings", broker, what)


def cmd_audit(a: argparse.Namespace) -> int:
    from sensing.privacy.audit_report import AuditReport

    if not a.config and not a.node_config:
        raise ConfigError("audit what? --config store.toml (aggregator), --node-config node.toml")
    if a.acl and not a.config:
        raise ConfigError("--acl goes with --config (the ACL is generated from its floor plan)")
    logs = _paths(a.logs, "--logs")
    canaries = _canaries(a.canary)
    if a.json and not Path(a.json).resolve().parent.is_dir():
        raise ConfigError(f"--json {a.json}: its folder does not exist")
    subjects = []
    report = AuditReport("")
    if a.config:
        _store_checks(a, report, logs, canaries)
        subjects.append(f"store ({a.config})")
    if a.node_config:
        from sensing.node import config as node_config
        from sensing.privacy.node_audit import node_checks

        nc = node_config.load(a.node_config)
        node_checks(report, nc.keyfile, nc.state_dir, nc.broker.key, logs, canaries)
        subjects.append(f"node {nc.node} ({a.node_config})")
    report.subject = ", ".join(subjects) + (f"; {len(canaries)} canaries" if canaries else "")
    print(report.text())
    if a.json:
        Path(a.json).write_text(report.dumps() + "\n")
    return 0 if report.passed else 1


def cmd_notice(a: argparse.Namespace) -> int:
    try:
        from heatmap.privacy.notice import write_notice
        from heatmap.privacy.notice_text import LANGUAGES
    except ImportError as e:
        raise ConfigError(
            f"the notice needs the privacy extra ({e.name} is missing): "
            "pip install 'footfall[privacy]'"
        ) from e
    from heatmap.privacy.store_setup import load_store
    from sensing.cli import checks

    langs = list(dict.fromkeys(a.lang or ["en"]))
    for lang in langs:
        if lang not in LANGUAGES:
            raise ConfigError(f"--lang {lang}: one of {', '.join(LANGUAGES)}")
    checks.output_dir(a.out, "--out")
    st = load_store(a.config)
    started = time.monotonic()
    files = write_notice(st, langs, Path(a.out))
    print(
        f"footfall privacy notice: {st.name}, {', '.join(langs)}: {len(files)} files in "
        f"{time.monotonic() - started:.1f} s (k = {st.config.k}, visitors' rows "
        f"{st.retention_hours:g} h, mode {st.privacy.mode})"
    )
    print(f"  signs: {Path(a.out).resolve()}/notice-{{lang}}-A4|A5.pdf|png")
    print(f"  page:  notice-{{lang}}.html, to publish at {st.privacy.notice_url}")
    return 0


def cmd_inventory(a: argparse.Namespace) -> int:
    try:
        from heatmap.privacy import inventory
    except ImportError as e:
        raise ConfigError(
            f"the inventory needs jinja2 ({e.name} is missing): pip install 'footfall[privacy]'"
        ) from e
    from heatmap.privacy.store_setup import load_store
    from sensing.cli import checks
    from sensing.provision.acl_audit import broker_conf, readers
    from sensing.provision.broker_acl import acl_text, layout_from_plan

    checks.output_dir(a.out, "--out")
    st = load_store(a.config)
    conf = broker_conf(_paths([a.broker_conf], "--broker-conf")[0]) if a.broker_conf else None
    acl_path = Path(a.acl) if a.acl else conf.acl_file if conf else None
    if acl_path is not None:
        if not acl_path.is_file():
            raise ConfigError(f"{acl_path}: no such ACL file")
        text, source = _text(acl_path, "the ACL"), f"the ACL {acl_path}"
    else:
        text = acl_text(layout_from_plan(st.plan))
        source = "the ACL footfall provision generates for this floor plan (no --acl given)"
    base = f"footfall/v1/{st.config.store}"
    topics = [f"{base}/node/+/obs", f"{base}/occupancy", f"{base}/footfall/+"]
    topics.append(f"{base}/zone/+/stats")
    topics.append(f"{base}/privacy/optout")
    node = None
    if a.node_config:
        from sensing.node import config as node_config

        nc = node_config.load(a.node_config)
        node = inventory.NodeFacts(
            nc.node, nc.keyfile, nc.state_dir, nc.spool_max_bytes / 2**20, nc.spool_max_batches
        )
    persistence = conf.persistence_file if conf is not None else None
    inv = inventory.build(st, {t: readers(text, t) for t in topics}, source, node, persistence)
    files = inventory.write(inv, Path(a.out))
    print(f"footfall privacy inventory: {len(inv.entries)} stores of data")
    for f in files:
        print(f"  {f.resolve()}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "privacy", help="the privacy officer's kit: notice, audit, inventory (docs/privacy.md)"
    )
    psub = p.add_subparsers(dest="privacy_cmd", required=True)
    no = psub.add_parser(
        "notice",
        help="in-store signs (A4, A5: PDF and PNG) and the notice's web page, from store.toml",
    )
    no.add_argument("--config", required=True, help="the aggregator's store.toml ([privacy])")
    no.add_argument(
        "--lang",
        action="append",
        help="en, fr, it, de or es; repeatable (default en)",
    )
    no.add_argument("--out", default="privacy-notice", help="output folder (%(default)s)")
    no.set_defaults(func=cmd_notice)
    inv = psub.add_parser(
        "inventory",
        help="what is stored where, for how long, who can read it (Markdown and HTML)",
    )
    inv.add_argument("--config", required=True, help="the aggregator's store.toml")
    inv.add_argument("--node-config", help="a node's node.toml (its key, spool, opt-out list)")
    inv.add_argument("--acl", help="the broker's ACL file (default: the generated one)")
    inv.add_argument("--broker-conf", help="mosquitto.conf: its acl_file and persistence")
    inv.add_argument("--out", default="privacy-inventory", help="output folder (%(default)s)")
    inv.set_defaults(func=cmd_inventory)
    au = psub.add_parser(
        "audit",
        help="raw identifiers, retention, k, file modes, the broker's ACL: pass or fail "
        "(exit 1 on a finding)",
    )
    au.add_argument("--config", help="the aggregator's store.toml: audit the store")
    au.add_argument("--node-config", help="a node's node.toml: audit the node")
    au.add_argument(
        "--logs",
        action="append",
        help="a log folder or file (e.g. `journalctl -u 'footfall-*' -o export > FILE`) to "
        "scan; repeatable",
    )
    au.add_argument(
        "--reports", action="append", help="a report or output folder to scan; repeatable"
    )
    au.add_argument(
        "--canary", help="a file of known addresses or SSIDs (one a line) searched everywhere"
    )
    au.add_argument("--acl", help="the broker's ACL file, compared with the generated one")
    au.add_argument(
        "--broker-conf",
        help="mosquitto.conf: anonymous access, its acl_file (unless --acl) and persistence",
    )
    au.add_argument(
        "--at",
        default="now",
        help="judge row ages at this time: now (default), watermark (the live aggregator's "
        "clock: a simulated or replayed store), or ISO 8601 / epoch ms",
    )
    au.add_argument("--json", help="also write the report as JSON to this file")
    au.set_defaults(func=cmd_audit)
    from sensing.cli import privacy_optout

    privacy_optout.register(psub)
