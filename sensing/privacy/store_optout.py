"""The store-wide opt-out list, on both sides: the aggregator's file and a node's watch.

The aggregator holds the store's list; ``footfall privacy optout add|remove --config
store.toml`` edits it (:func:`edit_store_list`): ``store_optout.json`` in the folder of
the store database, beside the store's ``lists.key``, is the signed v1 payload itself
(:mod:`sensing.wire.optout_list`), mode 0600. The running aggregator publishes that
file, retained, on ``footfall/v1/{store}/privacy/optout`` at start and whenever it
changes, without reading the key (:mod:`heatmap.aggregator.store_optout`).

A node subscribes to it (:class:`StoreOptOutWatch`) after every (re)connect. paho's
thread verifies each message with the node's list key and queues it; the daemon's main
loop applies the newest (:meth:`StoreOptOutWatch.apply`) to the node's
:class:`~sensing.privacy.optout.OptOutList` in place, before it takes the next frame,
and keeps a copy (``store_optout.json`` in the node's state directory, mode 0600) that
the next start applies before the broker is reachable. A message that is not a list
this node can trust is refused and counted by reason (:data:`REJECT_REASONS`): not a
v1 list (``malformed``), no signature (``unsigned``), another store's
(``foreign_store``), made with another list key (``other_key``: the node needs the
store's ``lists.key``), a signature that does not verify (``bad_signature``), or older
than the one applied (``stale``). An emptied retained message changes nothing.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware_bridge.errors import ConfigError, PayloadError
from sensing.privacy.key_file import write_private_file
from sensing.privacy.optout import (
    LIST_KEY_FILE,
    TAG_BYTES,
    ListKey,
    OptOutList,
    existing_optout,
)
from sensing.wire import optout_list, payloads, topics

log = logging.getLogger(__name__)

STORE_OPTOUT_FILE = optout_list.LIST_FILE
"""the aggregator's list (beside the store database) and a node's copy (state directory)"""
REJECT_REASONS = optout_list.REASONS


def _verify(raw: bytes, store: str, key: ListKey, newer_than: int | None) -> optout_list.StoreList:
    return optout_list.verify(raw, store, key.key_id, key.signing_key(), newer_than)


# ------------------------------------------------------------------ the aggregator's list


def store_list_paths(db: Path) -> tuple[Path, Path]:
    """(lists.key, store_optout.json) of the store whose database is ``db``."""
    return db.parent / LIST_KEY_FILE, db.parent / STORE_OPTOUT_FILE


def read_store_list(path: Path, store: str, key: ListKey) -> optout_list.StoreList:
    """The aggregator's list (an empty one if there is none yet); ConfigError if the
    file is not a list of this store signed with ``key``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return optout_list.StoreList(store, 0, frozenset())
    try:
        return _verify(raw, store, key, None)
    except PayloadError as e:
        raise ConfigError(f"{path}: not this store's opt-out list ({e.reason}): {e}") from None


def edit_store_list(
    db: Path,
    store: str,
    add: list[bytes] | None = None,
    remove: list[bytes] | None = None,
    now_ms: int | None = None,
) -> tuple[optout_list.StoreList, int, bool]:
    """Add or remove addresses (6 bytes each) on the store's list and sign it again.

    Returns (the new list, how many entries changed, whether the list key was created).
    The key is made on the first ``add`` (it must then be copied to every node); a
    ``remove`` without one is an error. Addresses are only ever tagged, never written.
    """
    key_path, list_path = store_list_paths(db)
    if not key_path.exists() and not add:
        raise ConfigError(f"{key_path}: no list key, so no store-wide list yet")
    key, created = ListKey.load_or_create(key_path)
    try:
        cur = read_store_list(list_path, store, key)
        tags = set(cur.tags)
        before = len(tags)
        tags.update(key.tag(a) for a in add or [])
        drop = {key.tag(a) for a in remove or []}
        changed = len(tags) - before + len(tags & drop)
        tags -= drop
        if changed or not list_path.exists():
            issued = max(now_ms if now_ms is not None else time.time_ns() // 1_000_000,
                         cur.issued_ms + 1)  # fmt: skip
            doc = optout_list.build(store, key.key_id, key.signing_key(), tags, issued)
            write_private_file(list_path, payloads.encode(doc), prefix=".store-optout-")
            cur = optout_list.StoreList(store, issued, frozenset(tags))
        return cur, changed, created
    finally:
        key.erase()


# ------------------------------------------------------------------ a node's watch


def replay_optout(state_dir: Path) -> OptOutList | None:
    """A replaying node's list: its ``optout.json`` (or an empty list) when its state
    directory has the store's ``lists.key``, so the store-wide list can apply; else None."""
    if not (state_dir / LIST_KEY_FILE).exists():
        return None
    return existing_optout(state_dir) or OptOutList(ListKey.load(state_dir / LIST_KEY_FILE))


class StoreOptOutWatch:
    """Receives the store-wide list on ``client`` and applies it to ``optout``.

    ``subscribe`` is the node's :class:`~sensing.node.ack_watch.Subscriptions`' method
    (one SUBACK handler per connection); ``copy`` is where the last applied list is
    kept (None: not kept).
    """

    def __init__(
        self,
        client: mqtt.Client,
        store: str,
        optout: OptOutList,
        copy: Path | None,
        subscribe: Callable[[list[str], Callable[[list[str]], None]], None],
    ) -> None:
        self.store = store
        self.optout = optout
        self.copy = copy
        self.topic = topics.optout_topic(store)
        self._subscribe = subscribe
        self._queue: queue.SimpleQueue[tuple[bytes, optout_list.StoreList]] = queue.SimpleQueue()
        self.issued_ms: int | None = None
        """the list applied (its ``issued_ms``), None before one"""
        self.applied = 0
        """lists applied since start"""
        self.rejected: Counter[str] = Counter()
        """messages refused, by reason (:data:`REJECT_REASONS`)"""
        self.refused: list[str] = []
        """the broker refused the subscription (an ACL made before the store-wide list)"""
        self._logged: set[str] = set()
        client.message_callback_add(self.topic, self._on_message)

    def subscribe(self) -> None:
        """Subscribe (QoS 1); call after each (re)connect. The retained list comes at once."""
        self._subscribe([self.topic], self._on_refused)

    def _on_refused(self, refused: list[str]) -> None:
        if refused and refused != self.refused:
            log.error("the broker refused the store-wide opt-out subscription %s", refused)
        self.refused = refused

    def load_copy(self) -> bool:
        """Apply the copy kept by the last run (before the broker is reachable); a copy
        that no longer verifies (another key, another store) is counted and ignored."""
        if self.copy is None or not self.copy.exists():
            return False
        try:
            lst = _verify(self.copy.read_bytes(), self.store, self.optout.key, None)
        except PayloadError as e:
            self._reject(e.reason, f"{self.copy}: {e}")
            return False
        except OSError as e:
            self._reject("malformed", f"{self.copy}: {e}")
            return False
        self._apply(lst, None)
        return True

    # paho's network thread: verify and enqueue only
    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        raw = bytes(msg.payload)
        if not raw:
            return  # an emptied retained message: nothing said
        try:
            lst = _verify(raw, self.store, self.optout.key, self.issued_ms)
        except PayloadError as e:
            self._reject(e.reason, str(e))
            return
        except RecursionError:
            self._reject("malformed", "nested too deep")
            return
        self._queue.put((raw, lst))

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        if reason not in self._logged:  # once per reason: a bad retained list comes often
            self._logged.add(reason)
            log.warning("store-wide opt-out list refused (%s): %s", reason, detail)

    # the daemon's main loop
    def apply(self) -> bool:
        """Apply the newest verified list received (before the next frame); True if one was."""
        newest: tuple[bytes, optout_list.StoreList] | None = None
        while True:
            try:
                got = self._queue.get_nowait()
            except queue.Empty:
                break
            if newest is None or got[1].issued_ms >= newest[1].issued_ms:
                newest = got
        if newest is None:
            return False
        raw, lst = newest
        if self.issued_ms is not None and lst.issued_ms < self.issued_ms:
            self.rejected["stale"] += 1
            return False
        self._apply(lst, raw)
        return True

    def _apply(self, lst: optout_list.StoreList, raw: bytes | None) -> None:
        if any(len(t) != TAG_BYTES for t in lst.tags):
            self._reject("malformed", "a tag of the wrong size")
            return
        added, removed = self.optout.apply_store(lst.tags)
        self.issued_ms = lst.issued_ms
        self.applied += 1
        log.info(
            "store-wide opt-out list of %d applied (%d added, %d removed)",
            len(lst.tags),
            added,
            removed,
        )
        if raw is not None and self.copy is not None:
            try:
                write_private_file(self.copy, raw, prefix=".store-optout-")
            except OSError as e:  # applied all the same; the next start waits for the broker
                log.warning("store-wide opt-out list not kept in %s: %s", self.copy, e)

    def status(self) -> dict[str, Any]:
        return {
            "issued_ms": self.issued_ms,
            "tags": len(self.optout.store_tags),
            "applied": self.applied,
            "rejected": dict(sorted(self.rejected.items())),
        }
