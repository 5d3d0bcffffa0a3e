"""The store-wide opt-out list as it travels: build, sign and verify the v1 payload.

The aggregator holds the store's list (``footfall privacy optout``) and publishes it,
retained, on ``footfall/v1/{store}/privacy/optout`` (only the store's nodes may read
it); every node applies it besides its own list (:mod:`sensing.privacy.store_optout`).
It carries keyed tags only (``HMAC-SHA256(K_list, address)[:16]``, the tags of
:mod:`sensing.privacy.optout`), never an address, and a signature made with a key
derived from the same per-store list key ``K_list``::

    sign_key = HMAC-SHA256(K_list, "footfall/store-optout-signature/v1")
    sig      = HMAC-SHA256(sign_key, canonical(payload without "sig"))

so a node accepts only a list made by someone holding the store's ``lists.key``
(the aggregator's folder, the store's nodes), for its store, no older than the one
it applied. Whoever can publish on the topic cannot forge one; the broker's ACL lets
only the aggregator publish there in the first place.

This module holds no key: callers pass the derived ``sign_key`` (bytes) and the
key's ``key_id`` (:class:`sensing.privacy.optout.ListKey` derives both), so the
aggregator side (which must not import the node's privacy package) can publish a
list the CLI signed without ever reading the key.

>>> key = bytes(32)
>>> p = build("s1", "0a1b2c3d", key, [bytes(16)], issued_ms=1_795_000_000_000)
>>> v = verify(payloads.encode(p), "s1", "0a1b2c3d", key)
>>> v.issued_ms, [t.hex()[:8] for t in v.tags]
(1795000000000, ['00000000'])
>>> verify(payloads.encode(p), "s2", "0a1b2c3d", key)
Traceback (most recent call last):
...
firmware_bridge.errors.PayloadError: the list is for store 's1', not 's2'
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import PayloadError
from sensing.wire import payloads

KIND = "optout"
LIST_FILE = "store_optout.json"
"""the aggregator's list (beside the store database) and a node's copy (in its state
directory): the signed payload itself, mode 0600"""
SIGN_INFO = b"footfall/store-optout-signature/v1"
"""what the signing key is derived with from the list key"""
TAG_HEX = 32
REASONS = ("malformed", "unsigned", "foreign_store", "other_key", "bad_signature", "stale")
"""why a node refuses a list, each counted"""


@dataclass(frozen=True, slots=True)
class StoreList:
    """A verified list."""

    store: str
    issued_ms: int
    tags: frozenset[bytes]
    """16-byte tags"""


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signature(doc: dict[str, Any], sign_key: bytes) -> str:
    """64 hex chars: the signature of ``doc`` (its ``sig`` left out)."""
    return hmac.digest(bytes(sign_key), _canonical(doc), "sha256").hex()


def build(
    store: str, key_id: str, sign_key: bytes, tags: Iterable[bytes], issued_ms: int
) -> dict[str, Any]:
    """The signed v1 payload of ``tags`` (16-byte keyed tags)."""
    doc: dict[str, Any] = {
        "v": 1,
        "store": store,
        "key_id": key_id,
        "issued_ms": int(issued_ms),
        "tags": sorted({bytes(t).hex() for t in tags}),
    }
    doc["sig"] = signature(doc, sign_key)
    payloads.validate(KIND, doc)
    return doc


def rejected(reason: str, detail: str) -> PayloadError:
    """A refusal: ``reason`` is one of :data:`REASONS`."""
    return PayloadError(detail, reason)


def decode(raw: bytes) -> dict[str, Any]:
    """The payload if it validates (unsigned or malformed: a PayloadError with that reason)."""
    try:
        return payloads.decode(KIND, raw)
    except PayloadError as e:
        unsigned = False
        try:
            doc = json.loads(raw)
            unsigned = isinstance(doc, dict) and "sig" not in doc
        except (ValueError, RecursionError):
            pass
        if unsigned:
            raise rejected("unsigned", "the list carries no signature") from None
        raise rejected("malformed", f"not a v1 opt-out list: {e}") from None


def verify(
    raw: bytes, store: str, key_id: str, sign_key: bytes, newer_than: int | None = None
) -> StoreList:
    """The list in ``raw`` if it is for ``store``, made with the key ``key_id`` (whose
    signing key is ``sign_key``), signed, and issued after ``newer_than``; else a
    :class:`PayloadError` whose ``reason`` is one of :data:`REASONS`."""
    doc = decode(raw)
    if doc["store"] != store:
        raise rejected("foreign_store", f"the list is for store {doc['store']!r}, not {store!r}")
    if doc["key_id"] != key_id:
        raise rejected(
            "other_key",
            f"the list was made with list key {doc['key_id']}, this node has {key_id}: "
            "copy the store's lists.key to the node",
        )
    if not hmac.compare_digest(doc["sig"], signature(doc, sign_key)):
        raise rejected("bad_signature", "the list's signature does not verify")
    if newer_than is not None and doc["issued_ms"] < newer_than:
        raise rejected("stale", f"the list of {doc['issued_ms']} is older than the one applied")
    tags = frozenset(bytes.fromhex(t) for t in doc["tags"])
    return StoreList(store, int(doc["issued_ms"]), tags)
