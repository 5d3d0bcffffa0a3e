"""Chaining one device's rotating addresses on the node, within the epoch.

Phones draw a new random (locally administered) address every few scans (Wi-Fi)
or every ~15 min (BLE), so a node that pseudonymizes each address on its own
counts one phone many times over. :class:`AddressChainer` decides, on the node,
from the raw frame fields a node alone sees (802.11 sequence numbers, IE bytes,
timing, RSSI), which new address continues an address heard shortly before, and
answers every frame with its chain's **representative** (the chain head, the
first address of the chain). It works on any per-address key (:data:`Key`): the
node passes each frame's ``pid`` and publishes the frame's own ``pid`` with the one
it gets back beside it as the row's ``chain`` when they differ
(:mod:`sensing.node.pipeline`), and the
chainer never holds a raw address, only pseudonyms of the current epoch (what the
node publishes anyway) and, per chain, an RSSI level, a sequence number and the
content key below. :meth:`AddressChainer.reset` erases every chain when the key
rolls (:class:`sensing.node.pipeline.NodePipeline` calls it), so no chain spans
two epochs and two days are never linked (the privacy model of DESIGN.md).

API
---
``AddressChainer(params=None)``
    one per node (per pipeline). Not thread-safe: call from the capture thread.
``chainer.wifi(t_ms, addr, seq, rssi, content, randomized, freq=0) -> Key``
    a probe request: 802.11 sequence number, RSSI (dBm or None), channel (MHz),
    ``content`` the frame's stable IE material
    (:attr:`~sensing.capture.decoded.WifiProbe.ie_sig`: element ids in order plus
    the exact bytes of the capability elements, never SSIDs, nothing that varies
    per frame). ``addr`` is the address's key (the node: its ``pid``; offline: the
    raw address). Returns the key of the chain's head, which the node publishes as
    the row's ``chain`` (when it is not ``addr`` itself).
``chainer.ble(t_ms, addr, rssi, content, private) -> Key``
    a BLE advert; ``content`` the advert's stable description (the node passes
    :func:`ble_content`: device kind, address type and PDU type; the decoder keeps
    no AD payload).
``chainer.reset()``
    erase every chain (epoch roll); counters stay.
``chainer.chains``, ``chainer.links``, ``chainer.expired``, ``chainer.evicted``,
``chainer.open_chains``
    chains opened, addresses linked into an existing chain, chains closed after
    ``idle_ms`` of silence, chains dropped by the ``max_chains`` cap, chains open now.
``sensing.capture.chain_capture.chain_capture(records, params=None) -> list[int]``
    offline: decode capture records (Wi-Fi and BLE) in the given order and label
    each with its chain (an int, equal labels = one chain); -1 for a record that
    did not decode. For scoring on labelled pcaps (``bench/chain_baccichet.py``).

How a new address is linked
---------------------------
A frame whose address is already in a chain extends that chain. A new
*randomized* address (Wi-Fi LA bit, BLE resolvable or non-resolvable private) is
compared with the open chains of the **same content** (exact bytes) and linked to
one when:

1. **sequence continuity** (Wi-Fi; Vanhoef et al. 2016, Martin et al. 2017): the
   802.11 sequence number is a forward step from the chain's last one no larger
   than ``seq_base + seq_rate × silence (s)`` (and ``seq_gap``), within
   ``seq_window_ms``, the RSSI within ``seq_rssi_db``, and (``seq_unique``) no
   other chain continues the counter as well. Phones that keep their counter
   across an address change (older Android and iOS) link over minutes; the
   chains are found through an index of their last sequence numbers;
2. **burst continuity** (Wi-Fi): no sequence continuity (recent iOS draws a new
   counter with each address, every channel or two of a scan), but the chain's
   last frame is at most ``burst_gap_ms`` old (the same scan burst), the RSSI within
   ``burst_rssi_db``, and of the two most recently heard chains of the content
   only this one qualifies (two phones of one model scanning at the same moment
   are left apart);
3. **rejoin** (Wi-Fi): the most recently heard chain of the content has been
   silent at least ``rejoin_min_ms`` (its burst is over) and at most
   ``rejoin_window_ms``, the RSSI is within ``rejoin_rssi_db`` of its level, and
   no other chain of the content was heard in that window (a rare IE
   fingerprint, or a quiet hour);
4. **rotation** (BLE, decided late): a new private address is published under
   its own pseudonym for its first ``ble_decide_ms``; at its first advert after
   that, it joins the one chain of its content whose last advert came at most
   ``ble_gap_ms`` before the new address's first and that has **not been heard
   since**, with an RSSI level within ``ble_rssi_db`` (an address that rotated
   stops for good; the devices still advertising, and the ones that only faded
   for a moment, are not it). None or several such chains: no link. From then
   on its adverts carry the old chain's head.

RSSI levels are compared on one channel only (a chain keeps the level of the
channel it was last heard on; frames on another channel skip the RSSI test).

Global (non-randomized) addresses are their own chain and are never linked: they
are already one device.

Bounded memory: a chain closes after ``idle_ms`` without a frame, at most
``max_chains`` are open (the least recently heard is dropped beyond), and a
chain holds at most ``max_addrs`` addresses (beyond, a new address opens a new
chain). So memory is at most ``max_chains × max_addrs`` addresses.

What it cannot do
-----------------
It never links across epochs, by design. It cannot link a phone that draws a new
address *and* a new sequence counter between two bursts while other phones of the
same model are near (the rejoin rule refuses when the fingerprint is not unique):
on a node that hears one channel at a time that is most of today's iPhones. The
Wi-Fi content is the decoder's ``ie_sig``: the exact bytes of the capability
elements, the others by id, vendor elements by OUI and type only, so two models
that differ only in vendor element bytes look alike (on the labelled phones the
capability bytes already tell every model apart; the vendor bytes would need the
decoder to hand them over, since live sources pass decoded probes). Frames
arriving out of time order are chained in arrival order. BLE linking uses timing
and RSSI only (the decoder keeps no advertising payload), and the first
``ble_decide_ms`` of a rotated BLE address stay under a pseudonym of their own.

Chains are per node: a node that heard addresses X then Y publishes Y as
``pid(X)``, one that heard only Y publishes ``pid(Y)``; joining those is the
aggregator's cross-node work. And once a lone phone's chain breaks (a silence over
``rejoin_window_ms``, an RSSI jump), its next bursts see two chains of their content
in the window and are not rejoined until the older one ages out: the rule cannot
tell that from two phones of one model taking turns.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from sensing.capture.chain_params import ChainParams
from sensing.capture.chain_state import BUCKET_BITS as _BUCKET_BITS
from sensing.capture.chain_state import NO_RSSI as _NO_RSSI
from sensing.capture.chain_state import Chain as _Chain
from sensing.capture.chain_state import ChainGroup as _Group

__all__ = ["AddressChainer", "ChainParams", "Key", "ble_content"]

Key = TypeVar("Key", bytes, str)
"""what stands for an address: the address itself, or any per-address key of the
epoch (the node passes the address's ``pid``, so the chainer holds no raw address)"""


_BUCKETS = 4096 >> _BUCKET_BITS
_MOVE_MS = 1000
"""the expiry order is refreshed at most once a second per chain (cheap, 1 s slack)"""


class AddressChainer(Generic[Key]):
    """Links one device's rotating addresses within an epoch (see the module doc)."""

    def __init__(self, params: ChainParams | None = None) -> None:
        self.params = p = params or ChainParams()
        self._idle = p.idle_ms
        self._by_addr: dict[Key, _Chain] = {}
        """Wi-Fi addresses to their chains"""
        self._by_ble: dict[Key, _Chain] = {}
        """BLE addresses to their chains (another address space)"""
        self._recent: OrderedDict[int, _Chain] = OrderedDict()
        """open chains, least recently heard first within 1 s (key: id of the chain)"""
        self._wifi_groups: dict[bytes, _Group] = {}
        self._ble_groups: dict[bytes, _Group] = {}
        self._sweep_at = 0
        self.chains = 0
        """chains opened"""
        self.links = 0
        """new addresses linked into an existing chain"""
        self.expired = 0
        """chains closed after ``idle_ms`` of silence"""
        self.evicted = 0
        """chains dropped by the ``max_chains`` cap"""

    @property
    def open_chains(self) -> int:
        """Chains open now."""
        return len(self._recent)

    def reset(self) -> None:
        """Erase every chain and address (the epoch rolled); counters stay."""
        self._by_addr.clear()
        self._by_ble.clear()
        self._recent.clear()
        self._wifi_groups.clear()
        self._ble_groups.clear()
        self._sweep_at = 0

    def wifi(
        self,
        t_ms: int,
        addr: Key,
        seq: int,
        rssi: int | None,
        content: bytes,
        randomized: bool,
        freq: int = 0,
    ) -> Key:
        """The representative address of a probe request's chain (see the module doc).

        ``freq``: the channel the frame was heard on (MHz; RSSI levels are compared
        on one channel only, a radio's level differs between channels)."""
        ch = self._by_addr.get(addr)
        if ch is not None:  # the common case, _touch inlined (a call costs ~0.3 us)
            if t_ms >= ch.last_t:
                ch.last_t = t_ms
                seq &= 0xFFF
                ch.last_seq = seq
                if seq >> _BUCKET_BITS != ch.bucket:
                    self._rebucket(ch, seq >> _BUCKET_BITS)
                if t_ms - ch.moved_t >= _MOVE_MS:
                    ch.moved_t = t_ms
                    self._recent.move_to_end(id(ch))
            if rssi is not None:
                if ch.freq == freq and ch.rssi != _NO_RSSI:
                    ch.rssi = 0.7 * ch.rssi + 0.3 * rssi
                else:
                    ch.rssi, ch.freq = rssi, freq
            g = ch.group
            if g.top is not ch:
                g.second, g.top = g.top, ch
            return ch.head
        if t_ms >= self._sweep_at:
            self._sweep(t_ms)
        seq &= 0xFFF
        group = self._wifi_groups.get(content)
        if group is None:
            group = self._wifi_groups[content] = _Group(content, self._wifi_groups, self._by_addr)
        elif randomized:
            ch = self._match_wifi(group, t_ms, seq, rssi, freq)
            if ch is not None:
                return self._link(ch, addr, t_ms, seq, rssi, freq)
        return self._open(addr, group, t_ms, seq, rssi, freq)

    def ble(self, t_ms: int, addr: Key, rssi: int | None, content: bytes, private: bool) -> Key:
        """The representative address of a BLE advert's chain (see the module doc)."""
        ch = self._by_ble.get(addr)
        if ch is not None:
            self._touch(ch, t_ms, -1, rssi, 0)
            if ch.pending and t_ms - ch.first_t >= self.params.ble_decide_ms:
                ch.pending = False
                old = self._match_ble(ch)
                if old is not None and self._merge(old, ch):
                    return old.head
            return ch.head
        if t_ms >= self._sweep_at:
            self._sweep(t_ms)
        group = self._ble_groups.get(content)
        if group is None:
            group = self._ble_groups[content] = _Group(content, self._ble_groups, self._by_ble)
        self._open(addr, group, t_ms, -1, rssi, 0)
        if private:
            self._by_ble[addr].pending = True
        return addr

    # ------------------------------------------------------------------ internals

    def _touch(self, ch: _Chain, t_ms: int, seq: int, rssi: int | None, freq: int) -> None:
        if t_ms >= ch.last_t:
            ch.last_t = t_ms
            if seq >= 0:
                ch.last_seq = seq
                if seq >> _BUCKET_BITS != ch.bucket:
                    self._rebucket(ch, seq >> _BUCKET_BITS)
            if t_ms - ch.moved_t >= _MOVE_MS:
                ch.moved_t = t_ms
                self._recent.move_to_end(id(ch))
        if rssi is not None:
            if ch.freq != freq or ch.rssi == _NO_RSSI:
                ch.rssi, ch.freq = rssi, freq
            else:
                ch.rssi = 0.7 * ch.rssi + 0.3 * rssi
        g = ch.group
        if g.top is not ch:
            g.second = g.top
            g.top = ch

    def _rebucket(self, ch: _Chain, b: int) -> None:
        """Move ``ch`` to sequence bucket ``b`` (-1: none, a BLE chain)."""
        buckets = ch.group.buckets
        k = id(ch)
        if ch.bucket >= 0:
            old = buckets[ch.bucket]
            del old[k]
            if not old:
                del buckets[ch.bucket]
        new = buckets.get(b)
        if new is None:
            buckets[b] = {k: ch}
        else:
            new[k] = ch
        ch.bucket = b

    def _open(
        self, addr: Key, group: _Group, t_ms: int, seq: int, rssi: int | None, freq: int
    ) -> Key:
        index = group.index
        ch = _Chain(addr, group, index, t_ms, seq, _NO_RSSI if rssi is None else float(rssi), freq)
        k = id(ch)
        index[addr] = ch
        self._recent[k] = ch
        group.members[k] = ch
        if ch.bucket >= 0:
            b = group.buckets.get(ch.bucket)
            if b is None:
                group.buckets[ch.bucket] = {k: ch}
            else:
                b[k] = ch
        group.second = group.top
        group.top = ch
        self.chains += 1
        if len(self._recent) > self.params.max_chains:
            self._close(next(iter(self._recent.values())))
            self.evicted += 1
        return addr

    def _link(self, ch: _Chain, addr: Key, t_ms: int, seq: int, rssi: int | None, freq: int) -> Key:
        if len(ch.addrs) >= self.params.max_addrs:
            return self._open(addr, ch.group, t_ms, seq, rssi, freq)
        ch.addrs.append(addr)
        ch.index[addr] = ch
        self._touch(ch, t_ms, seq, rssi, freq)
        self.links += 1
        return ch.head

    def _close(self, ch: _Chain) -> None:
        k = id(ch)
        del self._recent[k]
        g = ch.group
        del g.members[k]
        if ch.bucket >= 0:
            b = g.buckets[ch.bucket]
            del b[k]
            if not b:
                del g.buckets[ch.bucket]
        if g.top is ch:
            g.top, g.second = g.second, None
        elif g.second is ch:
            g.second = None
        if not g.members:
            del g.home[g.key]
        index = ch.index
        for a in ch.addrs:
            if index.get(a) is ch:
                del index[a]

    def _sweep(self, t_ms: int) -> None:
        """Close chains idle for ``idle_ms``; runs at most once a second of data time."""
        horizon = t_ms - self._idle
        recent = self._recent
        while recent:
            ch = next(iter(recent.values()))
            if ch.moved_t >= horizon:
                break
            if ch.last_t >= horizon:  # heard within the last second of its slot
                ch.moved_t = ch.last_t
                recent.move_to_end(id(ch))
                continue
            self._close(ch)
            self.expired += 1
        self._sweep_at = t_ms + 1000

    def _match_wifi(
        self, g: _Group, t_ms: int, seq: int, rssi: int | None, freq: int
    ) -> _Chain | None:
        p = self.params
        r = _NO_RSSI if rssi is None else float(rssi)
        # 1. sequence continuity: the chains whose last number lies up to seq_gap behind
        best: _Chain | None = None
        best_step = 4096
        hits = 0
        buckets = g.buckets
        lo = (seq - p.seq_gap) >> _BUCKET_BITS
        hi = (seq - 1) >> _BUCKET_BITS
        for b in range(lo, hi + 1):
            members = buckets.get(b % _BUCKETS)
            if not members:
                continue
            for ch in members.values():
                dt = t_ms - ch.last_t
                if dt > p.seq_window_ms or dt < -p.burst_gap_ms:
                    continue
                step = (seq - ch.last_seq) & 0xFFF
                if step == 0 or step > p.seq_base + p.seq_rate * dt / 1000 or step > p.seq_gap:
                    continue
                if (
                    r != _NO_RSSI and ch.rssi != _NO_RSSI and ch.freq == freq
                    and abs(r - ch.rssi) > p.seq_rssi_db
                ):  # fmt: skip
                    continue
                hits += 1
                if step < best_step:
                    best, best_step = ch, step
        if best is not None and (hits == 1 or not p.seq_unique):
            return best
        # 2. the same burst, 3. rejoin: only the two most recently heard chains matter
        top = g.top
        if top is None:
            return None
        dt = t_ms - top.last_t
        if dt < -p.burst_gap_ms:
            return None  # frames out of time order: leave them apart
        second = g.second
        if dt <= p.burst_gap_ms:
            found: _Chain | None = None
            for ch in (top, second):
                if ch is None or not -p.burst_gap_ms <= t_ms - ch.last_t <= p.burst_gap_ms:
                    continue
                if (
                    r != _NO_RSSI and ch.rssi != _NO_RSSI and ch.freq == freq
                    and abs(r - ch.rssi) > p.burst_rssi_db
                ):  # fmt: skip
                    continue
                if found is not None:
                    return None  # two chains in the burst: ambiguous
                found = ch
            return found
        if p.rejoin_min_ms <= dt <= p.rejoin_window_ms:
            if second is not None and t_ms - second.last_t <= p.rejoin_window_ms:
                return None  # another chain of the content in the window
            if (
                r != _NO_RSSI and top.rssi != _NO_RSSI and top.freq == freq
                and abs(r - top.rssi) > p.rejoin_rssi_db
            ):  # fmt: skip
                return None
            return top
        return None

    def _match_ble(self, new: _Chain) -> _Chain | None:
        """The one chain of ``new``'s content that fell silent at most ``ble_gap_ms``
        before ``new`` began and has not been heard since (None: none or several)."""
        p = self.params
        start = new.first_t
        r = new.rssi
        found: _Chain | None = None
        for looked, ch in enumerate(reversed(new.group.members.values())):
            if looked >= p.candidates:
                break
            if ch is new or not start - p.ble_gap_ms <= ch.last_t < start:
                continue
            if r != _NO_RSSI and ch.rssi != _NO_RSSI and abs(r - ch.rssi) > p.ble_rssi_db:
                continue
            if found is not None:
                return None
            found = ch
        return found

    def _merge(self, into: _Chain, ch: _Chain) -> bool:
        """``ch``'s addresses join ``into`` (``ch`` is closed, its addresses stay);
        False when ``into`` would hold more than ``max_addrs``."""
        if len(into.addrs) + len(ch.addrs) > self.params.max_addrs:
            return False
        addrs = ch.addrs
        ch.addrs = []
        self._close(ch)
        index = into.index
        for a in addrs:
            index[a] = into
        into.addrs += addrs
        self.links += len(addrs)
        if ch.last_t > into.last_t:
            into.last_t = ch.last_t
        into.rssi, into.freq = ch.rssi, ch.freq
        into.moved_t = into.last_t
        self._recent.move_to_end(id(into))
        g = into.group
        if g.top is not into:
            g.second, g.top = g.top, into
        return True


def ble_content(kind: int, addr_type: int, pdu_type: int) -> bytes:
    """The BLE chaining content the node has: device kind, address type, PDU type."""
    return bytes((int(kind) & 0xFF, int(addr_type) & 0xFF, pdu_type & 0xFF))
