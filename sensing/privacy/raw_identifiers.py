"""Finding raw identifiers where none may be: MAC and BLE addresses, and canaries.

A MAC address and a BLE device address are both six octets, written
``aa:bb:cc:dd:ee:ff`` (or with ``-``, or ``aabb.ccdd.eeff``). Nothing footfall writes
holds one (a node turns each into a pseudonym right after decoding), so any such pattern
in a database, spool, log or report is a finding. A bare 12-hex run is not searched in
general (hashes, ids and blobs hold many), only as a *canary*: an address or SSID known
to have been on the air (a simulator's, a test phone's), searched in every spelling
(``aa:bb..``, ``AA-BB..``, ``aabbccddeeff``, the six raw bytes in display and in
on-air order) and, for an SSID, as its
UTF-8 text.

Findings never repeat what they found: an address is shown with its first five octets
masked (``**:**:**:**:**:5f``), an SSID canary by its line in the canary file.

>>> [h.masked for h in scan_bytes(b"phone 3C:22:FB:01:02:5F joined; pid 0011223344556677")]
['**:**:**:**:**:5f']
>>> scan_bytes(b"10:00:00 at 2026-11-20, pid 3c22fb01025f0a1b")
[]
>>> seen = Canaries.parse("3c:22:fb:01:02:5f")
>>> [h.masked for h in scan_bytes(b"..\\x3c\\x22\\xfb\\x01\\x02\\x5f..", seen)]
['canary 1']
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_SEP = re.compile(
    rb"(?<![0-9A-Fa-f:.-])"
    rb"(?:[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}"
    rb"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})"
    rb"(?![0-9A-Fa-f]|[:-][0-9A-Fa-f])"
)
"""six octets with separators (``:``, ``-``, or Cisco's dotted triples), not part of a
longer run (an IPv6 address, a hex dump)"""

CHUNK = 1 << 20
"""bytes read at a time from a file"""
MAX_FILE_BYTES = 4 << 30
"""files larger than this are scanned only this far (and the finding says so)"""


@dataclass(frozen=True, slots=True)
class Hit:
    """One raw identifier found: what kind, shown masked, and where in its source."""

    kind: str
    """``address`` or ``canary``"""
    masked: str
    offset: int
    """byte offset in the file (or the value) it was found at"""


@dataclass(frozen=True)
class Canaries:
    """Identifiers known to have been on the air, each as every byte string it may be
    written as; a line's number names it in findings (the line itself is never shown)."""

    forms: tuple[tuple[int, tuple[bytes, ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Canaries:
        """One canary a line: an address in any spelling, or an SSID; a line starting
        with ``#`` is a comment."""
        forms: list[tuple[int, tuple[bytes, ...]]] = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                forms.append((n, spellings(line)))
        return cls(tuple(forms))

    @classmethod
    def load(cls, path: Path) -> Canaries:
        return cls.parse(path.read_text(encoding="utf-8", errors="replace"))

    def __len__(self) -> int:
        return len(self.forms)


def spellings(canary: str) -> tuple[bytes, ...]:
    """Every way ``canary`` may be written: an address's separated, bare, upper- and
    lower-case and raw-byte forms (both byte orders: BLE sends its address
    little-endian); anything else (an SSID) as its UTF-8 text.

    >>> spellings("3C-22-fb-01-02-5f")[:3]
    (b'3c:22:fb:01:02:5f', b'3C:22:FB:01:02:5F', b'3c-22-fb-01-02-5f')
    >>> spellings("Cafe Wi-Fi")
    (b'Cafe Wi-Fi',)
    """
    hexes = re.sub(r"[:.\-\s]", "", canary)
    if len(hexes) != 12 or not re.fullmatch(r"[0-9A-Fa-f]{12}", hexes):
        return (canary.encode("utf-8"),)
    lo = hexes.lower()
    octets = [lo[i : i + 2] for i in range(0, 12, 2)]
    forms = []
    for sep in (":", "-", "."):
        forms += [sep.join(octets).encode(), sep.join(octets).upper().encode()]
    dotted = f"{lo[0:4]}.{lo[4:8]}.{lo[8:12]}"
    raw = bytes.fromhex(lo)
    forms += [lo.encode(), lo.upper().encode(), dotted.encode(), raw, raw[::-1]]
    return tuple(dict.fromkeys(forms))


def mask(found: bytes) -> str:
    """An address with all but its last octet hidden, so a finding names no one.

    >>> mask(b"3C-22-FB-01-02-5F"), mask(b"3c22.fb01.025f")
    ('**:**:**:**:**:5f', '**:**:**:**:**:5f')
    """
    hexes = re.sub(rb"[^0-9A-Fa-f]", b"", found).decode().lower()
    return "**:**:**:**:**:" + hexes[-2:]


def scan_bytes(data: bytes, canaries: Canaries | None = None, base: int = 0) -> list[Hit]:
    """Every raw address pattern and canary in ``data`` (offsets from ``base``)."""
    hits = [Hit("address", mask(m.group(0)), base + m.start()) for m in _SEP.finditer(data)]
    for n, forms in (canaries or Canaries()).forms:
        for form in forms:
            at = data.find(form)
            if at >= 0:
                hits.append(Hit("canary", f"canary {n}", base + at))
                break
    return hits


def scan_file(path: Path, canaries: Canaries | None = None) -> list[Hit]:
    """:func:`scan_bytes` over a file, read in chunks that overlap by the longest pattern."""
    overlap = max([17] + [len(f) for _, fs in (canaries or Canaries()).forms for f in fs])
    hits: dict[tuple[str, str, int], Hit] = {}
    with path.open("rb") as fh:
        pos, tail = 0, b""
        while pos < MAX_FILE_BYTES:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            for h in scan_bytes(tail + chunk, canaries, pos - len(tail)):
                hits.setdefault((h.kind, h.masked, h.offset), h)
            pos += len(chunk)
            tail = chunk[-overlap:]
    return sorted(hits.values(), key=lambda h: h.offset)


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


@dataclass
class TableHits:
    """Raw identifiers in a SQLite database's live rows, per table and column."""

    where: dict[tuple[str, str], list[Hit]] = field(default_factory=dict)
    rows_scanned: int = 0


def scan_sqlite(path: Path, canaries: Canaries | None = None) -> TableHits:
    """Every text and blob value of every table of the database at ``path`` (read-only)."""
    out = TableHits()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                out.rows_scanned += 1
                for col, v in zip(cols, row, strict=True):
                    if isinstance(v, str):
                        v = v.encode("utf-8", "replace")
                    if isinstance(v, bytes):
                        for h in scan_bytes(v, canaries):
                            out.where.setdefault((table, col), []).append(h)
    finally:
        conn.close()
    return out


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    """Every regular file at or under ``roots`` (symbolic links not followed), once each."""
    seen: set[Path] = set()
    for root in roots:
        items = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in items:
            if p.is_symlink() or p in seen:
                continue
            seen.add(p)
            yield p


def _said(hits: list[Hit]) -> str:
    kinds = sorted(
        {h.masked if h.kind == "canary" else f"a raw address ({h.masked})" for h in hits}
    )
    more = f" and {len(kinds) - 3} more" if len(kinds) > 3 else ""
    return ", ".join(kinds[:3]) + more


def findings_in(paths: Iterable[Path], canaries: Canaries | None = None) -> tuple[list[str], str]:
    """One finding line per file (per table and column of a database) holding raw
    identifiers, and what was scanned. A database's bytes outside its live rows (deleted
    rows not yet overwritten, its write-ahead log) are scanned too."""
    out: list[str] = []
    files = rows = size = 0
    for p in files_under(paths):
        try:
            size += p.stat().st_size
            files += 1
            in_rows = 0
            if is_sqlite(p):
                th = scan_sqlite(p, canaries)
                rows += th.rows_scanned
                for (table, col), hits in sorted(th.where.items()):
                    in_rows += len(hits)
                    out.append(f"{p}: table {table}, column {col}: {len(hits)} × {_said(hits)}")
            raw = scan_file(p, canaries)
        except FileNotFoundError:
            continue  # gone while scanning (a rotated log, a checkpointed WAL)
        except sqlite3.DatabaseError as e:
            out.append(f"{p}: a damaged database, not scanned row by row ({e})")
            raw = scan_file(p, canaries)
        if len(raw) > in_rows:
            extra = len(raw) - in_rows
            where = (
                "outside its live rows (deleted, not overwritten)"
                if in_rows or is_sqlite(p)
                else ""
            )
            out.append(f"{p}: {extra} × {_said(raw)}" + (f" {where}" if where else ""))
        if p.stat().st_size > MAX_FILE_BYTES:
            out.append(f"{p}: only its first {MAX_FILE_BYTES >> 30} GiB scanned")
    mb = size / 1e6
    return out, f"{files} files, {mb:,.1f} MB" + (f", {rows:,} rows" if rows else "")
