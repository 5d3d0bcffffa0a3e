"""``footfall aggregator``: the store aggregator as a long-running process.

A thin composition root over :class:`heatmap.aggregator.ingest.Ingestor` (MQTT → SQLite),
:class:`heatmap.aggregator.live.processor.LiveProcessor` (rows → k-anonymous aggregates,
every interval, on its own thread), :mod:`heatmap.aggregator.retention` (hourly, and at
start) and :mod:`heatmap.aggregator.status` (retained status every ``status_interval_s``).

* Ingest refuses batches older than the retention horizon (they would be
  deleted at once).
* The retention job runs at start and then shortly after every UTC hour
  (``aggregate_after_s`` past it, when the hour just ended is complete); its
  steps run on the ingest writer thread, between messages, so nothing competes
  for SQLite's write lock.
* Status goes out retained on the ingest connection (one connection per
  certificate: the broker binds the client id to it), whose last will is
  ``{"v":1,"state":"offline"}``; a clean stop publishes ``offline`` itself. A
  status the broker cannot take (away for 100 intervals) is dropped and counted,
  never raised.
* The live aggregator reads with its own read-only connection and hands its
  writes to the ingest writer thread, like retention. A failing step is logged
  and counted in the status (``live.errors``) and tried again; ingest goes on.
  With it, the hourly job does not write its own ``presence`` aggregate: the live
  hour's aggregates say when a passer-by's rows may go.
* ``[privacy] mode = "strict"``: the live aggregator keeps the pseudonymous rows in
  memory and none older than 5 minutes stays on disk
  (:mod:`heatmap.aggregator.live.strict_memory`; intervals of 60 s); it needs the live
  aggregator (a floor plan), and the hourly job skips the passers-by's purge.
* The store-wide opt-out list (``store_optout.json`` beside the database) is
  published retained for the nodes at start and whenever it changes
  (:mod:`heatmap.aggregator.store_optout`).
* A storage failure stops the process with an error (crash-only: whatever was
  not committed was not acknowledged, and the broker redelivers it to the
  persistent session when the aggregator is back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.errors import BrokerError, ConfigError, FootfallError
from heatmap.aggregator import db_migrations, retention, store_db
from heatmap.aggregator import status as aggregator_status
from heatmap.aggregator.config import AggregatorConfig
from heatmap.aggregator.db_migrations import DatabaseError
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.ingest_stats import IngestStats
from heatmap.aggregator.live import settings as live_settings
from heatmap.aggregator.live.occupancy_now import occupancy_payload
from heatmap.aggregator.live.processor import MAX_INTERVALS_PER_STEP, LiveProcessor
from heatmap.aggregator.pid_class import HOUR_MS
from heatmap.aggregator.publish import ha_discovery
from heatmap.aggregator.publish.bi_publisher import BiPublisher
from heatmap.aggregator.publish.retained_state import RetainedState
from heatmap.aggregator.retention import RetentionReport
from heatmap.aggregator.store_optout import OptOutPublisher
from sensing.runtime.mqtt_link import Publisher
from sensing.runtime.systemd_notify import Notifier
from sensing.runtime.version import __version__
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)

JOB_STEP_TIMEOUT_S = 600.0
STATUS_PENDING_MAX = 500
"""messages (statuses, BI's retained aggregates) handed to the broker connection and not
yet acknowledged, at most (a broker away for long: the newer ones are not handed over and
counted; the BI state is published again once there is room)"""
OFFLINE = payloads.encode({"v": 1, "state": "offline"})


def privacy_mode(cfg: AggregatorConfig) -> str:
    """``[privacy] mode`` of the store.toml ``cfg`` was read from (``standard`` for a
    config made in memory)."""
    src = Path(cfg.source)
    if cfg.source == "<memory>" or not src.is_file():
        return "standard"
    from heatmap.aggregator.config_model import StoreFile
    from sensing.runtime.typed_config import read_toml, validate

    mode: str = validate(read_toml(src, "config file"), StoreFile, cfg.source).privacy.mode
    return mode


def next_job_ms(now_ms: int, aggregate_after_s: float) -> int:
    """When the hourly job runs next: ``aggregate_after_s`` after the next hour boundary
    that leaves it in the future.

    >>> next_job_ms(3_600_000 * 10 + 1, 300)  # 10:00:00.001 → 10:05
    36300000
    >>> next_job_ms(3_600_000 * 10 + 301_000, 300)  # 10:05:01 → 11:05
    39900000
    """
    grace = int(aggregate_after_s * 1000)
    t = now_ms - now_ms % HOUR_MS + grace
    return t if t > now_ms else t + HOUR_MS


class AggregatorDaemon:
    """Ingest, hourly retention and status for one store.

    Parameters
    ----------
    cfg
        the validated ``store.toml``.
    clock
        wall clock, s (tests inject one).
    notifier
        systemd notifications (READY, WATCHDOG, STOPPING; from the environment when
        started by systemd, else silent).
    mode
        the privacy mode (default: ``[privacy] mode`` of the config's file).
    """

    def __init__(
        self,
        cfg: AggregatorConfig,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        mode: str | None = None,
    ) -> None:
        self.mode = mode or privacy_mode(cfg)
        if self.mode == "strict":
            if cfg.live is None:
                raise ConfigError(
                    f"{cfg.source}: privacy.mode strict needs the live aggregator "
                    "(aggregator.floor_plan, [live] enabled): without it rows stay for hours"
                )
            cfg = dataclasses.replace(
                cfg,
                live=live_settings.strict(cfg.live),
                retention=dataclasses.replace(cfg.retention, strict=True),
            )
        self.cfg = cfg
        self.clock = clock
        self.notifier = notifier or Notifier()
        self.started = time.monotonic()
        self.status_topic = topics.aggregator_status_topic(cfg.store)
        self.ingest = Ingestor(
            cfg.store,
            str(cfg.db),
            cfg.broker,
            cfg.client_id,
            expire_before=lambda: cfg.retention.horizon_ms(self.now_ms()),
            clock=clock,
            will=(self.status_topic, OFFLINE),
        )
        # status goes out on the ingest connection: the broker replaces a client id by
        # the certificate's name, so a second connection would take over the first
        self._status_client = self.ingest.client
        # the loop never waits long on a broker that is away: a status that finds
        # the pending list full is dropped and counted (the next one supersedes it)
        self._pub = Publisher(self._status_client, max_pending=STATUS_PENDING_MAX, block_s=0.5)
        # the nodes' end-to-end acknowledgements share it (its PUBACK accounting and
        # refusals: an ACL without aggregator/ack/+ is reported like a refused status)
        self.ingest.publish_ack = lambda topic, payload: self._pub.publish(
            topic, payload, retain=True
        )
        self.optout = OptOutPublisher(
            cfg.store, Path(cfg.db), lambda t, p: self._pub.publish(t, p, retain=True)
        )
        self._prev = IngestStats()
        self._prev_t = time.monotonic()
        self.last_retention: RetentionReport | None = None
        self.last_retention_ms: int | None = None
        self.retention_error: BaseException | None = None
        self._job: threading.Thread | None = None
        self._stopping = threading.Event()
        self._refused_seen = 0
        self.live: LiveProcessor | None = None
        self._live_thread: threading.Thread | None = None
        self.live_errors = 0
        self.live_error: str | None = None
        self.occupancy_errors = 0
        self._occ_conn: sqlite3.Connection | None = None
        self.bi: BiPublisher | None = None
        if cfg.live is not None and cfg.floor_plan is not None:
            from heatmap.spatial import floorplan

            plan = floorplan.load(cfg.floor_plan)
            self.live = LiveProcessor(
                cfg.db,
                plan,
                cfg.live,
                write=self._submit,
                retention_rule=cfg.retention.rule,
                clock=clock,
            )
            self.bi = BiPublisher(
                cfg.store,
                plan,
                cfg.k,
                RetainedState(self._pub),
                window_s=cfg.live.window_ms / 1000,
                discovery=ha_discovery.for_plan(cfg.store, plan, __version__),
            )
            self.ingest.subscribe_side(ha_discovery.HA_STATUS_TOPIC, self._on_ha_status)
            self.ingest.subscribe_side(self.bi.discovery_topic, self.bi.ha_previous)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _submit(self, step: Callable[[Any], Any]) -> Any:
        if self._stopping.is_set():
            raise InterruptedError("the aggregator is stopping")
        return self.ingest.submit(step).result(timeout=JOB_STEP_TIMEOUT_S)

    # ---------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Connect, subscribe, publish the first status; BrokerError if the broker
        refuses the aggregator's subscriptions or its status (the ACL does not know
        this certificate as the aggregator: it would run and ingest nothing)."""
        self.ingest.start()
        self.publish_status()
        with contextlib.suppress(FootfallError):  # a slow broker is no reason to fail
            self._pub.drain(10)
        if self._pub.refused:
            with contextlib.suppress(FootfallError):
                self.ingest.stop(timeout_s=5.0)
            raise BrokerError(
                f"the broker refused the aggregator's status ({self._pub.last_refusal}): "
                f"is [broker] cert the aggregator's certificate "
                f"(aggregator-{self.cfg.store}), and the ACL current?"
            )

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; raises if storage failed."""
        try:
            self._run(stop)
        finally:
            if self._occ_conn is not None:  # opened on this thread: closed on it
                self._occ_conn.close()
                self._occ_conn = None

    def _run(self, stop: threading.Event) -> None:
        next_status = time.monotonic()
        next_occupancy = time.monotonic()
        next_job = self.now_ms()  # at start
        if self.live is not None and self._live_thread is None:
            self._live_thread = threading.Thread(target=self.run_live, name="live", daemon=True)
            self._live_thread.start()
        self.notifier.ready(f"store {self.cfg.store}, database {self.cfg.db}")
        while True:
            self.notifier.watchdog()  # a hung loop is restarted (WatchdogSec in the unit)
            if self.ingest.error is not None:
                raise DatabaseError(f"ingest stopped: {self.ingest.error}") from self.ingest.error
            if self.now_ms() >= next_job:
                self.start_retention()
                next_job = next_job_ms(self.now_ms(), self.cfg.retention.aggregate_after_s)
            if time.monotonic() >= next_status:
                try:
                    self.optout.tick()  # the store-wide opt-out list, when it changed
                    self.publish_status()
                except FootfallError as e:  # the broker is away: ingest waits for it too
                    log.warning("status not published: %s", e)
                if self._pub.refused > self._refused_seen:  # the ACL changed under us
                    self._refused_seen = self._pub.refused
                    log.error(
                        "the broker refused %d status publishes (last: %s)",
                        self._pub.refused,
                        self._pub.last_refusal,
                    )
                next_status = time.monotonic() + self.cfg.status_interval_s
            if self.live is not None and time.monotonic() >= next_occupancy:
                self.publish_bi()
                assert self.cfg.live is not None
                next_occupancy = time.monotonic() + self.cfg.live.occupancy_interval_s
            wait_s = min(next_status - time.monotonic(), (next_job - self.now_ms()) / 1000, 1.0)
            if stop.wait(max(wait_s, 0.01)):
                return

    def stop(self) -> None:
        """Store and acknowledge what is queued, publish ``offline``, disconnect."""
        self.notifier.stopping()
        self._stopping.set()  # a running retention job ends after its current step
        if self._job is not None:
            self._job.join(timeout=JOB_STEP_TIMEOUT_S)
        if self._live_thread is not None:
            self._live_thread.join(timeout=JOB_STEP_TIMEOUT_S)

        try:
            self._pub.publish(self.status_topic, OFFLINE, retain=True)
            self._pub.drain(10 if self._status_client.is_connected() else 1)
        except FootfallError as e:  # the broker is away: its last will says offline
            log.warning("could not publish the offline status: %s", e)
        self.ingest.stop()  # stores and acknowledges what is queued, then disconnects

    # ---------------------------------------------------------------- live

    def run_live(self) -> None:
        """The live thread: a step every few seconds (at once again while catching up)."""
        assert self.live is not None
        settings = self.cfg.live
        tick = min(5.0, (settings.interval_s if settings else 300.0) / 10)
        try:
            self._live_loop(tick)
        finally:
            self.live.close()  # its connections were opened on this thread

    def _live_loop(self, tick: float) -> None:
        assert self.live is not None
        while not self._stopping.is_set():
            busy = False
            try:
                rep = self.live.step(self.now_ms())
                busy = len(rep.intervals) >= MAX_INTERVALS_PER_STEP
                self.live_error = None
            except InterruptedError:
                return
            except Exception as e:  # logged and counted; tried again, ingest goes on
                if self._stopping.is_set():
                    return
                self.live_errors += 1
                self.live_error = f"{type(e).__name__}: {e}"
                log.exception("live aggregation step failed")
                self._stopping.wait(30.0)
                continue
            if not busy:
                self._stopping.wait(tick)

    def publish_bi(self) -> dict[str, Any] | None:
        """The live occupancy and the retained BI state (:mod:`heatmap.aggregator.publish`);
        a failure is logged and counted, never raised. Returns the occupancy estimate."""
        assert self.live is not None and self.bi is not None
        p: dict[str, Any] | None = None
        try:
            if self._occ_conn is None:
                self._occ_conn = store_db.connect(self.cfg.db, readonly=True)
            self._occ_conn.commit()  # a fresh read
            p = occupancy_payload(self._occ_conn, self.live.plan, self.now_ms(), self.cfg.k)
        except Exception as e:  # a side output: logged and counted, the loop goes on
            self.occupancy_errors += 1
            log.warning("occupancy not estimated: %s: %s", type(e).__name__, e)
        if self._occ_conn is not None:
            self.bi.tick(self._occ_conn, self.now_ms(), p)
        return p

    def _on_ha_status(self, payload: bytes) -> None:
        if self.bi is not None and ha_discovery.is_ha_online(payload):
            log.info("Home Assistant is online: discovery goes out again")
            self.bi.ha_online()

    def live_status(self) -> dict[str, Any] | None:
        if self.live is None:
            return None
        wm = self.live.watermark_ms
        return {
            "watermark_ms": wm,
            "lag_s": None if wm is None else round(max(self.now_ms() - wm, 0) / 1000, 1),
            "cpu_s": round(self.live.cpu_s_total, 2),
            "periods_written": self.live.periods_written,
            "errors": self.live_errors,
            "error": self.live_error,
            "occupancy_errors": self.occupancy_errors,
            "late_after_close": self.live.late_after_close,
        }

    # ---------------------------------------------------------------- retention

    def start_retention(self) -> bool:
        """Start the retention job in the background unless one is running."""
        if self._job is not None and self._job.is_alive():
            return False
        self._job = threading.Thread(target=self.run_retention, name="retention", daemon=True)
        self._job.start()
        return True

    def run_retention(self) -> RetentionReport | None:
        now = self.now_ms()

        def execute(step: retention.Step) -> Any:
            if self._stopping.is_set():
                raise InterruptedError("the aggregator is stopping")
            return self.ingest.submit(step).result(timeout=JOB_STEP_TIMEOUT_S)

        try:
            rep = retention.run_steps(execute, now, self.cfg.retention, aggregate=self.live is None)
        except InterruptedError:
            return None  # every step commits on its own: the next run finishes the job
        except Exception as e:  # reported in the log and the status; ingest goes on
            log.exception("retention job failed")
            self.retention_error = e
            return None
        self.last_retention, self.last_retention_ms = rep, now
        self.retention_error = None
        log.info(
            "retention: %d hour(s) aggregated, %d passerby and %d expired observations deleted",
            len(rep.hours_aggregated),
            rep.passerby_obs,
            rep.expired_obs,
        )
        return rep

    # ---------------------------------------------------------------- status

    def status(self, state: str = "online") -> dict[str, Any]:
        snap = self.ingest.snapshot()
        now = self.now_ms()
        t = time.monotonic()
        db = Path(self.cfg.db)
        wal = Path(str(db) + "-wal")
        p = aggregator_status.status_payload(
            aggregator_status.StatusInputs(
                now_ms=now,
                version=__version__,
                uptime_s=t - self.started,
                stats=snap.stats,
                previous=self._prev,
                window_s=t - self._prev_t,
                rejects=snap.rejects,
                nodes=aggregator_status.node_states(
                    snap.publishers,
                    snap.node_status,
                    self.cfg.plan_nodes,
                    now,
                    self.cfg.offline_after_s,
                ),
                queue_depth=self.ingest.queue_depth,
                db_bytes=db.stat().st_size if db.exists() else 0,
                wal_bytes=wal.stat().st_size if wal.exists() else 0,
                schema_version=db_migrations.LATEST,
                retention_hours=self.cfg.retention.retention_hours,
                retention=self.last_retention,
                retention_ran_ms=self.last_retention_ms,
                retention_error=None if self.retention_error is None else str(self.retention_error),
                mqtt={
                    "publish_refused": self._pub.refused,
                    "publish_dropped": self._pub.dropped,
                    "subscriptions_refused": len(self.ingest.refused_subscriptions),
                },
                live=self.live_status(),
                bi=None if self.bi is None else self.bi.status(),
            ),
            state,
        )
        self._prev, self._prev_t = snap.stats, t
        return p

    def publish_status(self, state: str = "online") -> dict[str, Any]:
        p = self.status(state)
        payloads.validate("aggregator_status", p)
        self._pub.publish(self.status_topic, payloads.encode(p), retain=True)
        return p
