"""Floor plan: the store's geometry in metres, loaded from TOML and validated.

The file's schema is :class:`heatmap.spatial.floorplan_model.FloorPlanFile`
(reference: ``docs/floorplan.md``); :func:`parse` validates a document against it
and builds the frozen dataclasses below, which the rest of footfall uses. Every
error names the field it is about, e.g.
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
from heatmap.spatial.floorplan_model import FloorPlanFile
from sensing.runtime.typed_config import validate

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
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: no such floor plan file") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{p}: is a directory, not a floor plan file") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text file (not UTF-8)") from e
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the floor plan: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    return parse(data, source=str(p))


def parse(data: dict[str, Any], source: str = "<memory>") -> FloorPlan:
    """Build a FloorPlan from parsed TOML, validating geometry. Raises ConfigError.

    The document is validated as :class:`~heatmap.spatial.floorplan_model.FloorPlanFile`
    (unknown keys, types, ranges, geometry); the message names the key's path.
    """
    f = validate(data, FloorPlanFile, "")
    first_node = f.nodes[0].id
    return FloorPlan(
        store_id=f.store.id,
        name=f.store.name if f.store.name is not None else f.store.id,
        timezone=f.store.timezone,
        outline=f.outline.points,
        street=f.street.points if f.street is not None else None,
        walls=tuple(Wall(w.id, w.points[0], w.points[1], w.attenuation_db) for w in f.walls),
        shelves=tuple((s.id, s.corners()) for s in f.shelves),
        zones=tuple(Zone(z.id, z.name if z.name is not None else z.id, z.points) for z in f.zones),
        nodes=tuple(Node(n.id, n.x, n.y, n.z, n.wifi_channel) for n in f.nodes),
        doors=tuple(
            Door(d.id, d.points[0], d.points[1], d.node or first_node, d.beam_gap_m)
            for d in f.doors
        ),
        tiles=tuple(
            TileArray(t.id, t.origin, t.tile_m, t.cols, t.rows, t.node or first_node)
            for t in f.tiles
        ),
        radio=RadioDefaults(**f.radio.model_dump()),
        source=source,
    )
