"""The process-memory helpers the aggregator and the benches use."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from sensing.runtime.process_memory import peak_rss_mib, release_free_memory


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_freed_heap_arrays_go_back_to_the_os() -> None:
    try:
        glibc = hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim")
    except OSError:
        glibc = False
    if not glibc:
        pytest.skip("not glibc")
    # freeing an mmapped 8 MB block raises glibc's mmap threshold above 1 MB, so
    # the 1 MB arrays below land on the heap, as a stage's temporaries do
    big = np.ones(1 << 20)
    del big
    arrays = [np.ones(1 << 17) for _ in range(200)]  # 200 × 1 MiB, touched
    keep = arrays[-1]  # the top of the heap stays in use: free() alone cannot shrink it
    del arrays
    before = _rss_mib()
    release_free_memory()
    after = _rss_mib()
    assert keep.sum() == 1 << 17
    assert before - after > 100, (before, after)
    peak = peak_rss_mib()
    assert peak is not None and peak > 100  # VmHWM: the 200 MiB above were resident once
