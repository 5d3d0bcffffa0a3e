"""A fake sensor board behind a pseudo-terminal.

What it writes, a :class:`~firmware_bridge.serial_link.SerialLink` opened on
``port`` reads, through the kernel's tty layer exactly as from a USB serial
board. It numbers frames like the firmware (seq from 0 at HELLO), and can also
write raw bytes: garbage, truncated or corrupted frames.

>>> with PtyBoard() as b:
...     b.port.startswith("/dev/")
True
"""

from __future__ import annotations

import contextlib
import os
import tty
from types import TracebackType

from firmware_bridge.protocol import BoardKind, Hello, Message, encode


class PtyBoard:
    """One board id on a fresh pty; ``port`` is the path to open."""

    def __init__(self, board: int = 1) -> None:
        self.board = board
        self.seq = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as they are
        self.port = os.ttyname(self._slave)

    def send(self, msg: Message, seq: int | None = None) -> bytes:
        """Encode and write ``msg`` with the next seq (or ``seq``); return the frame."""
        if seq is not None:
            self.seq = seq
        frame = encode(msg, self.board, self.seq)
        self.seq = (self.seq + 1) & 0xFFFF
        self.write(frame)
        return frame

    def hello(
        self, kind: BoardKind = BoardKind.DOOR, channels: int = 2, reset_cause: int = 1
    ) -> bytes:
        """A reset: HELLO with seq 0."""
        return self.send(Hello(1, 0, kind, channels, reset_cause), seq=0)

    def write(self, data: bytes) -> None:
        """Write raw bytes (blocks while the reader's buffer is full)."""
        view = memoryview(data)
        while view:
            n = os.write(self._master, view)
            view = view[n:]

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyBoard:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
