"""The rooms of a floor plan and which of them shoppers reach: where ceiling nodes go.

Walls and the outline split the store into rooms: a room is a face of the plan's
outline and walls, so a wall with a gap (a doorway: the fitting rooms' entrance)
does not close one off, and a wall from outline to outline (a stock room's, the
staff room's) does. A wall that stops short of another wall or the outline by less
than :data:`CLOSE_GAP_M` is taken to meet it (two wall ends facing each other: twice
that): nobody walks through a 30 cm gap, and a plan drawn by hand is seldom exact.

A room is the shoppers' when a door of the plan opens into it (the doors are the
store's entrances, on its outline) or a zone of the plan lies in it (reports count
visitors there). Any other room is behind walls that only staff pass: the planner
puts no node there and scores nothing there. A plan with neither doors nor zones is
all the shoppers'.

>>> from heatmap.spatial.floorplan import load_default
>>> area = ShopperArea.of(load_default())
>>> len(area.rooms), len(area.staff_rooms), round(area.reached.area)
(1, 0, 600)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.node_placement import Layout

F = NDArray[np.float64]
CLOSE_GAP_M = 0.3
"""each wall is extended by this much at both ends when the rooms are cut: a gap to
another wall narrower than this (0.6 m between two facing ends) is no doorway"""
MIN_ROOM_M2 = 0.25
"""faces smaller than this (slivers between walls drawn nearly on top of each other)
are not rooms"""


@dataclass(frozen=True)
class ShopperArea:
    """The plan's rooms, split into those shoppers reach and the staff's."""

    rooms: tuple[Polygon, ...]
    """every room, largest first"""
    shopper_rooms: tuple[Polygon, ...]
    """rooms a door opens into or a zone lies in"""
    staff_rooms: tuple[Polygon, ...]
    """the others: closed off by walls, no door, no zone"""

    @classmethod
    def of(cls, plan: FloorPlan) -> ShopperArea:
        """The rooms of ``plan`` and which of them shoppers reach."""
        rooms = _rooms(plan)
        if not plan.doors and not plan.zones:
            return cls(rooms, rooms, ())
        shoppers, staff = [], []
        for room in rooms:
            near = room.buffer(CLOSE_GAP_M)
            door = any(near.intersects(LineString([d.a, d.b]).centroid) for d in plan.doors)
            zone = any(room.intersection(z.polygon).area > MIN_ROOM_M2 for z in plan.zones)
            (shoppers if door or zone else staff).append(room)
        return cls(rooms, tuple(shoppers), tuple(staff))

    @property
    def reached(self) -> BaseGeometry:
        """The union of the shoppers' rooms."""
        return shapely.union_all(self.shopper_rooms)

    def contains(self, xy: F) -> NDArray[np.bool_]:
        """(P,) whether each point (P, 2), m, is in a room shoppers reach (its edge too)."""
        return np.asarray(shapely.covers(self.reached, shapely.points(xy)), dtype=bool)


def restrict(lay: Layout, area: ShopperArea) -> Layout:
    """``lay`` with its candidate spots and scored cells in the shoppers' rooms only.

    A candidate spot on a room's edge (under a wall) is left out too: a node goes on
    the ceiling of a room, not on its wall."""
    inner = area.reached.buffer(-0.25)
    keep = np.asarray(shapely.contains(inner, shapely.points(lay.candidates)), dtype=bool)
    cells = area.contains(lay.grid.centers[lay.cells])
    return dataclasses.replace(
        lay,
        cells=lay.cells[cells],
        fim=lay.fim[cells],
        candidates=lay.candidates[keep],
        cand_fim=lay.cand_fim[keep][:, cells],
    )


def _rooms(plan: FloorPlan) -> tuple[Polygon, ...]:
    """The faces of the outline and the walls, each wall extended at both ends by
    :data:`CLOSE_GAP_M` (the extensions past the outline are dangles, in no face)."""
    outline = plan.outline_polygon
    lines = [outline.exterior]
    for w in plan.walls:
        a, b = np.asarray(w.a, float), np.asarray(w.b, float)
        length = float(np.hypot(*(b - a)))
        if length == 0:
            continue
        u = (b - a) / length
        lines.append(LineString([a - u * CLOSE_GAP_M, b + u * CLOSE_GAP_M]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(lines))))
    rooms = []
    for room in faces:  # the outline's ring is one of the lines: every face is inside it
        if room.area >= MIN_ROOM_M2:
            rooms.append(room)
    rooms.sort(key=lambda r: -r.area)
    return tuple(rooms) or (outline,)
