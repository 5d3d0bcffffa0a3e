"""The floor plan file's schema: what a floor plan TOML may hold, typed and documented.

:class:`FloorPlanFile` mirrors the TOML table by table; its field descriptions
(units, defaults, ranges) are the reference in ``docs/floorplan.md`` and the
JSON Schema in ``docs/schemas/floorplan.schema.json`` (``footfall schema
floorplan``). Unknown keys are errors naming the key's path and the nearest
valid name; the geometric checks (:mod:`heatmap.spatial.floorplan_checks`)
name the element by index and id::

    doors[0].beam_gap: unknown key (did you mean 'beam_gap_m'?)
    zones[2] 'promo'.points: polygon self-intersects (Self-intersection[15 4])

:func:`heatmap.spatial.floorplan.parse` validates a document against it and
builds the runtime :class:`~heatmap.spatial.floorplan.FloorPlan`.
Units: metres for coordinates and sizes, dB and dBm for radio levels.

>>> from sensing.runtime.typed_config import validate
>>> doc = {"store": {"id": "s"}, "outline": {"points": [[0, 0], [4, 0], [4, 3]]},
...        "nodes": [{"id": "n1", "x": 3, "y": 1, "z": "high"}]}
>>> validate(doc, FloorPlanFile, "plan.toml")
Traceback (most recent call last):
...
firmware_bridge.errors.ConfigError: plan.toml: nodes[0].z: must be a number, not str 'high'
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, field_validator, model_validator

from heatmap.spatial.floorplan_checks import ATTENUATION_DB, MAX_TILES, MOUNT_HEIGHT_M, check
from heatmap.spatial.floorplan_doc import EXAMPLE, INTRO
from sensing.runtime.typed_config import UNIT, StrictModel
from sensing.wire.topics import TopicError, check_id

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""an id is one MQTT topic level (:func:`sensing.wire.topics.check_id`)"""


# ---------------------------------------------------------------- value types


def _shown(v: Any) -> str:
    """``str 'ten'``: a wrong value's type and value, short."""
    text = repr(v)
    return f"{type(v).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _is_number(v: Any) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond any float
        return False


def _number(v: Any) -> float:
    if not _is_number(v):
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        raise ValueError(f"must be {'a finite' if numeric else 'a'} number, not {_shown(v)}")
    return float(v)


def _integer(v: Any) -> int:
    if type(v) is not int:
        raise ValueError(f"must be an integer, not {_shown(v)}")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {_shown(v)}")
    return v


def _ident(v: Any) -> str:
    try:
        return check_id(_text(v), "id")
    except TopicError as e:
        raise ValueError(str(e)) from None


def _within(lo: float, hi: float) -> Any:
    """A number within ``lo..hi`` (the schema says the range too)."""

    def check(v: Any) -> float:
        x = _number(v)
        if not lo <= x <= hi:
            raise ValueError(f"must be within {lo:g}..{hi:g}, not {x:g}")
        return x

    return Annotated[float, Field(ge=lo, le=hi), BeforeValidator(check)]


def _positive(v: Any) -> float:
    x = _number(v)
    if x <= 0:
        raise ValueError(f"must be more than 0, not {x:g}")
    return x


def _at_least_one(v: Any) -> int:
    n = _integer(v)
    if n < 1:
        raise ValueError(f"must be at least 1, not {n}")
    return n


def _point(v: Any) -> tuple[float, float]:
    if isinstance(v, list | tuple) and len(v) == 2 and all(_is_number(c) for c in v):
        return (float(v[0]), float(v[1]))
    raise ValueError(f"expected [x, y] in metres, got {_shown(v)}")


def _points(at_least: int) -> Any:
    def check(v: Any) -> Any:
        if not isinstance(v, list | tuple) or len(v) < at_least:
            raise ValueError(f"expected a list of at least {at_least} [x, y] points")
        return v

    return BeforeValidator(check)


def _segment(v: Any) -> Any:
    if not isinstance(v, list | tuple) or len(v) != 2:
        raise ValueError("expected one segment [[x0, y0], [x1, y1]] in metres")
    return v


def _rect(v: Any) -> tuple[float, ...]:
    if isinstance(v, list | tuple) and len(v) == 4 and all(_is_number(c) for c in v):
        return tuple(float(c) for c in v)
    raise ValueError(f"expected [x0, y0, x1, y1] in metres, got {_shown(v)}")


Num = Annotated[float, BeforeValidator(_number)]
"""a finite number (an integer is read as a float; not a string, not a boolean)"""
Positive = Annotated[float, Field(gt=0), BeforeValidator(_positive)]
Count = Annotated[int, Field(ge=1), BeforeValidator(_at_least_one)]
Text = Annotated[str, BeforeValidator(_text)]
Ident = Annotated[str, Field(pattern=ID_PATTERN), BeforeValidator(_ident)]
"""an id: 1 to 64 of A-Z a-z 0-9 _ - (one MQTT topic level)"""
Point = Annotated[tuple[float, float], BeforeValidator(_point)]
"""[x, y] in metres"""
Ring = Annotated[tuple[Point, ...], Field(min_length=3), _points(3)]
"""a polygon's corners, in order, not closed (the last point is not the first again)"""
Segment = Annotated[tuple[Point, Point], BeforeValidator(_segment)]
Rect = Annotated[tuple[float, float, float, float], BeforeValidator(_rect)]

M = {UNIT: "m"}
DB = {UNIT: "dB"}
DBM = {UNIT: "dBm"}
ID_DOC = "unique in the plan; 1 to 64 of A-Z a-z 0-9 _ -"


# ---------------------------------------------------------------- tables


class StoreSpec(StrictModel):
    """Who the store is."""

    id: Ident = Field(description="store id, used in MQTT topics: 1 to 64 of A-Z a-z 0-9 _ -")
    name: Text | None = Field(None, description="display name in reports (default: the id)")
    timezone: Text = Field(
        "UTC",
        description="IANA time zone of the store, e.g. Europe/Amsterdam; reports use its hours",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except Exception:
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz


class RadioSpec(StrictModel):
    """The radio model the aggregator assumes before calibration (``footfall calibrate``
    replaces it): rssi = p0 − 10·n·log10(d / 1 m) − the walls crossed."""

    p0_wifi_dbm: Num = Field(
        -42.0,
        description="RSSI at 1 m of a Wi-Fi probe from a typical phone",
        json_schema_extra=DBM,
    )
    p0_ble_dbm: Num = Field(
        -60.0,
        description="RSSI at 1 m of a BLE advertisement from a typical phone",
        json_schema_extra=DBM,
    )
    path_loss_exponent: _within(1.0, 6.0) = Field(  # type: ignore[valid-type]
        2.0, description="n: 2 in free space, 2.5–4 in a furnished store"
    )
    shadowing_db: _within(0.0, 40.0) = Field(  # type: ignore[valid-type]
        6.0, description="standard deviation of log-normal shadowing", json_schema_extra=DB
    )
    sensitivity_dbm: Num = Field(
        -92.0, description="weakest frame a node hears", json_schema_extra=DBM
    )


class OutlineSpec(StrictModel):
    """The store's inside outline: a simple polygon. Origin and axes are yours to
    choose (e.g. the south-west inside corner, x east, y north); everything else is
    placed in the same frame."""

    points: Ring = Field(
        description="corners [[x, y], …] in order, at least 3, not closed", json_schema_extra=M
    )


class StreetSpec(StrictModel):
    """Where passersby walk outside the storefront (optional): a polygon that must not
    overlap the outline. Phones heard there count as passersby, not visitors."""

    points: Ring = Field(
        description="corners [[x, y], …] in order, at least 3, not closed", json_schema_extra=M
    )


class WallSpec(StrictModel):
    """A radio wall: one straight segment inside or on the outline. Walls and outline
    edges also block walking (doors are the openings)."""

    id: Ident = Field(description=f"wall id, {ID_DOC}")
    points: Segment = Field(description="its two ends [[x0, y0], [x1, y1]]", json_schema_extra=M)
    attenuation_db: Num = Field(
        description="radio loss crossing the wall: glass ≈ 4, plasterboard ≈ 5, brick ≈ 12",
        json_schema_extra={UNIT: "dB", "minimum": ATTENUATION_DB[0], "maximum": ATTENUATION_DB[1]},
    )


class ShelfSpec(StrictModel):
    """An obstacle people walk around (shelving, a table, a counter): give either
    ``rect`` or ``points``."""

    id: Ident = Field(description=f"shelf id, {ID_DOC}")
    rect: Rect | None = Field(
        None,
        description="an axis-aligned rectangle [x0, y0, x1, y1] with x1 > x0, y1 > y0",
        json_schema_extra=M,
    )
    points: Ring | None = Field(
        None,
        description="or any polygon's corners [[x, y], …], at least 3, not closed",
        json_schema_extra=M,
    )

    def corners(self) -> tuple[tuple[float, float], ...]:
        """The shelf's polygon: ``rect``'s four corners (counter-clockwise) or ``points``."""
        if self.rect is None:
            return self.points or ()
        x0, y0, x1, y1 = self.rect
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


class ZoneSpec(StrictModel):
    """A named area reports count visitors and dwell in (entrance, checkout, an
    aisle): a polygon inside the outline, crossing no wall and overlapping no other
    zone."""

    id: Ident = Field(description=f"zone id, {ID_DOC}")
    name: Text | None = Field(None, description="display name in reports (default: the id)")
    points: Ring = Field(
        description="corners [[x, y], …] in order, at least 3, not closed", json_schema_extra=M
    )


class NodeSpec(StrictModel):
    """A ceiling node (BLE and Wi-Fi sensing; door and tile boards hang off its serial
    ports), at a point inside the outline."""

    id: Ident = Field(description=f"node id (as in its node.toml), {ID_DOC}")
    x: Num = Field(description="position, x", json_schema_extra=M)
    y: Num = Field(description="position, y", json_schema_extra=M)
    z: Num = Field(
        3.0,
        description="mounting height above the floor",
        json_schema_extra={UNIT: "m", "minimum": MOUNT_HEIGHT_M[0], "maximum": MOUNT_HEIGHT_M[1]},
    )
    wifi_channel: Annotated[int, BeforeValidator(_integer)] = Field(
        6, description="Wi-Fi channel its radio starts on: 1–14 (2.4 GHz) or 32–177 (5 GHz)"
    )


class DoorSpec(StrictModel):
    """A door (one beam pair): a segment on the outline, through no wall. "In" is
    across it into the outline."""

    id: Ident = Field(description=f"door id, {ID_DOC}")
    points: Segment = Field(
        description="its two ends [[x0, y0], [x1, y1]], on the outline", json_schema_extra=M
    )
    node: Ident | None = Field(
        None, description="the node whose serial port reads its beam board (default: the first)"
    )
    beam_gap_m: Positive = Field(
        0.1, description="distance between the two beams (A outside, B inside)", json_schema_extra=M
    )


class TileSpec(StrictModel):
    """An array of pressure tiles, ``rows`` × ``cols`` squares from ``origin`` along
    +x and +y, numbered row-major; inside the outline."""

    id: Ident = Field(description=f"tile array id, {ID_DOC}")
    origin: Point = Field(description="corner [x, y] of tile 0", json_schema_extra=M)
    tile_m: Positive = Field(0.5, description="side of one square tile", json_schema_extra=M)
    cols: Count = Field(description=f"tiles along x; rows × cols ≤ {MAX_TILES}")
    rows: Count = Field(description=f"tiles along y; rows × cols ≤ {MAX_TILES}")
    node: Ident | None = Field(
        None, description="the node whose serial port reads its board (default: the first)"
    )


class DrawingSpec(StrictModel):
    """The store's own drawing (``[drawing]``): drawn under every planner picture."""

    file: Text = Field(
        description="a PNG or SVG file, relative to the floor plan's folder (or absolute)"
    )
    scale_m_per_px: Positive = Field(
        description="metres per pixel of the drawing (an SVG: per user unit)",
        json_schema_extra=M,
    )
    origin: Point = Field(
        (0.0, 0.0),
        description="where the drawing's bottom-left corner lies in the plan's [x, y]",
        json_schema_extra=M,
    )

    @field_validator("file")
    @classmethod
    def _kind(cls, v: str) -> str:
        if not v.lower().endswith((".png", ".svg")):
            raise ValueError(f"must be a .png or .svg file, not {v!r}")
        return v


class FloorPlanFile(StrictModel):
    """A store's floor plan: its outline, walls, shelves, zones, nodes, doors and tiles."""

    store: StoreSpec = Field(description="who the store is")
    outline: OutlineSpec = Field(description="the store's inside outline")
    street: StreetSpec | None = Field(None, description="where passersby walk (optional)")
    radio: RadioSpec = Field(RadioSpec(), description="radio model before calibration")
    walls: tuple[WallSpec, ...] = Field((), description="radio walls ([[walls]])")
    shelves: tuple[ShelfSpec, ...] = Field((), description="obstacles ([[shelves]])")
    zones: tuple[ZoneSpec, ...] = Field((), description="named areas ([[zones]])")
    nodes: tuple[NodeSpec, ...] = Field(
        description="ceiling nodes ([[nodes]]), at least one", json_schema_extra={"minItems": 1}
    )
    doors: tuple[DoorSpec, ...] = Field((), description="doors with beam pairs ([[doors]])")
    tiles: tuple[TileSpec, ...] = Field((), description="pressure tile arrays ([[tiles]])")
    drawing: DrawingSpec | None = Field(
        None, description="the store's own drawing, under the planner's pictures (optional)"
    )

    doc_title: ClassVar[str] = "Floor plan file"
    doc_intro: ClassVar[str] = INTRO
    doc_example: ClassVar[str] = EXAMPLE

    @model_validator(mode="after")
    def _geometry(self) -> FloorPlanFile:
        check(self)
        return self
