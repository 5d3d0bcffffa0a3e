"""Seeded door scenarios: people passing a beam pair → beam edges + the truth.

Used to drive the same crossings through the firmware under simavr, the Python
:class:`~firmware_bridge.door_direction.DoorDirection`, the GPIO path and the
benches. A person walking at ``v`` m/s with body depth ``depth`` m through beams
``spacing`` m apart blocks the first beam at ``t``, the second at
``t + spacing/v``, clears the first at ``t + depth/v`` and the second at
``t + (spacing + depth)/v`` (depth > spacing, so both are blocked at once).

Kinds of passage and what an ideal counter reports:

- ``in`` / ``out``: a crossing (+1 / -1);
- ``tailgate``: a second person, same direction, entering the first beam while
  the one ahead is still in the second: two crossings, ``direction`` each;
- ``half``: steps into the first beam and back (0);
- ``step_back``: reaches the second beam, then backs out (0);
- ``linger``: stands in the first beam longer than the timeout, backs out (0).

>>> import numpy as np
>>> ps = passages(np.random.default_rng(1), 3, tailgate_p=0, half_p=0, linger_p=0)
>>> sum(p.direction for p in ps) == truth_count(ps)["in"] - truth_count(ps)["out"]
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Edge = tuple[int, str, bool]
"""(t_ms, beam "A" or "B", blocked)"""

SPACING_M = 0.12
MIN_GAP_MS = 30
"""least time a beam is clear between two people (well over the 5 ms debounce)"""


@dataclass(frozen=True, slots=True)
class Passage:
    """One person's movement through the door."""

    t_ms: int
    """when the first beam is blocked"""
    kind: str
    """in, out, tailgate, half, step_back, linger"""
    direction: int
    """+1 in / -1 out for counted passages, 0 for the others; a tailgate has the
    direction of the person it follows"""
    intervals: tuple[tuple[str, int, int], ...]
    """(beam, blocked from ms, blocked until ms)"""

    @property
    def end_ms(self) -> int:
        return max(end for _, _, end in self.intervals)


def _walk(t: int, first: str, rng: np.random.Generator) -> tuple[tuple[str, int, int], ...]:
    v = rng.uniform(0.8, 1.8)
    depth = rng.uniform(0.25, 0.40)
    second = "B" if first == "A" else "A"
    d12 = round(SPACING_M / v * 1000)
    block = round(depth / v * 1000)
    return ((first, t, t + block), (second, t + d12, t + d12 + block))


def passages(
    rng: np.random.Generator,
    n: int,
    *,
    t0_ms: int = 500,
    mean_gap_ms: float = 1500,
    tailgate_p: float = 0.15,
    half_p: float = 0.05,
    step_back_p: float = 0.03,
    linger_p: float = 0.02,
    linger_ms: int = 4500,
) -> list[Passage]:
    """``n`` passages in time order; each non-tailgate begins after the door is clear."""
    out: list[Passage] = []
    t = t0_ms
    for _ in range(n):
        prev = out[-1] if out else None
        u = rng.uniform()
        if prev is not None and prev.kind in ("in", "out", "tailgate") and u < tailgate_p:
            first = next(b for b, _, _ in prev.intervals[:1])
            first_clear = prev.intervals[0][2]
            second_clear = prev.intervals[1][2]
            # enter the first beam after the one ahead left it, before it leaves the second
            lo, hi = first_clear + MIN_GAP_MS, second_clear - MIN_GAP_MS
            if hi >= lo:
                start = int(rng.integers(lo, hi + 1))
                out.append(Passage(start, "tailgate", prev.direction, _walk(start, first, rng)))
                t = out[-1].end_ms
                continue
        direction = 1 if rng.uniform() < 0.5 else -1
        first = "A" if direction > 0 else "B"
        second = "B" if first == "A" else "A"
        start = t + MIN_GAP_MS + int(rng.exponential(mean_gap_ms))
        u = rng.uniform()
        if u < half_p:
            iv: tuple[tuple[str, int, int], ...] = (
                (first, start, start + int(rng.integers(150, 800))),
            )
            out.append(Passage(start, "half", 0, iv))
        elif u < half_p + step_back_p:
            d12 = int(rng.integers(60, 150))
            b_clear = start + d12 + int(rng.integers(80, 300))
            iv = (
                (first, start, b_clear + int(rng.integers(40, 300))),
                (second, start + d12, b_clear),
            )
            out.append(Passage(start, "step_back", 0, iv))
        elif u < half_p + step_back_p + linger_p:
            iv = ((first, start, start + linger_ms + int(rng.integers(0, 2000))),)
            out.append(Passage(start, "linger", 0, iv))
        else:
            out.append(
                Passage(
                    start, "in" if direction > 0 else "out", direction, _walk(start, first, rng)
                )
            )
        t = out[-1].end_ms
    return out


def beam_edges(ps: list[Passage]) -> list[Edge]:
    """The level changes of beams A and B, in time order (A first at equal times).
    Blocks of one beam that overlap, or leave it clear for less than
    ``MIN_GAP_MS``, merge into one: the beam sees one long block (and no edge
    comes closer than the firmware's debounce can resolve)."""
    edges: list[Edge] = []
    for beam in ("A", "B"):
        spans = sorted((s, e) for p in ps for b, s, e in p.intervals if b == beam)
        merged: list[list[int]] = []
        for s, e in spans:
            if merged and s - merged[-1][1] < MIN_GAP_MS:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            edges += [(s, beam, True), (e, beam, False)]
    return sorted(edges, key=lambda x: (x[0], x[1]))


def truth_count(ps: list[Passage]) -> dict[str, int]:
    """People in and out, as an ideal counter would report them."""
    return {
        "in": sum(1 for p in ps if p.direction > 0),
        "out": sum(1 for p in ps if p.direction < 0),
    }
