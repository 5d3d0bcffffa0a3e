"""The floor plan's geometric rules, checked once the file's types are right.

:func:`check` runs as the last validator of
:class:`~heatmap.spatial.floorplan_model.FloorPlanFile`; its ``ValueError``
names the element by index and id, e.g.
``zones[2] 'promo'.points: polygon self-intersects (Self-intersection[15 4])``
or ``zones[4].id: duplicate id 'counter', also used by shelves[1]``.

The rules: ids unique across the plan; outline, street, zones and polygon
shelves simple polygons of non-zero area; the street outside the outline;
walls, shelves, zones and tile arrays inside it; zones crossing no wall and
overlapping no other zone; nodes inside it at a sane height on a Wi-Fi channel;
doors segments of the outline that no wall runs through; doors and tile arrays
read by a node of the plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import shapely
from shapely.errors import GEOSException
from shapely.geometry import LineString, Point, Polygon

if TYPE_CHECKING:
    from heatmap.spatial.floorplan_model import FloorPlanFile

Pts = tuple[tuple[float, float], ...]

ATTENUATION_DB = (0.0, 60.0)
"""range of a wall's attenuation, dB"""
MOUNT_HEIGHT_M = (0.5, 15.0)
"""range of a node's mounting height, m"""
WIFI_CHANNELS = ((1, 14), (32, 177))
"""2.4 GHz and 5 GHz Wi-Fi channel numbers"""
MAX_TILES = 256
"""tiles one floor-tile board reads (rows × cols)"""
MAX_EXTENT_M = 2_000.0
"""widest a floor plan (outline and street together) may be along x or y, m: a large
mall; a plan beyond is a unit or typing mistake whose grids would not fit in memory"""
MAX_COORD_M = 100_000.0
"""largest coordinate anywhere in a plan, m (the origin is the plan's own)"""
KINDS = ("walls", "shelves", "zones", "nodes", "doors", "tiles")
"""the arrays of tables whose ids share one namespace, in the order they are checked"""


def check(f: FloorPlanFile) -> None:
    """Raise ``ValueError`` naming the first element of ``f`` that breaks a rule."""
    try:
        _check(f)
    except GEOSException as e:  # a geometry GEOS cannot work with (extreme coordinates)
        raise ValueError(f"the geometry cannot be checked: {e}") from None


def _check(f: FloorPlanFile) -> None:
    _unique_ids(f)
    _extent(f)
    outline = polygon(f.outline.points, "outline.points")
    inside = outline.buffer(1e-6)
    if f.street is not None:
        street = polygon(f.street.points, "street.points")
        if street.intersection(outline).area > 1e-9:
            raise ValueError("street.points: the street overlaps the store outline")
    for i, w in enumerate(f.walls):
        where = f"walls[{i}] {w.id!r}"
        lo, hi = ATTENUATION_DB
        if not lo <= w.attenuation_db <= hi:
            raise ValueError(f"{where}.attenuation_db: must be within {lo:g}..{hi:g} dB")
        if not inside.contains(LineString(w.points)):
            raise ValueError(f"{where}.points: wall lies outside the store outline")
    _shelves(f, inside)
    _zones(f, inside)
    _nodes(f, outline)
    _doors(f, outline)
    _tiles(f, inside)


def _extent(f: FloorPlanFile) -> None:
    """The outline and street within :data:`MAX_EXTENT_M` along each axis, and their
    corners within :data:`MAX_COORD_M` of the origin (everything else must lie inside
    them, which the other rules check)."""
    for where, pts in (("outline", f.outline.points), ("street", f.street and f.street.points)):
        for x, y in pts or ():
            if abs(x) > MAX_COORD_M or abs(y) > MAX_COORD_M:
                raise ValueError(
                    f"{where}.points: ({x:g}, {y:g}) is more than {MAX_COORD_M:g} m from the "
                    "origin (coordinates are metres)"
                )
    pts = list(f.outline.points) + list(f.street.points if f.street else ())
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    if max(w, h) > MAX_EXTENT_M:
        raise ValueError(
            f"outline.points: the plan is {w:g} m × {h:g} m, more than {MAX_EXTENT_M:g} m across "
            "(coordinates are metres)"
        )


def polygon(pts: Pts, where: str) -> Polygon:
    """``pts`` as a polygon; a self-intersecting or flat one is an error at ``where``."""
    poly = Polygon(pts)
    if not poly.is_valid:
        raise ValueError(f"{where}: polygon self-intersects ({shapely.is_valid_reason(poly)})")
    if poly.area <= 0:
        raise ValueError(f"{where}: polygon has zero area")
    return poly


def _unique_ids(f: FloorPlanFile) -> None:
    first: dict[str, str] = {}
    for kind in KINDS:
        for i, item in enumerate(getattr(f, kind)):
            if item.id in first:
                raise ValueError(
                    f"{kind}[{i}].id: duplicate id {item.id!r}, also used by {first[item.id]}"
                )
            first[item.id] = f"{kind}[{i}]"


def _shelves(f: FloorPlanFile, inside: Polygon) -> None:
    for i, s in enumerate(f.shelves):
        where = f"shelves[{i}] {s.id!r}"
        if s.rect is not None and s.points is not None:
            raise ValueError(f"{where}: give rect or points, not both")
        if s.rect is not None:
            x0, y0, x1, y1 = s.rect
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"{where}.rect: expected [x0, y0, x1, y1] with x1>x0, y1>y0")
        elif s.points is not None:
            polygon(s.points, f"{where}.points")
        else:
            raise ValueError(f"{where}: give rect = [x0, y0, x1, y1] or points = [[x, y], …]")
        if not inside.contains(Polygon(s.corners())):
            raise ValueError(f"{where}: shelf lies outside the store outline")


def _zones(f: FloorPlanFile, inside: Polygon) -> None:
    walls = [(w.id, LineString(w.points)) for w in f.walls]
    done: list[tuple[str, Polygon]] = []
    for i, z in enumerate(f.zones):
        where = f"zones[{i}] {z.id!r}.points"
        zpoly = polygon(z.points, where)
        if not inside.contains(zpoly):
            raise ValueError(f"{where}: zone extends outside the store outline")
        core = zpoly.buffer(-1e-3)
        for wid, wall in walls:
            if core.intersects(wall):
                raise ValueError(f"{where}: zone overlaps wall {wid!r}")
        for oid, other in done:
            if zpoly.intersection(other).area > 1e-6:
                raise ValueError(f"{where}: zone overlaps zone {oid!r}")
        done.append((z.id, zpoly))


def _nodes(f: FloorPlanFile, outline: Polygon) -> None:
    if not f.nodes:
        raise ValueError("nodes: a floor plan needs at least one [[nodes]] entry")
    lo, hi = MOUNT_HEIGHT_M
    for i, n in enumerate(f.nodes):
        where = f"nodes[{i}] {n.id!r}"
        if not outline.contains(Point(n.x, n.y)):
            raise ValueError(f"{where}: node at ({n.x}, {n.y}) is outside the store outline")
        if not lo <= n.z <= hi:
            raise ValueError(f"{where}.z: mounting height must be within {lo:g}..{hi:g} m")
        if not any(a <= n.wifi_channel <= b for a, b in WIFI_CHANNELS):
            raise ValueError(f"{where}.wifi_channel: {n.wifi_channel} is not a Wi-Fi channel")


def _doors(f: FloorPlanFile, outline: Polygon) -> None:
    boundary = outline.exterior.buffer(1e-6)
    nodes = {n.id for n in f.nodes}
    for i, d in enumerate(f.doors):
        where = f"doors[{i}] {d.id!r}"
        seg = LineString(d.points)
        if not boundary.contains(seg):
            raise ValueError(f"{where}.points: a door is one segment on the outline")
        for w in f.walls:
            if LineString(w.points).intersection(seg).length > 1e-6:
                raise ValueError(f"{where}.points: wall {w.id!r} runs through the door")
        if d.node is not None and d.node not in nodes:
            raise ValueError(f"{where}.node: no node {d.node!r}")


def _tiles(f: FloorPlanFile, inside: Polygon) -> None:
    nodes = {n.id for n in f.nodes}
    for i, t in enumerate(f.tiles):
        where = f"tiles[{i}] {t.id!r}"
        if not 1 <= t.cols * t.rows <= MAX_TILES:
            raise ValueError(f"{where}: rows*cols must be within 1..{MAX_TILES} tiles")
        if t.node is not None and t.node not in nodes:
            raise ValueError(f"{where}.node: no node {t.node!r}")
        x0, y0 = t.origin
        box = shapely.box(x0, y0, x0 + t.cols * t.tile_m, y0 + t.rows * t.tile_m)
        if not inside.contains(box):
            raise ValueError(f"{where}: tile array lies outside the store outline")
