"""What a node does with every captured frame: decode → filter → pseudonymize.

Pure core, no network: records in, :class:`~sensing.wire.observation.Observation` out.
Raw addresses exist only inside :meth:`NodePipeline.process` (and the
``process_probe`` / ``process_advert`` entry points of live sources that decode
elsewhere).

Order of the filters, each counted in :meth:`NodePipeline.rejects` by reason:

1. decode (``wifi_*`` / ``ble_*`` decoder rejects, ``unsupported_linktype``);
2. opt-out (``opted_out``): before anything else sees the address
   (:mod:`sensing.privacy.optout`);
3. the store's own equipment (``infrastructure_configured``,
   ``infrastructure_learned``; :mod:`sensing.capture.infrastructure_filter`);
4. signal: no RSSI reported (``no_rssi``), weaker than ``min_rssi_dbm`` (``weak``);
5. the pseudonym epoch: the frame's key is already erased (``stale_epoch``) or
   it is stamped too far ahead of the wall clock (``future_epoch``).

Then, with ``NodeFilters.chain_addresses`` (``[capture] chain_addresses``, on by
default), the frame goes to the chainer (:mod:`sensing.capture.address_chain`, which
decides from the frame's sequence number, IE bytes, timing and RSSI). The
observation keeps the frame's own ``pid`` (localization needs the pseudonym every
node derives from the address) and carries ``chain``, the ``pid`` of its chain's head,
when that is another address: the aggregator links the addresses of one chain from
it (:mod:`heatmap.aggregator.rf_devices`). The chainer keeps pseudonyms, never raw
addresses; the chains are
erased whenever the key rolls (by a frame of a newer epoch or by
:meth:`NodePipeline.tick`), so no chain spans two epochs.
:meth:`NodePipeline.chain_stats` counts chains and links.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import ConfigError
from sensing.capture.address_chain import AddressChainer, ble_content
from sensing.capture.capture_file import Record
from sensing.capture.decoded import BleAddrType, BleAdvert, WifiProbe
from sensing.capture.infrastructure_filter import InfrastructureFilter
from sensing.privacy.optout import ListKey, OptOutList, node_lists
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.wire.observation import KIND_SHIFT, Flag, Observation

__all__ = [
    "BLE_LINKTYPES",
    "INFRASTRUCTURE_FILE",
    "WIFI_LINKTYPES",
    "NodeFilters",
    "NodePipeline",
]

log = logging.getLogger(__name__)

# plain ints on the hot path: IntFlag arithmetic costs ~3 µs per frame
_RANDOMIZED, _DIRECTED = int(Flag.RANDOMIZED), int(Flag.DIRECTED)
_BLE_RANDOM, _CONNECTABLE = int(Flag.BLE_RANDOM), int(Flag.CONNECTABLE)
_PUBLIC = BleAddrType.PUBLIC
_PRIVATE = (BleAddrType.RESOLVABLE, BleAddrType.NON_RESOLVABLE)

WIFI_LINKTYPES = frozenset({105, 127})
BLE_LINKTYPES = frozenset({187, 201, 251, 254, 256, 272})  # LL, Nordic, HCI/btsnoop
INFRASTRUCTURE_FILE = "infrastructure.json"


@dataclass(frozen=True, slots=True)
class NodeFilters:
    """What a node drops besides undecodable frames (all of it counted)."""

    min_rssi_dbm: int = -95
    """frames weaker than this (dBm) are dropped (counted as ``weak``)"""
    infrastructure: tuple[str, ...] = ()
    """the store's own equipment: "aa:bb:cc:dd:ee:ff", vendor prefix "aa:bb:cc:*" or
    "tag:<32 hex>" (see :mod:`sensing.capture.infrastructure_filter`)"""
    learn_infrastructure: bool = True
    """learn always-on (non-randomized) addresses as equipment"""
    learn_hours: int = 48
    """window of the learner, hours"""
    learn_fraction: float = 0.75
    """fraction of the window's hours an address must be heard in to be learned"""
    chain_addresses: bool = True
    """chain the rotating addresses of one device within the epoch
    (:mod:`sensing.capture.address_chain`) and publish, beside each frame's own pseudonym,
    its chain head's pseudonym (the observation's ``chain``)"""


class NodePipeline:
    """Turns capture records into observations, counting everything it drops.

    Parameters
    ----------
    pseudonymizer
        the node's keyed pseudonymizer
    filters
        signal and equipment filters (defaults: ``NodeFilters()``)
    optout
        opted-out addresses (None: nobody opted out)
    infrastructure
        a prepared equipment filter; by default one is built from ``filters``
        with ``list_key`` (or the opt-out list's key, or a key of this process)

    A live node builds it with :meth:`for_node`, which reads the opt-out list and
    the learned equipment from its state directory, and calls :meth:`tick` every
    few seconds.
    """

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        filters: NodeFilters | None = None,
        *,
        optout: OptOutList | None = None,
        infrastructure: InfrastructureFilter | None = None,
        list_key: ListKey | None = None,
    ) -> None:
        from sensing.capture.ble_decode import BleDecoder
        from sensing.capture.wifi_decode import WifiDecoder

        self.pseudo = pseudonymizer
        self.filters = f = filters or NodeFilters()
        self.wifi = WifiDecoder()
        self.ble = BleDecoder()
        self.optout = optout
        key = list_key or (optout.key if optout is not None else None)
        if infrastructure is None and (f.infrastructure or f.learn_infrastructure):
            infrastructure = InfrastructureFilter(
                key or ListKey.ephemeral(),
                f.infrastructure,
                learn=f.learn_infrastructure,
                hours=f.learn_hours,
                fraction=f.learn_fraction,
            )
        self.infra = infrastructure
        self._optout_tags: set[bytes] = optout.tags if optout is not None else set()
        self._optout_tag = optout.key.tag if optout is not None else None
        # one HMAC per frame serves both lists when they share a key
        self._share_tag = (
            optout is not None and infrastructure is not None and optout.key is infrastructure.key
        )
        self.dropped: Counter[str] = Counter()
        """frames decoded but not published, by reason (see the module doc)"""
        self.notes: Counter[str] = Counter()
        """events that are not frames (e.g. ``optout_reload_error``)"""
        self.frames = 0
        """records (or live adverts) offered to the pipeline"""
        self.emitted = 0
        """observations produced"""
        self.chainer: AddressChainer[str] | None = AddressChainer() if f.chain_addresses else None
        """links a device's rotating addresses within the epoch (None: chaining off)"""
        self._chain_epoch: int | None = None

    @classmethod
    def for_node(
        cls, pseudonymizer: Pseudonymizer, filters: NodeFilters | None, state_dir: Path
    ) -> NodePipeline:
        """A pipeline wired to a node's state directory: ``lists.key`` (made if
        missing), ``optout.json`` (reloaded by :meth:`tick` when it changes) and
        ``infrastructure.json`` (learned equipment, tags only)."""
        f = filters or NodeFilters()
        key, optout = node_lists(state_dir)
        infra = None
        if f.infrastructure or f.learn_infrastructure:
            infra = InfrastructureFilter(
                key,
                f.infrastructure,
                learn=f.learn_infrastructure,
                hours=f.learn_hours,
                fraction=f.learn_fraction,
                state_path=state_dir / INFRASTRUCTURE_FILE,
            )
        return cls(pseudonymizer, f, optout=optout, infrastructure=infra, list_key=key)

    def rejects(self) -> dict[str, int]:
        """Everything not published, by reason: decoder rejects and filter drops."""
        out: Counter[str] = Counter()
        out.update({f"wifi_{k}": v for k, v in self.wifi.rejects.items()})
        out.update({f"ble_{k}": v for k, v in self.ble.rejects.items()})
        out.update(self.dropped)
        out["stale_epoch"] += self.pseudo.stale
        out["future_epoch"] += self.pseudo.future
        return {k: v for k, v in sorted(out.items()) if v}

    def chain_stats(self) -> dict[str, int]:
        """Address chaining, for the node's status: ``chains`` opened, ``chain_links``
        (addresses published with an earlier address's pseudonym as their ``chain``),
        ``chains_open`` now, ``chains_expired`` and ``chains_evicted`` (memory cap);
        empty when off."""
        c = self.chainer
        if c is None:
            return {}
        return {
            "chains": c.chains,
            "chain_links": c.links,
            "chains_open": c.open_chains,
            "chains_expired": c.expired,
            "chains_evicted": c.evicted,
        }

    def tick(self, now_ms: int) -> None:
        """Housekeeping by the wall clock (Unix ms), every few seconds, from the
        thread that calls :meth:`process`: roll the key at the roll hour even if
        no frame arrives (erasing the address chains with it), pick up ``footfall
        optout`` changes, close learner hours."""
        self.pseudo.tick(now_ms)
        if self.chainer is not None and self.pseudo.ring.epoch != self._chain_epoch:
            self.chainer.reset()
            self._chain_epoch = self.pseudo.ring.epoch
        if self.optout is not None:
            try:
                self.optout.refresh()
            except ConfigError as e:  # keep the previous list, say so
                self.notes["optout_reload_error"] += 1
                log.warning("opt-out list not reloaded, the previous one stays: %s", e)
        if self.infra is not None:
            self.infra.tick(now_ms)

    def process(self, rec: Record) -> Observation | None:
        """Decode one capture record and turn it into an observation (or count why not)."""
        self.frames += 1
        t_ms = rec.t_ns // 1_000_000
        if rec.linktype in WIFI_LINKTYPES:
            p = self.wifi.decode(rec.linktype, rec.data, t_ms)
            if p is None:
                return None
            flags = (_RANDOMIZED if p.randomized else 0) | (_DIRECTED if p.directed else 0)
            return self._admit(
                t_ms, p.addr, p.rssi, p.band, flags, p.ie_sig, p.randomized, p.seq, p.freq_mhz
            )
        if rec.linktype in BLE_LINKTYPES:
            a = self.ble.decode(rec.linktype, rec.data, t_ms)
            if a is None:
                return None
            return self._advert(a)
        self.dropped["unsupported_linktype"] += 1
        return None

    def process_probe(self, p: WifiProbe) -> Observation | None:
        """A probe request decoded elsewhere (counted as one frame)."""
        self.frames += 1
        flags = (_RANDOMIZED if p.randomized else 0) | (_DIRECTED if p.directed else 0)
        return self._admit(
            p.t_ms, p.addr, p.rssi, p.band, flags, p.ie_sig, p.randomized, p.seq, p.freq_mhz
        )

    def process_advert(self, a: BleAdvert) -> Observation | None:
        """A BLE advert normalized elsewhere, e.g. by :mod:`sensing.capture.live_ble`."""
        self.frames += 1
        return self._advert(a)

    def _advert(self, a: BleAdvert) -> Observation | None:
        flags = int(a.kind) << KIND_SHIFT
        if a.addr_type is not _PUBLIC:
            flags |= _BLE_RANDOM
        private = a.addr_type in _PRIVATE
        if private:
            flags |= _RANDOMIZED
        if a.pdu_type in (0, 1):  # ADV_IND, ADV_DIRECT_IND
            flags |= _CONNECTABLE
        content = ble_content(a.kind, a.addr_type, a.pdu_type) if self.chainer else b""
        return self._admit(a.t_ms, a.addr, a.rssi, "ble", flags, b"", private, -1, None, content)

    def _admit(
        self,
        t_ms: int,
        addr: bytes,
        rssi: int | None,
        band: str,
        flags: int,
        layout: bytes,
        randomized: bool,
        seq: int,
        freq: int | None,
        ble: bytes = b"",
    ) -> Observation | None:
        tag = None
        if self._optout_tags:
            tag = self._optout_tag(addr)  # type: ignore[misc]
            if tag in self._optout_tags:
                self.dropped["opted_out"] += 1
                return None
        infra = self.infra
        if infra is not None:
            why = infra.classify(addr, tag if self._share_tag else None, randomized, t_ms)
            if why is not None:
                self.dropped[why] += 1
                return None
        if rssi is None:
            self.dropped["no_rssi"] += 1
            return None
        if rssi < self.filters.min_rssi_dbm:
            self.dropped["weak"] += 1
            return None
        epoch = self.pseudo.epoch_for(t_ms)
        if epoch is None:
            return None
        ring = self.pseudo.ring
        pid = ring.pid(addr)
        chain = None
        chainer = self.chainer
        if chainer is not None:
            if epoch != self._chain_epoch:  # the key rolled: yesterday's chains go with it
                chainer.reset()
                self._chain_epoch = epoch
            if ble:
                head = chainer.ble(t_ms, pid, rssi, ble, randomized)
            else:
                head = chainer.wifi(t_ms, pid, seq, rssi, layout, randomized, freq or 0)
            if head != pid:
                chain = head
        self.emitted += 1
        sig = ring.sig(layout) if layout else None
        return Observation(t_ms, pid, rssi, band, flags, sig, chain)
