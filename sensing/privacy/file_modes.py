"""Who may read a file that holds keys or pseudonyms: the audit's file-mode rule.

A store key, the opt-out list key and a TLS private key are the owner's alone (no
group or other bit); a database, spool or opt-out list holds pseudonyms and must not be
readable by everyone (no *other* bit; a group the service shares it with is the
operator's choice). :mod:`sensing.runtime.private_files` creates them so; the audit
checks that nobody loosened them since.

>>> too_open(0o600, SECRET), too_open(0o640, SECRET), too_open(0o640, PSEUDONYMOUS)
(False, True, False)
>>> too_open(0o644, PSEUDONYMOUS)
True
"""

from __future__ import annotations

import stat
from pathlib import Path

SECRET = 0o077
"""bits a key file may not have: any group or other permission"""
PSEUDONYMOUS = 0o007
"""bits a file of pseudonymous rows may not have: any permission for others"""


def too_open(mode: int, forbidden: int) -> bool:
    return bool(stat.S_IMODE(mode) & forbidden)


def mode_finding(path: Path, what: str, forbidden: int) -> str | None:
    """One finding line if ``path`` (a ``what``) has a ``forbidden`` bit, else None;
    a file that does not exist has no mode to check (its absence is said elsewhere)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & forbidden:
        return None
    who = "everyone" if mode & 0o007 else "its group"
    fix = "0600" if forbidden == SECRET else "0600 or 0640"
    return f"{path}: {what} is mode {mode:04o}, readable by {who} (chmod {fix})"
