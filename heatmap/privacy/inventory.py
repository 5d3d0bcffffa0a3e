"""``footfall privacy inventory``: what is stored where, for how long, who can read it.

For a data protection impact assessment, generated from the actual configs: the store's
``store.toml`` (its database, k, retention, mode), a node's ``node.toml`` (key, spool,
opt-out list) and the broker's ACL (who may read each topic). Every store of data is one
:class:`Entry`; where a file exists its owner, group and mode are read from the disk, so
the inventory says who can read it now, not who should. Written as Markdown
(``inventory.md``) and HTML (``inventory.html``, jinja2).
"""

from __future__ import annotations

import grp
import pwd
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from heatmap.aggregator.retention import EVENTS_MIN_KEEP_H
from heatmap.privacy.store_audit import STRICT_MAX_AGE_S
from heatmap.privacy.store_setup import StoreSetup

TEMPLATES = Path(__file__).parent / "templates"
PSEUDONYMOUS = "pseudonymous (personal data)"
AGGREGATE = "k-anonymous aggregates"
NONE = "no identifier"


@dataclass(frozen=True)
class NodeFacts:
    """What the inventory needs of a node's ``node.toml``."""

    node: str
    keyfile: Path
    state_dir: Path
    spool_max_mb: float
    spool_max_batches: int


@dataclass(frozen=True)
class Entry:
    where: str
    what: str
    data: str
    """PSEUDONYMOUS, AGGREGATE, NONE or a secret"""
    kept: str
    readers: str


@dataclass
class Inventory:
    title: str
    generated: str
    sources: list[str]
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def file_readers(path: Path) -> str:
    """Who can read ``path`` by its mode: owner, group, everyone (or that it is absent)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "not created yet"
    mode = stat.S_IMODE(st.st_mode)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    who = [f"user {owner}"]
    if mode & 0o040:
        who.append(f"group {group}")
    if mode & 0o004:
        who.append("everyone on the machine")
    return f"{', '.join(who)} (mode {mode:04o})"


def _h(hours: float) -> str:
    return f"{hours:g} h"


def build(
    st: StoreSetup,
    topic_readers: Mapping[str, Sequence[str]],
    acl_source: str,
    node: NodeFacts | None = None,
    persistence: Path | None = None,
) -> Inventory:
    """The inventory of the store ``st`` (and ``node``), with who may read each MQTT
    topic filter (``topic_readers``, from the ACL named by ``acl_source``)."""
    cfg, pv = st.config, st.privacy
    db = Path(cfg.db)
    ret = st.retention_hours
    strict = pv.mode == "strict"
    rows_kept = (
        f"at most {STRICT_MAX_AGE_S / 60:g} min (strict mode)"
        if strict
        else f"passers-by: until their hour is aggregated (within about 2 h); visitors: "
        f"{_h(ret)} (+ up to 1 h until the hourly retention run)"
    )
    on_disk = file_readers(db)
    inv = Inventory(
        title=f"Privacy inventory of store {cfg.store}",
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        sources=[str(st.path), *([f"node {node.node}"] if node else []), acl_source],
    )
    e = inv.entries.append
    e(
        Entry(
            f"{db}: table obs",
            "observations: time, node, pseudonym, RSSI, band",
            PSEUDONYMOUS,
            rows_kept,
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: table track_windows",
            "located 5 s windows: pseudonym, position, zone",
            PSEUDONYMOUS,
            "the newest minute's only, about 95 s (strict mode: the others in the "
            "aggregator's memory, a day)"
            if strict
            else rows_kept,
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: table pid_class",
            "visitor / passer-by class of a pseudonym per hour",
            PSEUDONYMOUS,
            "never on disk (strict mode: in the aggregator's memory)"
            if strict
            else f"until its hour is {_h(ret)} old",
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: table aggregates",
            "15-min, hourly and daily figures, heatmap cells, "
            f"zone stays, flows; fewer than k = {cfg.k} stored as null",
            AGGREGATE,
            "kept (no retention)",
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: table live_intervals",
            "person-seconds per grid cell of each located "
            "interval (working state of the live aggregator; k-guarded like the hour's "
            "heatmap once its hour closes)",
            "per-cell presence, no identifier",
            _h(max(ret, EVENTS_MIN_KEEP_H)),
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: tables door_events, floor_events",
            "each beam crossing and tile press: time, door or tile, direction",
            NONE,
            _h(max(ret, EVENTS_MIN_KEEP_H)),
            on_disk,
        )
    )
    e(
        Entry(
            f"{db}: tables batches, node_status, rejects, meta",
            "ingest bookkeeping, node health, reject counts, watermarks",
            NONE,
            f"batches {_h(ret)}; others kept",
            on_disk,
        )
    )
    base = f"footfall/v1/{cfg.store}"
    obs = topic_readers.get(f"{base}/node/+/obs", [])
    e(
        Entry(
            f"MQTT {base}/node/+/obs (broker {cfg.broker.host})",
            "batches of observations in flight",
            PSEUDONYMOUS,
            "until the aggregator acknowledges them (queued for its persistent session "
            "while it is away)",
            ", ".join(obs) or "nobody",
        )
    )
    agg = sorted(
        {
            u
            for t in ("occupancy", "footfall/+", "zone/+/stats")
            for u in topic_readers.get(f"{base}/{t}", [])
        }
    )
    e(
        Entry(
            f"MQTT {base}/footfall/+, zone/+/stats, occupancy",
            "published figures (retained)",
            AGGREGATE,
            "retained: closed hours 48 h, days 35 days",
            ", ".join(agg) or "nobody",
        )
    )
    optout_readers = topic_readers.get(f"{base}/privacy/optout", [])
    store_list = db.parent / "store_optout.json"
    e(
        Entry(
            f"{store_list} and MQTT {base}/privacy/optout (retained)",
            "the store-wide opt-out list: keyed hashes of addresses, signed",
            PSEUDONYMOUS,
            "until removed (footfall privacy optout remove)",
            f"file: {file_readers(store_list)}; topic: {', '.join(optout_readers) or 'nobody'}",
        )
    )
    if persistence is not None:
        e(
            Entry(
                str(persistence),
                "the broker's saved retained messages and session queues",
                PSEUDONYMOUS + " while the aggregator's queue holds batches",
                "until delivered",
                file_readers(persistence),
            )
        )
    if cfg.broker.tls and cfg.broker.tls.key:
        e(
            Entry(
                str(cfg.broker.tls.key),
                "the aggregator's TLS private key",
                "secret",
                "until re-provisioned",
                file_readers(Path(cfg.broker.tls.key)),
            )
        )
    if node is not None:
        e(
            Entry(
                str(node.keyfile),
                f"node {node.node}: the store key of today's pseudonyms",
                "secret (links addresses to today's pseudonyms)",
                "rolled and erased every day",
                file_readers(node.keyfile),
            )
        )
        spool = node.state_dir / "spool.db"
        e(
            Entry(
                str(spool),
                f"node {node.node}: batches not yet acknowledged",
                PSEUDONYMOUS,
                f"until the broker acknowledges them; at most {node.spool_max_mb:g} MB or "
                f"{node.spool_max_batches:,} batches (oldest dropped)",
                file_readers(spool),
            )
        )
        optout = node.state_dir / "optout.json"
        e(
            Entry(
                str(optout),
                f"node {node.node}: the opt-out list, keyed hashes of addresses",
                PSEUDONYMOUS,
                "until removed (footfall optout remove)",
                file_readers(optout),
            )
        )
        kept = node.state_dir / "store_optout.json"
        e(
            Entry(
                str(kept),
                f"node {node.node}: its copy of the store-wide opt-out list (keyed hashes)",
                PSEUDONYMOUS,
                "replaced by each newer list",
                file_readers(kept),
            )
        )
        lk = node.state_dir / "lists.key"
        e(
            Entry(
                str(lk),
                f"node {node.node}: the opt-out list's key",
                "secret",
                "long-lived",
                file_readers(lk),
            )
        )
    e(
        Entry(
            "the services' logs (journald: footfall-aggregator, footfall-node)",
            "counts, errors, reasons",
            NONE + " (footfall privacy audit --logs checks)",
            "as journald is configured",
            "root and the groups systemd-journal and adm (journald's default)",
        )
    )
    inv.notes += [
        f"Mode {pv.mode}; k = {cfg.k}; visitors' rows {_h(ret)}. "
        "Raw MAC and BLE addresses and SSIDs exist only in a node's memory, between "
        "decoding and pseudonymization; none is stored or sent.",
        "A pseudonym is a keyed hash (HMAC-SHA256 of the address, the key rolled daily and "
        "erased): pseudonymous, not anonymous, as long as the day's key exists.",
        f"Who may read a topic comes from {acl_source}.",
    ]
    if pv.controller:
        inv.notes.insert(
            0,
            f"Controller: {pv.controller}"
            + (f"; contact {pv.contact_email}" if pv.contact_email else ""),
        )
    return inv


def markdown(inv: Inventory) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        f"# {inv.title}",
        "",
        f"Generated {inv.generated} from {', '.join(inv.sources)}.",
        "",
        "| where | what | data | kept | who can read it |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        "| " + " | ".join(cell(x) for x in (en.where, en.what, en.data, en.kept, en.readers)) + " |"
        for en in inv.entries
    ]
    lines += ["", *[f"- {n}" for n in inv.notes], ""]
    return "\n".join(lines)


def html(inv: Inventory) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    return env.get_template("inventory.html.j2").render(inv=inv, pseudonymous=PSEUDONYMOUS)


def write(inv: Inventory, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "inventory.md", out / "inventory.html"
    md.write_text(markdown(inv), encoding="utf-8")
    page.write_text(html(inv), encoding="utf-8")
    return [md, page]
