"""How the live aggregator runs: interval, lag, lead-in, sessions, grid."""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
SLOT_MS = 15 * MINUTE_MS
"""the shortest aggregate period, ms"""
STRICT_INTERVAL_S = 60.0
"""the interval of the strict mode (its windows on disk are at most interval + lag old)"""
STRICT_INTERVAL_LAG_MS = 200_000


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """The ``[live]`` table of store.toml, in the units the code uses."""

    enabled: bool = True
    interval_s: float = 300.0
    """rows are located and folded into the aggregates every this long, s (divides 15 min)"""
    lag_s: float = 30.0
    """an interval is processed this long after it ended (batches still on their way), s"""
    context_s: float = 30.0
    """lead-in: the smoother starts this long before the interval, on rows already counted, s"""
    session_gap_s: float = 120.0
    """a pseudonym silent this long has ended its session (left, or its address rotated), s"""
    window_ms: int = 5000
    """localization window, ms (as the batch report)"""
    cell_m: float = 1.0
    """side of the heatmap's grid cells, m"""
    k: int = 5
    """k-anonymity of every stored figure"""
    occupancy_interval_s: float = 10.0
    """the live occupancy is published this often, s"""
    hour_grace_s: float = 7200.0
    """an hour is closed (aggregates written, passers-by's rows deleted) once every node
    that sent rows around it has delivered past its end, or this long after it, s"""
    day_close_s: float = 600.0
    """a local day is closed (its day aggregates written) this long after midnight, s"""
    strict: bool = False
    """the ``strict`` privacy mode: pseudonymous rows in memory, none older than 5 min on
    disk (:mod:`.strict_memory`); needs ``interval_s + lag_s`` of at most 200 s"""

    def __post_init__(self) -> None:
        iv = self.interval_ms
        if iv <= 0 or SLOT_MS % iv:
            raise ValueError(f"interval_s {self.interval_s:g}: must divide 15 min (900 s)")
        if iv % self.window_ms:
            raise ValueError(f"interval_s {self.interval_s:g}: not a whole number of windows")
        if self.strict and iv + self.lag_ms > STRICT_INTERVAL_LAG_MS:
            raise ValueError(
                f"interval_s {self.interval_s:g} + lag_s {self.lag_s:g}: the strict mode "
                f"needs at most {STRICT_INTERVAL_LAG_MS // 1000} s (the last interval's "
                "windows stay on disk until the next one)"
            )

    @property
    def interval_ms(self) -> int:
        return round(self.interval_s * 1000)

    @property
    def lag_ms(self) -> int:
        return round(self.lag_s * 1000)

    @property
    def context_ms(self) -> int:
        c = round(self.context_s * 1000)
        return c - c % self.window_ms

    @property
    def session_gap_ms(self) -> int:
        return round(self.session_gap_s * 1000)

    @property
    def hour_grace_ms(self) -> int:
        return round(self.hour_grace_s * 1000)

    @property
    def settle_ms(self) -> int:
        """A period's figures are final once the rows are located this far past its end:
        the sessions that ended in it have ended for sure."""
        return self.session_gap_ms + self.window_ms


def strict(settings: LiveSettings) -> LiveSettings:
    """``settings`` for the strict mode: :data:`STRICT_INTERVAL_S` unless the configured
    interval is shorter."""
    import dataclasses

    iv = min(settings.interval_s, STRICT_INTERVAL_S)
    return dataclasses.replace(settings, strict=True, interval_s=iv)
