"""``footfall optout add|remove|list``: the node's opt-out list, keyed hashes only.

The address a person gives (from their device's settings) is hashed with the
store's list key and only the hash is written (``optout.json`` in the node state
directory, beside ``lists.key``); see :mod:`sensing.privacy.optout` for what opt-out can
and cannot match. ``-`` reads the address from stdin, which keeps it out of the
shell history and the process list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from firmware_bridge.errors import FootfallError


def _address(arg: str) -> bytearray:
    from sensing.privacy.optout import parse_address

    text = sys.stdin.readline() if arg == "-" else arg
    return parse_address(text)


def _caveats(addr: bytes | bytearray) -> list[str]:
    out = []
    if addr[0] & 0x02:
        out.append(
            "note: this is a locally administered (randomized) address; a device that "
            "rotates it stops matching when it does"
        )
    if addr[0] & 0x01:
        out.append("note: this is a group (multicast) address; no device transmits from it")
    return out


def cmd_add(a: argparse.Namespace) -> int:
    from sensing.cli import checks
    from sensing.privacy.optout import LIST_KEY_FILE, OPTOUT_FILE, node_lists, state_dir

    d = checks.output_dir(state_dir(a.state_dir), "--state-dir")
    created = not (d / LIST_KEY_FILE).exists()
    key, lst = node_lists(d)
    addr = _address(a.address)
    try:
        added = lst.add(bytes(addr))
        tag = key.tag(bytes(addr)).hex()
        notes = _caveats(addr)
    finally:
        addr[:] = bytes(len(addr))
    if added:
        lst.save()
    for n in notes:
        print(n)
    what = "opted out" if added else "already opted out"
    print(f"{what}: entry {tag[:12]}…; {len(lst)} on the list; the address was not stored")
    if created:
        print(
            f"created the store's list key {d / LIST_KEY_FILE} (mode 0600): copy it and "
            f"{OPTOUT_FILE} to every node of the store"
        )
    return 0


def cmd_remove(a: argparse.Namespace) -> int:
    from sensing.privacy.optout import LIST_KEY_FILE, node_lists, state_dir

    d = state_dir(a.state_dir)
    if not (d / LIST_KEY_FILE).exists():
        raise FootfallError(f"no opt-out list in {d}")
    _, lst = node_lists(d)
    addr = _address(a.address)
    try:
        removed = lst.remove(bytes(addr))
    finally:
        addr[:] = bytes(len(addr))
    if not removed:
        raise FootfallError("this address is not on the opt-out list")
    lst.save()
    print(f"removed; {len(lst)} on the list")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from sensing.privacy.optout import LIST_KEY_FILE, OPTOUT_FILE, node_lists, state_dir

    d = state_dir(a.state_dir)
    if not (d / LIST_KEY_FILE).exists() and not (d / OPTOUT_FILE).exists():
        print(f"0 opted-out addresses ({d} has no opt-out list)")
        return 0
    key, lst = node_lists(d)
    entries = lst.entries()
    print(
        f"{len(entries)} opted-out addresses in {d / OPTOUT_FILE} (list key {key.key_id}); "
        "entries are keyed hashes, addresses are not stored"
    )
    for e in entries:
        print(f"  {e.added or '?':<10}  {e.tag}")
    return 0


def register(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        help="node state directory (default: $FOOTFALL_STATE_DIR, else /var/lib/footfall)",
    )
    p = sub.add_parser(
        "optout",
        help="opt addresses out of sensing (stored only as keyed hashes)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    osub = p.add_subparsers(dest="optout_cmd", required=True)
    addr_help = (
        "the device's address as its settings show it (AA:BB:CC:DD:EE:FF); '-' reads it from stdin"
    )
    add = osub.add_parser("add", parents=[common], help="opt an address out")
    add.add_argument("address", help=addr_help)
    add.set_defaults(func=cmd_add)
    rm = osub.add_parser("remove", parents=[common], help="take an address off the list")
    rm.add_argument("address", help=addr_help)
    rm.set_defaults(func=cmd_remove)
    ls = osub.add_parser("list", parents=[common], help="show the list (hashes and dates)")
    ls.set_defaults(func=cmd_list)
