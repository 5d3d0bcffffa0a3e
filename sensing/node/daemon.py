"""The node daemon (``footfall node``): sources → pipeline → batches → spool → broker.

A thin composition root over the node's parts, with one rule for state: only the
main loop touches it. Reader threads put what the sources produce on a bounded
inbox; paho's network thread puts connection events and PUBACKs on the link's
queue; the main loop takes both, so the pipeline, batchers, spool and counters
need no locks. What the sources produce becomes batches in the spool through the
node's streams (:mod:`sensing.node.streams`).

Delivery: a batch gets its ``seq`` and is written to the spool (fsync'd) when it
closes, is handed to the link from the spool in order (:mod:`sensing.node.delivery`),
and is deleted from the spool only when the aggregator's retained acknowledgement
says the store database has it (:mod:`sensing.node.ack_watch`; with ``[spool]
keep_until_stored = false``, on its PUBACK): a broker crash, an outage or a ``kill
-9`` loses nothing that was spooled. Capture-file sources also store a cursor with
each batch, so a killed replay resumes after its last spooled batch.

Opt-out: the store-wide list (retained on the broker) is applied by the main loop to the
pipeline's list in place before the next frame (:class:`~sensing.node.ack_watch.FromAggregator`),
and its copy at the next start; it needs the store's ``lists.key`` in the state directory.

Time: frames are refused (before they are pseudonymized, counted ``clock_unsynced``)
while the clock is not synchronized, unless ``[clock] require_sync = false``; a live
node's key never rolls on an unsynchronized clock (:mod:`sensing.node.clock_gate`).

Shutdown (SIGTERM/SIGINT): stop the sources, batch what was read, spool it,
try to deliver for ``shutdown_grace_s``, publish ``offline``, exit; what was not
acknowledged stays in the spool for the next start. Under systemd it reports
READY, pings the watchdog from the main loop, and says STOPPING.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.errors import AllDroppedError, BrokerError, CaptureError, FootfallError
from sensing.capture.channel_plan import ChannelHopper, IwRadio, Radio
from sensing.node import log as node_log
from sensing.node import status as node_status
from sensing.node.ack_watch import FromAggregator
from sensing.node.clock_gate import ClockGate
from sensing.node.clock_sync import ClockProbe, KernelClock
from sensing.node.config import NodeConfig
from sensing.node.delivery import Delivery
from sensing.node.inbox import Inbox, SourceEnded
from sensing.node.pipeline import NodePipeline
from sensing.node.sources import (
    CaptureSource,
    GpioBeamSource,
    LiveBleSource,
    LiveWifiSource,
    SerialBoardSource,
    Source,
    UartReplaySource,
    pin_factory,
)
from sensing.node.spool import Spool, time_seq_base
from sensing.node.streams import Streams
from sensing.node.total_loss import TotalLoss, explain, problems
from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.privacy.store_optout import STORE_OPTOUT_FILE, replay_optout
from sensing.runtime.mqtt_link import LinkEvent, MqttLink
from sensing.runtime.process_memory import peak_rss_mib
from sensing.runtime.systemd_notify import Notifier
from sensing.wire import payloads, topics

TICK_S = 0.05
TICK_PIPELINE_S = 5.0
"""how often a live node's pipeline does its housekeeping (key roll, opt-out reload)"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RunSummary:
    """What one run of the daemon did."""

    frames: int = 0
    observations: int = 0
    batches: dict[str, int] = field(default_factory=dict)
    """batches spooled in this run, per stream"""
    last_seq: dict[str, int | None] = field(default_factory=dict)
    published: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    boards: dict[str, dict[str, int]] = field(default_factory=dict)
    spool_depth: int = 0
    seconds: float = 0.0
    state: str = "stopped"
    """done (every file read and acknowledged), stopped (signal), failed"""
    problems: tuple[str, ...] = ()
    """reasons that dropped everything the run took (:mod:`sensing.node.total_loss`)"""


class NodeDaemon:
    """Runs one node as configured.

    Parameters
    ----------
    cfg
        the node's configuration.
    clock
        clock synchronization probe (default: the kernel's, via adjtimex).
    radio
        the monitor radio the channel plan drives (default: ``iw`` on
        ``wifi.interface``); only used with a live Wi-Fi interface.
    sources
        replace the configured sources (tests, embedding).
    notifier
        systemd notifications (default: from the environment).
    """

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        clock: ClockProbe | None = None,
        radio: Radio | None = None,
        sources: list[Source] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = node_log.get()
        self.clock_gate = ClockGate(clock or KernelClock(), cfg.require_sync, self.log)
        self.notifier = notifier or Notifier()
        self._radio = radio
        self._given_sources = sources
        self._stop = threading.Event()
        self.inbox = Inbox(self._stop, self.log)
        self.delivery: Delivery | None = None
        self._started = time.monotonic()
        self._done_sources: set[int] = set()
        self._errors: list[str] = []
        self._connect_failures_logged = 0
        self.summary = RunSummary()
        self.total_loss = TotalLoss()
        self._all_dropped: str | None = None
        """why a finished replay dropped everything it took (it then fails)"""
        self.sources: list[Source] = []
        self.hopper: ChannelHopper | None = None
        self.spool: Spool | None = None
        self.link: MqttLink | None = None
        self.inbound: FromAggregator | None = None

    # ------------------------------------------------------------------ public

    def request_stop(self) -> None:
        """Ask the main loop to shut down (signal handlers, other threads)."""
        self._stop.set()

    def run(self, install_signals: bool = True) -> RunSummary:
        """Run until stopped (or, with capture files, until they are delivered)."""
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        try:
            self._open()
            self.notifier.ready("running")
            self._loop()
        except BaseException:
            self.summary.state = "failed"
            raise
        finally:
            self._shutdown()
        if self._errors:
            raise CaptureError("; ".join(self._errors))
        if self._all_dropped is not None:
            raise AllDroppedError(self._all_dropped)
        return self.summary

    # ------------------------------------------------------------------ setup

    def _open(self) -> None:
        cfg = self.cfg
        kf = KeyFile(cfg.keyfile)
        ring, sched = kf.load()
        self.ring = ring
        # a live node persists every key roll (forward secrecy), honours the opt-out
        # list in its state directory and learns the store's equipment; a replay
        # must not overwrite the store key with a later epoch
        if cfg.live:
            pseudo = Pseudonymizer(ring, sched, kf, clock_ms=_now_ms)
            self.pipe = NodePipeline.for_node(pseudo, cfg.filters, cfg.state_dir)
        else:  # a replay honours the store's lists when the state directory has its key
            optout = replay_optout(cfg.state_dir)
            self.pipe = NodePipeline(Pseudonymizer(ring, sched), cfg.filters, optout=optout)
        # a live node's fresh spool numbers from the time: a re-imaged node's batches
        # are a new seq namespace, not reused seqs (sensing.node.spool)
        self.spool = Spool(
            cfg.spool_path,
            cfg.spool_max_batches,
            cfg.spool_max_bytes,
            seq_base=time_seq_base if cfg.live else None,
        )
        self.streams = Streams(
            cfg, self.pipe, ring, self.spool, self.clock_gate, self.log, self.summary.batches
        )
        self.status_topic = topics.node_status_topic(cfg.store, cfg.node)
        self.clock_gate.check()
        self.sources = self._given_sources or self._build_sources()
        for src in self.sources:
            self.streams.add(src)
        self.link = MqttLink(
            cfg.broker.address(),
            f"footfall-node-{cfg.store}-{cfg.node}",
            will=(self.status_topic, node_status.OFFLINE_WILL),
            keepalive_s=cfg.broker.keepalive_s,
            reconnect_max_s=cfg.broker.reconnect_max_s,
        )
        self.delivery = Delivery(
            self.spool, self.link, keep=cfg.keep_until_stored, ack_timeout_s=cfg.ack_timeout_s
        )
        self.streams.delivery = self.delivery
        keep_acks = cfg.keep_until_stored and cfg.broker.mqtt5
        self.inbound = FromAggregator(
            self.link.client, cfg.store, cfg.node, list(self.streams.by_name), keep_acks,
            self.pipe.optout, cfg.state_dir / STORE_OPTOUT_FILE,
        )  # fmt: skip
        self.acks = self.inbound.acks
        if cfg.keep_until_stored and not keep_acks:  # the demo's 3.1.1 broker: no acks
            self.delivery.stop_keeping()
        self.link.start()
        if cfg.wifi.interface:
            self.hopper = ChannelHopper(
                self._radio or IwRadio(cfg.wifi.interface), cfg.wifi.plan, self._hop_error
            )
            self.hopper.start()
        for i, src in enumerate(self.sources):
            skip = self.spool.cursor(src.name) if src.resumable else 0
            self.streams.resume(src, skip)
            self.inbox.start(i, src, skip)
        synced = bool(self.clock_gate.state and self.clock_gate.state.synced)
        node_log.event(self.log, 20, "started", node=cfg.node, store=cfg.store,
                       broker=str(cfg.broker.address()), sources=[s.name for s in self.sources],
                       spool_depth=self.spool.depth, clock_synced=synced)  # fmt: skip

    def _build_sources(self) -> list[Source]:
        cfg = self.cfg
        out: list[Source] = []
        if cfg.file_sources:
            out.append(CaptureSource(cfg.file_sources, cfg.realtime, cfg.speed))
        if cfg.wifi.interface:
            out.append(LiveWifiSource(cfg.wifi.interface))
        if cfg.ble.adapter:
            out.append(LiveBleSource(cfg.ble.adapter))
        for b in cfg.boards:
            if b.replay is not None:
                out.append(UartReplaySource(b.replay, b.name))
            else:
                out.append(SerialBoardSource(str(b.port), b.name, b.baudrate))
        for bm in cfg.beams:
            out.append(
                GpioBeamSource(bm.door, bm.pin_a, bm.pin_b, pin_factory(bm.pin_factory), bm.pull_up)
            )
        return out

    # ------------------------------------------------------------------ main loop

    def _loop(self) -> None:
        next_status = next_tick = 0.0
        next_clock = time.monotonic() + self.cfg.clock_check_s
        live = self.cfg.live
        assert self.delivery is not None
        while not self._stop.is_set():
            self._take_acks()  # and the store-wide opt-out list, from the next frame on
            self.inbox.take(self._handle, TICK_S)
            self._link_events()
            self.delivery.pump()
            now = time.monotonic()
            self.streams.age_flush(now)
            if now >= next_clock:
                next_clock = now + self.cfg.clock_check_s
                self.clock_gate.check()
            if live and now >= next_tick and not self.clock_gate.refuse:
                # key roll at the roll hour, opt-out reloads, learner hours; never on an
                # unsynchronized clock (a clock in the future would roll the key for good)
                next_tick = now + TICK_PIPELINE_S
                self.pipe.tick(_now_ms())
            if now >= next_status and self.link is not None and self.link.connected:
                next_status = now + self.cfg.status_interval_s
                self._publish_status("online")
            self.notifier.watchdog()
            if self._errors:
                return
            if self._files_finished():
                self._finish()
                return

    def _handle(self, index: int, payload: Any) -> None:
        src = self.sources[index]
        if isinstance(payload, SourceEnded):
            self._done_sources.add(index)
            if payload.error:
                self._errors.append(f"{src.name}: {payload.error}")
            return
        self.streams.take(src, payload)

    # ------------------------------------------------------------------ delivery

    def _take_acks(self) -> None:
        """What the aggregator sent: the acknowledgements (delete what the store
        database has) and the store-wide opt-out list (:class:`FromAggregator`)."""
        if self.inbound is not None and self.delivery is not None:
            self.inbound.take(self.delivery, self.log)

    def _link_events(self, block_s: float = 0.0) -> None:
        """PUBACKs (the delivery deletes their batches) and connection events."""
        assert self.delivery is not None
        self.delivery.events(self._on_link_event, block_s)

    def _on_link_event(self, ev: LinkEvent) -> None:
        assert self.link is not None and self.spool is not None
        if ev.kind == "connected":
            node_log.event(self.log, 20, "connected", broker=str(self.cfg.broker.address()),
                           spool_depth=self.spool.depth)  # fmt: skip
            self._connect_failures_logged = 0
            if self.inbound is not None:
                self.inbound.subscribe()
            self._publish_status("online")
        elif ev.kind == "disconnected":
            node_log.event(self.log, 30, "disconnected", reason=ev.detail,
                           spool_depth=self.spool.depth)  # fmt: skip
        elif ev.kind == "connect_failed":
            n = self.link.failures
            if n >= self._connect_failures_logged * 2:  # attempts 1, 2, 4, 8…
                self._connect_failures_logged = n
                node_log.event(self.log, 30, "broker_unreachable", attempts=n,
                               reason=ev.detail, spool_depth=self.spool.depth)  # fmt: skip
        elif ev.kind == "refused":  # MQTT 5 PUBACK >= 0x80: e.g. a topic not in the ACL
            assert self.delivery is not None
            node_log.event(self.log, 40, "publish_refused", refused=self.delivery.refused,
                           detail=self.delivery.last_refusal)  # fmt: skip

    def _publish_status(self, state: str) -> int | None:
        if self.link is None or not self.link.connected:
            return None
        counters = self._counters()
        st = node_status.build(
            state,
            time.monotonic() - self._started,
            counters,
            self.clock_gate.state,
            self.cfg.require_sync,
            self._problems(state, counters),
        )
        return self.link.publish(self.status_topic, payloads.encode(st), retain=True)

    def _problems(self, state: str, c: node_status.NodeCounters) -> tuple[str, ...]:
        """Drops that drop everything: over the interval since the last status, or,
        for a finished replay's ``done``, over the whole run (logged when they change)."""
        taken, kept = self.streams.taken, self.streams.kept
        before = self.total_loss.problems
        now = self.total_loss.update(taken, kept, c.dropped)
        if state == "done":
            now = self.summary.problems = problems(taken, kept, c.dropped)
            if now:
                self._all_dropped = explain(c.dropped, taken)
        if now != before:
            if now:
                node_log.event(self.log, 40, "dropping_everything", reasons=list(now),
                               detail=explain(c.dropped, taken))  # fmt: skip
            else:
                node_log.event(self.log, 20, "dropping_everything_ended", reasons=list(before))
        return now

    def _counters(self) -> node_status.NodeCounters:
        assert self.spool is not None
        sp = self.spool.stats()
        dropped: Counter[str] = Counter(self.pipe.rejects())
        dropped.update(self.streams.dropped)
        dropped["source_overflow"] += self.inbox.overflow
        dropped["spool_overflow_batches"] += sp.dropped_batches
        dropped["spool_overflow_items"] += sp.dropped_items
        if self.delivery is not None:
            dropped["publish_refused_batches"] += self.delivery.refused
        return node_status.NodeCounters(
            frames=self.pipe.frames,
            observations=self.pipe.emitted,
            published=self.delivery.published if self.delivery is not None else 0,
            unconfirmed=self.delivery.unconfirmed if self.delivery is not None else 0,
            key_epoch=self.ring.epoch,
            last_seq=self.spool.last_seq("obs"),
            spool_depth=sp.depth,
            spool_bytes=sp.bytes,
            dropped=dropped,
            radio=self.hopper.status() if self.hopper is not None else None,
            boards=self.streams.boards(),
            chaining=self.pipe.chain_stats() or None,
        )

    def _wait_delivered(
        self, timeout_s: float, mid: int | None = None, stored: bool = False
    ) -> bool:
        """Deliver until the broker acknowledged every spooled batch and ``mid`` is
        acknowledged; with ``stored``, once the aggregator is heard acknowledging, until
        it acknowledged every batch too (the spool is empty)."""
        assert self.delivery is not None and self.inbound is not None
        d, inb = self.delivery, self.inbound

        def each() -> None:
            self.notifier.watchdog()
            self._take_acks()

        ack = (lambda: inb.acknowledging(d)) if stored else None
        return d.wait(timeout_s, self._on_link_event, mid, each, stored=ack)

    # ------------------------------------------------------------------ radio

    def _hop_error(self, channel: int, e: CaptureError) -> None:
        if self.hopper is not None and self.hopper.errors[channel] == 1:
            node_log.event(self.log, 30, "channel_hop_failed", channel=channel, error=str(e))

    # ------------------------------------------------------------------ ending

    def _files_finished(self) -> bool:
        return (
            self.cfg.exit_when_done
            and not self.cfg.live
            and len(self._done_sources) == len(self.sources)
            and self.inbox.empty()
        )

    def _finish(self) -> None:
        """Capture files all read: flush, deliver everything, publish ``done``."""
        assert self.spool is not None
        self.streams.flush_all()
        self.notifier.status("delivering spooled batches")
        # once an aggregator is heard acknowledging, wait until it has everything (with
        # none, what the broker acknowledged stays spooled for the next run to confirm)
        if not self._wait_delivered(self.cfg.drain_timeout_s, stored=True):
            assert self.delivery is not None
            raise self.delivery.not_delivered(
                str(self.cfg.broker.address()), self.cfg.drain_timeout_s
            )
        # with nothing to deliver (e.g. every frame refused) the link may not be up yet
        if self.link is not None:
            self.link.wait_connected(self.cfg.drain_timeout_s)
        # handle the pending "connected" event (its "online" status) first: else
        # "online" could go out after "done" and stay the retained status
        self._link_events()
        mid = self._publish_status("done")
        if mid is None or not self._wait_delivered(self.cfg.drain_timeout_s, mid):
            raise BrokerError("the broker did not acknowledge the final status")
        self.summary.state = "done"

    def _shutdown(self) -> None:
        self._stop.set()
        self.notifier.stopping()
        for src in self.sources:
            with contextlib.suppress(Exception):
                src.close()
        if self.hopper is not None:
            self.hopper.stop()
        if self.spool is not None and self.link is not None and hasattr(self, "pipe"):
            if self.summary.state != "done":
                self.inbox.drain(self._handle)
                with contextlib.suppress(FootfallError):
                    self.streams.flush_all()
                with contextlib.suppress(FootfallError):
                    self._wait_delivered(self.cfg.shutdown_grace_s)
                    mid = self._publish_status("offline")
                    if mid is not None:
                        self._wait_delivered(min(self.cfg.shutdown_grace_s, 2.0), mid)
            self._fill_summary()
            self.link.stop()
            self.spool.close()
        if hasattr(self, "ring"):
            self.ring.erase()
        self.notifier.close()
        rss = peak_rss_mib()
        node_log.event(self.log, 20, "stopped", state=self.summary.state,
                       frames=self.summary.frames, observations=self.summary.observations,
                       spool_depth=self.summary.spool_depth, seconds=round(self.summary.seconds, 3),
                       rss_peak_mb=None if rss is None else round(rss, 1))  # fmt: skip

    def _fill_summary(self) -> None:
        assert self.spool is not None
        s = self.summary
        s.frames, s.observations = self.pipe.frames, self.pipe.emitted
        s.rejects = self.pipe.rejects()
        s.last_seq = {name: self.spool.last_seq(name) for name in self.streams.by_name}
        s.boards = {k: dict(v) for k, v in self._counters().boards.items()}
        s.spool_depth = self.spool.depth
        s.published = self.delivery.published if self.delivery is not None else 0
        if self.inbound is not None and self.inbound.optout is not None:
            s.store_optout = self.inbound.optout.status()
        s.seconds = time.monotonic() - self._started


def run_node(cfg: NodeConfig, **kw: Any) -> RunSummary:
    """Run a node until it stops; see :class:`NodeDaemon`."""
    return NodeDaemon(cfg, **kw).run()
