"""The runnable examples in firmware_bridge's docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    # protocol, decoder and door_direction are in tests/test_doctests.py
    "firmware_bridge.board_clock",
    "firmware_bridge.board_stream",
    "firmware_bridge.door_scenario",
    "firmware_bridge.events",
    "firmware_bridge.gpio_beams",
    "firmware_bridge.pty_board",
    "firmware_bridge.serial_link",
    "firmware_bridge.simavr_board",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
