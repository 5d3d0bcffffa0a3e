"""Floor plan: the store's geometry in metres, loaded from TOML and validated.

Every error names the field it is about, e.g.
``zones[2] 'promo'.points: polygon self-intersects``.

>>> plan = load_default()
>>> plan.store_id, len(plan.nodes), len(plan.zones) >= 8
('demo', 6, True)
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, Point, Polygon

from firmware_bridge.errors import ConfigError
from sensing.wire.topics import TopicError, check_id

Pt = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Wall:
    id: str
    a: Pt
    b: Pt
    attenuation_db: float
    """radio loss crossing this wall, dB"""


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    name: str
    points: tuple[Pt, ...]

    @property
    def polygon(self) -> Polygon:
        return Polygon(self.points)


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    x: float
    y: float
    z: float
    """mounting height, m"""
    wifi_channel: int


@dataclass(frozen=True, slots=True)
class Door:
    id: str
    a: Pt
    b: Pt
    node: str
    """node whose serial port reads this door's beam board"""
    beam_gap_m: float

    @property
    def center(self) -> Pt:
        return ((self.a[0] + self.b[0]) / 2, (self.a[1] + self.b[1]) / 2)

    def inward(self, outline: Polygon) -> Pt:
        """Unit normal of the door pointing into ``outline``: the way "in" is counted."""
        (ax, ay), (bx, by) = self.a, self.b
        n = math.hypot(bx - ax, by - ay) or 1.0
        nx, ny = (by - ay) / n, -(bx - ax) / n
        cx, cy = self.center
        if not outline.contains(Point(cx + 0.05 * nx, cy + 0.05 * ny)):
            nx, ny = -nx, -ny
        return nx, ny


@dataclass(frozen=True, slots=True)
class TileArray:
    id: str
    origin: Pt
    tile_m: float
    cols: int
    rows: int
    node: str

    def tile_rect(self, index: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of tile ``index`` (row-major)."""
        r, c = divmod(index, self.cols)
        x0 = self.origin[0] + c * self.tile_m
        y0 = self.origin[1] + r * self.tile_m
        return (x0, y0, x0 + self.tile_m, y0 + self.tile_m)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y0 = self.origin
        return (x0, y0, x0 + self.cols * self.tile_m, y0 + self.rows * self.tile_m)


@dataclass(frozen=True, slots=True)
class RadioDefaults:
    """The radio model the aggregator assumes before calibration."""

    p0_wifi_dbm: float = -42.0
    """RSSI at 1 m of a Wi-Fi probe from a typical phone, dBm"""
    p0_ble_dbm: float = -60.0
    """RSSI at 1 m of a BLE advertisement from a typical phone, dBm"""
    path_loss_exponent: float = 2.0
    shadowing_db: float = 6.0
    """standard deviation of log-normal shadowing, dB"""
    sensitivity_dbm: float = -92.0
    """weakest frame a node hears, dBm"""


@dataclass(frozen=True)
class FloorPlan:
    store_id: str
    name: str
    timezone: str
    outline: tuple[Pt, ...]
    street: tuple[Pt, ...] | None
    walls: tuple[Wall, ...]
    shelves: tuple[tuple[str, tuple[Pt, ...]], ...]
    zones: tuple[Zone, ...]
    nodes: tuple[Node, ...]
    doors: tuple[Door, ...]
    tiles: tuple[TileArray, ...]
    radio: RadioDefaults = field(default_factory=RadioDefaults)
    source: str = "<memory>"

    @property
    def outline_polygon(self) -> Polygon:
        return Polygon(self.outline)

    @property
    def street_polygon(self) -> Polygon | None:
        return Polygon(self.street) if self.street else None

    def shelf_polygons(self) -> list[Polygon]:
        return [Polygon(p) for _, p in self.shelves]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def motion_barriers(self) -> list[tuple[Pt, Pt]]:
        """Segments nobody walks through: outline edges minus door openings, and walls."""
        outline = LineString([*self.outline, self.outline[0]])
        for d in self.doors:
            outline = outline.difference(LineString([d.a, d.b]).buffer(1e-6))
        segs: list[tuple[Pt, Pt]] = []
        for geom in getattr(outline, "geoms", [outline]):
            coords = list(geom.coords)
            segs.extend(itertools.pairwise(coords))
        segs.extend((w.a, w.b) for w in self.walls)
        return segs

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) covering the store and its street."""
        geoms = [self.outline_polygon]
        if self.street:
            geoms.append(Polygon(self.street))
        return tuple(shapely.union_all(geoms).bounds)  # type: ignore[return-value]


def load_default() -> FloorPlan:
    """The bundled default store (``heatmap/spatial/data/default_store.toml``)."""
    text = resources.files("heatmap.spatial.data").joinpath("default_store.toml").read_text()
    return parse(tomllib.loads(text), source="default_store.toml")


def load(path: str | Path) -> FloorPlan:
    """Load and validate a floor plan TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: no such floor plan file") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    return parse(data, source=str(p))


# ---------------------------------------------------------------- parsing helpers


def _get(
    d: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    if key not in d:
        if default is ...:
            raise ConfigError(f"{where}.{key}: missing")
        return default
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key}: expected {name}, got {type(v).__name__}")
    return v


def _point(v: Any, where: str) -> Pt:
    if (
        not isinstance(v, list)
        or len(v) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in v)
    ):
        raise ConfigError(f"{where}: expected [x, y] in metres, got {v!r}")
    return (float(v[0]), float(v[1]))


def _points(v: Any, where: str, min_n: int) -> tuple[Pt, ...]:
    if not isinstance(v, list) or len(v) < min_n:
        raise ConfigError(f"{where}: expected a list of at least {min_n} [x, y] points")
    return tuple(_point(p, f"{where}[{i}]") for i, p in enumerate(v))


def _polygon(v: Any, where: str) -> tuple[Pt, ...]:
    pts = _points(v, where, 3)
    poly = Polygon(pts)
    if not poly.is_valid:
        raise ConfigError(f"{where}: polygon self-intersects ({shapely.is_valid_reason(poly)})")
    if poly.area <= 0:
        raise ConfigError(f"{where}: polygon has zero area")
    return pts


def _ident(d: dict[str, Any], where: str, seen: set[str]) -> str:
    ident = _get(d, "id", where, str)
    try:
        check_id(ident, "id")
    except TopicError as e:
        raise ConfigError(f"{where}.id: {e}") from None
    if ident in seen:
        raise ConfigError(f"{where}.id: duplicate id {ident!r}")
    seen.add(ident)
    return ident


def _table_list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ConfigError(f"{key}: expected an array of tables ([[{key}]])")
    return v


def parse(data: dict[str, Any], source: str = "<memory>") -> FloorPlan:
    """Build a FloorPlan from parsed TOML, validating geometry. Raises ConfigError."""
    store = _get(data, "store", "(root)", dict)
    store_id = _get(store, "id", "store", str)
    try:
        check_id(store_id, "store id")
    except TopicError as e:
        raise ConfigError(f"store.id: {e}") from None
    name = _get(store, "name", "store", str, store_id)
    tz = _get(store, "timezone", "store", str, "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except Exception as e:
        raise ConfigError(f"store.timezone: unknown time zone {tz!r}") from e

    outline_t = _get(data, "outline", "(root)", dict)
    outline = _polygon(outline_t.get("points"), "outline.points")
    opoly = Polygon(outline)
    inside = opoly.buffer(1e-6)

    street = None
    if "street" in data:
        street = _polygon(_get(data, "street", "(root)", dict).get("points"), "street.points")
        if Polygon(street).intersection(opoly).area > 1e-9:
            raise ConfigError("street.points: the street overlaps the store outline")

    r = data.get("radio", {})
    if not isinstance(r, dict):
        raise ConfigError("radio: expected a table")
    radio = RadioDefaults(
        **{
            k: _get(r, k, "radio", float, getattr(RadioDefaults(), k))
            for k in RadioDefaults.__dataclass_fields__
        }
    )
    if not 1.0 <= radio.path_loss_exponent <= 6.0:
        raise ConfigError("radio.path_loss_exponent: must be within 1.0..6.0")

    seen: set[str] = set()
    walls = []
    for i, w in enumerate(_table_list(data, "walls")):
        where = f"walls[{i}]"
        wid = _ident(w, where, seen)
        pts = _points(w.get("points"), f"{where} {wid!r}.points", 2)
        if len(pts) != 2:
            raise ConfigError(f"{where} {wid!r}.points: a wall is one segment [[x0,y0],[x1,y1]]")
        att = _get(w, "attenuation_db", f"{where} {wid!r}", float)
        if not 0 <= att <= 60:
            raise ConfigError(f"{where} {wid!r}.attenuation_db: must be within 0..60 dB")
        if not inside.contains(LineString(pts)):
            raise ConfigError(f"{where} {wid!r}.points: wall lies outside the store outline")
        walls.append(Wall(wid, pts[0], pts[1], att))

    shelves = []
    for i, s in enumerate(_table_list(data, "shelves")):
        where = f"shelves[{i}]"
        sid = _ident(s, where, seen)
        if "rect" in s:
            rect = s["rect"]
            if (
                not isinstance(rect, list)
                or len(rect) != 4
                or not all(isinstance(c, int | float) for c in rect)
                or rect[2] <= rect[0]
                or rect[3] <= rect[1]
            ):
                raise ConfigError(
                    f"{where} {sid!r}.rect: expected [x0, y0, x1, y1] with x1>x0, y1>y0"
                )
            x0, y0, x1, y1 = (float(c) for c in rect)
            pts = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        else:
            pts = _polygon(s.get("points"), f"{where} {sid!r}.points")
        if not inside.contains(Polygon(pts)):
            raise ConfigError(f"{where} {sid!r}: shelf lies outside the store outline")
        shelves.append((sid, pts))

    zones = []
    for i, z in enumerate(_table_list(data, "zones")):
        where = f"zones[{i}]"
        zid = _ident(z, where, seen)
        pts = _polygon(z.get("points"), f"{where} {zid!r}.points")
        zpoly = Polygon(pts)
        if not inside.contains(zpoly):
            raise ConfigError(f"{where} {zid!r}.points: zone extends outside the store outline")
        core = zpoly.buffer(-1e-3)
        for w in walls:
            if core.intersects(LineString([w.a, w.b])):
                raise ConfigError(f"{where} {zid!r}.points: zone overlaps wall {w.id!r}")
        for other in zones:
            if zpoly.intersection(other.polygon).area > 1e-6:
                raise ConfigError(f"{where} {zid!r}.points: zone overlaps zone {other.id!r}")
        zones.append(Zone(zid, _get(z, "name", where, str, zid), pts))

    nodes = []
    for i, n in enumerate(_table_list(data, "nodes")):
        where = f"nodes[{i}]"
        nid = _ident(n, where, seen)
        x, y = _get(n, "x", where, float), _get(n, "y", where, float)
        z = _get(n, "z", where, float, 3.0)
        if not opoly.contains(Point(x, y)):
            raise ConfigError(f"{where} {nid!r}: node at ({x}, {y}) is outside the store outline")
        if not 0.5 <= z <= 15:
            raise ConfigError(f"{where} {nid!r}.z: mounting height must be within 0.5..15 m")
        ch = _get(n, "wifi_channel", where, int, 6)
        if not (1 <= ch <= 14 or 32 <= ch <= 177):
            raise ConfigError(f"{where} {nid!r}.wifi_channel: {ch} is not a Wi-Fi channel")
        nodes.append(Node(nid, x, y, z, ch))
    if not nodes:
        raise ConfigError("nodes: a floor plan needs at least one [[nodes]] entry")
    node_ids = {n.id for n in nodes}

    doors = []
    boundary = opoly.exterior.buffer(1e-6)
    for i, d in enumerate(_table_list(data, "doors")):
        where = f"doors[{i}]"
        did = _ident(d, where, seen)
        pts = _points(d.get("points"), f"{where} {did!r}.points", 2)
        if len(pts) != 2 or not boundary.contains(LineString(pts)):
            raise ConfigError(f"{where} {did!r}.points: a door is one segment on the outline")
        for w in walls:
            if LineString([w.a, w.b]).intersection(LineString(pts)).length > 1e-6:
                raise ConfigError(f"{where} {did!r}.points: wall {w.id!r} runs through the door")
        node = _get(d, "node", where, str, nodes[0].id)
        if node not in node_ids:
            raise ConfigError(f"{where} {did!r}.node: no node {node!r}")
        doors.append(Door(did, pts[0], pts[1], node, _get(d, "beam_gap_m", where, float, 0.1)))

    tiles = []
    for i, t in enumerate(_table_list(data, "tiles")):
        where = f"tiles[{i}]"
        tid = _ident(t, where, seen)
        arr = TileArray(
            tid,
            _point(t.get("origin"), f"{where} {tid!r}.origin"),
            _get(t, "tile_m", where, float, 0.5),
            _get(t, "cols", where, int),
            _get(t, "rows", where, int),
            _get(t, "node", where, str, nodes[0].id),
        )
        if not 1 <= arr.cols * arr.rows <= 256:
            raise ConfigError(f"{where} {tid!r}: rows*cols must be within 1..256 tiles")
        if arr.node not in node_ids:
            raise ConfigError(f"{where} {tid!r}.node: no node {arr.node!r}")
        if not inside.contains(shapely.box(*arr.bounds)):
            raise ConfigError(f"{where} {tid!r}: tile array lies outside the store outline")
        tiles.append(arr)

    return FloorPlan(
        store_id,
        name,
        tz,
        outline,
        street,
        tuple(walls),
        tuple(shelves),
        tuple(zones),
        tuple(nodes),
        tuple(doors),
        tuple(tiles),
        radio,
        source,
    )
