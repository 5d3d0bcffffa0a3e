"""Localization entry point for the aggregator.

Observations are grouped per (pseudonym, window) by :func:`make_windows`; a
strategy from :mod:`heatmap.localizers` turns the windows into a
:class:`~heatmap.localizers.base.Posterior`. :func:`locate` runs ours, the grid
posterior with the walking motion model (:mod:`heatmap.localizers.grid_posterior`):
per window the likelihood of its RSSI vector at every walkable cell (phone offset
profiled out, non-detection as evidence), smoothed over the pseudonym's windows
by forward–backward with a random walk that walls and shelves block, summed into
person-seconds per cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Located, Posterior, Windows, make_windows
from heatmap.spatial.motion import MotionModel
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

__all__ = ["Located", "Posterior", "Windows", "locate", "make_windows"]


def locate(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    duration_s: NDArray[np.float64] | None = None,
    group: NDArray[np.int64] | None = None,
    n_groups: int = 1,
    progress: Callable[[float], None] | None = None,
    motion: MotionModel | bool | None = True,
    workers: int = 1,
    tracks: bool = False,
) -> Posterior:
    """Posterior per window over the walkable cells, summed into person-seconds.

    ``duration_s``: seconds each window stands for (default: the window length;
    0 leaves a window out of the person-seconds). ``group``: label 0..n_groups-1
    per window, to get person-seconds per group (e.g. per hour) in one pass.
    ``motion``: a motion model, True for the default one, None/False for
    independent windows (windows must be sorted by pid then time, as
    :func:`make_windows` returns them). ``workers``: processes to share the
    pseudonyms over. ``tracks``: also each pseudonym's most likely track
    (``Posterior.track_xy``, Viterbi).
    """
    from heatmap.localizers import grid_posterior

    return grid_posterior.locate(
        win,
        model,
        grid,
        duration_s=duration_s,
        group=group,
        n_groups=n_groups,
        progress=progress,
        motion=motion,
        workers=workers,
        tracks=tracks,
    )
