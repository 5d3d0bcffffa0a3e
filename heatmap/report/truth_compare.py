"""Scoring against the simulator's ground truth (simulated stores only).

The truth files are written by :mod:`heatmap.simulate.truth`; their format,
:class:`Truth`, is defined here where it is read, so the report does not import the
simulator.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from heatmap.report.flows import MIN_DWELL_S, FlowMatrix, flows_from_stays, zone_index
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid


@dataclass(frozen=True)
class Truth:
    t: NDArray[np.int64]
    """seconds after the window start, one row per person-second"""
    person: NDArray[np.int64]
    xy: NDArray[np.float64]
    inside: NDArray[np.bool_]
    role: NDArray[np.str_]
    """per row: shopper | passerby | staff"""

    @classmethod
    def load(cls, truth_dir: Path) -> Truth:
        z = np.load(truth_dir / "positions.npz")
        return cls(z["t"], z["person"], z["xy"], z["inside"], z["role"])


def zone_visits(truth: Truth, plan: FloorPlan) -> list[tuple[int, str, int, int]]:
    """(person, zone, first second, last second) of each contiguous stay in a zone."""
    zi = zone_index(plan, truth.xy)
    out = []
    for k, z in enumerate(plan.zones):
        idx = np.flatnonzero(zi == k)
        if not len(idx):
            continue
        person, t = truth.person[idx], truth.t[idx]
        brk = np.flatnonzero((np.diff(person) != 0) | (np.diff(t) != 1)) + 1
        starts = np.concatenate([[0], brk])
        ends = np.concatenate([brk - 1, [len(idx) - 1]])
        out += [
            (int(person[s]), z.id, int(t[s]), int(t[e])) for s, e in zip(starts, ends, strict=True)
        ]
    return sorted(out)


@dataclass(frozen=True)
class TruthFigures:
    door_in: int
    door_out: int
    passersby: int
    """people who walked the street and never came in"""
    visitors_entered: int
    mean_dwell_s: float
    median_dwell_s: float
    person_seconds_inside: float
    """everyone inside (shoppers and staff), person-seconds"""
    shopper_seconds_inside: float
    per_cell: NDArray[np.float64]
    """person-seconds per grid cell, everyone"""


def load(truth_dir: Path, grid: WalkableGrid) -> TruthFigures:
    tr = Truth.load(truth_dir)
    with (truth_dir / "door_crossings.csv").open() as f:
        dirs = [int(r["direction"]) for r in csv.DictReader(f)]
    with (truth_dir / "people.csv").open() as f:
        roles = {int(r["person"]): r["role"] for r in csv.DictReader(f)}
    shopper = tr.role == "shopper"
    inside_s = np.bincount(tr.person[shopper & tr.inside], minlength=len(roles))
    entered = np.flatnonzero(inside_s > 0)
    per_cell = np.bincount(grid.cells_of(tr.xy), minlength=grid.nx * grid.ny).astype(float)
    return TruthFigures(
        door_in=sum(d > 0 for d in dirs),
        door_out=sum(d < 0 for d in dirs),
        passersby=sum(r == "passerby" for r in roles.values()),
        visitors_entered=len(entered),
        mean_dwell_s=float(inside_s[entered].mean()) if len(entered) else 0.0,
        median_dwell_s=float(np.median(inside_s[entered])) if len(entered) else 0.0,
        person_seconds_inside=float(tr.inside.sum()),
        shopper_seconds_inside=float((shopper & tr.inside).sum()),
        per_cell=per_cell,
    )


def pearson_r(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def flows(
    truth_dir: Path,
    plan: FloorPlan,
    min_dwell_s: float = MIN_DWELL_S,
    phones_only: bool = False,
) -> FlowMatrix:
    """True zone-to-zone flows of the simulated people (same minimum-dwell rule as
    the tracks), from the truth's ``zone_visits.csv`` (contiguous stays, whole
    seconds) or, without it, from the positions. ``phones_only``: only the people
    who carried a phone (what RF can see at best)."""
    path = truth_dir / "zone_visits.csv"
    if path.exists():
        with path.open() as f:
            rows = [
                (int(r["person"]), r["zone"], int(r["t_start_s"]), int(r["t_end_s"]))
                for r in csv.DictReader(f)
            ]
    else:
        rows = zone_visits(Truth.load(truth_dir), plan)
    if phones_only:
        with (truth_dir / "people.csv").open() as f:
            carriers = {int(r["person"]) for r in csv.DictReader(f) if r["phone_os"]}
        rows = [r for r in rows if r[0] in carriers]
    zones = tuple(z.id for z in plan.zones)
    index = {z: i for i, z in enumerate(zones)}
    rows.sort(key=lambda r: (r[0], r[2]))  # the file is sorted by person, zone, time
    person = np.array([r[0] for r in rows], np.int64)
    zone = np.array([index.get(r[1], -1) for r in rows], np.int64)
    # a stay of seconds t0..t1 inclusive lasted t1 - t0 + 1 s
    dur = np.array([r[3] - r[2] + 1 for r in rows], float)
    return flows_from_stays(person, zone, dur, zones, min_dwell_s)
