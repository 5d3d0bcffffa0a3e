"""The runnable examples in the node daemon's modules stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "sensing.spool",
    "sensing.channel_plan",
    "sensing.clock_sync",
    "sensing.systemd_notify",
    "sensing.node_log",
    "sensing.node_status",
    "sensing.broker_acl",
    "sensing.pki",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
