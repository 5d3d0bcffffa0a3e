"""The CLI's progress bar: a rich bar per task on stderr, behind sensing.runtime.progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sensing.runtime.progress import Advance, NoProgress, Progress


class RichProgress:
    """A rich progress bar per task, on stderr."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def task(self, description: str, total: float) -> Advance:
        tid = self.bar.add_task(description, total=total)
        return lambda n: self.bar.advance(tid, n)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    if not enabled:
        yield NoProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        yield RichProgress(bar)
