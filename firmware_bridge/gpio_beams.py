"""A door's beam pair wired straight to the node's GPIO, read with gpiozero.

The same :class:`~firmware_bridge.door_direction.DoorDirection` as the door
board's firmware decides in/out, and crossings come out as the same
:class:`~firmware_bridge.events.DoorEvent` (board 0) as from a serial board, so
the node daemon publishes both alike.

The pin factory is always passed in (never gpiozero's global default): the node
daemon picks the real one (lgpio on a Pi 5 / Bookworm), tests pass
``gpiozero.pins.mock.MockFactory()`` and drive the pins:

>>> from gpiozero.pins.mock import MockFactory
>>> f = MockFactory()
>>> t = iter(range(0, 10_000, 100))
>>> beams = GpioBeamPair(17, 27, pin_factory=f, clock=lambda: next(t))
>>> a, b = f.pin(17), f.pin(27)
>>> for pin in (a.drive_low, b.drive_low, a.drive_high, b.drive_high):
...     pin()
>>> beams.drain()
[DoorEvent(t_ms=300, direction=1, board=0, tick_ms=None)]
>>> beams.close()

Wiring (see ``hardware/wiring.md``): open-collector (NPN) receivers to a GPIO
with the Pi's pull-up, so a blocked beam reads low; only 3.3 V may reach a pin.
gpiozero's ``bounce_time`` is applied by the real pin drivers (the mock
factory ignores it).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING

from firmware_bridge.board_clock import epoch_ms
from firmware_bridge.door_direction import DoorDirection
from firmware_bridge.events import DoorEvent

if TYPE_CHECKING:
    from gpiozero import DigitalInputDevice, Factory


class GpioBeamPair:
    """Beam A (street side) and beam B (inside) on two GPIO pins.

    Parameters
    ----------
    pin_a, pin_b
        gpiozero pin names (BCM numbers such as 17, or "GPIO17", "BOARD11").
    pin_factory
        the gpiozero pin factory to use.
    pull_up
        True (default): internal pull-up, blocked = low. False: pull-down,
        blocked = high. None: external resistor, then give ``active_state``.
    active_state
        with ``pull_up=None``, the level (True high) that means blocked.
    bounce_ms
        debounce applied by the pin driver, ms (the firmware uses 5 ms).
    timeout_ms
        stall timeout of the direction state machine.
    clock
        node time, Unix epoch ms, read at each edge.
    on_crossing
        called with each DoorEvent, from gpiozero's callback thread.
    """

    def __init__(
        self,
        pin_a: int | str,
        pin_b: int | str,
        *,
        pin_factory: Factory,
        pull_up: bool | None = True,
        active_state: bool | None = None,
        bounce_ms: float | None = 5.0,
        timeout_ms: int = 3000,
        clock: Callable[[], int] = epoch_ms,
        on_crossing: Callable[[DoorEvent], None] | None = None,
    ) -> None:
        from gpiozero import DigitalInputDevice

        self.direction = DoorDirection(timeout_ms)
        self._clock = clock
        self._on_crossing = on_crossing
        self._lock = threading.Lock()
        self._events: queue.Queue[DoorEvent] = queue.Queue()
        bounce_s = bounce_ms / 1000 if bounce_ms else None
        self._devices: dict[str, DigitalInputDevice] = {}
        try:
            for beam, pin in (("A", pin_a), ("B", pin_b)):
                self._devices[beam] = DigitalInputDevice(
                    pin,
                    pull_up=pull_up,
                    active_state=active_state,
                    bounce_time=bounce_s,
                    pin_factory=pin_factory,
                )
        except Exception:
            self.close()
            raise
        for beam, dev in self._devices.items():
            if dev.is_active:  # already blocked when we start
                self._edge(beam, True)
            dev.when_activated = partial(self._edge, beam, True)
            dev.when_deactivated = partial(self._edge, beam, False)

    @property
    def stats(self) -> Counter[str]:
        """in, out, tailgate, half_crossing, timeout (cumulative)."""
        return self.direction.stats

    @property
    def blocked(self) -> tuple[bool, bool]:
        """Current levels of beams A and B."""
        return bool(self._devices["A"].is_active), bool(self._devices["B"].is_active)

    def get(self, timeout_s: float | None = None) -> DoorEvent | None:
        """The next crossing, waiting up to ``timeout_s`` (None: forever)."""
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> list[DoorEvent]:
        """All crossings not yet taken."""
        out: list[DoorEvent] = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def _edge(self, beam: str, blocked: bool) -> None:
        with self._lock:
            t = self._clock()
            direction = self.direction.edge(t, beam, blocked)
        if direction is None:
            return
        event = DoorEvent(t, direction)
        self._events.put(event)
        if self._on_crossing is not None:
            self._on_crossing(event)

    def close(self) -> None:
        for dev in self._devices.values():
            dev.close()

    def __enter__(self) -> GpioBeamPair:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
