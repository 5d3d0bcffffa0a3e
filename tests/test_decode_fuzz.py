"""Decoders never raise, whatever the bytes: a short run of the mutation fuzzer
(bench/fuzz_decode.py) over real frames, plus hypothesis on arbitrary bytes."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensing.capture.ble_decode import BleDecoder
from sensing.capture.wifi_decode import WifiDecoder

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FOOTFALL_DATA", ROOT.parent / "shared" / "data"))


def load_fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_decode", ROOT / "bench" / "fuzz_decode.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_decode"] = mod
    spec.loader.exec_module(mod)
    return mod


fuzz = load_fuzzer()


def test_mutation_fuzz_short_run() -> None:
    seeds = fuzz.load_seeds(DATA) if DATA.is_dir() else []
    seeds = seeds or fuzz.synthetic_seeds()
    report = fuzz.FuzzReport()
    fuzz.fuzz_frames(30_000, 7, seeds, report)
    assert report.frames == 30_000
    assert not report.crashes, report.crashes[0][2]
    assert sum(report.rejects.values()) > 0


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real captures not found in {DATA}")
def test_capture_reader_fuzz_short_run() -> None:
    report = fuzz.FuzzReport()
    fuzz.fuzz_files(300, 7, DATA, report)
    assert report.files == 300
    assert not report.file_crashes, report.file_crashes[0][1]


LINKTYPES = st.sampled_from([105, 127, 119, 187, 201, 251, 254, 256, 272, 0, 65535])


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lt=LINKTYPES, data=st.binary(max_size=300), t_ms=st.integers(0, 1 << 45))
def test_decoders_never_raise_on_arbitrary_bytes(lt: int, data: bytes, t_ms: int) -> None:
    wifi, ble = WifiDecoder(fcs="verify"), BleDecoder()
    p = wifi.decode(lt, data, t_ms)
    assert p is None or fuzz.check_probe(p, wifi) is None
    for a in ble.decode_all(lt, data, t_ms):
        assert fuzz.check_advert(a, ble) is None
    assert wifi.accepted + sum(wifi.rejects.values()) == 1


@settings(max_examples=2000, deadline=None)
@given(
    present=st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=5),
    body=st.binary(max_size=120),
)
def test_radiotap_random_present_words(present: list[int], body: bytes) -> None:
    """Random presence chains (extensions, namespaces, vendor bits) over random field bytes."""
    words = [w | 0x80000000 for w in present[:-1]] + [present[-1] & 0x7FFFFFFF]
    hdr = b"".join(w.to_bytes(4, "little") for w in words)
    it_len = 4 + len(hdr) + len(body)
    frame = bytes([0, 0]) + (it_len & 0xFFFF).to_bytes(2, "little") + hdr + body
    frame += bytes.fromhex("40000000ffffffffffff020000000001ffffffffffff00000000")
    dec = WifiDecoder()
    p = dec.decode(127, frame, 0)
    assert p is None or fuzz.check_probe(p, dec) is None
