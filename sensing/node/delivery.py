"""Spool → broker, in order; the aggregator's acknowledgement → delete. The node's
delivery rule in one place.

A batch is handed to the :class:`~sensing.runtime.mqtt_link.MqttLink` straight from the
:class:`~sensing.node.spool.Spool`, oldest first, with at most ``window`` handed over
and not yet acknowledged by the broker (PUBACK). The broker's PUBACK is not the end:
Mosquitto saves its queues only every ``autosave_interval``, so a broker that dies
inside that window loses what it acknowledged. The row therefore stays in the spool
until the aggregator's retained acknowledgement (:mod:`sensing.node.ack_watch`) says
the store database holds its seq (:meth:`Delivery.confirm`); meanwhile it is
*unconfirmed* (:attr:`Delivery.unconfirmed`, the status's ``unconfirmed``) and sent
again

* after every reconnect (the broker may have restarted without it), and
* when it has waited ``ack_timeout_s`` since it was last sent, doubling the wait at
  each such resend (at most 64 ×: a long aggregator outage adds few copies to the
  queue; a resend after a reconnect does not double it),

as QoS 1 again; the aggregator keeps one copy per ``(publisher, seq)`` and
acknowledges a copy it already had. A restarted node sends its whole spool again,
in order. A batch the aggregator never stores (rejected there, e.g. a clock far
ahead) stays until the spool's bound drops it, counted like any dropped batch.

With ``keep=False`` (``[spool] keep_until_stored = false``: an aggregator that
publishes no acknowledgement), or when the broker refuses the node's ack
subscriptions (an ACL made before they existed), a batch is deleted on its PUBACK,
as before: what the broker loses in its autosave window is then lost.

A batch the broker refuses (MQTT 5 PUBACK reason code >= 0x80: its topic is not in
the ACL, e.g. a door the ACL was not regenerated for) is not published: it is
counted in :attr:`Delivery.refused`, stays in the spool (a fixed ACL and a restart
send it), and :meth:`Delivery.wait` returns False once only refused batches are left
(a finite replay then fails).

Only the daemon's main thread calls this (the spool's SQLite connection and the
in-flight map are not shared); PUBACKs come through the link's event queue,
acknowledgements through the ack watch's.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.errors import BrokerError
from sensing.node.ack_watch import Ack
from sensing.node.spool import Spool
from sensing.runtime.mqtt_link import LinkEvent, MqttLink

WINDOW = 128
"""batches handed to the link without PUBACK, at most"""
ACK_TIMEOUT_S = 30.0
"""an unconfirmed batch is sent again this long after it was last sent (doubling)"""
MAX_BACKOFF = 64
"""the wait before a resend grows to at most this many times ``ack_timeout_s``"""


@dataclass(slots=True)
class _Unconfirmed:
    """A batch the broker acknowledged and the aggregator has not (yet)."""

    stream: str
    seq: int
    sent: float
    """monotonic time it was last handed to the link"""
    wait_s: float
    """how long after ``sent`` it goes again"""


class Delivery:
    """Hands spooled batches to the link; deletes them when the aggregator has them
    (or, with ``keep=False``, on PUBACK)."""

    def __init__(
        self,
        spool: Spool,
        link: MqttLink,
        window: int = WINDOW,
        keep: bool = True,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.link = link
        self.window = window
        self.keep = keep
        """keep a batch after its PUBACK until the aggregator acknowledges it"""
        self.ack_timeout_s = ack_timeout_s
        self._clock = clock
        self.published = 0
        """batches the broker acknowledged (PUBACK) since start, each counted once"""
        self.confirmed = 0
        """batches deleted because the aggregator acknowledged them, since start"""
        self.resent = 0
        """batches sent again (after a reconnect or a timeout) since start"""
        self.refused = 0
        """batches (and statuses) the broker refused since start: not published"""
        self.last_refusal = ""
        """topic and reason of the last refusal"""
        self._inflight: dict[int, tuple[int, str, str, int, bool]] = {}
        """message id → (spool row id, topic, stream, seq, sent again)"""
        self._gone: set[int] = set()
        """rows the aggregator acknowledged while they were in flight"""
        self._unconfirmed: dict[int, _Unconfirmed] = {}
        """spool row id → a batch PUBACKed and not yet acknowledged by the aggregator"""
        self._resend: deque[int] = deque()
        """spool row ids to hand over again, before new ones"""
        self._refused_rows: set[int] = set()
        """spool rows the broker refused: kept, not handed over again before a restart"""
        self._last_handed = 0
        self._awaited: int | None = None
        self._next_timeout_check = 0.0
        self._drops_seen = spool.stats().dropped_batches

    @property
    def unconfirmed(self) -> int:
        """batches the broker acknowledged and the aggregator has not yet"""
        drops = self.spool.stats().dropped_batches
        if drops != self._drops_seen and self._unconfirmed:  # the bound dropped some
            self._drops_seen = drops
            there = self.spool.present(self._unconfirmed)
            for rid in set(self._unconfirmed) - there:
                del self._unconfirmed[rid]
        return len(self._unconfirmed)

    def inflight_ids(self) -> set[int]:
        """spool rows handed over and not yet acknowledged (the bound must not drop them)"""
        return {v[0] for v in self._inflight.values()}

    def pump(self) -> None:
        """Hand over batches due again, then the next spooled ones, while connected
        and the window has room; resend unconfirmed batches whose wait is over."""
        if not self.link.connected:
            return
        if self.keep and self._unconfirmed:
            self._timeouts()
        room = self.window - len(self._inflight)
        if room > 0 and self._resend:
            take = [self._resend.popleft() for _ in range(min(room, len(self._resend)))]
            found = self.spool.get(take)
            for b in found:
                self._hand(b.id, b.topic, b.payload, b.stream, b.seq, again=True)
                self.resent += 1
            for rid in set(take) - {b.id for b in found}:  # dropped at the bound meanwhile
                self._unconfirmed.pop(rid, None)
            room -= len(found)
        if room <= 0 or self._last_handed >= self.spool.last_id:
            return  # window full, or everything spooled was handed over
        for b in self.spool.after(self._last_handed, room):
            self._hand(b.id, b.topic, b.payload, b.stream, b.seq)
            self._last_handed = b.id

    def _hand(
        self, rid: int, topic: str, payload: bytes, stream: str, seq: int, again: bool = False
    ) -> None:
        mid = self.link.publish(topic, payload)
        self._inflight[mid] = (rid, topic, stream, seq, again)
        u = self._unconfirmed.get(rid)
        if u is not None:  # sent again
            now = self._clock()
            if now - u.sent >= u.wait_s:  # its time was up: wait twice as long next time
                u.wait_s = min(u.wait_s * 2, self.ack_timeout_s * MAX_BACKOFF)
            u.sent = now

    def _timeouts(self) -> None:
        now = self._clock()
        if now < self._next_timeout_check:
            return
        self._next_timeout_check = now + min(1.0, self.ack_timeout_s / 4)
        queued = set(self._resend) | self.inflight_ids()
        due = [
            rid
            for rid, u in self._unconfirmed.items()
            if now - u.sent >= u.wait_s and rid not in queued
        ]
        self._resend.extend(sorted(due))

    def reconnected(self) -> None:
        """The link is up again: every unconfirmed batch goes again (the broker may
        have lost it); paho itself resends what it had in flight."""
        queued = set(self._resend) | self.inflight_ids()
        self._resend.extend(sorted(set(self._unconfirmed) - queued))

    def confirm(self, ack: Ack) -> int:
        """The aggregator stored ``ack.runs`` of ``ack.stream``: delete those batches
        from the spool; returns how many were there."""
        gone = self.spool.confirm(ack.stream, ack.runs)
        flying = self.inflight_ids() if gone else set()
        for rid in gone:
            self._unconfirmed.pop(rid, None)
            if rid in flying:
                self._gone.add(rid)
        self.confirmed += len(gone)
        return len(gone)

    def events(self, on_event: Callable[[LinkEvent], None], block_s: float = 0.0) -> None:
        """Take the link's events (waiting up to ``block_s`` for the first): a PUBACK
        makes its batch unconfirmed (or deletes it, ``keep=False``); the other
        events go to ``on_event``."""
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
                    rid, _topic, stream, seq, again = entry
                    if not self.keep:
                        acked.append(rid)
                        continue
                    if not again:
                        self.published += 1
                    if rid in self._gone:
                        self._gone.discard(rid)  # stored already: nothing to keep
                    elif rid not in self._unconfirmed:
                        self._unconfirmed[rid] = _Unconfirmed(
                            stream, seq, self._clock(), self.ack_timeout_s
                        )
                elif ev.mid == self._awaited:
                    self._awaited = None
            elif ev.kind == "refused":
                entry = self._inflight.pop(ev.mid, None)
                self.refused += 1
                if entry is not None:
                    self._refused_rows.add(entry[0])
                    self._unconfirmed.pop(entry[0], None)
                    self.last_refusal = f"{entry[1]}: {ev.detail}"
                else:
                    self.last_refusal = f"message {ev.mid}: {ev.detail}"
                    if ev.mid == self._awaited:
                        self._awaited = None
                on_event(ev)
            else:
                if ev.kind == "connected" and self.keep:
                    self.reconnected()
                on_event(ev)
        if acked:
            self.published += self.spool.ack(acked)

    def stop_keeping(self) -> None:
        """Delete on PUBACK from now on (the aggregator's acknowledgements cannot
        reach this node); what is unconfirmed now is deleted at once."""
        if not self.keep:
            return
        self.keep = False
        self.spool.ack(list(self._unconfirmed))
        self._unconfirmed.clear()
        self._resend.clear()

    def wait(
        self,
        timeout_s: float,
        on_event: Callable[[LinkEvent], None],
        mid: int | None = None,
        each: Callable[[], object] | None = None,
        tick_s: float = 0.05,
        stored: Callable[[], bool] | None = None,
    ) -> bool:
        """Deliver until every spooled batch is acknowledged by the broker (and, while
        ``stored()`` says so, by the aggregator: the spool is empty) and message ``mid``
        (e.g. a status) is acknowledged; False if ``timeout_s`` passed first, or at
        once when only batches the broker refused are left. ``each`` runs every turn
        (the watchdog, the aggregator's acknowledgements)."""
        self._awaited = mid
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            left = self.spool.depth - len(self._refused_rows)
            if stored is None or not stored():
                left -= len(self._unconfirmed)
            if left <= 0 and self._awaited is None:
                return not self._refused_rows
            if time.monotonic() >= deadline:
                return False
            self.events(on_event, tick_s)
            if each is not None:
                each()

    def not_delivered(self, broker: str, timeout_s: float) -> BrokerError:
        """Why a finished replay could not deliver everything within ``timeout_s``: the
        broker refused batches (the ACL), the aggregator did not acknowledge what the
        broker took, or the broker did not take them. They stay spooled either way."""
        if self.refused:
            return BrokerError(
                f"the broker refused {self.refused} batches (last: {self.last_refusal}): is "
                "the topic in its ACL? They stay spooled: regenerate the ACL (footfall "
                "provision acl), reload mosquitto"
            )
        if self.unconfirmed and self.unconfirmed == self.spool.depth:
            return BrokerError(
                f"{self.unconfirmed} batches acknowledged by the broker but not by the "
                f"aggregator within {timeout_s:.0f} s; they stay spooled"
            )
        return BrokerError(
            f"{self.spool.depth} batches not acknowledged by {broker} "
            f"within {timeout_s:.0f} s; they stay spooled"
        )
