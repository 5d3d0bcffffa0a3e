"""Spool → broker, in order; PUBACK → delete. The node's delivery rule in one place.

A batch is handed to the :class:`~sensing.runtime.mqtt_link.MqttLink` straight from the
:class:`~sensing.node.spool.Spool`, oldest first, with at most ``window`` handed over
and not yet acknowledged; its row is deleted when its PUBACK arrives. On a
reconnect paho resends what it was handed and not acknowledged (in order), and a
restarted node starts again from the spool's oldest row, so every batch goes out
at least once; the aggregator keeps one copy per ``(publisher, seq)``.

A batch the broker refuses (MQTT 5 PUBACK reason code >= 0x80: its topic is not in
the ACL, e.g. a door the ACL was not regenerated for) is not published: it is
counted in :attr:`Delivery.refused`, stays in the spool (a fixed ACL and a restart
send it), and :meth:`Delivery.wait` returns False once only refused batches are left
(a finite replay then fails).

Only the daemon's main thread calls this (the spool's SQLite connection and the
in-flight map are not shared); PUBACKs come through the link's event queue.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from sensing.node.spool import Spool
from sensing.runtime.mqtt_link import LinkEvent, MqttLink

WINDOW = 128
"""batches handed to the link without PUBACK, at most"""


class Delivery:
    """Hands spooled batches to the link and deletes them on PUBACK."""

    def __init__(self, spool: Spool, link: MqttLink, window: int = WINDOW) -> None:
        self.spool = spool
        self.link = link
        self.window = window
        self.published = 0
        """batches acknowledged (and deleted from the spool) since start"""
        self.refused = 0
        """batches (and statuses) the broker refused since start: not published"""
        self.last_refusal = ""
        """topic and reason of the last refusal"""
        self._inflight: dict[int, tuple[int, str]] = {}
        """message id → (spool row id, topic)"""
        self._refused_rows: set[int] = set()
        """spool rows the broker refused: kept, not handed over again before a restart"""
        self._last_handed = 0
        self._awaited: int | None = None

    def inflight_ids(self) -> set[int]:
        """spool rows handed over and not yet acknowledged (the bound must not drop them)"""
        return {rid for rid, _ in self._inflight.values()}

    def pump(self) -> None:
        """Hand over the next spooled batches while connected and the window has room."""
        if not self.link.connected:
            return
        room = self.window - len(self._inflight)
        if room <= 0 or self._last_handed >= self.spool.last_id:
            return  # window full, or everything spooled was handed over
        for b in self.spool.after(self._last_handed, room):
            mid = self.link.publish(b.topic, b.payload)
            self._inflight[mid] = (b.id, b.topic)
            self._last_handed = b.id

    def events(self, on_event: Callable[[LinkEvent], None], block_s: float = 0.0) -> None:
        """Take the link's events (waiting up to ``block_s`` for the first): PUBACKs
        delete their batches; the other events go to ``on_event``."""
        acked: list[int] = []
        wait = block_s
        while True:
            try:
                ev = self.link.events.get(timeout=wait) if wait > 0 else self.link.events.get(False)
            except queue.Empty:
                break
            wait = 0.0
            if ev.kind == "acked":
                entry = self._inflight.pop(ev.mid, None)
                if entry is not None:
                    acked.append(entry[0])
                elif ev.mid == self._awaited:
                    self._awaited = None
            elif ev.kind == "refused":
                entry = self._inflight.pop(ev.mid, None)
                self.refused += 1
                if entry is not None:
                    self._refused_rows.add(entry[0])
                    self.last_refusal = f"{entry[1]}: {ev.detail}"
                else:
                    self.last_refusal = f"message {ev.mid}: {ev.detail}"
                    if ev.mid == self._awaited:
                        self._awaited = None
                on_event(ev)
            else:
                on_event(ev)
        if acked:
            self.published += self.spool.ack(acked)

    def wait(
        self,
        timeout_s: float,
        on_event: Callable[[LinkEvent], None],
        mid: int | None = None,
        each: Callable[[], object] | None = None,
        tick_s: float = 0.05,
    ) -> bool:
        """Deliver until the spool is empty and message ``mid`` (e.g. a status) is
        acknowledged; False if ``timeout_s`` passed first, or at once when only
        batches the broker refused are left. ``each`` runs every turn (the watchdog)."""
        import time

        self._awaited = mid
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if self.spool.depth <= len(self._refused_rows) and self._awaited is None:
                return not self._refused_rows
            if time.monotonic() >= deadline:
                return False
            self.events(on_event, tick_s)
            if each is not None:
                each()
