"""How much memory this process has used at most (for status lines and benches)."""

from __future__ import annotations

from pathlib import Path


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
