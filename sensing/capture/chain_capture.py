"""Chains of a whole capture, offline: each record labelled with its chain, for scoring
:class:`sensing.capture.address_chain.AddressChainer` on labelled pcaps (the benches'
entry point; a node chains frame by frame in :mod:`sensing.node.pipeline`)."""

from __future__ import annotations

from collections.abc import Iterable

from sensing.capture.address_chain import AddressChainer, ble_content
from sensing.capture.capture_file import Record
from sensing.capture.chain_params import ChainParams

__all__ = ["chain_capture"]


def chain_capture(records: Iterable[Record], params: ChainParams | None = None) -> list[int]:
    """Label each record with its chain, in the given order (-1: did not decode).

    Equal labels mean one chain. Wi-Fi probe requests (LINKTYPE 105/127) and BLE
    adverts (the link types of :mod:`sensing.capture.ble_decode`) are decoded with
    fresh decoders; nothing is filtered by RSSI or epoch (one chainer throughout).
    """
    from sensing.capture.ble_decode import BleDecoder
    from sensing.capture.decoded import BleAddrType
    from sensing.capture.wifi_decode import WifiDecoder

    wifi, ble = WifiDecoder(), BleDecoder()
    chainer: AddressChainer[bytes] = AddressChainer(params)
    ids: dict[bytes, int] = {}
    out: list[int] = []
    private = (BleAddrType.RESOLVABLE, BleAddrType.NON_RESOLVABLE)
    for rec in records:
        t_ms = rec.t_ns // 1_000_000
        head: bytes | None = None
        if rec.linktype in (105, 127):
            p = wifi.decode(rec.linktype, rec.data, t_ms)
            if p is not None:
                head = chainer.wifi(
                    t_ms, p.addr, p.seq, p.rssi, p.ie_sig, p.randomized, p.freq_mhz or 0
                )
        else:
            a = ble.decode(rec.linktype, rec.data, t_ms)
            if a is not None:
                head = chainer.ble(
                    t_ms, a.addr, a.rssi, ble_content(a.kind, a.addr_type, a.pdu_type),
                    a.addr_type in private,
                )  # fmt: skip
        if head is None:
            out.append(-1)
            continue
        label = ids.get(head)
        if label is None:
            label = ids[head] = len(ids)
        out.append(label)
    return out
