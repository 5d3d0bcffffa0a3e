"""The live aggregator's loop: intervals located, periods folded into aggregates.

:meth:`LiveProcessor.step` (the daemon calls it every few seconds; the demo and the
tests call it with their own clock) does, in order:

1. **Late rows.** Obs batches received since the last scan whose rows fall before
   the watermark reopen the intervals they touch (door and floor batches reopen
   only the periods): those intervals are located again from the rows that exist,
   replacing what they wrote, and their slot, hour and day are marked to be
   written again.
2. **Intervals.** Every whole interval that ended ``lag`` ago is located
   (:mod:`.interval_pass`), oldest first; each writes its windows, its cells and
   the new watermark in one transaction.
3. **Periods.** Every slot, hour and (at ``day_close_s`` after midnight) day whose
   sessions have settled (``settle`` past its end) is computed
   (:mod:`.period_figures`) and written, with the hour's pseudonym classes, and the
   hour's passers-by's rows are deleted in the same transaction (retention's
   promise: gone once the hour's aggregates hold them); the hour's intervals' cells
   are k-guarded then (:func:`.k_guard.guard_intervals`).

In the ``strict`` privacy mode (``settings.strict``) the pseudonymous rows live in
memory (:mod:`.strict_memory`): each step first moves the rows the ingest stored into
memory, and last deletes what may not stay on disk; everything in between reads the
same tables, from memory.

Reads go through a read-only connection of this thread (numpy and SQLite release
the GIL; ingest goes on); every write is handed to ``write`` (the daemon: the
ingest writer thread, between messages), which commits. Writes replace: after a
kill -9, the next start redoes at most the interval and periods that were not
committed, and counts nothing twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from heatmap.aggregator import hour_aggregates, pid_class, retention, store_db
from heatmap.aggregator.live import calibration_state, closing, k_guard, periods, strict_memory
from heatmap.aggregator.live import tracks_table as tt
from heatmap.aggregator.live.calibration_state import LiveCalibration
from heatmap.aggregator.live.interval_pass import locate_interval
from heatmap.aggregator.live.period_figures import Aggregate, compute
from heatmap.aggregator.live.sessions import cut
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from sensing.runtime.process_memory import release_free_memory

log = logging.getLogger(__name__)

Step = Callable[[sqlite3.Connection], Any]
DIRTY = "live_dirty"
TALLY = "live_tally"
"""working state: per slot (sessions seen entering, door ins), for the passer-by scale;
no pseudonyms, kept two days"""
TALLY_KEEP_MS = 2 * 86_400_000
LOOKBACK_MS = 3 * 86_400_000
"""periods are looked for this far back (rows live at most 48 h)"""
MAX_INTERVALS_PER_STEP = 48
IN_FLIGHT_MS = 10_000
"""a batch validated this long before an interval is read may not be stored yet"""
"""intervals one step locates at most (a long catch-up yields between steps)"""


@dataclass
class StepReport:
    intervals: list[int] = field(default_factory=list)
    redone: list[int] = field(default_factory=list)
    periods: list[tuple[str, int]] = field(default_factory=list)
    passerby_rows_deleted: int = 0
    watermark_ms: int | None = None
    cpu_s: float = 0.0


class LiveProcessor:
    """Live aggregation of one store database.

    Parameters
    ----------
    db_path
        the store database (the ingest writer owns writing to it).
    plan
        the store's floor plan.
    settings
        interval, lag, k, grid.
    write
        runs a step on the writer's connection and commits; by default a
        connection of this processor's own (for tools and tests).
    model
        a calibrated radio model (``footfall calibrate``) to start from instead of
        the floor plan's defaults.
    clock
        the ingest's wall clock, s: when an interval was located is compared with when
        a batch was received (late rows), so both must read the same clock.
    """

    def __init__(
        self,
        db_path: str | Path,
        plan: FloorPlan,
        settings: LiveSettings | None = None,
        write: Callable[[Step], Any] | None = None,
        model: RadioModel | None = None,
        retention_rule: pid_class.ClassRule | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.path = Path(db_path)
        self.plan = plan
        self.s = settings or LiveSettings()
        self.tz = plan.timezone
        self.grid = WalkableGrid.build(
            plan, cell_m=self.s.cell_m, samples=samples_for(self.s.cell_m)
        )
        self.base_model = model or RadioModel.from_plan(plan)
        self.rule = retention_rule
        self._own: sqlite3.Connection | None = None
        self._write = write or self._write_own
        self._ro: sqlite3.Connection | None = None
        self.last: StepReport | None = None
        self.cpu_s_total = 0.0
        self.periods_written = 0
        self._cal: LiveCalibration | None = None
        self._cal_text: str | None = None
        self.late_after_close = 0
        """intervals that received rows after their hour was closed (not in its aggregates)"""
        self.watermark_ms: int | None = None
        """every interval before this is located (as committed)"""
        self.strict = self.s.strict
        self._mover = strict_memory.Mover()
        self.disk_rows_deleted = 0
        """strict mode: pseudonymous rows deleted from disk by the end-of-step purge"""

    # ------------------------------------------------------------------ plumbing

    def _write_own(self, fn: Step) -> Any:
        if self._own is None:
            self._own = store_db.connect(self.path)
        try:
            out = fn(self._own)
        except BaseException:
            self._own.rollback()
            raise
        self._own.commit()
        return out

    @property
    def ro(self) -> sqlite3.Connection:
        """The reading connection (strict mode: the memory, the store attached as ``disk``)."""
        if self._ro is None:
            if self.strict:
                self._ro = strict_memory.connect(self.path)
                self._ro.execute("INSERT INTO main.hour_purges SELECT * FROM disk.hour_purges")
                self._ro.commit()
            else:
                self._ro = store_db.connect(self.path, readonly=True)
        return self._ro

    def close(self) -> None:
        for c in (self._ro, self._own):
            if c is not None:
                c.close()
        self._ro = self._own = None

    def _fresh(self) -> None:
        """End the read transaction so the next read sees what was committed since."""
        self.ro.commit()

    # ------------------------------------------------------------------ state

    def watermark(self) -> int | None:
        self._fresh()
        return tt.get_meta_int(self.ro, tt.WATERMARK)

    def _start_ms(self) -> int | None:
        row = self.ro.execute("SELECT MIN(t0) FROM batches WHERE kind = 'obs' AND n > 0").fetchone()
        if row is None or row[0] is None:
            return None
        return periods.floor_ms(int(row[0]), self.s.interval_ms)

    def _stored_calibration(self) -> LiveCalibration:
        """The stored model, parsed once per change (a new model object per interval
        would rebuild the localizer's likelihood tables every time: 10 % of the work)."""
        row = self.ro.execute(
            "SELECT value FROM meta WHERE key = ?", (calibration_state.META_KEY,)
        ).fetchone()
        text = None if row is None else row[0]
        if self._cal is None or text != self._cal_text:
            self._cal = (
                calibration_state.default(self.base_model)
                if text is None
                else calibration_state.LiveCalibration.from_json(text)
            )
            self._cal_text = text
        return self._cal

    def calibration(self, upto_ms: int) -> LiveCalibration:
        cal = self._stored_calibration()
        start = self._start_ms()
        if start is not None and cal.due(upto_ms, start):
            lo = max(start, upto_ms - calibration_state.CALIBRATION_SPAN_MS)
            t = time.monotonic()
            n = self.ro.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM obs WHERE t_ms >= ? AND t_ms < ? LIMIT ?)",
                (lo, upto_ms, calibration_state.CALIBRATION_MIN_ROWS),
            ).fetchone()[0]
            if n < calibration_state.CALIBRATION_MIN_ROWS:  # the store is closed: keep the model
                cal = dataclasses.replace(cal, fitted_to_ms=upto_ms) if cal.fitted_to_ms else cal
                if cal.fitted_to_ms:
                    self._write(lambda c: calibration_state.save(c, cal))
                return cal
            cal = calibration_state.fit(
                self.ro, self.base_model, self.grid, lo, upto_ms, self.s.window_ms
            )
            self._write(lambda c: calibration_state.save(c, cal))
            log.info(
                "live: radio and motion model refitted on %.0f min of rows (%.1f s)",
                (upto_ms - lo) / 60000,
                time.monotonic() - t,
            )
        return cal

    def _dirty(self) -> set[tuple[str, int]]:
        return self._read_dirty(self.ro)

    @staticmethod
    def _read_dirty(conn: sqlite3.Connection) -> set[tuple[str, int]]:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (DIRTY,)).fetchone()
        return set() if row is None else {(u, int(t)) for u, t in json.loads(row[0])}

    @staticmethod
    def _set_dirty(conn: sqlite3.Connection, dirty: set[tuple[str, int]]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (DIRTY, json.dumps(sorted(dirty)))
        )

    def _periods_of(self, t0: int, t1: int) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for unit in ("slot", "hour", "day"):
            out |= {(unit, a) for a, _ in periods.spans(t0, t1, unit, self.tz)}  # type: ignore[arg-type]
        return out

    # ------------------------------------------------------------------ the step

    def step(self, now_ms: int) -> StepReport:
        """Bring the aggregates up to ``now_ms`` (data time: the clock of the store)."""
        cpu = time.thread_time()  # this thread's: ingest runs beside it
        rep = StepReport()
        if self.strict:  # the rows the ingest stored move into memory
            strict_memory.move_in(self._mover, self.ro, self._write)
        self._fresh()
        wm = tt.get_meta_int(self.ro, tt.WATERMARK)
        self.watermark_ms = wm
        if wm is None:
            wm = self._start_ms()
            if wm is None:
                self.last = rep
                return rep
        due_end = periods.floor_ms(now_ms - self.s.lag_ms, self.s.interval_ms)
        self._redo_late(wm, rep)
        done = 0
        while wm + self.s.interval_ms <= due_end and done < MAX_INTERVALS_PER_STEP:
            self._locate(wm, wm + self.s.interval_ms, rep, advance=True)
            wm += self.s.interval_ms
            done += 1
        rep.watermark_ms = wm
        self._fold_periods(wm, now_ms, rep)
        if self.strict:  # nothing pseudonymous stays on disk but the newest interval's
            keep = wm - self.s.interval_ms
            self.disk_rows_deleted += strict_memory.end_step(self.ro, self._write, now_ms, keep)
            self._fresh()
        rep.cpu_s = time.thread_time() - cpu
        self.cpu_s_total += rep.cpu_s
        self.last = rep
        return rep

    def _locate(self, t0: int, t1: int, rep: StepReport, advance: bool) -> None:
        cal = self.calibration(t1)
        # rows of a batch received (validated) shortly before this read may still be on
        # their way to the database: such batches count as late, and redo the interval
        now = int(self.clock() * 1000) - IN_FLIGHT_MS
        self._fresh()
        tr = locate_interval(
            self.ro, self.plan, self.grid, cal, t0, t1, self.s.context_ms, self.s.window_ms
        )

        def write(c: sqlite3.Connection) -> None:
            # strict: only the newest interval's windows go to disk (BI's zone occupancy)
            tt.write_interval(c, tr, now, windows=advance or not self.strict)
            if advance:
                tt.set_meta_int(c, tt.WATERMARK, t1)

        self._write(write)
        if self.strict:
            tt.write_windows(self.ro, tr)
        self._fresh()
        release_free_memory()  # the interval's temporaries: freed, and given back
        if advance:
            self.watermark_ms = t1
        (rep.intervals if advance else rep.redone).append(t0)

    def _redo_late(self, wm: int, rep: StepReport) -> None:
        scan = tt.get_meta_int(self.ro, tt.SCAN) or 0
        rows = self.ro.execute(
            "SELECT kind, t0, t1, received_ms FROM batches WHERE received_ms > ? AND t0 < ? "
            "AND kind IN ('obs', 'door', 'floor')",
            (scan, wm),
        ).fetchall()
        if not rows:
            return
        newest = max(r[3] for r in rows)
        processed = {
            r[0]: r[1] for r in self.ro.execute("SELECT t0_ms, processed_ms FROM live_intervals")
        }
        redo: set[int] = set()
        dirty = self._dirty()
        iv = self.s.interval_ms
        closed = {int(r[0]) for r in self.ro.execute("SELECT hour_ms FROM hour_purges").fetchall()}
        after_close: set[int] = set()
        for kind, t0, t1, received in rows:
            lo = periods.floor_ms(int(t0), iv)
            hi = min(int(t1) + 1, wm)
            for a in range(lo, hi, iv):
                if pid_class.hour_of(a) in closed:
                    # the hour is closed (its passers-by's rows are gone): its aggregates
                    # stay as they are; a passer-by's late rows go at once
                    after_close.add(a)
                    continue
                # an interval located after the batch arrived has its rows already
                if kind == "obs" and a in processed and processed[a] < received:
                    redo.add(a)
                dirty |= self._periods_of(a, a + iv)
        for a in sorted(after_close):
            if self.strict:  # the rows and windows are in memory
                rep.passerby_rows_deleted += closing.drop_late_passersby(self.ro, a, a + iv)
                self.ro.commit()
                continue
            rep.passerby_rows_deleted += self._write(
                partial(closing.drop_late_passersby, a=a, b=a + iv)
            )
        self.late_after_close += len(after_close)
        for a in sorted(redo):
            self._locate(a, a + iv, rep, advance=False)
        self._write(lambda c: (self._set_dirty(c, dirty), tt.set_meta_int(c, tt.SCAN, newest)))
        if redo:
            log.info("live: %d interval(s) located again for late rows", len(redo))

    # ------------------------------------------------------------------ periods

    def _fold_periods(self, wm: int, now_ms: int, rep: StepReport) -> None:
        settled = wm - self.s.settle_ms
        dirty = self._dirty()
        todo: list[tuple[str, int, int]] = []
        for unit in ("slot", "hour"):
            for a, b in self._candidates(unit, settled):
                if b > settled or not ((unit, a) in dirty or not self._written(a, b)):
                    continue
                if unit == "hour" and not closing.hour_complete(
                    self.ro, a, b, now_ms, self.s.hour_grace_ms
                ):
                    continue  # a node has not delivered past the hour yet: wait for it
                todo.append((unit, a, b))
        close = self.s.day_close_s * 1000
        for a, b in self._candidates("day", settled):
            if (
                b + close <= now_ms
                and b <= settled
                and ((("day", a) in dirty) or not self._written(a, b))
            ):
                todo.append(("day", a, b))
        for unit, a, b in todo:
            tally = self._tally(self.ro)
            day0 = periods.floor_local(a, "day", self.tz)
            before = [v for t, v in tally.items() if day0 <= t < a]
            prior = (sum(v[0] for v in before), sum(v[1] for v in before))
            aggs = compute(self.ro, self.plan, self.grid, self.s, self.tz, unit, a, b, prior)  # type: ignore[arg-type]
            classes = self._hour_classes(a, b) if unit == "hour" else None
            own_tally = aggs[0].payload.pop("_tally")
            closing.carry_passersby(self.ro, aggs[0], unit, a, b, self.s.k)
            if unit == "day":
                closing.compose_day(self.ro, aggs, a, b)

            def write(
                c: sqlite3.Connection,
                aggs: list[Aggregate] = aggs,
                own: list[int] = own_tally,
                unit: str = unit,
                a: int = a,
                b: int = b,
                classes: dict[str, pid_class.Class] | None = classes,
            ) -> int:
                for g in aggs:
                    hour_aggregates.put_aggregate(
                        c, g.kind, g.payload["period"], g.entity, g.t0_ms, g.t1_ms, g.payload
                    )
                left = self._read_dirty(c) - {(unit, a)}
                self._set_dirty(c, left)
                if unit == "slot":
                    t = self._tally(c)
                    t[a] = own
                    keep = {x: v for x, v in t.items() if x >= a - TALLY_KEEP_MS}
                    c.execute(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        (TALLY, json.dumps({str(x): v for x, v in keep.items()})),
                    )

                if classes is None:
                    return 0
                heat = next((g.payload for g in aggs if g.kind == "heatmap"), {"cells": {}})
                k_guard.guard_intervals(c, a, b, heat["cells"], len(classes), self.s.k)
                if self.strict:  # the classes and the rows are in memory: purged below
                    for h in range(pid_class.hour_of(a), b, pid_class.HOUR_MS):
                        c.execute("INSERT OR REPLACE INTO hour_purges VALUES (?, ?)",
                                  (h, int(self.clock() * 1000)))  # fmt: skip
                    return 0
                return self._purge_hour(c, a, b, classes)

            rep.passerby_rows_deleted += self._write(write)
            if self.strict and classes is not None:
                rep.passerby_rows_deleted += self._purge_hour(self.ro, a, b, classes)
                self.ro.commit()
            self._fresh()
            release_free_memory()
            rep.periods.append((unit, a))
            self.periods_written += 1

    @staticmethod
    def _tally(c: sqlite3.Connection) -> dict[int, list[int]]:
        row = c.execute("SELECT value FROM meta WHERE key = ?", (TALLY,)).fetchone()
        return {} if row is None else {int(t): v for t, v in json.loads(row[0]).items()}

    def _candidates(self, unit: periods.Unit, settled: int) -> list[tuple[int, int]]:
        """Periods of ``unit`` with located intervals, ending by ``settled`` (and those
        marked dirty)."""
        row = self.ro.execute("SELECT MIN(t0_ms) FROM live_intervals").fetchone()
        if row is None or row[0] is None:
            return []
        # periods older than the rows can be were written when they were due
        first = max(int(row[0]), settled - LOOKBACK_MS)
        out = [(a, b) for a, b in periods.spans(first, settled, unit, self.tz) if b <= settled]
        dirty = {a for u, a in self._dirty() if u == unit}
        have = {a for a, _ in out}
        out += [(a, periods.next_local(a, unit, self.tz)) for a in sorted(dirty - have)]
        return out

    def _written(self, a: int, b: int) -> bool:
        return (
            self.ro.execute(
                "SELECT 1 FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
                "AND t0_ms = ? AND t1_ms = ?",
                (a, b),
            ).fetchone()
            is not None
        )

    def _hour_classes(self, a: int, b: int) -> dict[str, pid_class.Class]:
        """Visitor or passerby, per pseudonym located in the hour: a visitor if any of
        its sessions (up to now) spent the visitor's time inside."""
        tr = tt.read_tracks(self.ro, a, b, self.s.session_gap_ms * 4)
        ses = cut(tr, self.s.window_ms, self.s.session_gap_ms)
        out: dict[str, pid_class.Class] = {}
        for p, v in zip(ses.pid.tolist(), ses.visitor.tolist(), strict=True):
            if v:
                out[p] = pid_class.VISITOR
            else:
                out.setdefault(p, pid_class.PASSERBY)
        return out

    def _purge_hour(
        self, c: sqlite3.Connection, a: int, b: int, classes: dict[str, pid_class.Class]
    ) -> int:
        """Store the hour's classes (UTC hours it overlaps) and delete its passersby's
        rows: the hour's aggregates hold them now."""
        n = 0
        for h in range(pid_class.hour_of(a), b, pid_class.HOUR_MS):
            pid_class.write_classes(c, h, classes, "live", replace=True)
            now = int(self.clock() * 1000)
            n += retention.purge_passersby(c, h, now, self.rule)
        return n
