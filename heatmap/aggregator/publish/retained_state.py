"""Retained topics kept equal to what the aggregator wants them to hold.

The aggregator says what each retained topic should hold (:meth:`RetainedState.want`);
this publishes it once, and again until the broker has acknowledged the latest payload:

* a message the publisher could not hand over (its pending list full while the broker
  was away) is simply wanted again at the next tick and goes out then;
* a message handed over while the broker is away waits in paho's queue (the persistent
  session) and is confirmed by its PUBACK after the reconnect;
* a topic the broker refuses (MQTT 5 PUBACK reason >= 0x80: the ACL) is tried again only
  after ``refused_retry_s``, and counted;
* an unchanged payload is not published again: retained state is the product, not a
  stream (an aggregator restart publishes everything once more, which replaces equal
  retained messages, and the chain's consumer replaces, never adds).

A broker that crashes inside its autosave window forgets retained messages it had
acknowledged. So when the connection was seen down (the broker restarted, or another
client took the session over) everything is published again once it is back
(:meth:`RetainedState.watch_connection`), and the whole state at least every
``refresh_s`` whatever was seen.

A zero-length payload clears a retained message (MQTT's way).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sensing.runtime.mqtt_link import Publisher


@dataclass
class _InFlight:
    payload: bytes
    handed: int


class RetainedState:
    """Reconciles retained topics through a :class:`Publisher` (whose ``on_done`` it takes)."""

    def __init__(
        self,
        pub: Publisher,
        refused_retry_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 3600.0,
    ) -> None:
        self.pub = pub
        self.refused_retry_s = refused_retry_s
        self.clock = clock
        self.refresh_s = refresh_s
        self._was_down = False
        self._refreshed = clock()
        self.refreshes = 0
        """times everything was published again (a reconnect, or ``refresh_s``)"""
        self._lock = threading.Lock()
        self._confirmed: dict[str, bytes] = {}
        self._inflight: dict[str, _InFlight] = {}
        self._refused_at: dict[str, float] = {}
        self.published = 0
        """messages handed to the broker"""
        self.refused = 0
        """messages the broker refused"""
        self.not_handed = 0
        """messages the publisher could not hand over (wanted again at the next tick)"""
        pub.on_done = self._done

    def want(self, topic: str, payload: bytes) -> bool:
        """Make ``topic`` hold ``payload`` (retained); True if a message went out now."""
        with self._lock:
            if self._confirmed.get(topic) == payload:
                return False
            fl = self._inflight.get(topic)
            if fl is not None and fl.payload == payload:
                return False
            refused = self._refused_at.get(topic)
            if refused is not None and self.clock() - refused < self.refused_retry_s:
                return False
        if not self.pub.publish(topic, payload, retain=True):
            with self._lock:
                self.not_handed += 1
            return False
        with self._lock:
            self.published += 1
            fl = self._inflight.get(topic)
            handed = fl.handed + 1 if fl is not None else 1
            self._inflight[topic] = _InFlight(payload, handed)
        return True

    def forget(self, topic: str) -> None:
        """Publish ``topic`` again at the next :meth:`want` even if it is unchanged (Home
        Assistant came online and asks for discovery again)."""
        with self._lock:
            self._confirmed.pop(topic, None)
            self._inflight.pop(topic, None)
            self._refused_at.pop(topic, None)

    def watch_connection(self) -> bool:
        """Call every tick: after the connection was seen down, or ``refresh_s`` after the
        last refresh, forget what the broker confirmed so that the next :meth:`want` calls
        publish everything again. True if it did."""
        if not self.pub.client.is_connected():
            self._was_down = True
            return False
        if not self._was_down and self.clock() - self._refreshed < self.refresh_s:
            return False
        with self._lock:
            self._confirmed.clear()
            self._refused_at.clear()
        self._was_down = False
        self._refreshed = self.clock()
        self.refreshes += 1
        return True

    def confirmed(self, topic: str) -> bytes | None:
        """What the broker acknowledged last for ``topic`` (None: nothing yet)."""
        with self._lock:
            return self._confirmed.get(topic)

    def topics(self) -> int:
        with self._lock:
            return len(self._confirmed)

    def _done(self, topic: str, accepted: bool) -> None:
        # paho's network thread: bookkeeping only
        with self._lock:
            fl = self._inflight.get(topic)
            if fl is None:
                return  # not one of ours (the status), or forgotten meanwhile
            fl.handed -= 1
            if not accepted:
                self.refused += 1
                self._refused_at[topic] = self.clock()
            if fl.handed <= 0:
                del self._inflight[topic]
                if accepted:
                    self._confirmed[topic] = fl.payload
                    self._refused_at.pop(topic, None)
