"""A chunk's tracks: device labels, segments of long tracks, chunks of like length.

The smoother steps every track of a chunk in lockstep (one matrix product per
time step over the tracks still running): long tracks are cut into overlapping
segments (:func:`track_segments`) and smoothed side by side
(:func:`smooth_tracks`), and the pseudonyms are grouped into chunks of tracks of
like length (:func:`length_chunks`) of about :data:`CHUNK_ELEMENTS` windows ×
cells each, which bounds the memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.spatial.motion import MotionModel
from heatmap.spatial.motion_smoothing import smooth_batch

F = NDArray[np.float64]

CHUNK_ELEMENTS = 6_000_000
"""windows × cells smoothed at once (three such float32 arrays live at a time)"""
SEGMENT_WINDOWS = 240
"""tracks longer than this (plus the overlap) are smoothed in overlapping segments"""
SEGMENT_OVERLAP = 60
"""windows of context either side of a segment (see :func:`track_segments`)"""


def device_labels(pid: NDArray[np.str_]) -> NDArray[np.int64]:
    """Label 0, 1, 2 … of each run of equal pseudonyms (``pid`` sorted by pid then time)."""
    new = np.r_[True, pid[1:] != pid[:-1]]
    return np.cumsum(new) - 1


def smooth_tracks(
    mm: MotionModel | None,
    lik: NDArray[np.float32],
    dev: NDArray[np.int64],
    t_ms: NDArray[np.int64],
) -> tuple[NDArray[np.floating[Any]], F | None]:
    """Posterior (W, C) and dwell probability (W,) of the tracks ``dev`` (contiguous,
    in time order), long ones in overlapping segments (:func:`track_segments`);
    without a motion model (None), each window's normalized likelihood and None."""
    if mm is None:
        return lik / lik.sum(axis=1, keepdims=True, dtype=np.float64), None
    rows, seg, keep = track_segments(dev, SEGMENT_WINDOWS, SEGMENT_OVERLAP)
    if len(rows) == len(dev):  # no track long enough to cut
        return smooth_batch(mm, lik, dev, t_ms)
    post_s, pdw_s = smooth_batch(mm, lik, seg, t_ms[rows], rows=rows)
    # the cores, segment after segment, are every row once and in order
    return post_s[keep], pdw_s[keep]


def track_segments(
    dev: NDArray[np.int64], length: int, overlap: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Cut long tracks into overlapping segments smoothed side by side.

    Each track (contiguous run of ``dev``) longer than ``length + overlap``
    windows is cut into cores of ``length`` windows, each smoothed with up to
    ``overlap`` windows of context on either side; only the core's posterior is
    kept. Returns the rows (into ``dev``; context rows repeat), a segment label
    per row, and which rows are cores (each original row exactly once).

    Exact forward–backward conditions each window on the whole track; cutting
    drops the evidence more than ``overlap`` windows away, which the random walk
    has long forgotten (in 60 s of walking it spreads over 13 m) — and it lets
    the lockstep smoother step dozens of segments at once where it would step
    one long staff track.
    """
    w = len(dev)
    starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]]) if w else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], w]
    rows: list[NDArray[np.int64]] = []
    labels: list[NDArray[np.int64]] = []
    keep: list[NDArray[np.bool_]] = []
    label = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s <= length + overlap:
            rows.append(np.arange(s, e))
            keep.append(np.ones(e - s, bool))
            labels.append(np.full(e - s, label))
            label += 1
            continue
        for c in range(s, e, length):
            lo, hi = max(c - overlap, s), min(c + length + overlap, e)
            r = np.arange(lo, hi)
            rows.append(r)
            keep.append((r >= c) & (r < min(c + length, e)))
            labels.append(np.full(hi - lo, label))
            label += 1
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(keep)


def length_chunks(
    pid: NDArray[np.str_], rows: NDArray[np.int64], size: int
) -> list[NDArray[np.int64]]:
    """Split ``rows`` (pid-sorted) into chunks of about ``size`` rows of tracks of like length.

    The smoother steps all tracks of a chunk in lockstep, one matrix product per
    time step over the tracks still running: tracks of like length keep those
    products wide (a chunk of one 900-window staff phone and hundreds of short
    ones would take 900 steps, mostly one row wide). Each track stays whole and
    in time order; the chunks' rows together are ``rows``.
    """
    if not len(rows):
        return []
    p = pid[rows]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    lengths = np.diff(np.r_[starts, len(rows)])
    order = np.argsort(lengths, kind="stable")
    chunks: list[NDArray[np.int64]] = []
    cur: list[NDArray[np.int64]] = []
    n = 0
    for k in order:
        cur.append(rows[starts[k] : starts[k] + lengths[k]])
        n += int(lengths[k])
        if n >= size:
            chunks.append(np.concatenate(cur))
            cur, n = [], 0
    if cur:
        chunks.append(np.concatenate(cur))
    return chunks
