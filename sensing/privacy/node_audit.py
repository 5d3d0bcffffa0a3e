"""The privacy audit of a node: its spool and lists hold no raw identifier, its keys and
pseudonymous files are private.

A node's state directory holds ``spool.db`` (batches of pseudonymous observations until
the broker acknowledges them), the opt-out list ``optout.json`` (keyed hashes) and its
key ``lists.key``; the store key is the ``keyfile`` of ``node.toml``, the TLS key its
``[broker] key``. :func:`node_checks` adds the node's checks to an
:class:`~sensing.privacy.audit_report.AuditReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sensing.privacy.audit_report import AuditReport
from sensing.privacy.file_modes import PSEUDONYMOUS, SECRET, mode_finding
from sensing.privacy.optout import LIST_KEY_FILE, OPTOUT_FILE
from sensing.privacy.raw_identifiers import Canaries, findings_in
from sensing.wire.optout_list import LIST_FILE

SPOOL_FILES = ("spool.db", "spool.db-wal", "spool.db-shm")


def node_checks(
    report: AuditReport,
    keyfile: Path,
    state_dir: Path,
    tls_key: Path | None,
    logs: Sequence[Path] = (),
    canaries: Canaries | None = None,
) -> None:
    """Raw identifiers in the state directory and ``logs``; the modes of the node's files."""
    scanned = [state_dir, *logs] if state_dir.is_dir() else list(logs)
    found, checked = findings_in(scanned, canaries)
    if not state_dir.is_dir():
        found.insert(0, f"{state_dir}: the node's state directory does not exist")
    report.add("node: raw identifiers (spool, lists, logs)", found, checked)
    modes: list[str] = []
    files = [
        (keyfile, "the store key", SECRET),
        (state_dir / LIST_KEY_FILE, "the list key", SECRET),
    ]
    if tls_key is not None:
        files.append((tls_key, "the node's TLS key", SECRET))
    files += [(state_dir / n, "the spool", PSEUDONYMOUS) for n in SPOOL_FILES]
    files.append((state_dir / OPTOUT_FILE, "the opt-out list", PSEUDONYMOUS))
    files.append((state_dir / LIST_FILE, "the store-wide opt-out list's copy", PSEUDONYMOUS))
    present = [f for f in files if f[0].exists()]
    modes += [m for p, what, bits in present if (m := mode_finding(p, what, bits))]
    if not keyfile.exists():
        modes.insert(0, f"{keyfile}: the store key does not exist (footfall keygen)")
    report.add("node: file modes", modes, f"{len(present)} files")
