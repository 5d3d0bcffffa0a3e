"""Ground truth of a simulated day, written beside the captures.

Holds people (by index), positions, door crossings and zone visits — never an
address or SSID: the truth is for scoring, and is scanned for canaries like the
rest of the outputs. The format (:class:`~heatmap.report.truth_compare.Truth`) is
defined where it is read, in :mod:`heatmap.report.truth_compare`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import shapely

from heatmap.report.truth_compare import Truth
from heatmap.simulate.boards import Crossing
from heatmap.simulate.people import Person
from heatmap.simulate.phones import Phone
from heatmap.spatial.floorplan import FloorPlan


def sample_positions(people: list[Person], plan: FloorPlan, duration_s: int) -> Truth:
    ts, ps, xys, roles = [], [], [], []
    for p in people:
        lo, hi = max(int(np.ceil(p.t_start)), 0), min(int(np.floor(p.t_end)), duration_s - 1)
        if hi < lo:
            continue
        t = np.arange(lo, hi + 1)
        ts.append(t)
        ps.append(np.full(len(t), p.id))
        xys.append(p.position(t.astype(float)))
        roles.append(np.full(len(t), p.role))
    xy = np.concatenate(xys)
    inside = shapely.contains(plan.outline_polygon, shapely.points(xy))
    return Truth(np.concatenate(ts), np.concatenate(ps), xy, inside, np.concatenate(roles))


def write(
    out: Path,
    truth: Truth,
    people: list[Person],
    phones: list[Phone],
    crossings: list[Crossing],
    visits: list[tuple[int, str, int, int]],
    meta: dict[str, object],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "positions.npz",
        t=truth.t,
        person=truth.person,
        xy=truth.xy,
        inside=truth.inside,
        role=truth.role,
    )
    os_of = {ph.person: ph.os for ph in phones}
    with (out / "people.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "role", "t_start_s", "t_end_s", "phone_os"])
        for p in people:
            w.writerow([p.id, p.role, f"{p.t_start:.1f}", f"{p.t_end:.1f}", os_of.get(p.id, "")])
    with (out / "door_crossings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "person", "direction"])
        for c in crossings:
            w.writerow([f"{c.t:.3f}", c.person, c.direction])
    with (out / "zone_visits.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "zone", "t_start_s", "t_end_s"])
        w.writerows(visits)
    (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def scenario_meta(sc: object) -> dict[str, object]:
    d = asdict(sc)  # type: ignore[call-overload]
    return {k: v for k, v in d.items()}
