"""``footfall`` subcommands of the node side: keygen."""

from __future__ import annotations

import argparse
from typing import Any

from firmware_bridge.errors import ConfigError, FootfallError
from sensing.cli import checks


def cmd_keygen(a: argparse.Namespace) -> int:
    from datetime import date

    from sensing.privacy.key_file import KeyFile

    path = checks.output_file(a.out, "--out")
    if path.exists() and not a.force:
        raise FootfallError(f"{path} exists; use --force to replace the store key")
    try:
        start = date.fromisoformat(a.start_date) if a.start_date else date.today()
    except ValueError as e:
        raise ConfigError(f"--start-date {a.start_date!r}: expected YYYY-MM-DD") from e
    KeyFile.provision(path, start, a.roll_hour, a.timezone)
    print(
        f"wrote store key {path} (mode 0600); copy it to every node of the store, never to "
        "the aggregator"
    )
    return 0


def register(sub: Any) -> None:
    k = sub.add_parser("keygen", help="provision a store's pseudonym key (K_0)")
    k.add_argument("--out", required=True)
    k.add_argument("--start-date", help="local date of epoch 0 (default today)")
    k.add_argument("--roll-hour", type=int, default=4)
    k.add_argument("--timezone", default="UTC")
    k.add_argument("--force", action="store_true")
    k.set_defaults(func=cmd_keygen)
