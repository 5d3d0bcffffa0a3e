"""The runnable examples in the docstrings stay true."""

import doctest
import importlib

import pytest

MODULES = [
    "sensing.wire.topics",
    "sensing.privacy.pseudonym",
    "sensing.privacy.key_memory",
    "sensing.capture.ble_crc",
    "sensing.capture.ble_link_layer",
    "sensing.capture.ble_device_kind",
    "firmware_bridge.protocol",
    "firmware_bridge.decoder",
    "firmware_bridge.door_direction",
    "heatmap.spatial.floorplan",
    "heatmap.spatial.walkable_grid",
    "sensing.cli.report",
    "sensing.runtime.typed_config",
    "sensing.runtime.private_files",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
