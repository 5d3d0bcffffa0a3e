"""``footfall privacy optout add|remove|list --config store.toml``: the store-wide opt-out list.

The aggregator holds it (``store_optout.json`` beside the store database, signed with
the store's ``lists.key`` kept there too) and the running aggregator publishes it to
every node of the store, which applies it from its next frame
(:mod:`sensing.privacy.store_optout`). Only keyed hashes are written, never the
address; ``-`` reads the address from stdin (out of the shell history). The first
``add`` makes the store's list key: copy it to every node's state directory
(``lists.key``), or copy a node's there before the first ``add``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError


def _db(a: argparse.Namespace) -> tuple[str, Path]:
    from heatmap.aggregator import config as aggregator_config

    cfg = aggregator_config.load(a.config)
    db = Path(cfg.db)
    if not db.parent.is_dir():
        raise ConfigError(f"{a.config}: aggregator.db {db}: its folder does not exist")
    return cfg.store, db


def cmd_edit(a: argparse.Namespace) -> int:
    from sensing.cli.optout import _address, _caveats
    from sensing.privacy.store_optout import edit_store_list, store_list_paths

    store, db = _db(a)
    addr = _address(a.address)
    try:
        notes = _caveats(addr) if a.optout_cmd == "add" else []
        if a.optout_cmd == "add":
            lst, changed, created = edit_store_list(db, store, add=[bytes(addr)])
        else:
            lst, changed, created = edit_store_list(db, store, remove=[bytes(addr)])
    finally:
        addr[:] = bytes(len(addr))
    for n in notes:
        print(n)
    key_path, list_path = store_list_paths(db)
    if a.optout_cmd == "add":
        what = "opted out store-wide" if changed else "already opted out store-wide"
    else:
        what = "removed from the store-wide list" if changed else "not on the store-wide list"
    print(
        f"{what}; {len(lst.tags)} on the list ({list_path}); the address was not stored; "
        "the running aggregator sends the list to every node"
    )
    if created:
        print(
            f"created the store's list key {key_path} (mode 0600): copy it to every node's "
            "state directory as lists.key, or the nodes refuse the list (other_key)"
        )
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sensing.privacy.optout import ListKey
    from sensing.privacy.store_optout import read_store_list, store_list_paths

    store, db = _db(a)
    key_path, list_path = store_list_paths(db)
    if not key_path.exists():
        print(f"no store-wide opt-out list ({key_path} does not exist)")
        return 0
    key = ListKey.load(key_path)
    try:
        lst = read_store_list(list_path, store, key)
        key_id = key.key_id
    finally:
        key.erase()
    when = (
        f"{datetime.fromtimestamp(lst.issued_ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"
        if lst.issued_ms
        else "never"
    )
    print(
        f"{len(lst.tags)} addresses opted out store-wide in {list_path} (list key {key_id}, "
        f"changed {when}); entries are keyed hashes:"
    )
    for t in sorted(x.hex() for x in lst.tags):
        print(f"  {t}")
    return 0


def register(psub: Any) -> None:
    """``footfall privacy optout`` under the ``privacy`` command's subparsers."""
    op = psub.add_parser(
        "optout",
        help="the store-wide opt-out list the aggregator sends to every node (keyed hashes)",
    )
    osub = op.add_subparsers(dest="optout_cmd", required=True)
    for name, text in (
        ("add", "opt an address out in every node of the store"),
        ("remove", "take an address off the store-wide list"),
    ):
        c = osub.add_parser(name, help=text)
        c.add_argument("address", help="AA:BB:CC:DD:EE:FF (or - to read it from stdin)")
        c.add_argument("--config", required=True, help="the aggregator's store.toml")
        c.set_defaults(func=cmd_edit)
    ls = osub.add_parser("list", help="how many entries, when changed, their keyed hashes")
    ls.add_argument("--config", required=True, help="the aggregator's store.toml")
    ls.set_defaults(func=cmd_list)
