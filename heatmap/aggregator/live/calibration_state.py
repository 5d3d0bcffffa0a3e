"""The radio and motion model the live aggregator locates with, and where it comes from.

The batch report fits its model to the whole period it reports on; the live
aggregator cannot wait for the day, so it fits on the rows it has: the node
beacons' links (radio model), then the phones' level and how still people stand
(:mod:`heatmap.calibration`), on the last ``CALIBRATION_SPAN_MS`` of rows, first
once ``CALIBRATION_MIN_MS`` of them exist, then again every ``REFIT_MS``. The
fitted model is kept in the database (``meta``, key ``live_calibration``), so a
restarted aggregator locates with the model it used before, and a re-processed
interval with the model of its time. Node beacons' pseudonyms are kept with it:
they are the nodes, not people, and are left out of the phones' windows.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from heatmap.aggregator.obs_reader import read_observations, read_windows
from heatmap.calibration import calibrate_links, calibrate_motion, calibrate_phones
from heatmap.spatial.motion import MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

CALIBRATION_MIN_MS = 15 * 60_000
"""rows needed before the first fit (before it: the floor plan's default model)"""
CALIBRATION_MIN_ROWS = 20_000
"""fewer rows than this in the span (the store closed): no (re)fit"""
CALIBRATION_SPAN_MS = 30 * 60_000
"""a fit reads at most this much of the latest rows (a busy hour, node beacons included,
made the fit the aggregator's peak memory)"""
REFIT_MS = 6 * 3_600_000
"""the model is refitted this often (data time)"""
META_KEY = "live_calibration"


@dataclass(frozen=True)
class LiveCalibration:
    model: RadioModel
    motion: MotionParams
    beacons: frozenset[str]
    """pseudonyms of the node beacons"""
    fitted_to_ms: int | None
    """end of the rows it was fitted to (None: the floor plan's default model)"""

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model.to_dict(),
                "motion": dataclasses.asdict(self.motion),
                "beacons": sorted(self.beacons),
                "fitted_to_ms": self.fitted_to_ms,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> LiveCalibration:
        d: dict[str, Any] = json.loads(text)
        return cls(
            RadioModel.from_dict(d["model"]),
            MotionParams(**d["motion"]),
            frozenset(d["beacons"]),
            d["fitted_to_ms"],
        )

    def due(self, data_end_ms: int, data_start_ms: int) -> bool:
        """Whether a (re)fit is due with rows in [data_start, data_end)."""
        if self.fitted_to_ms is None:
            return data_end_ms - data_start_ms >= CALIBRATION_MIN_MS
        return data_end_ms - self.fitted_to_ms >= REFIT_MS


def default(model: RadioModel) -> LiveCalibration:
    return LiveCalibration(model, MotionParams(), frozenset(), None)


def load(conn: sqlite3.Connection) -> LiveCalibration | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    return None if row is None else LiveCalibration.from_json(row[0])


def save(conn: sqlite3.Connection, cal: LiveCalibration) -> None:
    """The caller commits."""
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY, cal.to_json()))


def fit(
    db: sqlite3.Connection,
    base: RadioModel,
    grid: WalkableGrid,
    t0_ms: int,
    t1_ms: int,
    window_ms: int,
) -> LiveCalibration:
    """Fit the model to the rows of [t0, t1) (read-only connection ``db``)."""
    node_index = {n: i for i, n in enumerate(base.node_ids)}
    codes: dict[str, int] = {}
    bea = read_observations(db, t0_ms, t1_ms, node_index, beacons_only=True, pid_codes=codes)
    ok = bea.node >= 0
    model, beacons, _ = calibrate_links(
        base, bea.pid[ok], bea.node[ok], bea.flags[ok], bea.rssi[ok]
    )
    names = np.array(list(codes), dtype=str) if codes else np.zeros(0, str)
    beacon_pids = frozenset(str(names[c]) for c in beacons)
    win, _ = read_windows(
        db, t0_ms, t1_ms, node_index, model.n_nodes, window_ms, codes, set(beacons)
    )
    if len(win) == 0:
        return LiveCalibration(model, MotionParams(), beacon_pids, t1_ms)
    model, _pop = calibrate_phones(model, win, grid, np.random.default_rng(0))
    motion, _mfit = calibrate_motion(model, win, grid, np.random.default_rng(0))
    return LiveCalibration(model, motion, beacon_pids, t1_ms)
