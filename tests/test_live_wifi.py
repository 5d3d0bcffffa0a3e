"""Live Wi-Fi source: the socket edge faked with the real captures' radiotap frames,
everything behind it real; identical observations to the file path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import CaptureError
from sensing.capture.capture_file import Record, read_records
from sensing.capture.live_wifi import MonitorSource, ReplaySocket, open_monitor_socket
from sensing.node.pipeline import NodePipeline
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
ROOT = Path(__file__).resolve().parents[1]


def wifi_captures() -> list[Path]:
    dirs = ("wifi-probes-brno-esp32-occupancy", "wifi-probes-baccichet-labelled")
    found = [p for d in (*dirs, "wifi-misc-aircrack-ng") for p in (DATA / d).iterdir()]
    return sorted(
        [
            *(p for p in found if p.suffix in (".pcap", ".cap")),
            DATA / "wifi-beacon-malformed-rsn-scapy.pcap",
        ]
    )


def pipeline() -> NodePipeline:
    sched = EpochSchedule(date(2000, 1, 1), 4, "UTC")
    return NodePipeline(Pseudonymizer(KeyRing(bytearray(range(32)), 0), sched))


@pytest.mark.parametrize("path", wifi_captures(), ids=lambda p: p.name[:30])
def test_live_source_gives_what_the_file_gives(path: Path) -> None:
    recs = list(read_records(path))
    sock = ReplaySocket(recs)
    src = MonitorSource("wlan1mon", open_socket=lambda iface: sock)
    live = list(src)
    assert src.exhausted and sock.reads == len(recs)
    assert [(r.linktype, r.t_ns, r.data) for r in live] == [
        (r.linktype, r.t_ns, r.data) for r in recs
    ]
    assert not src.stats
    a, b = pipeline(), pipeline()
    assert [a.process(r) for r in live] == [b.process(r) for r in recs]
    assert a.rejects() == b.rejects()
    src.close()
    assert sock.closed


def test_missing_kernel_timestamp_uses_the_clock() -> None:
    rec = next(iter(read_records(DATA / "wifi-misc-aircrack-ng/test1.pcap")))

    class NoTimestamp(ReplaySocket):
        def recv_raw(self, x: int = 0xFFFF) -> tuple[Any, bytes | None, float | None]:
            cls, data, _ = super().recv_raw(x)
            return cls, data, None

    src = MonitorSource("x", open_socket=lambda i: NoTimestamp([rec]), clock_ns=lambda: 42)
    assert [r.t_ns for r in src] == [42] and src.stats["no_timestamp"] == 1


class SilentSocket:
    """A socket with a real file descriptor on which nothing ever arrives."""

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair()

    def fileno(self) -> int:
        return self.a.fileno()

    def recv_raw(self, x: int = 0xFFFF) -> tuple[Any, bytes | None, float | None]:
        raise AssertionError("recv_raw called although select said nothing is ready")

    def close(self) -> None:
        self.a.close()
        self.b.close()


def test_poll_times_out_on_a_silent_radio() -> None:
    with MonitorSource("x", open_socket=lambda i: SilentSocket()) as src:
        assert src.poll(0.05) is None and not src.exhausted


def test_opening_a_non_monitor_interface_is_a_clear_error() -> None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (PermissionError, AttributeError):
        pytest.skip("needs CAP_NET_RAW and AF_PACKET")
    with pytest.raises(CaptureError, match="monitor mode"):
        open_monitor_socket("lo")
    with pytest.raises(CaptureError, match="cannot open"):
        open_monitor_socket("footfall-no-such-if")


def test_sources_import_without_scapy_or_bleak() -> None:
    code = (
        "import sys, sensing.capture.live_wifi, sensing.capture.live_ble, sensing.node.pipeline; "
        "print([m for m in ('scapy', 'bleak') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.strip()
    assert out == "[]"


def test_replay_socket_reports_scapy_layer_classes() -> None:
    from scapy.layers.dot11 import Dot11, RadioTap

    s = ReplaySocket([Record(127, 0, b"\x00" * 8, 8), Record(105, 0, b"\x00" * 24, 24)])
    assert s.recv_raw()[0] is RadioTap and s.recv_raw()[0] is Dot11
    with pytest.raises(EOFError):
        s.recv_raw()
