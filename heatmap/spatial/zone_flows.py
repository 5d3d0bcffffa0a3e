"""Zone-to-zone moves counted from stays: the flow matrix, with its k-anonymous table.

A *stay* is a contiguous run of a path inside one zone lasting at least
``MIN_DWELL_S``; consecutive stays of one entity (a pseudonym, a session, a
simulated person) in the same zone merge, and every change A → B is a transition.
The batch report (:mod:`heatmap.report.flows`) and the live aggregator count them
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64]
Ix = NDArray[np.int64]

MIN_DWELL_S = 10.0
"""a zone counts as a stay only after this long in it, s"""


@dataclass(frozen=True)
class FlowCell:
    """One (from, to) cell of a flow matrix as published; None where suppressed."""

    from_zone: str
    to_zone: str
    transitions: int | None
    devices: int | None

    @property
    def suppressed(self) -> bool:
        return self.devices is None


@dataclass(frozen=True)
class FlowMatrix:
    """Transitions between zones: ``transitions[i, j]`` counts moves zone i → zone j."""

    zones: tuple[str, ...]
    transitions: Ix
    """(Z, Z) transitions from row zone to column zone (diagonal always 0)"""
    devices: Ix
    """(Z, Z) distinct pseudonyms (or people) with at least one such transition"""
    entities: int
    """pseudonyms (or people) with at least one stay"""

    @property
    def total(self) -> int:
        return int(self.transitions.sum())

    def distribution(self) -> F:
        """Transitions as shares of all transitions (all zeros if there are none)."""
        tot = self.transitions.sum()
        return self.transitions / tot if tot else np.zeros(self.transitions.shape)

    def table(self, k: int) -> list[FlowCell]:
        """Non-empty cells, most transitions first; cells of fewer than ``k`` devices
        come last, suppressed (counts None), so that a small group is never shown;
        they are in zone order, as their order must not tell their counts either."""
        i, j = np.nonzero(self.transitions)
        shown = self.devices[i, j] >= k
        order = np.lexsort((j, i, np.where(shown, -self.transitions[i, j], 0), ~shown))
        return [
            FlowCell(
                self.zones[i[o]],
                self.zones[j[o]],
                int(self.transitions[i[o], j[o]]) if shown[o] else None,
                int(self.devices[i[o], j[o]]) if shown[o] else None,
            )
            for o in order
        ]


def flows_from_stays(
    entity: Ix,
    zone: Ix,
    duration_s: F,
    zones: tuple[str, ...] | list[str],
    min_dwell_s: float = MIN_DWELL_S,
) -> FlowMatrix:
    """Flow matrix from contiguous zone runs, sorted by entity then time.

    ``entity``: integer id per run (pseudonym or person); ``zone``: index into
    ``zones`` (-1: outside every zone, ignored); ``duration_s``: how long the run
    lasted. Runs shorter than ``min_dwell_s`` are dropped, then consecutive runs
    of one entity in the same zone merge, and each remaining change is a transition.
    """
    entity = np.asarray(entity, np.int64)
    zone = np.asarray(zone, np.int64)
    n_z = len(zones)
    keep = (zone >= 0) & (np.asarray(duration_s, float) >= min_dwell_s)
    e, z = entity[keep], zone[keep]
    if len(e) > 1 and (np.diff(e) < 0).any():
        raise ValueError("runs must be sorted by entity then time")
    # merge consecutive stays of one entity in one zone: only changes remain
    new = np.r_[True, (e[1:] != e[:-1]) | (z[1:] != z[:-1])] if len(e) else np.zeros(0, bool)
    e, z = e[new], z[new]
    step = np.flatnonzero(e[1:] == e[:-1])
    src, dst, who = z[step], z[step + 1], e[step]
    trans = np.zeros((n_z, n_z), np.int64)
    np.add.at(trans, (src, dst), 1)
    devices = np.zeros((n_z, n_z), np.int64)
    if len(step):
        uniq = np.unique(np.stack([who, src, dst], axis=1), axis=0)
        np.add.at(devices, (uniq[:, 1], uniq[:, 2]), 1)
    return FlowMatrix(tuple(zones), trans, devices, len(np.unique(e)))
