"""Files that hold pseudonymous data: created 0600, in folders created 0700.

The daemons make their own files private whether or not systemd's
``StateDirectoryMode``/``UMask`` are there to do it (a daemon started by hand, in a
container, from a test): the store database and the node's spool hold pseudonyms,
and a pseudonym is personal data. SQLite gives a database's ``-wal`` and ``-shm``
files the database file's own mode, so creating the database 0600 before SQLite
opens it covers them too.

>>> import tempfile, stat
>>> d = Path(tempfile.mkdtemp())
>>> p = private_file(d / "state" / "store.db")
>>> oct(stat.S_IMODE(p.stat().st_mode)), oct(stat.S_IMODE(p.parent.stat().st_mode))
('0o600', '0o700')
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
"""owner read and write, nobody else"""
PRIVATE_DIR_MODE = 0o700
"""owner only"""
DAEMON_UMASK = 0o077
"""what the daemons set at start: every file they create is private"""


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and its missing parents 0700; folders that exist are left as they are."""
    p = Path(path)
    missing: list[Path] = []
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(d, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    return Path(path)


def private_file(path: str | Path) -> Path:
    """Make sure ``path`` exists and is 0600 (an existing file of ours is tightened).

    Its folder is created 0700 if missing. A file another user owns is left alone:
    changing it would fail, and opening it will say what is wrong.
    """
    p = Path(path)
    private_dir(p.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
    st = p.stat()
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(p, PRIVATE_FILE_MODE)
    return p


def private_umask() -> int:
    """Set the process umask so that every file a daemon creates is private; the old one."""
    return os.umask(DAEMON_UMASK)
