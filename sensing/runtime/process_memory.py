"""How much memory this process has used at most (for status lines and benches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def peak_rss_mib() -> float | None:
    """This process's peak resident set (VmHWM), MiB; None where /proc has no such line.

    VmHWM rather than ``getrusage``'s maxrss: that survives ``exec``, so a worker
    spawned from a big parent would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def release_free_memory() -> None:
    """Give the heap's freed pages back to the OS (glibc ``malloc_trim``; elsewhere nothing).

    Arrays between 128 kB and glibc's dynamic mmap threshold (up to 32 MB) live
    on the heap, and freeing them leaves the process's resident size where it
    was: on the busy store-day the aggregator kept 50–75 MB of freed temporaries
    after reading the rows and again after calibrating, and the next stage's
    peak stacked on them. Called at the end of those stages.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None
