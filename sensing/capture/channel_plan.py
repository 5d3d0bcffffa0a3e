"""Wi-Fi channel plan: which channels the monitor radio listens on, for how long.

A phone looking for networks sends a burst of probe requests on every channel
it scans, 2.4 and 5 GHz, so a radio parked on one channel hears most bursts of
2.4 GHz scanners but none of a phone that scans only 5 GHz (or skips channels
when it is associated). The node therefore hops a configured schedule: each
step is (channel, dwell ms), the cycle repeats, and the hop happens through
``iw dev IFACE set channel N``. The radio is the only hardware edge here
(:class:`Radio`); tests give a recording fake, the node gives :class:`IwRadio`.

>>> plan = ChannelPlan.build([1, 6, 11, 36], dwell_ms=200, dwell_by_channel={6: 400})
>>> plan.cycle_ms, plan.channel_at(250), plan.bands
(1000, 6, ('2.4GHz', '5GHz'))
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from firmware_bridge.errors import CaptureError, ConfigError

CHANNELS_24 = frozenset(range(1, 15))
CHANNELS_5 = frozenset(
    [*range(32, 69, 4), *range(96, 145, 4), *range(149, 178, 4)]
)  # 32–68, 96–144, 149–177 (UNII-1..4)
MIN_DWELL_MS = 50
"""shorter dwells spend most of the time retuning (a hop costs ~5–20 ms)"""


def band_of_channel(channel: int) -> str:
    if channel in CHANNELS_24:
        return "2.4GHz"
    if channel in CHANNELS_5:
        return "5GHz"
    raise ConfigError(f"wifi.channels: {channel} is not a 2.4 or 5 GHz Wi-Fi channel")


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """The hop schedule: steps of (channel, dwell ms), repeated."""

    steps: tuple[tuple[int, int], ...]

    @staticmethod
    def build(
        channels: Sequence[int],
        dwell_ms: int = 250,
        dwell_by_channel: Mapping[int, int] | None = None,
    ) -> ChannelPlan:
        """Validate a configured schedule (ConfigError names what is wrong)."""
        if not channels:
            raise ConfigError("wifi.channels: give at least one channel")
        extra = dwell_by_channel or {}
        steps = []
        for ch in channels:
            band_of_channel(ch)
            d = extra.get(ch, dwell_ms)
            if d < MIN_DWELL_MS:
                raise ConfigError(f"wifi dwell for channel {ch}: {d} ms is below {MIN_DWELL_MS}")
            steps.append((ch, d))
        unknown = set(extra) - set(channels)
        if unknown:
            raise ConfigError(f"wifi.dwell_by_channel: {sorted(unknown)} not in wifi.channels")
        return ChannelPlan(tuple(steps))

    @property
    def cycle_ms(self) -> int:
        return sum(d for _, d in self.steps)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(c for c, _ in self.steps))

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(band_of_channel(c) for c in self.channels))

    @property
    def hops(self) -> bool:
        return len(self.steps) > 1

    def channel_at(self, elapsed_ms: int) -> int:
        """The channel listened to ``elapsed_ms`` after the schedule started."""
        t = elapsed_ms % self.cycle_ms
        for ch, d in self.steps:
            if t < d:
                return ch
            t -= d
        return self.steps[-1][0]  # pragma: no cover - t < cycle_ms always


class Radio(Protocol):
    """The monitor-mode radio: the hardware edge the hopper drives."""

    def set_channel(self, channel: int) -> None:
        """Tune to ``channel``; CaptureError if the radio refused."""
        ...


Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)


class IwRadio:
    """Tunes a monitor interface with ``iw`` (needs CAP_NET_ADMIN)."""

    def __init__(self, interface: str, runner: Runner = _run, iw: str = "iw") -> None:
        self.interface = interface
        self._run = runner
        self._iw = iw

    def set_channel(self, channel: int) -> None:
        argv = [self._iw, "dev", self.interface, "set", "channel", str(channel)]
        try:
            r = self._run(argv)
        except (OSError, subprocess.SubprocessError) as e:
            raise CaptureError(f"cannot run iw to tune {self.interface}: {e}") from e
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise CaptureError(
                f"iw could not tune {self.interface} to channel {channel}: "
                f"{msg[-1] if msg else f'exit {r.returncode}'}"
            )


class ChannelHopper:
    """Runs a :class:`ChannelPlan` on a :class:`Radio` in a background thread.

    Hops are scheduled against the monotonic clock, so the schedule does not
    drift with the time ``iw`` takes. A channel the radio refuses is counted
    (``errors``) and retried on its next turn.
    """

    def __init__(
        self,
        radio: Radio,
        plan: ChannelPlan,
        on_error: Callable[[int, CaptureError], None] | None = None,
    ) -> None:
        self.radio = radio
        self.plan = plan
        self.hops = 0
        self.errors: Counter[int] = Counter()
        self.current: int | None = None
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.plan.hops:
            self._tune(self.plan.steps[0][0])  # one channel: tune once, no thread
            return
        self._thread = threading.Thread(target=self._loop, name="channel-hopper", daemon=True)
        self._thread.start()

    def _tune(self, ch: int) -> None:
        try:
            self.radio.set_channel(ch)
        except CaptureError as e:
            self.errors[ch] += 1
            if self._on_error is not None:
                self._on_error(ch, e)
            return
        self.current = ch
        self.hops += 1

    def _loop(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            for ch, dwell in self.plan.steps:
                self._tune(ch)
                deadline += dwell / 1000
                if self._stop.wait(max(0.0, deadline - time.monotonic())):
                    return
                if time.monotonic() - deadline > 1.0:  # fell far behind (suspend): re-anchor
                    deadline = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> dict[str, object]:
        d: dict[str, object] = {
            "channels": list(self.plan.channels),
            "cycle_ms": self.plan.cycle_ms,
            "hops": self.hops,
        }
        if self.current is not None:
            d["channel"] = self.current
        if self.errors:
            d["hop_errors"] = sum(self.errors.values())
        return d


# --------------------------------------------------------------------- iw phy info


@dataclass(frozen=True, slots=True)
class PhyInfo:
    """What ``iw phy PHY info`` says a radio can do."""

    monitor: bool
    """"monitor" is among its supported interface modes"""
    channels: frozenset[int]
    """channels it can tune to (not disabled)"""


_FREQ = re.compile(r"^\s*\*\s*(\d+)(?:\.\d+)?\s*MHz\s*\[(\d+)\](.*)$")


def parse_phy_info(text: str) -> PhyInfo:
    """Parse the output of ``iw phy PHY info``."""
    monitor = False
    in_modes = False
    channels: set[int] = set()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Supported interface modes"):
            in_modes = True
            continue
        if in_modes:
            if s.startswith("*"):
                if s[1:].strip().lower() == "monitor":
                    monitor = True
                continue
            in_modes = False
        m = _FREQ.match(line)
        if m and "disabled" not in m.group(3):
            channels.add(int(m.group(2)))
    return PhyInfo(monitor, frozenset(channels))


def phy_of(interface: str, sys_class_net: Path = Path("/sys/class/net")) -> str | None:
    """The wiphy name (``phy0``) of a wireless interface, None if it is not one."""
    p = sys_class_net / interface / "phy80211" / "name"
    try:
        return p.read_text().strip()
    except OSError:
        return None


def unsupported(plan: ChannelPlan, phy: PhyInfo) -> list[int]:
    """Channels of the plan the radio cannot tune to."""
    return [c for c in plan.channels if c not in phy.channels]


def describe(channels: Iterable[int]) -> str:
    return ",".join(str(c) for c in channels)
