"""``footfall chain``: the chain's centre, every store's aggregates in ClickHouse.

``footfall chain run`` consumes the k-anonymous aggregates the stores' bridges carry
to the central MQTT broker (an MQTT 5 shared subscription: run several to share the
load) into ClickHouse, chDB in this process (``--db DIR``) or a server
(``--clickhouse URL``); ``footfall chain report`` puts the stores side by side over
an ISO week (CSV and a PNG). See docs/chain.md.

Light at import time: the handlers import the heavy modules they need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from sensing.cli import checks


def _broker(a: argparse.Namespace) -> Any:
    from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles

    host, sep, port_s = a.broker.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ConfigError(f"--broker {a.broker!r}: expected HOST:PORT, e.g. mqtt.example:8883")
    tls = None
    if a.ca or a.cert or a.key:
        if not a.ca or bool(a.cert) != bool(a.key):
            raise ConfigError("--ca is needed for TLS, and --cert and --key go together")
        tls = TlsFiles(Path(a.ca), Path(a.cert) if a.cert else None, Path(a.key) if a.key else None)
        checks.tls_files(tls, "--ca/--cert/--key")
    return BrokerAddress(host, int(port_s), tls)


def _store(a: argparse.Namespace) -> Any:
    from heatmap.chain.clickhouse_store import ChainStore, open_backend

    if bool(a.db) == bool(a.clickhouse):
        raise ConfigError("give one of --db DIR (chDB) or --clickhouse URL (a server)")
    if a.db:
        checks.output_dir(a.db, "--db")
    return ChainStore(open_backend(Path(a.db) if a.db else None, a.clickhouse))


def cmd_run(a: argparse.Namespace) -> int:
    import time

    from heatmap.chain.consumer import (
        ChainConsumer,
        ConsumerSettings,
        progress_line,
        retained_sweep,
    )
    from sensing.runtime.service_process import log_to_stderr, stop_on_signals

    addr = _broker(a)
    checks.within(a.consumers, 1, 64, "--consumers")
    checks.within(a.log_every, 0.1, 3600, "--log-every", " s")
    stats_path = checks.output_file(a.stats, "--stats") if a.stats else None
    settings = ConsumerSettings(
        group=a.group,
        consumers=a.consumers,
        store_filter=a.store_filter,
        client_prefix=a.client_prefix or f"footfall-chain-{a.group}",
        session_expiry_s=int(
            checks.within(a.session_expiry_s, 0, 0xFFFFFFFF, "--session-expiry-s")
        ),
    )
    log_to_stderr()
    stop = stop_on_signals()
    store = _store(a)
    consumer = ChainConsumer(addr, store, settings)

    def write_stats(snap: dict[str, Any]) -> None:
        if stats_path is not None:
            tmp = stats_path.with_suffix(stats_path.suffix + ".tmp")
            tmp.write_text(json.dumps(snap))
            tmp.replace(stats_path)

    try:
        consumer.start()
        print(
            f"footfall chain: {settings.consumers} consumers of "
            f"{' and '.join(consumer.topic_filters)} on "
            f"{addr}, into {store.backend.name} {a.db or '(server)'}",
            file=sys.stderr,
            flush=True,
        )
        if a.retained:
            swept = retained_sweep(addr, store, settings.store_filter)
            print(
                f"footfall chain: retained sweep wrote {sum(swept.accepted.values())}, "
                f"rejected {sum(swept.rejected.values())}",
                file=sys.stderr,
                flush=True,
            )
        before: dict[str, Any] | None = None
        t_before = time.monotonic()
        while not stop.wait(a.log_every):
            snap = consumer.snapshot()
            now = time.monotonic()
            print(progress_line(snap, before, now - t_before), file=sys.stderr, flush=True)
            write_stats(snap)
            before, t_before = snap, now
    finally:
        consumer.stop()
        snap = consumer.snapshot()
        write_stats(snap)
        store.close()
    print("footfall chain: stopped; " + progress_line(snap, None, None)[7:], file=sys.stderr)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from heatmap.chain import chain_report
    from sensing.wire.topics import check_id

    first, _last = chain_report.iso_week(a.week)
    stores = None
    if a.stores:
        try:
            stores = [check_id(s.strip(), "store") for s in a.stores.split(",") if s.strip()]
        except ValueError as e:
            raise ConfigError(f"--stores: {e}") from e
    out = checks.output_dir(a.out, "--out")
    if a.db and not Path(a.db).is_dir():
        raise ConfigError(f"--db {a.db}: no such chDB directory")
    store = _store(a)
    try:
        if not store.has_schema():
            raise ConfigError(
                f"{a.db or 'the server'}: no chain tables (footfall chain run writes them)"
            )
        week, paths = chain_report.report(store, a.week, out, stores)
    finally:
        store.close()
    print(
        f"footfall chain report: week {a.week.upper()} from {first}, {len(week.stores)} stores, "
        f"queries {week.query_s * 1000:.0f} ms"
    )
    for p in paths:
        print(f"  {p}")
    return 0


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="chDB directory (ClickHouse in this process, the default)")
    p.add_argument("--clickhouse", help="a ClickHouse server instead: http://user:pw@host:8123")


def register(sub: Any) -> None:
    c = sub.add_parser("chain", help="the chain's centre: every store's aggregates in ClickHouse")
    csub = c.add_subparsers(dest="chain_cmd", required=True)
    r = csub.add_parser("run", help="consume the stores' aggregates from the central broker")
    r.add_argument("--broker", required=True, help="central MQTT broker HOST:PORT")
    r.add_argument("--ca", help="CA certificate (TLS)")
    r.add_argument("--cert", help="client certificate (TLS)")
    r.add_argument("--key", help="client certificate's key (TLS)")
    _target(r)
    r.add_argument(
        "--group", default="footfall-chain", help="shared subscription group (%(default)s)"
    )
    r.add_argument(
        "--consumers", type=int, default=2, help="MQTT clients in this process (%(default)s)"
    )
    r.add_argument("--store-filter", default="+", help="one store id, or + for all (%(default)s)")
    r.add_argument(
        "--client-prefix",
        help="client ids are PREFIX-0, PREFIX-1...: stable so a restart resumes the sessions; "
        "each process of a group needs its own (default footfall-chain-GROUP)",
    )
    r.add_argument(
        "--session-expiry-s",
        type=int,
        default=7 * 86400,
        help="how long the broker queues for a stopped consumer, s (%(default)s)",
    )
    r.add_argument(
        "--retained",
        action="store_true",
        help="also read the retained aggregates once at start (shared subscriptions get none)",
    )
    r.add_argument("--log-every", type=float, default=10.0, help="progress line every S s")
    r.add_argument("--stats", help="write the counters as JSON to this file with each line")
    r.set_defaults(func=cmd_run)
    p = csub.add_parser("report", help="the stores side by side over an ISO week: CSV and PNG")
    _target(p)
    p.add_argument("--week", required=True, help="ISO week, e.g. 2026-W47")
    p.add_argument("--stores", help="comma-separated store ids (default: every store)")
    p.add_argument("--out", default="chain-report", help="output directory (%(default)s)")
    p.set_defaults(func=cmd_report)
