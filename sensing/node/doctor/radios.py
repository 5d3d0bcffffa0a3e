"""``footfall doctor``'s checks of the radios: the Wi-Fi monitor radio and its channel
plan, the BLE adapter, or the capture files that stand in for them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from firmware_bridge.errors import FootfallError
from sensing.capture.channel_plan import parse_phy_info, unsupported
from sensing.node.config import NodeConfig
from sensing.node.doctor.check import Check

__all__ = ["Runner", "ble", "capture_file", "wifi"]

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]
"""runs a command (argv) and returns what it printed (the ``iw`` seam)"""


def wifi(
    cfg: NodeConfig, runner: Runner, sys_class: Path, which: Callable[[str], str | None]
) -> Iterator[Check]:
    """The Wi-Fi radio: iw present, the interface a Wi-Fi radio, able to monitor and in
    monitor mode, and able to tune to every channel of the plan."""
    w = cfg.wifi
    if w.pcap is not None:
        yield capture_file("wifi", w.pcap)
        return
    if not w.interface:
        yield Check("wifi", "skip", "no Wi-Fi source configured")
        return
    iface = w.interface
    iw = which("iw")
    if iw is None:
        yield Check(
            "wifi",
            "FAIL",
            "the iw tool is missing (monitor mode, channel hops)",
            "sudo apt-get install iw",
        )
        return
    net = sys_class / "net" / iface
    if not net.exists():
        yield Check(
            "wifi",
            "FAIL",
            f"no network interface {iface}",
            "plug in the USB Wi-Fi adapter; `iw dev` lists the radios",
        )
        return
    try:
        phy = (net / "phy80211" / "name").read_text().strip()
    except OSError:
        yield Check(
            "wifi",
            "FAIL",
            f"{iface} is not a Wi-Fi interface",
            "set [wifi] interface to a radio listed by `iw dev`",
        )
        return
    r = runner([iw, "phy", phy, "info"])
    info = parse_phy_info(r.stdout)
    if not info.monitor:
        yield Check(
            "wifi",
            "FAIL",
            f"{iface} ({phy}) does not support monitor mode",
            "use an adapter whose driver can monitor (e.g. mt7612u, mt7921u, "
            "ath9k_htc, rt2800usb); the Pi's built-in radio cannot",
        )
        return
    dev = runner([iw, "dev", iface, "info"])
    if "type monitor" not in dev.stdout:
        yield Check(
            "wifi",
            "FAIL",
            f"{iface} supports monitor mode but is not in it",
            f"sudo ip link set {iface} down && sudo iw dev {iface} set type monitor "
            f"&& sudo ip link set {iface} up (the unit's ExecStartPre does this)",
        )
        return
    missing = unsupported(w.plan, info)
    if missing:
        yield Check(
            "wifi",
            "warn",
            f"{iface} ({phy}) in monitor mode, but cannot tune to "
            f"channel(s) {','.join(map(str, missing))} of the plan",
            "remove them from [wifi] channels",
        )
        return
    yield Check(
        "wifi",
        "ok",
        f"{iface} ({phy}) in monitor mode; plan "
        f"{','.join(map(str, w.plan.channels))} every {w.plan.cycle_ms} ms",
    )


def ble(cfg: NodeConfig, sys_class: Path) -> Iterator[Check]:
    """The BLE adapter: present, not blocked by rfkill, and bleak installed."""
    b = cfg.ble
    if b.pcap is not None:
        yield capture_file("ble", b.pcap)
        return
    if not b.adapter:
        yield Check("ble", "skip", "no BLE source configured")
        return
    dev = sys_class / "bluetooth" / b.adapter
    if not dev.exists():
        yield Check(
            "ble",
            "FAIL",
            f"no BLE adapter {b.adapter}",
            "enable Bluetooth (no dtoverlay=disable-bt in config.txt) or plug a "
            "USB dongle; `bluetoothctl list` shows adapters",
        )
        return
    for soft in dev.glob("rfkill*/soft"):
        if soft.read_text().strip() == "1":
            yield Check(
                "ble",
                "FAIL",
                f"{b.adapter} is blocked by rfkill",
                "sudo rfkill unblock bluetooth",
            )
            return
    try:
        import bleak  # noqa: F401
    except ImportError:
        yield Check("ble", "FAIL", "the bleak package is missing", "pip install 'footfall[live]'")
        return
    yield Check("ble", "ok", f"adapter {b.adapter} present")


def capture_file(name: str, path: Path) -> Check:
    """A capture file in place of a radio: readable, with frames."""
    from sensing.capture.capture_file import CaptureReader

    try:
        reader = CaptureReader(path)
        first = next(iter(reader), None)
        reader.close()
    except FootfallError as e:
        return Check(name, "FAIL", str(e), "point the config at a pcap/pcapng/btsnoop file")
    if first is None:
        return Check(name, "warn", f"{path}: no frames in the capture file")
    return Check(name, "ok", f"capture file {path} ({reader.stats.format})")
