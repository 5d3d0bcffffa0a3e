"""What a node reads from: radios (or their capture files) and sensor boards.

Every source is behind one small protocol, :class:`Source`: it yields items —
:class:`~sensing.capture.capture_file.Record` for radios, door/tile events for boards —
for one *stream* of the node (``obs``, ``door/{id}``, ``floor/{id}``), and can be
closed from another thread. The daemon runs each in a reader thread.

* :class:`CaptureSource` — capture files (pcap, pcapng, btsnoop) merged in time
  order, as fast as possible or paced at their own rate (``realtime``, ``speed``);
  resumable: it skips the records already spooled.
* :class:`UartReplaySource` — a recorded board byte stream (``.uart`` + ``.uart.json``).
* :class:`SerialBoardSource` — a live serial port (:mod:`firmware_bridge.serial_link`).
* :class:`GpioBeamSource` — a beam pair on the node's GPIO (:mod:`firmware_bridge.gpio_beams`).
* :class:`LiveWifiSource` / :class:`LiveBleSource` — a monitor-mode interface
  (:mod:`sensing.capture.live_wifi`) or a BLE adapter through bleak
  (:mod:`sensing.capture.live_ble`,
  whose adverts arrive already decoded), imported only when configured.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from firmware_bridge.board_clock import BoardClock
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.errors import CaptureError, ConfigError
from firmware_bridge.events import BoardEvent, DoorEvent, TileEvent
from firmware_bridge.protocol import DoorCrossing, Hello, TileChange, values_ok
from sensing.capture.capture_file import CaptureReader, Record
from sensing.capture.decoded import BleAdvert

UART_CHUNK = 4096

Item = Record | BleAdvert | DoorEvent | TileEvent
FLUSH = None
"""yielded by a realtime source about to wait: hand over what was collected"""
PACE_S = 0.02
"""a paced capture wakes up at most this often and hands over what fell due meanwhile"""
LIVE_BATCH_S = 0.01
"""a live radio lets frames gather this long in the kernel's buffer between reads"""


class Source(Protocol):
    """One input of the node daemon."""

    name: str
    """stable name (cursor key in the spool)"""
    stream: str
    """what it feeds: ``obs``, ``door/{id}`` or ``floor/{id}``"""
    realtime: bool
    """items come at their own pace (hand each over at once) vs as fast as read"""
    resumable: bool
    """``items(skip)`` can skip what was already spooled (files)"""

    def items(self, skip: int = 0) -> Iterator[Item | None]:
        """What the source produces; a realtime source yields ``None`` (``FLUSH``)
        before it blocks, so the reader hands over what it collected in one piece."""
        ...

    def close(self) -> None:
        """Stop producing (called from another thread)."""
        ...

    def link_stats(self) -> dict[str, int]:
        """Counters of the link, published with board batches ({} for radios)."""
        ...


class CaptureSource:
    """Capture files of one node, merged by capture time.

    Parameters
    ----------
    paths
        pcap/pcapng/btsnoop files (e.g. the node's Wi-Fi and BLE captures).
    realtime
        pace records at their recorded rate (divided by ``speed``) instead of
        reading as fast as possible.
    """

    stream = "obs"
    resumable = True

    def __init__(
        self, paths: list[Path], realtime: bool = False, speed: float = 1.0, name: str = "capture"
    ) -> None:
        if not paths:
            raise ConfigError("a capture source needs at least one file")
        self.paths = list(paths)
        self.realtime = realtime
        self.speed = speed
        self.name = name
        self._stop = threading.Event()
        self.readers: list[CaptureReader] = []

    def items(self, skip: int = 0) -> Iterator[Record | None]:
        self.readers = [CaptureReader(p) for p in self.paths]
        merged = heapq.merge(*(iter(r) for r in self.readers), key=lambda r: r.t_ns)
        start_wall: float | None = None
        first_ns = 0
        for i, rec in enumerate(merged):
            if self._stop.is_set():
                return
            if i < skip:
                continue
            if self.realtime:
                if start_wall is None:
                    start_wall, first_ns = time.monotonic(), rec.t_ns
                due = start_wall + (rec.t_ns - first_ns) / 1e9 / self.speed
                wait = due - time.monotonic()
                if wait > 0:
                    yield FLUSH
                    # wake on PACE_S ticks: what falls due meanwhile goes in one piece
                    if self._stop.wait(max(wait, PACE_S)):
                        return
            yield rec

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return {}


def board_events(path: Path) -> tuple[list[BoardEvent], dict[str, int]]:
    """Decode a recorded UART byte stream (and its ``.json`` with ``tick0_epoch_ms``):
    door crossings and tile changes in epoch ms, and the link's counters. A CRC-good
    frame whose direction or state is out of range is dropped and counted
    (``reject_value``), as on a live link, so it never poisons a batch."""
    try:
        meta = json.loads(path.with_suffix(path.suffix + ".json").read_text())
        tick0 = int(meta["tick0_epoch_ms"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CaptureError(f"{path}: no usable .json beside the UART recording: {e}") from e
    clock = BoardClock()
    clock.set_offset(tick0)
    dec = StreamDecoder()
    out: list[BoardEvent] = []
    try:
        f = path.open("rb")
    except OSError as e:
        raise CaptureError(f"cannot open UART recording {path}: {e}") from e
    with f:
        while chunk := f.read(UART_CHUNK):
            for fr in dec.feed(chunk):
                m = fr.msg
                if isinstance(m, Hello):
                    continue
                if not values_ok(m):
                    dec.stats.rejects["value"] += 1
                elif isinstance(m, DoorCrossing):
                    t = clock.to_epoch_ms(m.tick_ms)
                    out.append(DoorEvent(t, m.direction, fr.board, m.tick_ms))
                elif isinstance(m, TileChange):
                    t = clock.to_epoch_ms(m.tick_ms)
                    out.append(TileEvent(t, m.tile, m.state, fr.board, m.tick_ms))
    return out, dec.stats.as_dict()


class UartReplaySource:
    """A recorded board byte stream, replayed as fast as possible."""

    realtime = False
    resumable = True

    def __init__(self, path: Path, stream: str) -> None:
        self.path = Path(path)
        self.stream = self.name = stream
        self._stop = threading.Event()
        self._stats: dict[str, int] = {}
        self.events = 0

    def items(self, skip: int = 0) -> Iterator[BoardEvent]:
        events, self._stats = board_events(self.path)
        self.events = len(events)
        want = DoorEvent if self.stream.startswith("door/") else TileEvent
        for e in [e for e in events if isinstance(e, want)][skip:]:  # skip counts these
            if self._stop.is_set():
                return
            yield e

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return dict(self._stats)


class SerialBoardSource:
    """A live serial link to sensor boards; its events of the stream's kind."""

    realtime = True
    resumable = False

    def __init__(self, port: str, stream: str, baudrate: int = 115200) -> None:
        self.port = port
        self.stream = self.name = stream
        self.baudrate = baudrate
        self._stop = threading.Event()
        self._link: Any = None

    def items(self, skip: int = 0) -> Iterator[BoardEvent | None]:
        from firmware_bridge.serial_link import SerialLink

        self._link = SerialLink(self.port, baudrate=self.baudrate)
        want = DoorEvent if self.stream.startswith("door/") else TileEvent
        try:
            while not self._stop.is_set():
                for e in self._link.read(0.2):
                    if isinstance(e, want):
                        yield e
                yield FLUSH
        finally:
            self._link.close()

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return self._link.stats.as_dict() if self._link is not None else {}


class GpioBeamSource:
    """A door's beam pair on the node's GPIO (gpiozero; ``mock`` factory in tests)."""

    realtime = True
    resumable = False

    def __init__(
        self, door: str, pin_a: int | str, pin_b: int | str, pin_factory: Any, pull_up: bool = True
    ) -> None:
        self.stream = self.name = f"door/{door}"
        self.pins = (pin_a, pin_b)
        self.pull_up = pull_up
        self.factory = pin_factory
        self._stop = threading.Event()
        self.beams: Any = None
        self.opened = threading.Event()

    def items(self, skip: int = 0) -> Iterator[DoorEvent | None]:
        from firmware_bridge.gpio_beams import GpioBeamPair

        self.beams = GpioBeamPair(*self.pins, pin_factory=self.factory, pull_up=self.pull_up)
        self.opened.set()
        try:
            while not self._stop.is_set():
                e = self.beams.get(timeout_s=0.2)
                if e is not None:
                    yield e
                    yield FLUSH
        finally:
            self.beams.close()

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return dict(self.beams.stats) if self.beams is not None else {}


class LiveWifiSource:
    """A monitor-mode interface (:class:`sensing.capture.live_wifi.MonitorSource`)."""

    stream = "obs"
    realtime = True
    resumable = False

    def __init__(self, interface: str, open_socket: Any = None) -> None:
        self.interface = interface
        self.name = f"wifi:{interface}"
        self._open_socket = open_socket
        self._stop = threading.Event()

    def items(self, skip: int = 0) -> Iterator[Record | None]:
        from sensing.capture.live_wifi import MonitorSource

        src = MonitorSource(self.interface, open_socket=self._open_socket)
        src.open()
        try:
            while not self._stop.is_set() and not src.exhausted:
                rec = src.poll(0.2)
                while rec is not None:  # take what the kernel has buffered
                    yield rec
                    rec = src.poll(0.0)
                yield FLUSH
                if self._stop.wait(LIVE_BATCH_S):
                    return
        finally:
            src.close()

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return {}


class LiveBleSource:
    """A BLE adapter through bleak (:class:`sensing.capture.live_ble.BleScanSource`); its
    adverts arrive already normalized (:class:`~sensing.capture.decoded.BleAdvert`)."""

    stream = "obs"
    realtime = True
    resumable = False

    def __init__(self, adapter: str, backend: type | None = None) -> None:
        self.adapter = adapter
        self.name = f"ble:{adapter}"
        self.backend = backend
        self._stop = threading.Event()

    def items(self, skip: int = 0) -> Iterator[BleAdvert | None]:
        import asyncio
        import queue

        from sensing.capture.live_ble import BleScanSource

        got: queue.SimpleQueue[BleAdvert] = queue.SimpleQueue()
        scan = BleScanSource(adapter=self.adapter, backend=self.backend)
        failed: list[BaseException] = []
        ready = threading.Event()
        holder: dict[str, Any] = {}

        async def main() -> None:
            stop = asyncio.Event()
            holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
            ready.set()
            await scan.run(got.put, stop)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as e:  # reported to the reader below
                failed.append(e)
            finally:
                ready.set()

        t = threading.Thread(target=run, name=f"bleak-{self.adapter}", daemon=True)
        t.start()
        ready.wait(10)
        try:
            while not self._stop.is_set() and t.is_alive():
                try:
                    yield got.get(timeout=0.2)
                    while True:
                        yield got.get_nowait()
                except queue.Empty:
                    yield FLUSH
                if self._stop.wait(LIVE_BATCH_S):
                    break
        finally:
            if "loop" in holder:
                holder["loop"].call_soon_threadsafe(holder["stop"].set)
            t.join(10)
        if failed:
            e = failed[0]
            raise e if isinstance(e, CaptureError) else CaptureError(f"{self.name}: {e}")

    def close(self) -> None:
        self._stop.set()

    def link_stats(self) -> dict[str, int]:
        return {}


def pin_factory(kind: str) -> Any:
    """The gpiozero pin factory named in the config: ``default`` is lgpio (Pi 5 and
    Bookworm on every Pi), ``mock`` is gpiozero's mock factory (tests)."""
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except Exception as e:  # ImportError, or lgpio's own error off a Pi
        raise CaptureError(f"cannot open the GPIO (lgpio): {e}") from e
