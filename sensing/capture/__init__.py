"""Capture: from radio (or capture file) to decoded frames.

Radiotap and 802.11 probe-request decoding (:mod:`~sensing.capture.radiotap`,
:mod:`~sensing.capture.wifi_decode`), BLE advertising PDUs and HCI reports
(:mod:`~sensing.capture.ble_decode`, :mod:`~sensing.capture.ble_hci`; the link-layer
terms, CRC-24 and device kinds in :mod:`~sensing.capture.ble_link_layer`,
:mod:`~sensing.capture.ble_crc`, :mod:`~sensing.capture.ble_device_kind`),
pcap/pcapng/btsnoop files (:mod:`~sensing.capture.capture_file`), the live sources
(:mod:`~sensing.capture.live_wifi`, :mod:`~sensing.capture.live_ble`), the Wi-Fi channel
plan and the store's own equipment filter. The frame types in
:mod:`~sensing.capture.decoded` hold raw addresses and never leave node memory.
"""
