"""The store's own always-on equipment: dropped before pseudonymization, counted.

Printers, POS terminals, barcode scanners, beacons, the access points' clients and
the nodes themselves transmit all day. They are not shoppers: counted as people
they inflate footfall and paint hot spots where the equipment stands. Frames from
them are dropped by :class:`~sensing.node.pipeline.NodePipeline` and counted as
``infrastructure_configured`` or ``infrastructure_learned``.

Configured equipment (policy)
-----------------------------
The installer lists the store's equipment in the node configuration, in clear:
``"aa:bb:cc:dd:ee:ff"`` for one device, ``"aa:bb:cc:*"`` for a vendor prefix of
1-5 bytes, or ``"tag:<32 hex>"`` for an address already hashed with the list key.
Addresses in clear are acceptable there because they are the store's own
devices, read off their labels by the installer, not people; the raw-identifier
contract (docs/architecture.md) is about what a node *hears*, and that is never written.
Full addresses are hashed with the list key when the filter is built and only
their tags are kept in memory. A vendor prefix drops every device of that
vendor, shoppers' included, so it is only for prefixes that only the store's
equipment carries (e.g. the lab PCs of the Brno capture, ``dc:fb:48:*`` and
``40:ec:99:*``).

Learned equipment
-----------------
An address heard in at least ``fraction`` of the **open hours** among the last
``hours`` whole hours (default 75 % of 48 h), once those hold at least
``min_open_hours`` (default 6), is learned as equipment. An open hour is one in
which the learner heard any non-randomized address: a node that listens through
a 9-hour store day and a silent night learns from that one day (7 of its 9
hours), and two 4-hour afternoons add up to 8 open hours; a night does not count
against equipment that is off with the lights. Where something is heard every
hour, every hour is open and the rule is 36 of 48 hours. Only addresses that are
not randomized are tracked: equipment keeps a fixed address, and a phone's
random addresses never last that long, so they need not be remembered at all.
Candidates are tracked by their keyed tag (list key, as opt-out), in memory
only, as one bit per hour; a candidate absent for more open hours than it could
still afford (``hours - needed`` + 1) is forgotten, so a non-randomized shopper's
tag lives about half a day of open hours (13 h with the defaults) and never
reaches the disk; the learned set is what qualifies over the window, so equipment
learned on one day stays learned through the night and the next day. The
learned set (equipment only) is kept in ``state_path`` (mode 0600) so that a
restarted node does not relearn for two days; entries loaded from it that no
longer qualify once the node has ``hours`` of history are dropped.
Equipment switched off at night (POS terminals often are) while other devices
are heard all night is present about half the open hours and is not learned
with the defaults: configure it.

Example
-------
>>> from sensing.privacy.optout import ListKey
>>> f = InfrastructureFilter(ListKey.ephemeral(), ["dc:fb:48:*"], learn=False)
>>> f.classify(bytes.fromhex("dcfb48000001"), None, False, 0)
'infrastructure_configured'
>>> f.classify(bytes.fromhex("5a0000000001"), None, True, 0) is None
True
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from firmware_bridge.errors import ConfigError
from sensing.privacy.key_file import write_private_file
from sensing.privacy.optout import TAG_BYTES, ListKey, parse_address

__all__ = ["CONFIGURED", "HOUR_MS", "LEARNED", "InfrastructureFilter"]

CONFIGURED = "infrastructure_configured"
LEARNED = "infrastructure_learned"
HOUR_MS = 3_600_000
_PREFIX_RE = re.compile(r"^([0-9a-f]{2}(?:[:-][0-9a-f]{2}){0,4})[:-]\*$", re.IGNORECASE)


class InfrastructureFilter:
    """Configured and learned equipment addresses.

    Parameters
    ----------
    key
        the store's list key (tags as :mod:`sensing.privacy.optout`)
    configured
        entries as in the module doc; raises :class:`ConfigError` on a bad one
    learn
        learn always-on addresses
    hours, fraction
        an address is learned when heard in at least ``ceil(fraction * hours)``
        of the last ``hours`` whole hours (h, fraction of 1)
    max_candidates
        tracked tags at most; beyond, new addresses are not tracked (counted in
        ``stats["untracked"]``) until the hourly pruning frees room
    state_path
        where the learned tags are kept across restarts (None: memory only)
    min_open_hours
        open hours (any non-randomized address heard) in the window before anything
        is learned; the share ``fraction`` is of the open hours
    """

    def __init__(
        self,
        key: ListKey,
        configured: Iterable[str] = (),
        *,
        learn: bool = True,
        hours: int = 48,
        fraction: float = 0.75,
        max_candidates: int = 20_000,
        state_path: Path | None = None,
        min_open_hours: int = 6,
    ) -> None:
        if not 1 <= hours <= 24 * 31:
            raise ConfigError(f"infrastructure learn_hours must be 1..744, got {hours}")
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"infrastructure learn_fraction must be in (0, 1], got {fraction}")
        self.key = key
        self.learn = learn
        self.hours = hours
        self.fraction = fraction
        self.needed = max(1, math.ceil(fraction * hours - 1e-9))
        """hours of presence out of ``hours`` open hours to be learned"""
        self.min_open_hours = max(1, min(min_open_hours, hours))
        self.max_candidates = max_candidates
        self.state_path = state_path
        self.stats: Counter[str] = Counter()
        """learner events: untracked (table full), clock_reset (time jumped)"""
        self._prefixes: list[tuple[int, frozenset[bytes]]] = []
        self._configured: set[bytes] = set()
        self._parse_configured(configured)
        self._full = (1 << hours) - 1
        self._cand: dict[bytes, list[int]] = {}  # tag -> [presence bits, last hour]
        self._open = [0, -1]  # open hours: [bits, last open hour]
        self._hour = -1  # current hour (Unix hours) of the learner, -1 before any frame
        self._first_hour = -1
        self._loaded: set[bytes] = set()
        self.learned: set[bytes] = set()
        """tags of learned equipment (updated in place)"""
        if state_path is not None:
            self._load_state(state_path)
            self.learned.update(self._loaded)

    # -- configuration --------------------------------------------------------------------

    def _parse_configured(self, entries: Iterable[str]) -> None:
        prefixes: dict[int, set[bytes]] = {}
        for raw in entries:
            e = raw.strip()
            if e.lower().startswith("tag:"):
                try:
                    t = bytes.fromhex(e[4:])
                except ValueError:
                    t = b""
                if len(t) != TAG_BYTES:
                    raise ConfigError(f"infrastructure entry {e!r}: tag must be 32 hex digits")
                self._configured.add(t)
                continue
            m = _PREFIX_RE.match(e)
            if m:
                p = bytes.fromhex(re.sub("[:-]", "", m.group(1)))
                prefixes.setdefault(len(p), set()).add(p)
                continue
            try:
                addr = parse_address(e)
            except ConfigError as ex:
                raise ConfigError(
                    f"infrastructure entry {e!r}: expected aa:bb:cc:dd:ee:ff, aa:bb:cc:* "
                    "or tag:<32 hex>"
                ) from ex
            self._configured.add(self.key.tag(bytes(addr)))
        self._prefixes = sorted((n, frozenset(s)) for n, s in prefixes.items())

    # -- per frame ------------------------------------------------------------------------

    def needs_tag(self, randomized: bool) -> bool:
        """Whether :meth:`classify` will hash this frame's address."""
        return bool(self._configured) or (not randomized and bool(self.learn or self.learned))

    def classify(self, addr: bytes, tag: bytes | None, randomized: bool, t_ms: int) -> str | None:
        """Why this frame is equipment (``CONFIGURED`` / ``LEARNED``), or None.

        ``tag`` is the address's list-key tag when the caller has it already
        (None: computed here if needed). Learns from the frame as a side effect.
        """
        for n, pre in self._prefixes:
            if addr[:n] in pre:
                return CONFIGURED
        if not self._configured and (randomized or not (self.learn or self.learned)):
            return None  # random addresses are never learned: no hash needed
        if tag is None:
            tag = self.key.tag(addr)
        if tag in self._configured:
            return CONFIGURED
        if randomized:
            return None
        if self.learn:
            self._observe(tag, t_ms // HOUR_MS)
        return LEARNED if tag in self.learned else None

    def _observe(self, tag: bytes, hour: int) -> None:
        if hour != self._hour:
            if self._hour < 0 or hour > self._hour + self.hours or hour < self._hour - self.hours:
                if self._hour >= 0:
                    self.stats["clock_reset"] += 1
                self._cand.clear()
                self._open = [0, -1]
                self._hour = self._first_hour = hour
            elif hour > self._hour:
                self._rollover(hour)
        o = self._open
        if o[1] < 0:
            o[0], o[1] = 1, hour
        elif hour > o[1]:
            o[0] = ((o[0] << (hour - o[1])) | 1) & self._full
            o[1] = hour
        elif o[1] - hour < self.hours:
            o[0] |= 1 << (o[1] - hour)
        e = self._cand.get(tag)
        if e is None:
            if len(self._cand) >= self.max_candidates:
                self.stats["untracked"] += 1
                return
            self._cand[tag] = [1, hour]
            return
        last = e[1]
        if hour > last:
            e[0] = ((e[0] << (hour - last)) | 1) & self._full
            e[1] = hour
        elif hour < last and last - hour < self.hours:  # a late frame
            e[0] |= 1 << (last - hour)

    # -- hourly -----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Close finished hours by the wall clock (frames may stop arriving)."""
        hour = now_ms // HOUR_MS
        if self.learn and self._hour >= 0 and self._hour < hour <= self._hour + self.hours:
            self._rollover(hour)

    def _rollover(self, hour: int) -> None:
        """Evaluate the completed hours before ``hour``; prune hopeless candidates."""
        qualified: set[bytes] = set()
        slack = self.hours - self.needed
        obits, olast = self._open
        # open hours of the window, aligned so that bit 0 is the last completed hour
        opened = (obits << (hour - 1 - olast)) & self._full if olast >= 0 else 0
        n_open = opened.bit_count()
        needed = max(1, math.ceil(self.fraction * n_open - 1e-9))
        for tag, (mask, last) in list(self._cand.items()):
            gap = hour - last  # >= 1: hours since the candidate's last hour started
            # open hours since the candidate was last heard
            away = (opened & ((1 << (gap - 1)) - 1)).bit_count()
            if away > slack or gap > self.hours:
                del self._cand[tag]
                continue
            present = ((mask << (gap - 1)) & self._full).bit_count()
            if n_open >= self.min_open_hours and present >= needed:
                qualified.add(tag)
        self._hour = hour
        # with a full window of history, entries loaded from the state must requalify
        history = hour - self._first_hour >= self.hours
        new = qualified if history else qualified | self._loaded
        if new != self.learned:
            self.learned.clear()
            self.learned.update(new)
            if self.state_path is not None:
                self._save_state()

    # -- state ------------------------------------------------------------------------------

    @property
    def candidates(self) -> int:
        """tags tracked by the learner"""
        return len(self._cand)

    def _save_state(self) -> None:
        assert self.state_path is not None
        doc = {
            "v": 1,
            "key_id": self.key.key_id,
            "hour": self._hour,
            "learned": sorted(t.hex() for t in self.learned),
        }
        write_private_file(self.state_path, json.dumps(doc).encode(), prefix=".infra-")

    def _load_state(self, path: Path) -> None:
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except ValueError as e:
            raise ConfigError(f"{path}: invalid infrastructure state: {e}") from e
        if not isinstance(d, dict) or d.get("key_id") != self.key.key_id:
            self.stats["state_other_key"] += 1  # made with another list key: useless
            return
        try:
            self._loaded = {bytes.fromhex(t) for t in d["learned"]}
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: invalid infrastructure state: {e}") from e
