"""The coarse kind of a BLE device, from its advertising data (AD structures).

Only the AD structures' types and identifiers are read, never kept: the
manufacturer company id (Apple, Microsoft, Samsung, Google, Garmin), beacon
prefixes (iBeacon, AltBeacon, Eddystone), 16-bit service UUIDs (lists and
service data) and the appearance category (watch, heart-rate sensor). Used by
the capture-file decoder (:mod:`sensing.capture.ble_decode`, :mod:`sensing.capture.ble_hci`)
and the live scanner (:mod:`sensing.capture.live_ble`).

>>> device_kind(bytes([2, 0x01, 0x1A, 7, 0xFF, 0x4C, 0x00, 0x10, 0x05, 0x31, 0x18])).name
'APPLE'
"""

from __future__ import annotations

from sensing.wire.observation import DeviceKind

__all__ = ["device_kind"]

_COMPANY_KIND: dict[int, DeviceKind] = {
    0x004C: DeviceKind.APPLE,
    0x0006: DeviceKind.MICROSOFT,
    0x0075: DeviceKind.SAMSUNG,
    0x00E0: DeviceKind.GOOGLE_ANDROID,
    0x0087: DeviceKind.WEARABLE,  # Garmin
}
_UUID16_KIND: dict[int, DeviceKind] = {
    0xFEAA: DeviceKind.BEACON,  # Eddystone
    0xFEF3: DeviceKind.GOOGLE_ANDROID,
    0xFE9F: DeviceKind.GOOGLE_ANDROID,
    0xFD5A: DeviceKind.SAMSUNG,  # SmartThings Find
    0xFD69: DeviceKind.SAMSUNG,
    0x180D: DeviceKind.WEARABLE,  # Heart Rate service
    0x1814: DeviceKind.WEARABLE,  # Running Speed and Cadence
    0xFEE0: DeviceKind.WEARABLE,  # Anhui Huami (Mi Band / Amazfit)
}
_WEARABLE_APPEARANCE_CATEGORIES = frozenset({3, 13})  # watch, heart-rate sensor


def device_kind(ad: bytes | memoryview) -> DeviceKind:
    """Coarse device kind from advertising data (AD structures).

    Order: beacons first (iBeacon, AltBeacon, Eddystone), then the manufacturer
    company id, then 16-bit service UUIDs (lists and service data), then the
    appearance category (watch, heart-rate sensor → wearable); any other
    manufacturer or service → OTHER; nothing → UNKNOWN.
    """
    company = -1
    mprefix = b""
    uuid_kind = DeviceKind.UNKNOWN
    other = False
    wearable_appearance = False
    n = len(ad)
    pos = 0
    while pos + 1 < n:
        ln = ad[pos]
        if ln == 0:
            break
        end = pos + 1 + ln
        if end > n:
            break
        t = ad[pos + 1]
        if t == 0xFF:
            if ln >= 3 and company < 0:
                company = ad[pos + 2] | ad[pos + 3] << 8
                mprefix = bytes(ad[pos + 4 : min(end, pos + 6)])
        elif t in (0x02, 0x03, 0x14, 0x16):
            step = 4 if t == 0x16 else 2  # service data: one UUID then data
            q = pos + 2
            stop = min(end, q + 2) if t == 0x16 else end
            while q + 2 <= stop:
                u = ad[q] | ad[q + 1] << 8
                k = _UUID16_KIND.get(u)
                if k is not None:
                    if k == DeviceKind.BEACON or uuid_kind == DeviceKind.UNKNOWN:
                        uuid_kind = k
                else:
                    other = True
                q += step
        elif t in (0x04, 0x05, 0x06, 0x07, 0x15, 0x20, 0x21):
            other = True
        elif t == 0x19 and ln >= 3:
            appearance = ad[pos + 2] | ad[pos + 3] << 8
            wearable_appearance = (appearance >> 6) in _WEARABLE_APPEARANCE_CATEGORIES
        pos = end
    if company == 0x004C and mprefix == b"\x02\x15":
        return DeviceKind.BEACON
    if company >= 0 and mprefix == b"\xbe\xac":
        return DeviceKind.BEACON
    if uuid_kind == DeviceKind.BEACON:
        return DeviceKind.BEACON
    if company >= 0:
        return _COMPANY_KIND.get(company, DeviceKind.OTHER)
    if uuid_kind != DeviceKind.UNKNOWN:
        return uuid_kind
    if wearable_appearance:
        return DeviceKind.WEARABLE
    if other:
        return DeviceKind.OTHER
    return DeviceKind.UNKNOWN
