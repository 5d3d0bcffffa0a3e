"""Live BLE advertisements through bleak's scanner, normalized into :class:`BleAdvert`.

bleak (imported only when scanning starts) reports each advertisement the OS
passes up as a ``BLEDevice`` and an ``AdvertisementData``;
:func:`advert_from_bleak` turns the pair into the same
:class:`~sensing.capture.decoded.BleAdvert` the capture decoders produce, and
:class:`BleScanSource` hands each one to a sink, typically
:meth:`NodePipeline.process_advert <sensing.node.pipeline.NodePipeline.process_advert>`.
Nothing from bleak crosses inward.

Normalization
-------------
address
    ``BLEDevice.address`` ``"AA:BB:CC:DD:EE:FF"`` → 6 bytes, display order (as
    the decoders). macOS reports a per-host UUID instead of the address; such
    adverts are rejected (``not_a_mac``): nodes of a store could not agree on
    pseudonyms of host-specific UUIDs.
address type
    BlueZ's ``AddressType`` property (``"public"`` / ``"random"``, in
    ``AdvertisementData.platform_data[1]`` or ``BLEDevice.details["props"]``);
    a random address's two top bits give static / resolvable / non-resolvable,
    as in :func:`sensing.capture.ble_link_layer.address_type`. Without the property the
    address is taken as public and counted (``addr_type_unknown``).
RSSI
    ``AdvertisementData.rssi``, dBm; bleak's "no value" (-127) and values outside
    ``rssi_range`` become ``None`` (``rssi_missing`` / ``rssi_implausible``), and the
    pipeline then drops the advert as ``no_rssi``.
kind
    :func:`sensing.capture.ble_device_kind.device_kind` over AD structures rebuilt from
    the manufacturer data, 16-bit service data and service UUIDs (same rules as the
    decoders; the local name and payloads are not kept).
channel, PDU type
    not reported by the OS: ``CHANNEL_UNKNOWN`` (-1) and ``PDU_UNKNOWN`` (-1), so
    the CONNECTABLE flag is never set for live adverts.
time
    the wall clock when the callback runs (Unix ms); bleak gives no timestamp.

Caveats of the OS path, compared with a sniffer: BlueZ reports an advert only
when its data or RSSI changed (``DuplicateData`` off still coalesces equal
reports), and active scanning (the default) sends scan requests. Passive
scanning on BlueZ needs ``or_patterns`` (advertisement monitor), see bleak's docs.
bleak and BlueZ keep their own cache of seen devices with raw addresses in node
memory; :class:`BleScanSource` clears bleak's every ``forget_s`` seconds, BlueZ
drops unpaired devices after its ``TemporaryTimeout`` (30 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from firmware_bridge.errors import CaptureError
from sensing.capture.ble_device_kind import device_kind
from sensing.capture.ble_link_layer import CHANNEL_UNKNOWN
from sensing.capture.decoded import BleAddrType, BleAdvert

__all__ = ["PDU_UNKNOWN", "BleScanSource", "ad_structures", "advert_from_bleak", "replay_backend"]

log = logging.getLogger(__name__)

PDU_UNKNOWN = -1
"""``BleAdvert.pdu_type`` when the OS does not tell the PDU type"""
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
_BLEAK_NO_RSSI = -127


def _uuid16(uuid: str) -> int | None:
    """The 16-bit form of a Bluetooth base UUID string, else None."""
    u = uuid.lower()
    if len(u) == 36 and u.startswith("0000") and u.endswith(_BASE_UUID_TAIL):
        try:
            return int(u[4:8], 16)
        except ValueError:
            return None
    return None


def ad_structures(
    manufacturer_data: dict[int, bytes],
    service_data: dict[str, bytes],
    service_uuids: list[str],
) -> bytes:
    """AD structures (Core spec Vol 3 Part C 11) rebuilt from bleak's parsed fields,
    enough for :func:`~sensing.capture.ble_device_kind.device_kind`: manufacturer specific
    data (0xFF, company id little-endian, then the first bytes of the data), 16-bit
    service data (0x16), complete 16-bit (0x03) and 128-bit (0x07) UUID lists."""
    out = bytearray()
    for company, data in manufacturer_data.items():
        body = (company & 0xFFFF).to_bytes(2, "little") + bytes(data[:27])
        out += bytes([len(body) + 1, 0xFF]) + body
    for uuid, data in service_data.items():
        u = _uuid16(uuid)
        if u is None:
            out += bytes([17, 0x21]) + bytes(16)  # 128-bit service data: kind OTHER
        else:
            body = u.to_bytes(2, "little") + bytes(data[:25])
            out += bytes([len(body) + 1, 0x16]) + body
    short = [u for u in map(_uuid16, service_uuids) if u is not None]
    if short:
        body = b"".join(u.to_bytes(2, "little") for u in short[:14])
        out += bytes([len(body) + 1, 0x03]) + body
    if len(short) < len(service_uuids):
        out += bytes([17, 0x07]) + bytes(16)
    return bytes(out)


def _address_type(addr: bytes, bluez_type: str | None) -> BleAddrType:
    if bluez_type != "random":
        return BleAddrType.PUBLIC
    top = addr[0] >> 6
    if top == 3:
        return BleAddrType.RANDOM_STATIC
    if top == 1:
        return BleAddrType.RESOLVABLE
    return BleAddrType.NON_RESOLVABLE


def _bluez_address_type(device: Any, adv: Any) -> str | None:
    pd = getattr(adv, "platform_data", None)
    if isinstance(pd, tuple) and len(pd) >= 2 and isinstance(pd[1], dict):
        v = pd[1].get("AddressType")
        if isinstance(v, str):
            return v
    details = getattr(device, "details", None)
    if isinstance(details, dict):
        props = details.get("props")
        if isinstance(props, dict) and isinstance(props.get("AddressType"), str):
            return str(props["AddressType"])
    return None


def advert_from_bleak(
    device: Any,
    adv: Any,
    t_ms: int,
    rejects: Counter[str] | None = None,
    rssi_range: tuple[int, int] = (-120, -1),
) -> BleAdvert | None:
    """Normalize one bleak report (``BLEDevice``, ``AdvertisementData``); None when
    it cannot be (counted in ``rejects``, caveats too: see the module doc)."""
    counts = rejects if rejects is not None else Counter()
    address = getattr(device, "address", "")
    if not isinstance(address, str) or not _MAC_RE.match(address):
        counts["not_a_mac"] += 1
        return None
    addr = bytes.fromhex(address.replace(":", ""))
    bluez_type = _bluez_address_type(device, adv)
    if bluez_type is None:
        counts["addr_type_unknown"] += 1
    rssi: int | None = adv.rssi
    if rssi is None or rssi == _BLEAK_NO_RSSI:
        counts["rssi_missing"] += 1
        rssi = None
    elif not rssi_range[0] <= rssi <= rssi_range[1]:
        counts["rssi_implausible"] += 1
        rssi = None
    ad = ad_structures(adv.manufacturer_data, adv.service_data, adv.service_uuids)
    return BleAdvert(
        t_ms=t_ms,
        addr=addr,
        addr_type=_address_type(addr, bluez_type),
        rssi=rssi,
        channel=CHANNEL_UNKNOWN,
        pdu_type=PDU_UNKNOWN,
        kind=device_kind(ad),
    )


class BleScanSource:
    """bleak's scanner as a source of :class:`BleAdvert`.

    Parameters
    ----------
    adapter
        BlueZ adapter name (``"hci0"``), None for the default
    scanning_mode
        ``"active"`` (default) or ``"passive"`` (BlueZ: needs ``bluez_args``
        with ``or_patterns``)
    backend
        a bleak scanner backend class (``BaseBleakScanner`` subclass); None picks
        the platform's. Tests pass a fake that feeds real bleak objects.
    clock_ms
        wall clock, Unix ms, stamped on each advert
    forget_s
        how often bleak's cache of seen devices (raw addresses) is cleared, s

    Example
    -------
    ::

        pipe = NodePipeline.for_node(pseudonymizer, filters, state_dir)
        src = BleScanSource(adapter="hci0")
        await src.run(lambda adv: handle(pipe.process_advert(adv)), stop_event)
    """

    def __init__(
        self,
        *,
        adapter: str | None = None,
        scanning_mode: Literal["active", "passive"] = "active",
        backend: type | None = None,
        bluez_args: dict[str, Any] | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        forget_s: float = 60.0,
        rssi_range: tuple[int, int] = (-120, -1),
    ) -> None:
        self.adapter = adapter
        self.scanning_mode = scanning_mode
        self.backend = backend
        self.bluez_args = dict(bluez_args or {})
        self.clock_ms = clock_ms
        self.forget_s = forget_s
        self.rssi_range = rssi_range
        self.rejects: Counter[str] = Counter()
        """reports not turned into adverts, and caveats, by reason"""
        self.reports = 0
        """reports received from bleak"""
        self.adverts = 0
        """adverts handed to the sink"""
        self._sink: Callable[[BleAdvert], object] | None = None

    def on_report(self, device: Any, adv: Any) -> None:
        """bleak's detection callback (two parameters, as bleak requires)."""
        self.reports += 1
        a = advert_from_bleak(device, adv, self.clock_ms(), self.rejects, self.rssi_range)
        if a is not None and self._sink is not None:
            self.adverts += 1
            self._sink(a)

    async def run(self, sink: Callable[[BleAdvert], object], stop: asyncio.Event) -> None:
        """Scan until ``stop`` is set, handing every advert to ``sink`` (called in
        the event loop's thread). Raises :class:`CaptureError` if the adapter
        cannot scan."""
        try:
            from bleak import BleakScanner
            from bleak.exc import BleakError
        except ImportError as e:
            raise CaptureError("live BLE needs bleak (pip install 'footfall[live]')") from e
        bluez = dict(self.bluez_args)
        if self.adapter:
            bluez["adapter"] = self.adapter
        self._sink = sink
        try:
            scanner = BleakScanner(
                self.on_report,
                scanning_mode=self.scanning_mode,
                bluez=bluez,  # type: ignore[arg-type]
                backend=self.backend,
            )
            await scanner.start()
        except (BleakError, OSError) as e:
            self._sink = None
            where = self.adapter or "default adapter"
            raise CaptureError(f"BLE scan on {where} failed to start: {e}") from e
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.forget_s)
                _forget(scanner)
        finally:
            self._sink = None
            try:
                await scanner.stop()
            except (BleakError, OSError) as e:
                log.warning("BLE scan did not stop cleanly: %s", e)
            _forget(scanner)


def _forget(scanner: Any) -> None:
    """Clear bleak's map of seen devices (raw addresses, names) of ``scanner``."""
    backend = getattr(scanner, "_backend", None)
    seen = getattr(backend, "seen_devices", None)
    if isinstance(seen, dict):
        seen.clear()


def replay_backend(reports: list[tuple[str, dict[str, Any], Any]]) -> type:
    """A bleak scanner backend (``BaseBleakScanner`` subclass) that, once started,
    reports ``reports`` as the OS would, then stays silent: the fake of the
    adapter edge. Each report is (D-Bus-like key, BlueZ device properties with at
    least ``"Address"`` and ``"AddressType"``, ``AdvertisementData``); bleak's own
    ``create_or_update_device`` builds the ``BLEDevice``.
    """
    from bleak.backends.scanner import BaseBleakScanner

    class ReplayScanner(BaseBleakScanner):
        def __init__(
            self, detection_callback: Any, service_uuids: Any, *args: Any, **kwargs: Any
        ) -> None:
            super().__init__(detection_callback, service_uuids)
            self.started = False

        async def start(self) -> None:
            self.seen_devices = {}
            self.started = True
            for key, props, adv in reports:
                if not self.is_allowed_uuid(adv.service_uuids):
                    continue
                device = self.create_or_update_device(
                    key, props["Address"], props.get("Name"), {"path": key, "props": props}, adv
                )
                self.call_detection_callbacks(device, adv)
                await asyncio.sleep(0)

        async def stop(self) -> None:
            self.started = False

    return ReplayScanner
