"""``footfall doctor``'s runner: the checks of one node config, in the order an
installer meets problems, each crash turned into a finding.

The seams tests replace are the runner's fields: the command runner (``iw``), the
sysfs root, the clock probe, ``which`` and the waits.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sensing.node.clock_sync import ClockProbe
from sensing.node.config import NodeConfig
from sensing.node.doctor import boards as board_checks
from sensing.node.doctor import broker as broker_checks
from sensing.node.doctor import host as host_checks
from sensing.node.doctor import radios as radio_checks
from sensing.node.doctor.check import Check
from sensing.node.doctor.radios import Runner

__all__ = ["Doctor"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


@dataclass
class Doctor:
    """Runs the checks for one node config."""

    cfg: NodeConfig
    runner: Runner = _run
    clock: ClockProbe | None = None
    sys_class: Path = Path("/sys/class")
    serial_wait_s: float = 3.0
    broker_timeout_s: float = 5.0
    which: Callable[[str], str | None] = shutil.which

    def run(self) -> list[Check]:
        out: list[Check] = []
        for check in (
            self.key_file,
            self.clock_sync,
            self.spool_disk,
            self.wifi,
            self.ble,
            self.boards,
            self.beams,
            self.broker,
        ):
            try:
                out.extend(check())
            except Exception as e:  # a check that crashes is a finding, not a traceback
                out.append(Check(check.__name__, "FAIL", f"check crashed: {e}"))
        return out

    def key_file(self) -> Iterator[Check]:
        return host_checks.key_file(self.cfg)

    def clock_sync(self) -> Iterator[Check]:
        return host_checks.clock_sync(self.cfg, self.clock)

    def spool_disk(self) -> Iterator[Check]:
        return host_checks.spool_disk(self.cfg)

    def wifi(self) -> Iterator[Check]:
        return radio_checks.wifi(self.cfg, self.runner, self.sys_class, self.which)

    def ble(self) -> Iterator[Check]:
        return radio_checks.ble(self.cfg, self.sys_class)

    def boards(self) -> Iterator[Check]:
        return board_checks.boards(self.cfg, self.serial_wait_s)

    def beams(self) -> Iterator[Check]:
        return board_checks.beams(self.cfg)

    def broker(self) -> Iterator[Check]:
        return broker_checks.broker(self.cfg, self.broker_timeout_s)
