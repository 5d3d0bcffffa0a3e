"""What :class:`sensing.capture.address_chain.AddressChainer` keeps per chain and per
content group: plain slotted records, no logic (the chainer's hot path reads and writes
their fields directly)."""

from __future__ import annotations

from typing import Any

__all__ = ["BUCKET_BITS", "NO_RSSI", "Chain", "ChainGroup"]

NO_RSSI = -200.0
"""a chain's smoothed RSSI before it has one"""
BUCKET_BITS = 6
"""a group indexes its chains by their last sequence number, 64-wide buckets"""


class Chain:
    __slots__ = (
        "addrs", "bucket", "first_t", "freq", "group", "head", "index", "last_seq",
        "last_t", "moved_t", "pending", "rssi",
    )  # fmt: skip

    def __init__(
        self,
        head: Any,
        group: ChainGroup,
        index: dict[Any, Chain],
        t_ms: int,
        seq: int,
        rssi: float,
        freq: int,
    ) -> None:
        self.head = head
        self.group = group
        self.index = index
        """the address map the chain's addresses are in (Wi-Fi or BLE)"""
        self.addrs = [head]
        self.first_t = t_ms
        self.last_t = t_ms
        self.moved_t = t_ms
        """when the chain last moved to the recent end of the expiry order"""
        self.last_seq = seq
        self.bucket = seq >> BUCKET_BITS if seq >= 0 else -1
        self.rssi = rssi
        """smoothed RSSI on ``freq``, dBm (``NO_RSSI``: none yet)"""
        self.pending = False
        """a new BLE address whose predecessor is still to be looked for"""
        self.freq = freq
        """channel of the RSSI level (a radio's level differs between channels)"""


class ChainGroup:
    """The open chains of one content: the two most recently heard, and an index of
    the chains by their last sequence number (64-wide buckets)."""

    __slots__ = ("buckets", "home", "index", "key", "members", "second", "top")

    def __init__(self, key: bytes, home: dict[bytes, ChainGroup], index: dict[Any, Chain]) -> None:
        self.key = key
        self.home = home
        """the chainer's groups of this radio (Wi-Fi or BLE)"""
        self.index = index
        """the chainer's address map of this radio"""
        self.top: Chain | None = None
        self.second: Chain | None = None
        self.members: dict[int, Chain] = {}
        self.buckets: dict[int, dict[int, Chain]] = {}
