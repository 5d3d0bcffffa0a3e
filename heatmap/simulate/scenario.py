"""What a simulated store day looks like: all knobs of the simulator, with units.

The radio constants here are the simulator's *truth*; the aggregator never reads
them (it starts from the floor plan's ``[radio]`` defaults and calibrates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# relative arrival intensity by local hour (a weekday in a high-street store)
HOURLY_PROFILE: dict[int, float] = {
    8: 0.2,
    9: 0.45,
    10: 0.7,
    11: 0.9,
    12: 1.0,
    13: 0.95,
    14: 0.8,
    15: 0.8,
    16: 0.9,
    17: 1.0,
    18: 0.85,
    19: 0.5,
    20: 0.25,
}


@dataclass(frozen=True)
class RadioTruth:
    """Propagation the simulated world obeys."""

    p0_wifi_dbm: float = -40.0
    """Wi-Fi probe RSSI at 1 m from a 0 dB phone, dBm"""
    p0_ble_dbm: float = -59.0
    """BLE advert RSSI at 1 m from a 0 dB phone, dBm"""
    path_loss_exponent: float = 2.3
    shadowing_db: float = 6.0
    """log-normal shadowing (per frame), dB"""
    phone_offset_db: float = 4.0
    """std of the per-phone transmit power offset, dB"""
    sensitivity_dbm: float = -92.0
    frame_loss: float = 0.05
    """share of frames lost to collisions regardless of level"""
    phone_height_m: float = 1.2


Point = tuple[float, float]
PROMO_RADIUS_M = 1.5
"""shoppers at a promo table stand within this of its centre"""


@dataclass(frozen=True)
class Checkout:
    """Where the simulated store's tills are (floor plan metres). The defaults are the
    bundled store's counter; another layout brings its own."""

    tills: tuple[Point, ...] = ((3.2, 3.3), (5.8, 3.3))
    """where a customer stands while being served (in front of the counter)"""
    cashiers: tuple[Point, ...] = ((3.2, 1.2), (5.8, 1.2))
    """where the first staff members stand all day (behind the counter)"""
    queue_head: Point = (8.3, 3.4)
    """first place in the queue line"""
    queue_step: Point = (0.0, 0.7)
    """from one place in the line to the next, m"""
    queue_slots: int = 8

    def slot(self, k: int) -> Point:
        """Place ``k`` of the queue line (0 = head)."""
        return (
            self.queue_head[0] + k * self.queue_step[0],
            self.queue_head[1] + k * self.queue_step[1],
        )


@dataclass(frozen=True)
class Scenario:
    """A simulated day. ``start_local`` + ``hours`` is the window written out."""

    start_local: datetime = datetime(2026, 11, 20, 10, 0)
    hours: float = 8.0
    seed: int = 1
    shoppers_per_hour_peak: float = 140.0
    passersby_per_hour_peak: float = 500.0
    staff: int = 4
    phone_share: float = 0.85
    """share of people carrying a phone with Wi-Fi and BLE on"""
    ios_share: float = 0.55
    legacy_android_share: float = 0.12
    """Android phones probing with their global MAC (old OS), of all Android"""
    buy_share: float = 0.65
    ble_interval_s: tuple[float, float] = (1.0, 3.0)
    """range of per-phone BLE advertising intervals, s"""
    wifi_burst_interval_s: dict[str, float] = field(
        default_factory=lambda: {"ios": 90.0, "android": 45.0, "legacy": 40.0}
    )
    """mean time between probe bursts, per OS habit, s"""
    ble_rotation_s: float = 900.0
    """resolvable private address lifetime (both OSes ~15 min)"""
    radio: RadioTruth = field(default_factory=RadioTruth)
    timezone: str = "Europe/Amsterdam"
    checkout: Checkout = field(default_factory=Checkout)
    promo_table: Point | None = None
    """where the promo table stands (floor plan metres): shoppers drawn to the promo go
    to within PROMO_RADIUS_M of it; None: anywhere in the plan's ``promo`` zone"""

    @property
    def t0_ms(self) -> int:
        """Unix epoch ms of the window start."""
        aware = self.start_local.replace(tzinfo=ZoneInfo(self.timezone))
        return int(aware.timestamp() * 1000)

    @property
    def duration_s(self) -> int:
        return round(self.hours * 3600)

    def intensity(self, t_s: float) -> float:
        """Relative arrival intensity (0..1) at ``t_s`` seconds after the start."""
        local = self.start_local + timedelta(seconds=t_s)
        return HOURLY_PROFILE.get(local.hour, 0.1)
