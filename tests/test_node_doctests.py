"""The runnable examples in the node daemon's modules stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "sensing.node.spool",
    "sensing.capture.channel_plan",
    "sensing.node.clock_sync",
    "sensing.runtime.systemd_notify",
    "sensing.node.log",
    "sensing.node.status",
    "sensing.provision.broker_acl",
    "sensing.provision.pki",
    "sensing.node.doctor.check",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
