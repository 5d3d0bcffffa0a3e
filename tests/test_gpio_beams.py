"""Beams on the node's GPIO through gpiozero's mock pin factory: the same edges as the
firmware and the Python state machine, the same crossings and counters."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from test_bridge_payloads import event_batches

from firmware_bridge.door_direction import DoorDirection
from firmware_bridge.door_scenario import Edge, beam_edges, passages, truth_count
from firmware_bridge.events import DoorEvent
from firmware_bridge.gpio_beams import GpioBeamPair
from sensing.wire import payloads

PIN_A, PIN_B = 17, 27


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_760_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def drive(pin: MockPin, blocked: bool, active_low: bool = True) -> None:
    if blocked == active_low:
        pin.drive_low()
    else:
        pin.drive_high()


def play(
    factory: MockFactory,
    beams: GpioBeamPair,
    clock: FakeClock,
    edges: list[Edge],
    active_low: bool = True,
) -> None:
    pins = {"A": factory.pin(PIN_A), "B": factory.pin(PIN_B)}
    base = clock.now
    for t, beam, blocked in edges:
        clock.now = base + t
        drive(pins[beam], blocked, active_low)


@pytest.mark.parametrize("seed", range(3))
def test_same_crossings_as_python_and_truth(factory: MockFactory, seed: int) -> None:
    ps = passages(np.random.default_rng(seed), 300, tailgate_p=0.2, linger_p=0.05)
    edges = beam_edges(ps)
    clock = FakeClock()
    base = clock.now
    with GpioBeamPair(PIN_A, PIN_B, pin_factory=factory, clock=clock) as beams:
        play(factory, beams, clock, edges)
        got = beams.drain()
        stats = dict(beams.stats)

    ref = DoorDirection()
    expected = [
        DoorEvent(base + t, r)
        for t, beam, blocked in edges
        if (r := ref.edge(t, beam, blocked)) is not None
    ]
    assert got == expected
    assert stats == dict(ref.stats)
    truth = truth_count(ps)
    assert (stats["in"], stats["out"]) == (truth["in"], truth["out"])
    for p in event_batches(list(got)):
        payloads.decode("door_events", payloads.encode(p))


def test_active_high_wiring(factory: MockFactory) -> None:
    # sensors pulling the line high when the beam is blocked, with pull-downs
    clock = FakeClock()
    edges: list[Edge] = [(0, "B", True), (90, "A", True), (260, "B", False), (350, "A", False)]
    with GpioBeamPair(PIN_A, PIN_B, pin_factory=factory, pull_up=False, clock=clock) as beams:
        play(factory, beams, clock, edges, active_low=False)
        assert [e.direction for e in beams.drain()] == [-1]


def test_callback_get_and_levels(factory: MockFactory) -> None:
    clock = FakeClock()
    seen: list[DoorEvent] = []
    with GpioBeamPair(
        PIN_A, PIN_B, pin_factory=factory, clock=clock, on_crossing=seen.append
    ) as beams:
        assert beams.get(timeout_s=0.01) is None
        a, b = factory.pin(PIN_A), factory.pin(PIN_B)
        a.drive_low()
        b.drive_low()
        assert beams.blocked == (True, True)
        a.drive_high()
        b.drive_high()
        event = beams.get(timeout_s=1)
    assert event is not None and event.direction == 1 and seen == [event]


def test_beam_already_blocked_at_start(factory: MockFactory) -> None:
    # external pull-ups (pull_up=None: the mock then leaves the levels alone), and
    # someone (or a box) in beam A as we start
    factory.pin(PIN_A).drive_low()
    factory.pin(PIN_B).drive_high()
    clock = FakeClock()
    with GpioBeamPair(
        PIN_A, PIN_B, pin_factory=factory, pull_up=None, active_state=False, clock=clock
    ) as beams:
        assert beams.blocked == (True, False)
        b, a = factory.pin(PIN_B), factory.pin(PIN_A)
        clock.now += 100
        b.drive_low()
        clock.now += 100
        a.drive_high()
        clock.now += 100
        b.drive_high()
        assert [e.direction for e in beams.drain()] == [1]


def test_pins_released_on_close(factory: MockFactory) -> None:
    GpioBeamPair(PIN_A, PIN_B, pin_factory=factory).close()
    GpioBeamPair(PIN_A, PIN_B, pin_factory=factory).close()  # would raise GPIOPinInUse
