"""One finding of ``footfall doctor``: its report line, and the verdict over all.

>>> print(Check("clock", "FAIL", "not synchronized", "sudo timedatectl set-ntp true").line())
FAIL  clock         not synchronized — fix: sudo timedatectl set-ntp true
>>> fit([Check("ble", "warn", "x"), Check("wifi", "skip", "y")])
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Level", "fit"]

Level = Literal["ok", "warn", "FAIL", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check."""

    name: str
    level: Level
    message: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{self.level:<5} {self.name:<13} {self.message}{fix}"


def fit(checks: list[Check]) -> bool:
    """True if no check failed (warnings do not make a node unfit)."""
    return not any(c.level == "FAIL" for c in checks)
