"""Progress reporting for long work, decoupled from how it is shown.

Pipelines take a ``Progress`` and call ``task(description, total)`` to get an
``advance(n)`` callable; the CLI passes a rich progress bar, tests pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Advance = Callable[[float], None]


class Progress(Protocol):
    def task(self, description: str, total: float) -> Advance: ...


class NoProgress:
    """Shows nothing."""

    def task(self, description: str, total: float) -> Advance:
        return lambda n: None
