"""k-anonymity of what is stored: a figure from fewer than k devices is stored as suppressed.

Counts of people or devices from 1 to k - 1 become ``None`` (JSON null, shown as
"suppressed"); 0 stays 0 (nobody is nobody). A figure derived from a group (a
percentile of dwell, a zone's person-seconds) is kept only if its group has at
least k members (or none: a figure of nobody, such as 0 visits, names no one).

>>> count(3, 5), count(0, 5), count(7, 5)
(None, 0, 7)
>>> figure(12.5, group=4, k=5) is None, figure(12.5, group=5, k=5), figure(0, group=0, k=5)
(True, 12.5, 0)
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

SUPPRESSED = None


def count(n: int, k: int) -> int | None:
    return int(n) if n == 0 or n >= k else SUPPRESSED


def figure(value: T, group: int, k: int) -> T | None:
    return value if group == 0 or group >= k else SUPPRESSED
