"""Pseudonyms → devices: chaining a phone's rotating addresses across what the aggregator sees.

Nodes publish one pseudonym per address. A phone shows up under several
pseudonyms in a day: BLE resolvable private addresses rotate about every 15 min,
iOS draws a new Wi-Fi address for nearly every scan.

**The nodes' chains first.** A node that chains addresses
(:mod:`sensing.capture.address_chain`, from sequence numbers, IE contents, timing and
RSSI it alone sees) puts on each row the pseudonym of its chain's head, ``chain``.
Each such row is a link: the row's pseudonym and its ``chain`` are one device
(union-find, so two nodes that started one phone's chain at different addresses
join up), if two nodes reported it (or the one node that heard both), and unless
it would make one device of two pseudonyms heard at the same time
(:func:`node_groups`). The aggregator never splits what it joined from the nodes.

**Then the aggregator's own linking**, on those groups as units (a group's first
and last frame, its frames at each node), from what the rows carry:

* **band family** (Wi-Fi or BLE) and, for Wi-Fi, the keyed IE-layout hash ``sig``:
  a phone's probe requests keep their element layout across an address change,
  so two pseudonyms with different ``sig`` are never one phone;
* **timing**: the successor starts after the predecessor's last frame, within
  ``ble_gap_s`` (BLE advertises every second or two) or ``wifi_gap_s`` (a phone
  scans every minute or few), never before it (two addresses heard at once are
  two devices);
* **RSSI continuity**: the predecessor's last frames and the successor's first
  frames (``END_WINDOW_S``), per node that heard both, differ by at most ``rssi_db``
  (median over those nodes); at least ``node_overlap`` of the nodes that heard
  either end heard both; and (BLE) both ends are heard above ``ble_edge_dbm`` by
  their best node: a phone rotating its address stays where it is and as loud,
  one walking out of range fades first.

* **advertising cadence** (BLE): a phone keeps its advertising interval across an
  address change and phones differ (a random 1-3 s here, fixed per phone model and
  state in real phones): the intervals of the two ends (lower quartile of the steps
  between distinct frame times) differ by at most ``ble_cadence_ratio``; a BLE
  pseudonym with fewer than 4 distinct frame times is never linked.

* **no rival** (Wi-Fi): the two are linked only if the successor is the one group
  that passes these rules after the predecessor, and the predecessor the one before
  the successor. Phones of one model send the same IE layout and scan at random
  minutes apart, so where several are about, the nearest in time and RSSI is as
  often another phone (simulator, three seeds: choosing the cheapest candidate
  took Wi-Fi pair precision from 0.95 to 0.16-0.20).

Links are chosen greedily by cost (gap over the allowed gap plus RSSI step over
the allowed step), each group with one predecessor and one successor at most:
a *device* is a chain of groups. Addresses that are not randomized are not
linked by the aggregator (a fixed address is a device already). Two pseudonyms are
one device only if a node chained them or these rules link them. Nothing crosses a
pseudonym epoch: pseudonyms of two epochs never match (a node's chains are reset
when its key rolls), and the caller never mixes epochs.

Example
-------
>>> import numpy as np
>>> rows = [(t, "n1", "aa", -60, "ble", 1, None) for t in range(0, 10_000, 1_000)]
>>> rows += [(t, "n1", "bb", -61, "ble", 1, None) for t in range(11_000, 20_000, 1_000)]
>>> rows += [(t, "n1", "cc", -62, "ble", 1, None) for t in range(10_500, 20_000, 1_500)]
>>> d = chain_devices(Frames.from_rows(rows), ChainSettings())  # aa rotated to bb
>>> int(d.n_devices), d.device_of["aa"] == d.device_of["bb"] != d.device_of["cc"]
(2, True)
>>> rows += [(t, "n2", "dd", -90, "ble", 1, None, "cc") for t in range(60_000, 61_000, 500)]
>>> d = chain_devices(Frames.from_rows(rows), ChainSettings())  # a node chained cc → dd
>>> int(d.n_devices), d.device_of["dd"] == d.device_of["cc"], d.links
(2, True, 2)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensing.wire.observation import Flag

F = NDArray[np.float64]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]

END_WINDOW_S = 10.0
"""the frames this close to a pseudonym's first (last) frame stand for its start (end), s"""


@dataclass(frozen=True)
class ChainSettings:
    """How far apart two pseudonyms of one device may be."""

    ble_gap_s: float = 5.0
    """longest silence between a BLE address's last frame and its successor's first, s"""
    wifi_gap_s: float = 240.0
    """the same for Wi-Fi probe requests (a phone scans every minute or few), s"""
    overlap_s: float = 0.5
    """a successor may start this much before its predecessor's last frame (clock jitter
    between nodes), s"""
    rssi_db: float = 10.0
    """largest RSSI step across a link (median over the nodes that heard both ends), dB"""
    node_overlap: float = 0.5
    """share of the nodes that heard either end that heard both ends, at least"""
    ble_edge_dbm: float = -82.0
    """BLE: both ends heard at least this strongly by their best node; an address that
    fades out is a phone walking out of range, not one rotating its address, dBm"""
    wifi_edge_dbm: float = -200.0
    """the same for Wi-Fi (off: scans minutes apart do not fade), dBm"""
    ble_cadence_ratio: float = 0.02
    """BLE: largest relative difference of the two ends' advertising intervals (a phone
    keeps its advertising interval across an address change; phones differ)"""
    wifi_unique: bool = True
    """Wi-Fi: link two pseudonyms only if each is the other's one candidate (the one
    successor that passes the rules above, and the one predecessor). Phones of one
    model send the same IE layout and scan within minutes of each other; choosing the
    cheapest of several candidates joined phones of one model (simulator: Wi-Fi pair
    precision 0.16-0.20)"""
    link: bool = True
    """the aggregator's own linking (False: one device per pseudonym, or per node chain
    with ``node_chains``)"""
    node_chains: bool = True
    """join the pseudonyms a node chained (the rows' ``chain``) before linking (False,
    with ``link`` False: one device per pseudonym, the naive count)"""
    node_support: int = 2
    """join a node's link only if at least this many nodes reported it (or every node
    that heard both of its pseudonyms, if fewer did): one node's wrong links are its
    own, two nodes rarely make the same one (simulator, BLE: link precision 0.51 with
    one, 0.90 with two)"""


@dataclass(frozen=True)
class Frames:
    """Pseudonymous observations as arrays, sorted by time (rows of the ``obs`` table)."""

    t_ms: I64
    node: I64
    """node code (index into ``nodes``)"""
    pid: NDArray[np.str_]
    rssi: F
    ble: B
    """band family: BLE (else Wi-Fi)"""
    randomized: B
    sig: NDArray[np.str_]
    """IE-layout hash, "" where none"""
    nodes: tuple[str, ...]
    chain: NDArray[np.str_] | None = None
    """the pseudonym of the head of the node's chain holding the frame's address, ""
    where none (None: no row has one)"""

    @classmethod
    def from_rows(
        cls, rows: Iterable[Sequence[object]], nodes: Sequence[str] | None = None
    ) -> Frames:
        """From ``(t_ms, node, pid, rssi, band, flags, sig[, chain])`` rows (the ``obs``
        columns; rows without ``chain``, or with it NULL, carry none)."""
        rows = list(rows)
        if not rows:
            e = np.zeros(0)
            return cls(e.astype(np.int64), e.astype(np.int64), e.astype(np.str_), e, e.astype(bool),
                       e.astype(bool), e.astype(np.str_), tuple(nodes or ()))  # fmt: skip
        if any(len(r) == 8 for r in rows):
            rows = [r if len(r) == 8 else (*r, None) for r in rows]
            t_c, n_c, p_c, r_c, b_c, f_c, s_c, c_c = zip(*rows, strict=True)
        else:
            t_c, n_c, p_c, r_c, b_c, f_c, s_c = zip(*rows, strict=True)
            c_c = ()
        node_ids = list(nodes or ())
        seen, n_inv = np.unique(np.array(n_c, dtype=np.str_), return_inverse=True)
        for n in seen.tolist():
            if n not in node_ids:
                node_ids.append(n)
        remap = np.array([node_ids.index(n) for n in seen.tolist()], np.int64)
        t = np.array(t_c, np.int64)
        order = np.argsort(t, kind="stable")
        fl = np.array(f_c, np.int64)
        return cls(
            t[order],
            remap[n_inv][order],
            np.array(p_c, dtype=np.str_)[order],
            np.array(r_c, float)[order],
            (np.array(b_c, dtype=np.str_) == "ble")[order],
            ((fl & int(Flag.RANDOMIZED)) != 0)[order],
            np.array([x or "" for x in s_c], dtype=np.str_)[order],
            tuple(node_ids),
            np.array([x or "" for x in c_c], dtype=np.str_)[order] if any(c_c) else None,
        )

    def __len__(self) -> int:
        return len(self.t_ms)

    def select(self, keep: B) -> Frames:
        return Frames(
            self.t_ms[keep],
            self.node[keep],
            self.pid[keep],
            self.rssi[keep],
            self.ble[keep],
            self.randomized[keep],
            self.sig[keep],
            self.nodes,
            None if self.chain is None else self.chain[keep],
        )


@dataclass(frozen=True)
class Devices:
    """Which device each pseudonym (and each frame) belongs to."""

    pids: NDArray[np.str_]
    """distinct pseudonyms, sorted"""
    frame_pid: I64
    """per frame: index into ``pids``"""
    pid_device: I64
    """per pseudonym: its device"""
    n_devices: int
    links: int
    """links made: pseudonyms joined to a node's chain, plus the aggregator's links"""
    node_links: int = 0
    """of ``links``, the nodes' links joined (:func:`node_groups`)"""
    node_refused: int = 0
    """the nodes' links refused: they would make one device of two pseudonyms heard at
    the same time"""

    @property
    def frame_device(self) -> I64:
        return self.pid_device[self.frame_pid]

    @property
    def device_of(self) -> dict[str, int]:
        return {str(p): int(d) for p, d in zip(self.pids, self.pid_device, strict=True)}


def _ends(
    f: Frames, fp: I64, first: I64, last: I64, n_pids: int, n_nodes: int, window_ms: int
) -> tuple[F, F]:
    """Per pseudonym and node: mean RSSI of its frames at that node within ``window_ms``
    of its first frame (head) and of its last frame (tail); NaN where the node did not
    hear that end."""
    key = fp * n_nodes + f.node
    size = n_pids * n_nodes
    out = []
    for near in (f.t_ms - first[fp] <= window_ms, last[fp] - f.t_ms <= window_ms):
        n = np.bincount(key[near], minlength=size)
        tot = np.bincount(key[near], f.rssi[near], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(n > 0, tot / np.maximum(n, 1), np.nan).reshape(n_pids, n_nodes))
    return out[0], out[1]


def _cadence(f: Frames, fp: I64, n_pids: int) -> F:
    """Per pseudonym: its advertising interval, ms (the lower quartile of the steps
    between its distinct frame times: frames lost make multiples of it); NaN with
    fewer than 4 distinct times."""
    out = np.full(n_pids, np.nan)
    key = np.unique(fp * (1 << 42) + (f.t_ms - (f.t_ms.min() if len(f) else 0)))
    p = key >> 42
    t = key & ((1 << 42) - 1)
    same = p[1:] == p[:-1]
    steps = np.diff(t)[same]
    owner = p[1:][same]
    if not len(owner):
        return out
    bounds = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if b - a >= 3:
            out[owner[a]] = np.percentile(steps[a:b], 25)
    return out


def node_groups(
    f: Frames,
    pids: NDArray[np.str_],
    fp: I64,
    first: I64,
    last: I64,
    over_ms: float,
    min_support: int = 1,
) -> tuple[I64, int, int]:
    """Per pseudonym (index into ``pids``): its group after the nodes' links, numbered
    0.. in order of the group's first pseudonym; the links made; the links refused.

    Each row's ``(pid, chain)`` says the node put ``pid`` in the chain of ``chain``.
    A link is joined (union-find) if ``min_support`` nodes reported it, or every node
    that heard both pseudonyms if fewer did (one node alone hears both: its word is
    enough); those that more nodes reported first, then by time. A link is refused
    if it would put into one group two pseudonyms heard at the same time (their
    first-to-last spans overlap by more than ``over_ms``): one device has one address
    at a time. Each node links wrongly now and then (a few chains in a hundred, more
    among passers-by, whose address fades as another phone's appears); joined
    blindly over every node, those few errors chain whole groups of phones together
    (simulator, BLE, six nodes: pair precision 0.42). A head with no frame of its own
    here joins the pseudonyms that name it, with no span."""
    n = len(pids)
    has = np.flatnonzero(f.chain != "") if f.chain is not None else np.zeros(0, np.int64)
    if not len(has):
        return np.arange(n, dtype=np.int64), 0, 0
    heads, head_idx = np.unique(f.chain[has], return_inverse=True)
    # a head that is one of the pseudonyms is that pseudonym; others get indices after n
    at = np.searchsorted(pids, heads)
    known = (at < n) & (pids[np.minimum(at, n - 1)] == heads)
    head_of = np.where(known, at, n + np.cumsum(~known) - 1)
    size = n + int((~known).sum())
    lo = np.r_[first.astype(float), np.full(size - n, np.inf)]
    hi = np.r_[last.astype(float), np.full(size - n, -np.inf)]
    # links (pid, head), by the number of nodes that reported each, then by time
    trip = np.unique(np.stack([fp[has], head_of[head_idx], f.node[has]]), axis=1)
    pairs, support = np.unique(trip[:2], axis=1, return_counts=True)
    # as many nodes as asked, or every node that heard both ends if fewer did (a node
    # that never heard the head could not have made the link)
    nn = len(f.nodes)
    heard = np.unique(fp * nn + f.node)
    both = np.zeros(pairs.shape[1], np.int64)
    for j in range(nn):
        both += np.isin(pairs[0] * nn + j, heard) & np.isin(pairs[1] * nn + j, heard)
    enough = support >= np.clip(both, 1, min_support)
    refused = int((~enough).sum())
    pairs, support = pairs[:, enough], support[enough]
    order = np.lexsort((lo[pairs[0]], -support))
    parent = list(range(size))
    members: dict[int, list[int]] = {i: [i] for i in range(size)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    made = 0
    for a, b in pairs[:, order].T.tolist():
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        ma, mb = np.array(members[ra]), np.array(members[rb])
        clash = (lo[ma][:, None] < hi[mb][None, :] - over_ms) & (
            lo[mb][None, :] < hi[ma][:, None] - over_ms
        )
        if clash.any():
            refused += 1
            continue
        keep, gone = min(ra, rb), max(ra, rb)
        parent[gone] = keep
        members[keep] += members.pop(gone)
        made += 1
    roots = np.array([root(i) for i in range(n)], np.int64)
    _, group = np.unique(roots, return_inverse=True)
    return group.astype(np.int64), made, refused


def chain_devices(f: Frames, s: ChainSettings) -> Devices:
    """Link pseudonyms into devices (see the module doc)."""
    pids, fp = np.unique(f.pid, return_inverse=True)
    fp = fp.astype(np.int64)
    if len(pids) == 0:
        return Devices(pids, fp, np.zeros(0, np.int64), 0, 0)
    group, made, refused = np.arange(len(pids), dtype=np.int64), 0, 0
    if s.node_chains:
        first = np.full(len(pids), np.iinfo(np.int64).max)
        last = np.full(len(pids), np.iinfo(np.int64).min)
        np.minimum.at(first, fp, f.t_ms)
        np.maximum.at(last, fp, f.t_ms)
        group, made, refused = node_groups(
            f, pids, fp, first, last, s.overlap_s * 1000, s.node_support
        )
    g_dev, n_dev, links = _link(f, group[fp], int(group.max()) + 1, s)
    return Devices(pids, fp, g_dev[group], n_dev, links + made, made, refused)


def _link(f: Frames, fp: I64, n: int, s: ChainSettings) -> tuple[I64, int, int]:
    """The aggregator's own linking of ``n`` units (``fp``: each frame's unit): each
    unit's device, the number of devices, the links made."""
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, fp, f.t_ms)
    np.maximum.at(last, fp, f.t_ms)
    ble = np.zeros(n, bool)
    rnd = np.zeros(n, bool)
    ble[fp] = f.ble
    rnd[fp] = f.randomized
    sig = np.full(n, "", dtype=f.sig.dtype if len(f.sig) else np.str_)
    sig[fp] = f.sig
    if not s.link:
        return np.arange(n, dtype=np.int64), n, 0
    head, tail = _ends(f, fp, first, last, n, len(f.nodes), int(END_WINDOW_S * 1000))
    cadence = _cadence(f, fp, n) if ble.any() else np.full(n, np.nan)
    gap_ms = np.where(ble, s.ble_gap_s, s.wifi_gap_s) * 1000
    over_ms = s.overlap_s * 1000
    # candidate pairs (p → q): q starts within [last_p - overlap, last_p + gap]
    by_first = np.argsort(first, kind="stable")
    fs = first[by_first]
    cand_p: list[I64] = []
    cand_q: list[I64] = []
    linkable = np.flatnonzero(rnd)
    lo = np.searchsorted(fs, last[linkable] - over_ms, side="left")
    hi = np.searchsorted(fs, last[linkable] + gap_ms[linkable], side="right")
    for p, a, b in zip(linkable.tolist(), lo.tolist(), hi.tolist(), strict=True):
        if b > a:
            q = by_first[a:b]
            cand_p.append(np.full(len(q), p, np.int64))
            cand_q.append(q)
    if not cand_p:
        return np.arange(n, dtype=np.int64), n, 0
    P = np.concatenate(cand_p)
    Q = np.concatenate(cand_q)
    ok = (P != Q) & rnd[Q] & (ble[P] == ble[Q]) & (sig[P] == sig[Q]) & (first[Q] > first[P])
    ok &= last[Q] > last[P]
    P, Q = P[ok], Q[ok]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no common node
        step = np.abs(tail[P] - head[Q])
        both = np.isfinite(step)
        either = np.isfinite(tail[P]) | np.isfinite(head[Q])
        heard = both.any(axis=1)
        med = np.where(heard, np.nanmedian(np.where(both, step, np.nan), axis=1), np.inf)
        overlap = both.sum(axis=1) / np.maximum(either.sum(axis=1), 1)
        edge = np.where(ble[P], s.ble_edge_dbm, s.wifi_edge_dbm)
        loud = (np.nanmax(tail[P], axis=1) >= edge) & (np.nanmax(head[Q], axis=1) >= edge)
    gap = np.maximum(first[Q] - last[P], 0) / gap_ms[P]
    with np.errstate(invalid="ignore"):
        rel = np.abs(cadence[P] - cadence[Q]) / np.fmin(cadence[P], cadence[Q])
    same_cadence = ~ble[P] | (rel <= s.ble_cadence_ratio)  # unknown (NaN): no link
    keep = heard & (med <= s.rssi_db) & (overlap >= s.node_overlap) & loud & same_cadence
    P, Q, cost = P[keep], Q[keep], gap[keep] + med[keep] / s.rssi_db
    if s.wifi_unique:
        # Wi-Fi: only a link with no rival (see ChainSettings.wifi_unique)
        n_succ = np.bincount(P, minlength=n)
        n_pred = np.bincount(Q, minlength=n)
        alone = ble[P] | ((n_succ[P] == 1) & (n_pred[Q] == 1))
        P, Q, cost = P[alone], Q[alone], cost[alone]
    succ = np.full(n, -1, np.int64)
    pred = np.full(n, -1, np.int64)
    links = 0
    for i in np.argsort(cost, kind="stable").tolist():
        p, q = int(P[i]), int(Q[i])
        if succ[p] < 0 and pred[q] < 0:
            succ[p], pred[q] = q, p
            links += 1
    device = np.full(n, -1, np.int64)
    d = 0
    for start in np.flatnonzero(pred < 0).tolist():
        p = start
        while p >= 0 and device[p] < 0:
            device[p] = d
            p = int(succ[p])
        d += 1
    return device, d, links
