"""The runnable examples in the docstrings stay true."""

import doctest
import importlib

import pytest

MODULES = [
    "sensing.topics",
    "sensing.pseudonym",
    "firmware_bridge.protocol",
    "firmware_bridge.decoder",
    "firmware_bridge.door_direction",
    "heatmap.floorplan",
    "heatmap.walkable_grid",
    "heatmap.cli_report",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
