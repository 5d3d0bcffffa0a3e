"""A live serial port to sensor boards (pyserial), yielding events in node time.

Any path pyserial opens works: ``/dev/ttyUSB0`` (a Nano on USB), ``/dev/serial0``
(the Pi's UART pins), or a pty such as :class:`firmware_bridge.pty_board.PtyBoard`'s
or the simavr harness's.

>>> from firmware_bridge.protocol import DoorCrossing
>>> from firmware_bridge.pty_board import PtyBoard
>>> with PtyBoard(board=2) as board, SerialLink(board.port, clock=lambda: 10_000) as link:
...     _ = board.send(DoorCrossing(tick_ms=4000, direction=-1))
...     link.read(timeout_s=2.0)
[DoorEvent(t_ms=10000, direction=-1, board=2, tick_ms=4000)]

Note that opening the port discards what was already waiting in it (pyserial
flushes the input on open), as a store's node would miss what a board sent
before the node listened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from firmware_bridge.board_clock import epoch_ms
from firmware_bridge.board_stream import BoardInfo, BoardStream
from firmware_bridge.decoder import LinkStats
from firmware_bridge.errors import CaptureError
from firmware_bridge.events import BoardEvent

if TYPE_CHECKING:
    import serial

BAUDRATE = 115200


class SerialLink:
    """Read one serial port; decode, time-map and return board events.

    Parameters
    ----------
    port
        device path, or an already open ``serial.Serial``.
    baudrate
        the boards' UART speed (115200 for the footfall firmware).
    clock
        node time source, Unix epoch ms; injected in tests and replays.
    clock_window
        observations per board clock (:class:`~firmware_bridge.board_clock.BoardClock`).
    """

    def __init__(
        self,
        port: str | serial.Serial,
        *,
        baudrate: int = BAUDRATE,
        clock: Callable[[], int] = epoch_ms,
        clock_window: int | None = 60,
    ) -> None:
        import serial

        self._serial_error: type[Exception] = serial.SerialException
        if isinstance(port, str):
            try:
                self._port = serial.Serial(port, baudrate=baudrate, timeout=0.1)
            except (serial.SerialException, OSError) as e:
                raise CaptureError(f"cannot open serial port {port}: {e}") from e
        else:
            self._port = port
        self.name = self._port.port or "?"
        self._clock = clock
        self.stream = BoardStream(clock_window)

    @property
    def stats(self) -> LinkStats:
        return self.stream.stats

    @property
    def boards(self) -> dict[int, BoardInfo]:
        return self.stream.boards

    def read(self, timeout_s: float = 0.1) -> list[BoardEvent]:
        """Wait up to ``timeout_s`` for bytes; return the events they complete
        (possibly none: frames may be partial, or only heartbeats)."""
        data = self._read_bytes(timeout_s)
        if not data:
            return []
        return self.stream.feed(data, self._clock())

    def events(
        self, *, duration_s: float | None = None, idle_s: float | None = None, poll_s: float = 0.1
    ) -> Iterator[BoardEvent]:
        """Yield events as they arrive, until ``duration_s`` has passed or nothing
        arrived for ``idle_s`` (either may be None; both None runs until closed)."""
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if duration_s is not None and now - start >= duration_s:
                return
            if idle_s is not None and now - last >= idle_s:
                return
            before = self.stats.bytes
            yield from self.read(poll_s)
            if self.stats.bytes != before:
                last = time.monotonic()

    def _read_bytes(self, timeout_s: float) -> bytes:
        try:
            if self._port.timeout != timeout_s:
                self._port.timeout = timeout_s  # pyserial reconfigures the tty: only on change
            first = self._port.read(1)
            if not first:
                return b""
            # what is already buffered: read() returns as soon as it has that many
            return first + self._port.read(self._port.in_waiting)
        except (self._serial_error, OSError) as e:
            raise CaptureError(f"serial port {self.name}: {e}") from e

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
