"""Who is in and around the simulated store, and where, second by second.

Each person is a piecewise-linear timeline of key points (t, x, y): walking along
shortest grid paths around shelves at their own speed, dwelling (with small
browsing moves) in zones, queueing at checkout (the scenario's tills, first come
first served), and leaving. Passersby walk the street; staff stay all day.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import dijkstra

from heatmap.simulate.scenario import PROMO_RADIUS_M, Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid

# dwell range (s) by zone id; zones not listed use DEFAULT_DWELL
ZONE_DWELL: dict[str, tuple[float, float]] = {
    "entrance": (3, 15),
    "promo": (20, 120),
    "apparel": (60, 300),
    "fitting_room": (120, 480),
    "checkout": (5, 20),
    "back_aisle": (20, 90),
}
DEFAULT_DWELL = (15.0, 120.0)
# how likely a shopper visits a zone (relative weights)
ZONE_APPEAL: dict[str, float] = {
    "promo": 3.0,
    "apparel": 2.0,
    "aisle_1": 1.5,
    "aisle_2": 1.2,
    "aisle_3": 1.5,
    "aisle_4": 1.2,
    "back_aisle": 1.0,
    "fitting_room": 0.0,
    "entrance": 0.0,
    "checkout": 0.0,
}


@dataclass
class Person:
    id: int
    role: str
    """shopper | passerby | staff"""
    keys: list[tuple[float, float, float]] = field(default_factory=list)
    """(t_s, x, y) key points, t in seconds after the scenario start"""

    def add(self, t: float, x: float, y: float) -> None:
        self.keys.append((t, x, y))

    @property
    def t_start(self) -> float:
        return self.keys[0][0]

    @property
    def t_end(self) -> float:
        return self.keys[-1][0]

    def position(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """(len(t), 2) positions at times ``t`` (clamped to the timeline)."""
        k = np.asarray(self.keys)
        return np.column_stack([np.interp(t, k[:, 0], k[:, 1]), np.interp(t, k[:, 0], k[:, 2])])


class Router:
    """Shortest walking paths on the walkable grid, cached per destination cell."""

    def __init__(self, grid: WalkableGrid) -> None:
        self.grid = grid
        self._pred: dict[int, NDArray[np.int32]] = {}

    def path(self, src: tuple[float, float], dst: tuple[float, float]) -> list[tuple[float, float]]:
        g = self.grid
        s = g.cell_of(*src)
        if not g.walkable[s]:
            s = g.nearest_walkable(*src)
        d = g.cell_of(*dst)
        if not g.walkable[d]:
            d = g.nearest_walkable(*dst)
        pred = self._pred.get(d)
        if pred is None:
            _, pred = dijkstra(g.graph, indices=d, return_predecessors=True)
            self._pred[d] = pred
        pts = [src]
        c = s
        for _ in range(g.nx * g.ny):
            if c == d or c < 0:
                break
            c = int(pred[c])
            if c >= 0:
                pts.append((float(g.centers[c, 0]), float(g.centers[c, 1])))
        pts.append(dst)
        return pts


class Crowd:
    """Builds everyone's timeline for one scenario."""

    def __init__(
        self, plan: FloorPlan, grid: WalkableGrid, sc: Scenario, rng: np.random.Generator
    ) -> None:
        self.plan, self.grid, self.sc, self.rng = plan, grid, sc, rng
        self.router = Router(grid)
        self.people: list[Person] = []
        self.way_in, self.way_out = _keep_right_lanes(plan)
        self.zone_spots = self._zone_spots()
        sx0, sy0, sx1, sy1 = plan.street_polygon.bounds if plan.street_polygon else (0, 0, 0, 0)
        self.street = (sx0 + 0.3, sy0 + 0.3, sx1 - 0.3, sy1 - 0.3)
        # people walk along the street's long side, past the store's frontage
        self.street_along_x = sx1 - sx0 >= sy1 - sy0
        self.window_line = _window_line(plan, (sx0, sy0, sx1, sy1), self.street_along_x)

    def _zone_spots(self) -> dict[str, NDArray[np.float64]]:
        import shapely

        spots = {}
        cells = np.flatnonzero(self.grid.walkable & self.grid.inside)
        for z in self.plan.zones:
            inside = shapely.contains(z.polygon, shapely.points(self.grid.centers[cells]))
            cand = self.grid.centers[cells[inside]]
            if len(cand):
                take = self.rng.choice(len(cand), size=min(48, len(cand)), replace=False)
                spots[z.id] = cand[take]
        table = self.sc.promo_table
        if table is not None:  # the table moved: its shoppers stand around it (drawn from
            # a stream of its own, so every other draw of the crowd stays the same)
            d = np.hypot(*(self.grid.centers[cells] - np.asarray(table)).T)
            cand = self.grid.centers[cells[d <= PROMO_RADIUS_M]]
            if len(cand):
                take = np.random.default_rng(0).choice(len(cand), min(48, len(cand)), False)
                spots["promo"] = cand[take]
        return spots

    def _new(self, role: str) -> Person:
        p = Person(len(self.people), role)
        self.people.append(p)
        return p

    def _walk(self, p: Person, dst: tuple[float, float], speed: float) -> None:
        t, x, y = p.keys[-1]
        pts = self.router.path((x, y), dst)
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            seg = float(np.hypot(x1 - x0, y1 - y0))
            if seg > 1e-9:
                t += seg / speed
                p.add(t, x1, y1)

    def _dwell(self, p: Person, seconds: float, radius: float = 0.4) -> None:
        t, x, y = p.keys[-1]
        end = t + seconds
        while t < end:
            step = min(float(self.rng.uniform(4, 12)), end - t)
            t += step
            jx, jy = self.rng.normal(0, radius, 2)
            cand = (x + jx, y + jy)
            c = self.grid.cell_of(*cand)
            if (
                self.grid.covers(*cand)
                and self.grid.walkable[c]
                and self.grid.inside[c] == self.grid.inside[self.grid.cell_of(x, y)]
            ):
                p.add(t, *cand)
            else:
                p.add(t, x, y)
        t, x1, y1 = p.keys[-1]
        if (x1, y1) != (x, y):
            p.add(t + 0.5, x, y)

    def _street_end(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.street
        if self.street_along_x:
            return (x0 if self.rng.random() < 0.5 else x1, float(self.rng.uniform(y0, y1)))
        end = y0 if self.rng.random() < 0.5 else y1
        return (float(self.rng.uniform(x0, x1)), end)

    # ------------------------------------------------------------------ roles

    def passerby(self, t: float) -> None:
        p = self._new("passerby")
        x0, y0, x1, y1 = self.street
        if self.street_along_x:
            y = float(self.rng.uniform(y0, y1))
            start, end = ((x0, y), (x1, y)) if self.rng.random() < 0.5 else ((x1, y), (x0, y))
        else:
            x = float(self.rng.uniform(x0, x1))
            start, end = ((x, y0), (x, y1)) if self.rng.random() < 0.5 else ((x, y1), (x, y0))
        speed = float(self.rng.uniform(1.1, 1.6))
        p.add(t, *start)
        if self.rng.random() < 0.12:  # window shopper: stops at the glass
            (a0, a1), at = self.window_line
            along = float(self.rng.uniform(a0, a1))
            stop = (along, at) if self.street_along_x else (at, along)
            self._walk(p, stop, speed)
            self._dwell(p, float(self.rng.uniform(8, 40)), 0.2)
        self._walk(p, end, speed)

    def shopper(self, t: float) -> tuple[Person, bool]:
        rng = self.rng
        p = self._new("shopper")
        speed = float(rng.uniform(0.8, 1.3))
        p.add(t, *self._street_end())
        self._walk(p, self.way_in[0], 1.2)
        self._walk(p, self.way_in[1], speed)
        names = [z for z in self.zone_spots if ZONE_APPEAL.get(z, 1.0) > 0]
        w = np.array([ZONE_APPEAL.get(z, 1.0) for z in names])
        n = int(rng.integers(1, 5))
        visit = list(rng.choice(names, size=min(n, len(names)), replace=False, p=w / w.sum()))
        if "apparel" in visit and rng.random() < 0.4:
            visit.insert(visit.index("apparel") + 1, "fitting_room")
        for zone in visit:
            spot = self.zone_spots[zone][rng.integers(len(self.zone_spots[zone]))]
            self._walk(p, (float(spot[0]), float(spot[1])), speed)
            lo, hi = ZONE_DWELL.get(zone, DEFAULT_DWELL)
            self._dwell(p, float(rng.uniform(lo, hi)))
        buys = rng.random() < self.sc.buy_share
        if buys:
            self._walk(p, self.sc.checkout.queue_head, speed)
        return p, buys

    def leave(self, p: Person) -> None:
        speed = 1.1
        self._walk(p, self.way_out[0], speed)
        self._walk(p, self.way_out[1], speed)
        self._walk(p, self._street_end(), 1.3)

    def staff(self, idx: int, duration: float) -> None:
        p = self._new("staff")
        rng = self.rng
        if idx < len(self.sc.checkout.cashiers):
            x, y = self.sc.checkout.cashiers[idx]
            p.add(0.0, x, y)
            self._dwell(p, duration, 0.3)
            return
        spots = [s for z, s in self.zone_spots.items() if z != "fitting_room"]
        first = spots[0][0]
        p.add(0.0, float(first[0]), float(first[1]))
        while p.t_end < duration:
            s = spots[rng.integers(len(spots))]
            spot = s[rng.integers(len(s))]
            self._walk(p, (float(spot[0]), float(spot[1])), 1.0)
            self._dwell(p, float(rng.uniform(60, 600)), 0.5)

    def checkout(self, buyers: list[Person]) -> None:
        """The scenario's tills, FIFO: buyers wait in the queue line, then are served."""
        rng = self.rng
        co = self.sc.checkout
        order = sorted(buyers, key=lambda b: b.t_end)
        arrive = np.array([b.t_end for b in order])
        free = [0.0] * len(co.tills)
        starts = np.zeros(len(order))
        for i, b in enumerate(order):
            k = int(np.argmin(free))
            start = max(arrive[i], free[k])
            starts[i] = start
            service = float(rng.uniform(40, 120))
            # wait in line: move up one slot each time someone ahead is called
            t = arrive[i]
            ahead_calls = np.sort(starts[:i][(starts[:i] > arrive[i]) & (starts[:i] < start)])
            slot = min(len(ahead_calls), co.queue_slots - 1)
            b.add(t + 0.5, *co.slot(slot))
            for tc in ahead_calls:
                slot = max(slot - 1, 0)
                b.add(float(tc), *b.keys[-1][1:])
                b.add(float(tc) + 1.0, *co.slot(slot))
            b.add(start, *b.keys[-1][1:])
            b.add(start + 3.0, *co.tills[k])
            self._dwell(b, service, 0.15)
            free[k] = b.t_end


Waypoints = tuple[tuple[float, float], tuple[float, float]]


def _window_line(
    plan: FloorPlan, street: tuple[float, float, float, float], along_x: bool
) -> tuple[tuple[float, float], float]:
    """Where window shoppers stop: ((from, to) along the street, 2 m in from the
    frontage's ends; the coordinate across it, 0.6 m out from the street's store side)."""
    sx0, sy0, sx1, sy1 = street
    ox0, oy0, ox1, oy1 = plan.outline_polygon.bounds
    cx, cy = plan.outline_polygon.centroid.x, plan.outline_polygon.centroid.y
    if along_x:
        at = sy1 - 0.6 if cy > (sy0 + sy1) / 2 else sy0 + 0.6
        return (max(ox0, sx0) + 2, min(ox1, sx1) - 2), at
    at = sx1 - 0.6 if cx > (sx0 + sx1) / 2 else sx0 + 0.6
    return (max(oy0, sy0) + 2, min(oy1, sy1) - 2), at


def _keep_right_lanes(plan: FloorPlan) -> tuple[Waypoints, Waypoints]:
    """(outside, inside) points to walk in through, and (inside, outside) to walk out
    through: people keep to their right, so with several doors side by side those
    coming in use the right-most one and those leaving the one on their right."""
    ways = [(np.array(d.center), np.array(d.inward(plan.outline_polygon))) for d in plan.doors]
    n_in = ways[0][1]
    right_in = np.array([n_in[1], -n_in[0]])  # right-hand side walking in
    c_in, n1 = max(ways, key=lambda w: float(w[0] @ right_in))
    c_out, n2 = max(ways, key=lambda w: float(w[0] @ -right_in))

    def pt(v: NDArray[np.float64]) -> tuple[float, float]:
        return (float(v[0]), float(v[1]))

    return (
        (pt(c_in - 0.8 * n1), pt(c_in + 0.8 * n1)),
        (pt(c_out + 0.8 * n2), pt(c_out - 0.8 * n2)),
    )


def arrivals(rate_peak_per_h: float, sc: Scenario, rng: np.random.Generator) -> list[float]:
    """Non-homogeneous Poisson arrival times (s) by thinning against the hourly profile."""
    out: list[float] = []
    t = 0.0
    lam = rate_peak_per_h / 3600.0
    while True:
        t += float(rng.exponential(1.0 / lam))
        if t >= sc.duration_s:
            return out
        if rng.random() < sc.intensity(t):
            out.append(t)


def populate(
    plan: FloorPlan, grid: WalkableGrid, sc: Scenario, rng: np.random.Generator
) -> list[Person]:
    """Everyone's timeline for the scenario window."""
    crowd = Crowd(plan, grid, sc, rng)
    for i in range(sc.staff):
        crowd.staff(i, sc.duration_s)
    for t in arrivals(sc.passersby_per_hour_peak, sc, rng):
        crowd.passerby(t)
    buyers, browsers = [], []
    # stop admitting shoppers 10 min before the window ends so most finish inside it
    for t in arrivals(sc.shoppers_per_hour_peak, sc, rng):
        if t > sc.duration_s - 600:
            break
        p, buys = crowd.shopper(t)
        (buyers if buys else browsers).append(p)
    crowd.checkout(buyers)
    for p in buyers + browsers:
        crowd.leave(p)
    return crowd.people
