"""The runnable examples in the localization modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "heatmap.spatial.radio_model",
    "heatmap.spatial.motion",
    "heatmap.spatial.crb",
    "heatmap.spatial.node_placement",
    "heatmap.calibration.walk",
    "heatmap.localizers",
    "heatmap.simulate.accuracy_harness",
    "heatmap.aggregator.obs_reader",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
