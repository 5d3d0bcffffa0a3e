"""Opt-out: a node-side list of opted-out addresses, kept only as keyed hashes.

The design (docs/architecture.md): "a node-side list of opted-out addresses, kept
only as keyed hashes, drops matching frames before anything else happens". A frame
whose transmitter address is on the list is dropped right after decoding, before
the infrastructure filter, the RSSI filter and pseudonymization; only a count
(``opted_out``) remains.

Keys
----
The pseudonym key rotates every epoch, so it cannot recognise an address next
week. The list therefore uses a separate, long-lived per-store **list key**
``K_list`` (32 bytes, file ``lists.key``, mode 0600), and stores
``tag = HMAC-SHA256(K_list, address)[:16]`` for each entry, never the address.
The same key tags the learned infrastructure (:mod:`sensing.capture.infrastructure_filter`).
Every node of a store needs the same ``lists.key``. A node's own ``optout.json``
(``footfall optout add`` on that node) applies to that node; the **store-wide** list
(``footfall privacy optout add --config store.toml`` on the aggregator) reaches every
node over MQTT and is applied besides it (:mod:`sensing.privacy.store_optout`,
:meth:`OptOutList.apply_store`).

Trade-off, said plainly: a keyed hash stops someone who has ``optout.json``
alone from reading addresses out of it, but whoever also has ``lists.key`` (i.e.
the node's disk) can test candidate addresses, and a MAC address has only about
2^24 values per vendor prefix. The list protects against leaks of the list, not
against a thief of the whole node.

What opt-out can and cannot do
------------------------------
It matches *the address a device transmits*. That works for devices with a
fixed address: phones or laptops with MAC randomization turned off, many
wearables, trackers and older devices, and a phone's Wi-Fi address while it
keeps one (a per-network private address while associated). It does **not**
follow a modern phone's probe requests or BLE adverts, which use random
addresses that change every few minutes (Wi-Fi) or about every 15 minutes (BLE
resolvable private addresses) and are not the address shown in the phone's
settings. Those phones are already protected by their rotation: the node only
ever publishes per-day pseudonyms of short-lived random addresses. Resolving BLE
private addresses would need the phone's Identity Resolving Key, which phones do
not show to their users; it is not supported.

Example
-------
>>> key = ListKey.ephemeral()
>>> lst = OptOutList(key)
>>> lst.add(parse_address("00:1B:63:84:45:E6"))
True
>>> lst.matches(bytes.fromhex("001b638445e6")), len(lst)
(True, 1)
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from firmware_bridge.errors import ConfigError
from sensing.privacy.key_file import read_private_file, write_private_file
from sensing.privacy.key_memory import KEY_BYTES, json_with_key, random_key, take_hex_key
from sensing.privacy.pseudonym import KeyedHash

__all__ = [
    "DEFAULT_STATE_DIR",
    "LIST_KEY_FILE",
    "OPTOUT_FILE",
    "TAG_BYTES",
    "ListKey",
    "OptOutEntry",
    "OptOutList",
    "existing_optout",
    "format_address",
    "node_lists",
    "parse_address",
    "state_dir",
]

TAG_BYTES = 16
LIST_KEY_FILE = "lists.key"
OPTOUT_FILE = "optout.json"
DEFAULT_STATE_DIR = Path("/var/lib/footfall")
_KEY_ID_INFO = b"footfall/list-key-id/v1"
_SIGN_INFO = b"footfall/store-optout-signature/v1"  # sensing.wire.optout_list.SIGN_INFO
_ADDR_RE = re.compile(
    r"^(?:[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}"  # aa:bb:cc:dd:ee:ff, aa-bb-…
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"  # aabb.ccdd.eeff
    r"|[0-9a-f]{12})$",  # aabbccddeeff
    re.IGNORECASE,
)


def state_dir(explicit: str | Path | None = None) -> Path:
    """The node's state directory: ``explicit``, else ``$FOOTFALL_STATE_DIR``, else
    ``/var/lib/footfall``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("FOOTFALL_STATE_DIR")
    return Path(env) if env else DEFAULT_STATE_DIR


def parse_address(text: str) -> bytearray:
    """A 6-byte address (display order, as phones show it) from its usual spellings.

    Accepts ``AA:BB:CC:DD:EE:FF``, ``aa-bb-cc-dd-ee-ff``, ``aabb.ccdd.eeff`` and
    ``aabbccddeeff``. The error message never repeats the input.
    """
    t = text.strip()
    if not _ADDR_RE.match(t):
        raise ConfigError("not a 6-byte address (expected AA:BB:CC:DD:EE:FF)")
    digits = [c for c in t if c not in ":-."]
    out = bytearray(6)
    for i in range(6):
        out[i] = int(digits[2 * i] + digits[2 * i + 1], 16)
    return out


def format_address(addr: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` (for tests and configured equipment only)."""
    return ":".join(f"{b:02x}" for b in addr)


class ListKey:
    """The long-lived per-store key of address lists (opt-out, infrastructure).

    ``tag(addr) = HMAC-SHA256(K_list, addr)[:16]``. The key lives in one
    ``bytearray`` (see :mod:`sensing.privacy.pseudonym` on erasure).
    """

    def __init__(self, key: bytearray) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(f"list key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key if isinstance(key, bytearray) else bytearray(key)
        self._mac = KeyedHash(self._key)

    @staticmethod
    def ephemeral() -> ListKey:
        """A random key that lives only in this process (nothing to persist)."""
        return ListKey(random_key())

    @staticmethod
    def load(path: Path) -> ListKey:
        """Read ``lists.key`` (mode 0600)."""
        try:
            buf = read_private_file(path, "list key")
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: no list key (run `footfall optout add` once)") from e
        try:
            return ListKey(take_hex_key(buf))
        except ValueError as e:
            raise ConfigError(f"{path}: invalid list key: {e}") from e
        finally:
            buf[:] = bytes(len(buf))

    @staticmethod
    def create(path: Path) -> ListKey:
        """Write a new random list key to ``path`` (refuses to replace one)."""
        if path.exists():
            raise ConfigError(f"{path}: a list key exists already")
        key = ListKey(random_key())
        buf = json_with_key({"v": 1, "use": "footfall address lists"}, key._key)
        try:
            write_private_file(path, buf, prefix=".lists-")
        finally:
            buf[:] = bytes(len(buf))
        return key

    @staticmethod
    def load_or_create(path: Path) -> tuple[ListKey, bool]:
        """(key, created)."""
        if path.exists():
            return ListKey.load(path), False
        return ListKey.create(path), True

    def tag(self, addr: bytes) -> bytes:
        """16-byte keyed hash of a 6-byte address."""
        return self._mac.digest(addr)[:TAG_BYTES]

    @property
    def key_id(self) -> str:
        """8 hex chars naming the key (not secret): lists made with another key are
        refused instead of silently matching nothing."""
        return hmac.digest(self._key, _KEY_ID_INFO, "sha256")[:4].hex()

    def signing_key(self) -> bytes:
        """The key that signs and verifies the store-wide list
        (:mod:`sensing.wire.optout_list`), derived from K_list."""
        return hmac.digest(self._key, _SIGN_INFO, "sha256")

    def erase(self) -> None:
        self._mac = KeyedHash(bytearray(KEY_BYTES))
        self._key[:] = bytes(KEY_BYTES)


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    tag: str
    """32 hex chars: HMAC-SHA256(K_list, address)[:16]"""
    added: str
    """ISO date the entry was added"""


class OptOutList:
    """Opted-out addresses as keyed tags, optionally backed by ``optout.json``.

    ``optout.json``: ``{"v": 1, "key_id": "<8 hex>", "entries": [{"tag": "<32
    hex>", "added": "YYYY-MM-DD"}, ...]}``, mode 0600, replaced atomically.
    A running node calls :meth:`refresh` now and then to pick up changes made by
    ``footfall optout``, and :meth:`apply_store` when the store-wide list arrives:
    :attr:`tags` holds both (the node's own entries, which ``optout.json`` keeps, and
    the store's, which it does not), and is updated in place.
    """

    def __init__(self, key: ListKey, path: Path | None = None) -> None:
        self.key = key
        self.path = path
        self.tags: set[bytes] = set()
        """the tags; updated in place (a pipeline may hold a reference)"""
        self._added: dict[bytes, str] = {}
        """the node's own entries and the day each was added"""
        self.store_tags: frozenset[bytes] = frozenset()
        """the store-wide list's tags (:meth:`apply_store`)"""
        self._stamp: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, path: Path, key: ListKey) -> OptOutList:
        """The list in ``path`` (an empty list bound to ``path`` if absent)."""
        lst = cls(key, path)
        lst.refresh()
        return lst

    def __len__(self) -> int:
        return len(self.tags)

    def matches(self, addr: bytes) -> bool:
        return self.key.tag(addr) in self.tags

    def add(self, addr: bytes, today: date | None = None) -> bool:
        """Add an address (by its tag); False if it was already there."""
        t = self.key.tag(addr)
        if t in self._added:
            return False
        self.tags.add(t)
        self._added[t] = (today or date.today()).isoformat()
        return True

    def remove(self, addr: bytes) -> bool:
        """Remove an address; False if it was not on the list."""
        t = self.key.tag(addr)
        if t not in self._added:
            return False
        self._added.pop(t)
        if t not in self.store_tags:
            self.tags.discard(t)
        return True

    def apply_store(self, tags: frozenset[bytes]) -> tuple[int, int]:
        """Replace the store-wide part of the list, in place (a pipeline holding
        :attr:`tags` drops the new addresses from its next frame). Returns (tags
        added, tags removed) of the store-wide part."""
        old = self.store_tags
        self.store_tags = frozenset(tags)
        for t in old - self.store_tags:
            if t not in self._added:
                self.tags.discard(t)
        self.tags.update(self.store_tags)
        return len(self.store_tags - old), len(old - self.store_tags)

    def entries(self) -> list[OptOutEntry]:
        """The node's own entries (the store-wide ones are the aggregator's to list)."""
        return sorted(
            (OptOutEntry(t.hex(), a) for t, a in self._added.items()),
            key=lambda e: (e.added, e.tag),
        )

    def save(self) -> None:
        if self.path is None:
            raise ConfigError("this opt-out list has no file")
        doc = {
            "v": 1,
            "key_id": self.key.key_id,
            "entries": [{"tag": e.tag, "added": e.added} for e in self.entries()],
        }
        write_private_file(self.path, json.dumps(doc, indent=1).encode(), prefix=".optout-")
        self._stamp = _stamp(self.path)

    def refresh(self) -> bool:
        """Reload from the file if it changed since last read; True if reloaded."""
        if self.path is None:
            return False
        st = _stamp(self.path)
        if st == self._stamp:
            return False
        tags: dict[bytes, str] = {}
        if st is not None:
            try:
                d = json.loads(self.path.read_text())
                key_id = d.get("key_id")
            except (ValueError, AttributeError) as e:
                raise ConfigError(f"{self.path}: invalid opt-out list: {e}") from e
            if key_id != self.key.key_id:
                raise ConfigError(
                    f"{self.path}: made with another list key (key_id {key_id!r}, this "
                    f"node's is {self.key.key_id!r}); copy the store's {LIST_KEY_FILE} here"
                )
            try:
                for entry in d["entries"]:
                    t = bytes.fromhex(entry["tag"])
                    if len(t) != TAG_BYTES:
                        raise ValueError(f"tag of {len(t)} bytes")
                    tags[t] = str(entry.get("added", ""))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ConfigError(f"{self.path}: invalid opt-out list: {e}") from e
        self.tags.clear()
        self.tags.update(tags)
        self.tags.update(self.store_tags)
        self._added = tags
        self._stamp = st
        return True


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def node_lists(directory: Path) -> tuple[ListKey, OptOutList]:
    """The list key and opt-out list of a node's state directory.

    A node without ``lists.key`` gets one made for it, unless an ``optout.json``
    is present (that list was made with a key this node lacks: an error).
    """
    key_path, list_path = directory / LIST_KEY_FILE, directory / OPTOUT_FILE
    if not key_path.exists() and list_path.exists():
        raise ConfigError(
            f"{list_path} exists but {key_path} does not; copy the store's {LIST_KEY_FILE}"
        )
    key, _ = ListKey.load_or_create(key_path)
    return key, OptOutList.load(list_path, key)


def existing_optout(directory: Path) -> OptOutList | None:
    """The opt-out list of a state directory if it has one, without creating
    anything (for replays, which must honour opt-out but not set up a node)."""
    list_path = directory / OPTOUT_FILE
    if not list_path.exists():
        return None
    key_path = directory / LIST_KEY_FILE
    if not key_path.exists():
        raise ConfigError(
            f"{list_path} exists but {key_path} does not; copy the store's {LIST_KEY_FILE}"
        )
    return OptOutList.load(list_path, ListKey.load(key_path))
