"""Finding raw identifiers where none may be: MAC and BLE addresses, and canaries.

A MAC address and a BLE device address are both six octets, written
``aa:bb:cc:dd:ee:ff`` (or with ``-``, or ``aabb.ccdd.eeff``). Nothing footfall writes
holds one (a node turns each into a pseudonym right after decoding), so any such pattern
in a database, spool, log or report is a finding. A bare 12-hex run is not searched in
general (hashes, ids and blobs hold many), only as a *canary*: an address or SSID known
to have been on the air (a simulator's, a test phone's), searched in every spelling
(``aa:bb..``, ``AA-BB..``, ``aabbccddeeff``, the six raw bytes in display and in
on-air order) and, for an SSID, as its UTF-8 text.

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

ROWS_AT_ONCE = 5000
"""a database's values are scanned this many rows at a time, a column's as one buffer"""
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
    raw: bool = False
    """found as the six bytes themselves, not as text"""


_HEXRUN = re.compile(rb"[0-9A-Fa-f]{12,}")


@dataclass(frozen=True)
class Canaries:
    """Identifiers known to have been on the air, indexed for one pass over the data: an
    address by its 12 lower-case hex digits (every text spelling reduces to them) and by
    its six bytes in both orders, an SSID by its UTF-8 text. A canary's line number names
    it in findings (the line itself is never shown)."""

    hex12: dict[bytes, int] = field(default_factory=dict)
    raw6: dict[bytes, int] = field(default_factory=dict)
    texts: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Canaries:
        """One canary a line: an address in any spelling, or an SSID; a line starting
        with ``#`` is a comment."""
        c = cls()
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            hexes = re.sub(r"[:.\-\s]", "", line)
            if re.fullmatch(r"[0-9A-Fa-f]{12}", hexes):
                b = bytes.fromhex(hexes)
                c.hex12.setdefault(hexes.lower().encode(), n)
                c.raw6.setdefault(b, n)
                c.raw6.setdefault(b[::-1], n)
            else:
                c.texts.setdefault(line.encode("utf-8"), n)
        return c

    @classmethod
    def load(cls, path: Path) -> Canaries:
        return cls.parse(path.read_text(encoding="utf-8", errors="replace"))

    def __len__(self) -> int:
        return len(set(self.hex12.values()) | set(self.texts.values()))


def mask(found: bytes) -> str:
    """An address with all but its last octet hidden, so a finding names no one.

    >>> mask(b"3C-22-FB-01-02-5F"), mask(b"3c22.fb01.025f")
    ('**:**:**:**:**:5f', '**:**:**:**:**:5f')
    """
    hexes = re.sub(rb"[^0-9A-Fa-f]", b"", found).decode().lower()
    return "**:**:**:**:**:" + hexes[-2:]


def scan_bytes(
    data: bytes, canaries: Canaries | None = None, base: int = 0, raw: bool = True
) -> list[Hit]:
    """Every raw address pattern and canary in ``data`` (offsets from ``base``); ``raw``:
    also look for canaries as raw bytes (a pass over every byte offset, ~0.6 s a MB)."""
    c = canaries or Canaries()
    hits = []
    for m in _SEP.finditer(data):
        n = c.hex12.get(re.sub(rb"[^0-9A-Fa-f]", b"", m.group(0)).lower())
        at = base + m.start()
        hits.append(Hit("canary", f"canary {n}", at) if n else Hit("address", mask(m[0]), at))
    if c.hex12:
        for m in _HEXRUN.finditer(data):
            run = m.group(0).lower()
            for i in range(len(run) - 11):
                n = c.hex12.get(run[i : i + 12])
                if n:
                    hits.append(Hit("canary", f"canary {n}", base + m.start() + i))
    for text, n in c.texts.items():
        at = data.find(text)
        if at >= 0:
            hits.append(Hit("canary", f"canary {n}", base + at))
    if raw and c.raw6:
        six = c.raw6
        hits += [
            Hit("canary", f"canary {six[data[i : i + 6]]}", base + i, raw=True)
            for i in range(len(data) - 5)
            if data[i : i + 6] in six
        ]
    return hits


def scan_file(path: Path, canaries: Canaries | None = None) -> list[Hit]:
    """:func:`scan_bytes` over a file, read in chunks that overlap by the longest pattern."""
    c = canaries or Canaries()
    overlap = max([17, *(len(t) for t in c.texts)])
    hits: dict[tuple[str, int], Hit] = {}
    with path.open("rb") as fh:
        pos, tail = 0, b""
        while pos < MAX_FILE_BYTES:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            for h in scan_bytes(tail + chunk, c, pos - len(tail)):
                hits.setdefault((h.masked, h.offset), h)
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
            batch: list[list[bytes]] = [[] for _ in cols]
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                out.rows_scanned += 1
                for i, v in enumerate(row):
                    if isinstance(v, str):
                        batch[i].append(v.encode("utf-8", "replace"))
                    elif isinstance(v, bytes):
                        batch[i].append(v)
                if out.rows_scanned % ROWS_AT_ONCE == 0:
                    _scan_batch(out, table, cols, batch, canaries)
            _scan_batch(out, table, cols, batch, canaries)
    finally:
        conn.close()
    return out


def _scan_batch(
    out: TableHits,
    table: str,
    cols: list[str],
    batch: list[list[bytes]],
    canaries: Canaries | None,
) -> None:
    """Scan each column's gathered values as one buffer (NUL between values), then empty
    them. Raw-byte canaries are left to the file's own scan, which sees the same bytes."""
    for col, values in zip(cols, batch, strict=True):
        if values:
            hits = scan_bytes(b"\x00".join(values), canaries, raw=False)
            if hits:
                out.where.setdefault((table, col), []).extend(hits)
            values.clear()


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


def size_of(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


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
            in_rows: set[str] = set()
            if is_sqlite(p):
                th = scan_sqlite(p, canaries)
                rows += th.rows_scanned
                for (table, col), hits in sorted(th.where.items()):
                    in_rows |= {h.masked for h in hits}
                    out.append(f"{p}: table {table}, column {col}: {len(hits)} × {_said(hits)}")
            raw = scan_file(p, canaries)
        except FileNotFoundError:
            continue  # gone while scanning (a rotated log, a checkpointed WAL)
        except sqlite3.DatabaseError as e:
            out.append(f"{p}: a damaged database, not scanned row by row ({e})")
            raw = scan_file(p, canaries)
        # what the file's bytes hold beyond the live rows (an index repeats a row's value,
        # so compared by what was found, not how often)
        text = [h for h in raw if not h.raw and h.masked not in in_rows]
        if text:
            where = " outside its live rows (deleted, not overwritten)" if is_sqlite(p) else ""
            out.append(f"{p}: {len(text)} × {_said(text)}{where}")
        binary = [h for h in raw if h.raw]
        if binary:
            out.append(f"{p}: {len(binary)} × {_said(binary)} as raw bytes")
        if size_of(p) > MAX_FILE_BYTES:
            out.append(f"{p}: only its first {MAX_FILE_BYTES >> 30} GiB scanned")
    mb = size / 1e6
    return out, f"{files} files, {mb:,.1f} MB" + (f", {rows:,} rows" if rows else "")
