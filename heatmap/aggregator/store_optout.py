"""The aggregator publishes the store-wide opt-out list it holds.

``store_optout.json`` beside the store database is the signed v1 list itself
(``footfall privacy optout add|remove --config store.toml`` writes it; see
:mod:`sensing.wire.optout_list`). :class:`OptOutPublisher` publishes it, retained, on
``footfall/v1/{store}/privacy/optout`` at start and whenever the file changes; the
nodes verify and apply it. The aggregator checks only that it is a v1 list of this
store: it never reads the list key (the nodes check the signature).

A file that is not such a list is not published (the nodes keep the last good one):
logged once per change of the file and counted (:attr:`OptOutPublisher.invalid`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.errors import PayloadError
from sensing.wire import optout_list, topics

log = logging.getLogger(__name__)


class OptOutPublisher:
    """Publishes ``db``'s folder's list through ``publish(topic, payload)`` (retained)."""

    def __init__(self, store: str, db: Path, publish: Callable[[str, bytes], Any]) -> None:
        self.store = store
        self.path = Path(db).parent / optout_list.LIST_FILE
        self.topic = topics.optout_topic(store)
        self._publish = publish
        self._stamp: tuple[int, int, int] | None = None
        self.published = 0
        self.invalid = 0
        """versions of the file that were not a v1 list of this store"""
        self.issued_ms: int | None = None
        self.tags = 0

    def tick(self) -> bool:
        """Publish the list if the file changed since the last look; True if published."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False  # no store-wide list: the nodes apply their own only
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            raw = self.path.read_bytes()
            doc = optout_list.decode(raw)
            if doc["store"] != self.store:
                raise optout_list.rejected("foreign_store", f"a list of store {doc['store']!r}")
        except (OSError, PayloadError) as e:
            self.invalid += 1
            log.error("%s: store-wide opt-out list not published: %s", self.path, e)
            return False
        self._publish(self.topic, raw)
        self.published += 1
        self.issued_ms, self.tags = int(doc["issued_ms"]), len(doc["tags"])
        log.info("store-wide opt-out list published: %d entries", self.tags)
        return True
