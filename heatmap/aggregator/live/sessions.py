"""Each pseudonym's located windows cut into sessions, and what a session was.

A *session* is a run of one pseudonym's windows with no gap longer than
``session_gap_ms`` (a phone that left, or whose address rotated, starts a new
one). Per session, as the batch report classifies devices
(:func:`heatmap.report.analytics.device_tracks`):

* **visitor**: posterior-weighted time inside ≥ ``VISITOR_MIN_INSIDE_S``;
* **passerby**: never more likely inside than out;
* **entered**: a visitor whose first window is outside (seen walking in); and a
  visit **seen whole** also ends outside: its dwell is from the first to the
  last window inside (plus one window).

Zone *stays* are contiguous runs of windows in one zone lasting at least
:data:`~heatmap.spatial.zone_flows.MIN_DWELL_S` (a run of n windows lasted n - 1
windows), merged when one session stays in one zone twice in a row; every change
of zone between stays is a move. A session is counted once, in the period its
last window falls in, with everything it did: that makes session figures add up
over periods (a week is the sum of its days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.tracks_table import TrackRows
from heatmap.spatial.zone_flows import MIN_DWELL_S

VISITOR_MIN_INSIDE_S = 30.0
"""a session is a visitor's once it spent this long (posterior-weighted) inside"""

F = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class Sessions:
    pid: NDArray[np.str_]
    start_ms: I64
    end_ms: I64
    """end of the last window"""
    inside_s: F
    visitor: B
    passerby: B
    entered: B
    dwell_s: F
    """NaN unless the visit was seen whole (entering and leaving)"""
    stay_session: I64
    """per stay: its session"""
    stay_zone: I64
    stay_s: F

    def __len__(self) -> int:
        return len(self.pid)

    def select(self, keep: B) -> Sessions:
        """The sessions where ``keep``, with their stays (re-numbered)."""
        new_id = np.cumsum(keep) - 1
        st = keep[self.stay_session] if len(self.stay_session) else np.zeros(0, bool)
        return Sessions(
            self.pid[keep],
            self.start_ms[keep],
            self.end_ms[keep],
            self.inside_s[keep],
            self.visitor[keep],
            self.passerby[keep],
            self.entered[keep],
            self.dwell_s[keep],
            new_id[self.stay_session[st]],
            self.stay_zone[st],
            self.stay_s[st],
        )

    @staticmethod
    def concat(parts: list[Sessions]) -> Sessions:
        """Sessions of several reads one after the other (stays re-numbered)."""
        if not parts:
            return cut(_NO_TRACKS, 1000, 1000)
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        return Sessions(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _SESSION_FIELDS),
            np.concatenate([p.stay_session + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.stay_zone for p in parts]),
            np.concatenate([p.stay_s for p in parts]),
        )


_SESSION_FIELDS = (
    "pid",
    "start_ms",
    "end_ms",
    "inside_s",
    "visitor",
    "passerby",
    "entered",
    "dwell_s",
)
_NO_TRACKS = TrackRows(
    np.zeros(0, str),
    np.zeros(0, np.int64),
    np.zeros((0, 2)),
    np.zeros(0),
    np.zeros(0, np.int64),
    np.zeros(0, np.int64),
)


def cut(tr: TrackRows, window_ms: int, session_gap_ms: int) -> Sessions:
    """Sessions of located windows sorted by pid then time."""
    n = len(tr)
    w_s = window_ms / 1000
    if n == 0:
        e = np.zeros(0)
        z = e.astype(np.int64)
        b = e.astype(bool)
        return Sessions(np.zeros(0, str), z, z, e, b, b, b, e, z, z, e)
    t = tr.t_ms
    new = np.r_[True, (tr.pid[1:] != tr.pid[:-1]) | (np.diff(t) > session_gap_ms)]
    sid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n] - 1
    inside = tr.p_in > 0.5
    inside_s = np.bincount(sid, tr.p_in * w_s)
    any_in = np.bincount(sid, inside) > 0
    max_p = np.maximum.reduceat(tr.p_in, starts)
    visitor = inside_s >= VISITOR_MIN_INSIDE_S
    passerby = max_p < 0.5
    entered = visitor & any_in & ~inside[starts]
    whole = entered & ~inside[ends]
    # first and last inside window of each session
    big = np.iinfo(np.int64).max
    t_in = np.where(inside, t, big)
    first_in = np.minimum.reduceat(t_in, starts)
    last_in = np.maximum.reduceat(np.where(inside, t, -1), starts)
    dwell = np.where(whole, (last_in - first_in) / 1000 + w_s, np.nan)
    # zone runs within sessions
    zi = tr.zone
    run = np.flatnonzero(np.r_[True, new[1:] | (zi[1:] != zi[:-1])])
    run_last = np.r_[run[1:], n] - 1
    run_s = (t[run_last] - t[run]) / 1000.0
    keep = (zi[run] >= 0) & (run_s >= MIN_DWELL_S)
    s_sid, s_zone, s_dur = sid[run][keep], zi[run][keep], run_s[keep]
    same = (s_sid[1:] == s_sid[:-1]) & (s_zone[1:] == s_zone[:-1])
    merge = np.r_[False, same] if len(s_sid) else np.zeros(0, bool)
    group = np.cumsum(~merge) - 1
    first = np.flatnonzero(~merge)
    stay_s = np.bincount(group, s_dur) if len(group) else np.zeros(0)
    return Sessions(
        tr.pid[starts],
        t[starts],
        t[ends] + window_ms,
        inside_s,
        visitor,
        passerby,
        entered,
        dwell,
        s_sid[first],
        s_zone[first],
        stay_s,
    )
