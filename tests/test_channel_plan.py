"""Wi-Fi channel plan: validation, the schedule, the hopper driving a radio (the
radio is the only fake), ``iw`` command lines and ``iw phy`` parsing."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from firmware_bridge.errors import CaptureError, ConfigError
from sensing.capture.channel_plan import (
    ChannelHopper,
    ChannelPlan,
    IwRadio,
    parse_phy_info,
    unsupported,
)


class RecordingRadio:
    """Remembers when it was tuned to what; refuses the channels in ``refuse``."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.tuned: list[tuple[float, int]] = []
        self.refuse = refuse
        self.lock = threading.Lock()

    def set_channel(self, channel: int) -> None:
        if channel in self.refuse:
            raise CaptureError(f"channel {channel} refused")
        with self.lock:
            self.tuned.append((time.monotonic(), channel))


def test_plan_validation_names_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"15 is not a 2\.4 or 5 GHz"):
        ChannelPlan.build([1, 15])
    with pytest.raises(ConfigError, match="at least one"):
        ChannelPlan.build([])
    with pytest.raises(ConfigError, match="below 50"):
        ChannelPlan.build([1], dwell_ms=10)
    with pytest.raises(ConfigError, match=r"\[3\] not in wifi.channels"):
        ChannelPlan.build([1, 6], dwell_by_channel={3: 100})


def test_schedule_covers_both_bands() -> None:
    plan = ChannelPlan.build([1, 6, 11, 36, 149], dwell_ms=100, dwell_by_channel={6: 300})
    assert plan.cycle_ms == 700
    assert plan.bands == ("2.4GHz", "5GHz")
    assert [plan.channel_at(t) for t in (0, 99, 100, 399, 400, 500, 600, 700)] == [
        1, 1, 6, 6, 11, 36, 149, 1
    ]  # fmt: skip


def test_hopper_visits_every_channel_in_order_with_its_dwell() -> None:
    plan = ChannelPlan.build([1, 6, 11, 36, 44], dwell_ms=60, dwell_by_channel={1: 120})
    radio = RecordingRadio()
    hopper = ChannelHopper(radio, plan)
    hopper.start()
    time.sleep(plan.cycle_ms / 1000 * 3.5)
    hopper.stop()
    chans = [c for _, c in radio.tuned]
    cycle = [1, 6, 11, 36, 44]
    assert len(chans) >= 15
    assert chans == (cycle * 5)[: len(chans)]  # the configured order, repeated
    # dwell: time from tuning a channel to tuning the next, over complete cycles
    gaps: dict[int, list[float]] = {}
    for (t0, c), (t1, _) in zip(radio.tuned, radio.tuned[1:], strict=False):
        gaps.setdefault(c, []).append((t1 - t0) * 1000)
    for c, want in ((1, 120), (6, 60), (36, 60)):
        med = sorted(gaps[c])[len(gaps[c]) // 2]
        assert want - 15 <= med <= want + 40, (c, gaps[c])
    st = hopper.status()
    assert st["hops"] == len(chans) and st["channels"] == cycle and "hop_errors" not in st


def test_refused_channel_is_counted_and_the_plan_goes_on() -> None:
    plan = ChannelPlan.build([1, 6, 165], dwell_ms=50)
    seen: list[int] = []
    hopper = ChannelHopper(RecordingRadio(frozenset({165})), plan, lambda ch, e: seen.append(ch))
    hopper.start()
    time.sleep(0.5)
    hopper.stop()
    assert hopper.errors[165] >= 2 and set(seen) == {165}
    assert hopper.status()["hop_errors"] == hopper.errors[165]
    assert hopper.current in (1, 6)


def test_single_channel_tunes_once_without_a_thread() -> None:
    radio = RecordingRadio()
    h = ChannelHopper(radio, ChannelPlan.build([6]))
    h.start()
    h.stop()
    assert [c for _, c in radio.tuned] == [6] and h._thread is None


def test_iw_radio_command_lines_and_errors() -> None:
    calls: list[list[str]] = []

    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if argv[-1] == "165":
            return subprocess.CompletedProcess(
                argv, 234, "", "command failed: Invalid argument (-22)"
            )
        return subprocess.CompletedProcess(argv, 0, "", "")

    r = IwRadio("wlan1", runner)
    r.set_channel(36)
    assert calls == [["iw", "dev", "wlan1", "set", "channel", "36"]]
    with pytest.raises(CaptureError, match="channel 165: command failed: Invalid argument"):
        r.set_channel(165)

    def missing(argv: list[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("iw")

    with pytest.raises(CaptureError, match="cannot run iw"):
        IwRadio("wlan1", missing).set_channel(1)


# as iw prints it: tabs, and "\t\t * mode" (tab, tab, space) in the modes list
IW_PHY = "\n".join(
    [
        "Wiphy phy1",
        "\twiphy index: 1",
        "\tBand 1:",
        "\t\tFrequencies:",
        "\t\t\t* 2412 MHz [1] (20.0 dBm)",
        "\t\t\t* 2437 MHz [6] (20.0 dBm)",
        "\t\t\t* 2462 MHz [11] (20.0 dBm)",
        "\t\t\t* 2484 MHz [14] (disabled)",
        "\tBand 2:",
        "\t\tFrequencies:",
        "\t\t\t* 5180 MHz [36] (23.0 dBm)",
        "\t\t\t* 5260 MHz [52] (20.0 dBm) (no IR, radar detection)",
        "\t\t\t* 5745 MHz [149] (disabled)",
        "\tSupported interface modes:",
        "\t\t * IBSS",
        "\t\t * managed",
        "\t\t * AP",
        "\t\t * monitor",
        "\tBand 3:",
        "",
    ]
)


def test_parse_iw_phy_info() -> None:
    info = parse_phy_info(IW_PHY)
    assert info.monitor
    assert info.channels == {1, 6, 11, 36, 52}  # disabled ones excluded, no-IR is fine to listen
    assert unsupported(ChannelPlan.build([1, 6, 14, 36, 149]), info) == [14, 149]
    assert not parse_phy_info(IW_PHY.replace("\t\t * monitor\n", "")).monitor
