"""The node daemon's inbox: what the sources' reader threads hand to the main loop.

One reader thread per source iterates it and hands its items over in chunks
(``CHUNK`` items, or what a realtime source collected before it waits), so the
main loop pays the hand-over once per chunk, not per frame. The inbox is bounded
in items, not chunks: a file reader waits when ``MAX_QUEUED`` items are queued
(memory stays flat however big the capture), a live source never waits — past
``MAX_QUEUED_LIVE`` its new items are dropped and counted (``source_overflow``),
as a kernel buffer would drop them, rather than stall the capture.

A live source that fails (a board unplugged, an adapter reset) is retried every
``RETRY_S``; a file source that fails or ends hands over :class:`SourceEnded`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import FootfallError
from sensing.node import log as node_log
from sensing.node.sources import Source

CHUNK = 256
MAX_QUEUED = 16_384
"""items read ahead from files and waiting for the main loop, at most"""
MAX_QUEUED_LIVE = 20_000
"""items live sources may queue while the main loop is busy"""
RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class SourceEnded:
    """A source has nothing more (``error`` None) or failed for good."""

    error: str | None = None


Handler = Callable[[int, Any], None]
"""(source index, list of items or SourceEnded)"""


class Inbox:
    """Bounded hand-over from reader threads to the one thread that takes items."""

    def __init__(self, stop: threading.Event, log: logging.Logger | None = None) -> None:
        self._stop = stop
        self._log = log or node_log.get()
        self._q: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._queued = 0
        self._room = threading.Condition()
        self._overflow = 0

    @property
    def overflow(self) -> int:
        """items live sources dropped because the main loop fell behind"""
        with self._room:
            return self._overflow

    def empty(self) -> bool:
        return self._q.empty()

    def start(self, index: int, src: Source, skip: int = 0) -> threading.Thread:
        t = threading.Thread(
            target=self._read, args=(index, src, skip), name=f"source-{src.name}", daemon=True
        )
        t.start()
        return t

    def _read(self, index: int, src: Source, skip: int) -> None:
        while True:
            error = None
            try:
                chunk: list[Any] = []
                for item in src.items(skip):
                    if item is None:  # FLUSH: the source is about to wait
                        if chunk:
                            self._hand_over(index, src, chunk)
                            chunk = []
                        continue
                    chunk.append(item)
                    if len(chunk) >= CHUNK:
                        self._hand_over(index, src, chunk)
                        chunk = []
                if chunk:
                    self._hand_over(index, src, chunk)
            except (FootfallError, OSError) as e:
                error = str(e)
            except Exception as e:  # a bug in a source must not hang the daemon
                error = f"{type(e).__name__}: {e}"
            if error is None or src.resumable or self._stop.is_set():
                self._q.put((index, SourceEnded(error)))
                return
            node_log.event(self._log, 40, "source_error", source=src.name, error=error)
            if self._stop.wait(RETRY_S):
                self._q.put((index, SourceEnded(None)))
                return

    def _hand_over(self, index: int, src: Source, chunk: list[Any]) -> None:
        n = len(chunk)
        with self._room:
            if src.realtime and not src.resumable:  # a live capture must never block
                if self._queued + n > MAX_QUEUED_LIVE:
                    self._overflow += n
                    return
            else:
                while self._queued >= MAX_QUEUED and not self._stop.is_set():
                    self._room.wait(0.2)
            self._queued += n
        self._q.put((index, chunk))

    def _taken(self, payload: Any) -> None:
        if isinstance(payload, list):
            with self._room:
                self._queued -= len(payload)
                self._room.notify_all()

    def take(self, handle: Handler, timeout_s: float, budget_s: float = 0.2) -> None:
        """Wait up to ``timeout_s`` for a chunk, then handle chunks for at most
        ``budget_s`` (so the caller's timers keep turning)."""
        deadline = time.monotonic() + budget_s
        try:
            item = self._q.get(timeout=timeout_s)
        except queue.Empty:
            return
        while True:
            try:
                handle(*item)
            finally:
                self._taken(item[1])
            if time.monotonic() > deadline:
                return
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return

    def drain(self, handle: Handler) -> None:
        """Handle everything queued now (at shutdown)."""
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            try:
                handle(*item)
            except FootfallError:
                pass
            finally:
                self._taken(item[1])
