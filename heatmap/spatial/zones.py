"""Which zone of the floor plan a point lies in."""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.spatial.floorplan import FloorPlan

F = NDArray[np.float64]
Ix = NDArray[np.int64]

_POINT_BATCH = 100_000


def zone_index(plan: FloorPlan, xy: F) -> Ix:
    """Index into ``plan.zones`` of the zone holding each point, -1 outside every zone
    (and for NaN points). Zones do not overlap (the floor plan checks)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    out = np.full(len(xy), -1, np.int64)
    for z in plan.zones:
        shapely.prepare(z.polygon)
    # coordinates straight into the prepared polygons (no shapely point per window),
    # in batches: a busy day is ~1M windows, and whole-day temporaries were the
    # report's peak memory. NaN coordinates are in no zone.
    for lo in range(0, len(xy), _POINT_BATCH):
        x, y = xy[lo : lo + _POINT_BATCH, 0], xy[lo : lo + _POINT_BATCH, 1]
        o = out[lo : lo + _POINT_BATCH]
        for zi, z in enumerate(plan.zones):
            o[shapely.contains_xy(z.polygon, x, y)] = zi
    return out
