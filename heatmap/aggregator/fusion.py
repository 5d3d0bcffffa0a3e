"""Door and RF together: how many people an RF device inside stands for, and the staff.

Fit RF devices inside per time bin as ``devices_per_visitor × door occupancy +
resident_devices`` (least squares, both ≥ 0) and scale RF by
``1 / devices_per_visitor``. The residents are devices inside whatever the door
says: staff, who are in all day and never counted by the door. A plain ratio of
totals (door person-seconds / RF device-seconds) would count the staff's phones
as visitors' and come out low by their share (a quarter of the demo's inside
time). With fewer than ``FUSION_MIN_BINS`` bins, or a door occupancy that does
not change, the fit cannot separate the two and the plain ratio is used.
Used by the batch report (5-minute bins of its period) and the live aggregator
(its intervals of the day so far).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
from numpy.typing import NDArray

FUSION_MIN_BINS = 6


@dataclass(frozen=True)
class Fusion:
    """How RF device-seconds inside turn into people-seconds."""

    scale: float
    """people-seconds per RF device-second inside"""
    devices_per_visitor: float
    """RF devices inside per person the door says is inside (slope of the fit)"""
    resident_devices: float
    """devices inside regardless of door occupancy (intercept): staff"""
    bins: int
    """time bins fitted (0: too few or no occupancy change, plain ratio used)"""


def fit_occupancy(
    occupancy: NDArray[np.floating[Any]],
    rf_devices: NDArray[np.floating[Any]],
    door_person_s: float,
    rf_device_s: float,
) -> Fusion:
    """The fit over bins of mean door ``occupancy`` and mean RF ``rf_devices`` inside;
    ``door_person_s`` and ``rf_device_s``: the totals for the plain ratio."""
    plain = door_person_s / rf_device_s if rf_device_s > 0 and door_person_s > 0 else 1.0
    n = len(occupancy)
    if n < FUSION_MIN_BINS or door_person_s <= 0 or rf_device_s <= 0:
        return Fusion(plain, 1 / plain, 0.0, 0)
    if float(np.std(occupancy)) < 1e-9:
        return Fusion(plain, 1 / plain, 0.0, 0)
    fit = scipy.optimize.lsq_linear(
        np.column_stack([occupancy, np.ones(n)]),
        np.asarray(rf_devices, float),
        bounds=([1e-6, 0.0], [np.inf, np.inf]),
    )
    slope, resident = (float(v) for v in fit.x)
    return Fusion(1.0 / slope, slope, resident, n)
