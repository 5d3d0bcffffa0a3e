"""Live 802.11 frames from a monitor-mode interface, as capture records.

The radio edge is a scapy listening socket (``conf.L2listen``, on Linux a
``PF_PACKET`` socket) read with ``recv_raw()``: the frame's bytes and the kernel's
receive timestamp, never a dissected scapy packet. Records go to the same
:class:`~sensing.node.pipeline.NodePipeline` as a pcap's, so a live node and a
replay run exactly the same decoding.

scapy is imported only when a real interface is opened; the package ships a
fake of the socket, :class:`ReplaySocket`, that serves the frames of a capture
file as the kernel would (tests and ``footfall`` dry runs use it).

A kernel filter (BPF, ``type mgt subtype probe-req``) keeps everything but probe
requests out of user space when libpcap or tcpdump can compile it; without one,
every frame comes up and the decoder counts the others (``not_mgmt``, ...).
The interface must already be in monitor mode on a channel (``iw dev wlan1 set
type monitor``); channel hopping is not done here.

Example
-------
>>> src = MonitorSource("replay", open_socket=lambda iface: ReplaySocket([]))
>>> list(src)
[]
"""

from __future__ import annotations

import logging
import select
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from firmware_bridge.errors import CaptureError
from sensing.capture.capture_file import (
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_PRISM,
    LINKTYPE_IEEE802_11_RADIOTAP,
    Record,
)

__all__ = [
    "PROBE_REQUEST_FILTER",
    "MonitorSource",
    "RawSocket",
    "ReplaySocket",
    "open_monitor_socket",
]

PROBE_REQUEST_FILTER = "type mgt subtype probe-req"
"""BPF (pcap syntax) for 802.11 probe requests, compiled for the interface's link type"""
RECV_BYTES = 0xFFFF
log = logging.getLogger(__name__)
_LINKTYPE_BY_LAYER = {
    "RadioTap": LINKTYPE_IEEE802_11_RADIOTAP,
    "Dot11": LINKTYPE_IEEE802_11,
    "Dot11FCS": LINKTYPE_IEEE802_11,
    "PrismHeader": LINKTYPE_IEEE802_11_PRISM,
}


class RawSocket(Protocol):
    """The part of a scapy ``SuperSocket`` a live source uses."""

    def recv_raw(self, x: int = ...) -> tuple[Any, bytes | None, float | None]:
        """(layer class, frame bytes, receive time in Unix seconds or None)."""
        ...

    def close(self) -> None: ...


def open_monitor_socket(iface: str, bpf: str | None = PROBE_REQUEST_FILTER) -> RawSocket:
    """scapy's listening socket on ``iface`` (lazy import), with ``bpf`` if it compiles.

    Raises :class:`CaptureError` when the interface cannot be opened (no
    permission: run as root or grant CAP_NET_RAW; no such interface) or is not
    an 802.11 monitor interface.
    """
    try:
        from scapy.config import conf
        from scapy.error import Scapy_Exception
    except ImportError as e:  # pragma: no cover - scapy is a dependency
        raise CaptureError("live Wi-Fi capture needs scapy") from e
    try:
        try:
            sock = conf.L2listen(iface=iface, filter=bpf) if bpf else conf.L2listen(iface=iface)
        except Scapy_Exception as e:  # no libpcap/tcpdump to compile the filter
            log.warning("%s: no kernel filter (%s); every frame is read and decoded", iface, e)
            sock = conf.L2listen(iface=iface)
    except PermissionError as e:
        raise CaptureError(f"{iface}: no permission to capture (root or CAP_NET_RAW)") from e
    except (OSError, ValueError) as e:  # scapy raises ValueError for an unknown interface
        raise CaptureError(f"{iface}: cannot open for capture: {e}") from e
    name = getattr(getattr(sock, "LL", None), "__name__", "?")
    if name not in _LINKTYPE_BY_LAYER:
        sock.close()
        raise CaptureError(
            f"{iface}: link layer is {name}, not 802.11: put the interface in monitor mode"
        )
    return sock  # type: ignore[no-any-return]


class MonitorSource:
    """Records from a monitor-mode interface, for :meth:`NodePipeline.process`.

    Parameters
    ----------
    iface
        the monitor interface, e.g. ``"wlan1mon"``
    open_socket
        ``iface -> RawSocket``; default :func:`open_monitor_socket` (scapy). Tests
        pass a :class:`ReplaySocket`.
    clock_ns
        wall clock for frames the kernel did not timestamp (Unix ns)

    ``stats`` counts what was read but not yielded (``no_data``,
    ``unsupported_link``) and ``no_timestamp`` (clock used instead).
    """

    def __init__(
        self,
        iface: str,
        *,
        open_socket: Callable[[str], RawSocket] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.iface = iface
        self._open = open_socket or open_monitor_socket
        self.clock_ns = clock_ns
        self.stats: Counter[str] = Counter()
        self.frames = 0
        """records yielded"""
        self._sock: RawSocket | None = None
        self._linktypes: dict[Any, int | None] = {}
        self._eof = False

    def open(self) -> None:
        if self._sock is None:
            self._sock = self._open(self.iface)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> MonitorSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def exhausted(self) -> bool:
        """True once a replayed socket has no more frames (never for a radio)."""
        return self._eof

    def poll(self, timeout_s: float | None = None) -> Record | None:
        """The next frame, or None after ``timeout_s`` seconds without one (or at the
        end of a replay). ``None`` timeout blocks."""
        self.open()
        sock = self._sock
        assert sock is not None
        while not self._eof:
            fileno = getattr(sock, "fileno", None)
            if timeout_s is not None and fileno is not None:
                ready, _, _ = select.select([fileno()], [], [], timeout_s)
                if not ready:
                    return None
            try:
                cls, data, ts = sock.recv_raw(RECV_BYTES)
            except EOFError:
                self._eof = True
                return None
            except InterruptedError:
                continue
            except OSError as e:
                raise CaptureError(f"{self.iface}: capture failed: {e}") from e
            if not data or cls is None:
                self.stats["no_data"] += 1  # e.g. an outgoing frame, or nothing read
                if fileno is None:
                    return None
                continue
            lt = self._linktypes.get(cls, -1)
            if lt == -1:
                lt = _LINKTYPE_BY_LAYER.get(getattr(cls, "__name__", ""))
                self._linktypes[cls] = lt
            if lt is None:
                self.stats["unsupported_link"] += 1
                continue
            if ts is None:
                self.stats["no_timestamp"] += 1
                t_ns = self.clock_ns()
            else:
                t_ns = round(ts * 1e6) * 1000  # float seconds: microseconds are exact
            self.frames += 1
            return Record(lt, t_ns, data, len(data))
        return None

    def __iter__(self) -> Iterator[Record]:
        """Every frame until a replay ends; blocks on a radio (a daemon that must
        stop calls :meth:`poll` with a timeout and checks its own stop flag)."""
        while not self._eof:
            rec = self.poll(None)
            if rec is not None:
                yield rec


class ReplaySocket:
    """A fake monitor socket serving capture records as scapy's socket would:
    ``recv_raw`` returns (RadioTap class, bytes, float seconds), then raises
    ``EOFError`` at the end. No ``fileno``: it never blocks.

    ``records`` are :class:`~sensing.capture.capture_file.Record` (e.g. from
    :func:`~sensing.capture.capture_file.read_records`); their link type picks the scapy
    layer class a real socket would report.
    """

    def __init__(self, records: Iterable[Record]) -> None:
        self._it = iter(records)
        self._classes: dict[int, Any] = {}
        self.closed = False
        self.reads = 0

    def recv_raw(self, x: int = RECV_BYTES) -> tuple[Any, bytes | None, float | None]:
        if self.closed:
            raise OSError("socket closed")
        try:
            rec = next(self._it)
        except StopIteration:
            raise EOFError from None
        self.reads += 1
        cls = self._classes.get(rec.linktype)
        if cls is None:
            cls = self._classes[rec.linktype] = _layer_class(rec.linktype)
        return cls, rec.data[:x], rec.t_ns / 1e9

    def close(self) -> None:
        self.closed = True


def _layer_class(linktype: int) -> Any:
    """The scapy layer class a real socket reports for ``linktype`` (lazy import)."""
    import scapy.layers.dot11  # noqa: F401  (binds RadioTap/Dot11 to their link types)
    from scapy.config import conf
    from scapy.packet import Raw

    return conf.l2types.num2layer.get(linktype, Raw)
