"""The thresholds of :class:`sensing.capture.address_chain.AddressChainer`: when a new
address continues a chain (the rules are in that module's docstring)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChainParams"]


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Thresholds of :class:`AddressChainer` (see the module doc for the rules)."""

    idle_ms: int = 150_000
    """a chain closes after this long without a frame"""
    max_chains: int = 4096
    """open chains at most (the least recently heard is dropped beyond)"""
    max_addrs: int = 256
    """addresses per chain at most"""
    candidates: int = 64
    """same-content chains examined per new BLE address (newest first)"""
    seq_gap: int = 128
    """largest forward step of the 802.11 sequence number that continues a chain"""
    seq_base: int = 16
    """allowed forward step right after the chain's last frame ..."""
    seq_rate: float = 0.4
    """... growing by this many per second of silence (capped at ``seq_gap``)"""
    seq_unique: bool = True
    """refuse a sequence link when two chains continue the counter"""
    seq_window_ms: int = 120_000
    """largest time gap for a sequence-continuity link"""
    seq_rssi_db: int = 10
    """largest RSSI step for a sequence-continuity link"""
    burst_gap_ms: int = 400
    """largest time gap for a burst-continuity link (same scan burst)"""
    burst_rssi_db: int = 6
    """largest RSSI step for a burst-continuity link"""
    rejoin_min_ms: int = 2_000
    """a chain must be silent this long to be rejoined (its burst is over)"""
    rejoin_window_ms: int = 120_000
    """largest silence for a rejoin link (0: rule off)"""
    rejoin_rssi_db: int = 6
    """largest RSSI step for a rejoin link"""
    ble_gap_ms: int = 3_000
    """largest time between the old address's last advert and the new one's first"""
    ble_decide_ms: int = 15_000
    """a new BLE address is linked (or not) once it has been heard this long: by then
    the address it replaced has gone silent, and the devices still advertising have not"""
    ble_rssi_db: int = 8
    """largest RSSI step for a BLE rotation link"""
