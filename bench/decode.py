"""Decode speed: footfall's decoders vs scapy's full dissection, per real capture.

For each capture, the same frames (the first ``--frames`` records, already read into
memory) are decoded by :class:`~sensing.capture.wifi_decode.WifiDecoder` /
:class:`~sensing.capture.ble_decode.BleDecoder` and dissected by scapy (the layer class
scapy binds to the link type: RadioTap, Dot11, BTLE_RF, BTLE, NORDIC_BLE,
PrismHeader). Each run times both back to back on one core; the table shows the
median frames/s of each over ``--runs`` runs and the median of the per-run ratios.
Tiny files are looped until a timing lasts at least ``--min-time`` seconds.

Usage::

    python bench/decode.py [--data ../shared/data] [--runs 5] [--frames 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensing.capture.ble_decode import BleDecoder
from sensing.capture.capture_file import Record, read_records
from sensing.capture.wifi_decode import WifiDecoder

WIFI = {105, 127, 119}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def captures(data: Path) -> list[Path]:
    return sorted(
        p for p in data.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap")
    )


def ours_fn(recs: list[Record]) -> Callable[[], int]:
    frames = [(r.linktype, r.data, r.t_ns // 1_000_000) for r in recs]
    wifi = any(lt in WIFI for lt, _, _ in frames)

    def run() -> int:
        dec: WifiDecoder | BleDecoder = WifiDecoder() if wifi else BleDecoder()
        decode = dec.decode
        for lt, data, t in frames:
            decode(lt, data, t)
        return dec.accepted

    return run


def scapy_fn(recs: list[Record]) -> Callable[[], int]:
    import scapy.contrib.nrf_sniffer
    import scapy.layers.bluetooth4LE
    import scapy.layers.dot11  # noqa: F401
    from scapy.config import conf
    from scapy.packet import Raw

    frames = [(conf.l2types.num2layer.get(r.linktype, Raw), r.data) for r in recs]

    def run() -> int:
        n = 0
        for cls, data in frames:
            # scapy raises on some malformed records (the Prism crash file)
            with contextlib.suppress(Exception):
                cls(data)
            n += 1
        return n

    return run


def timed(fn: Callable[[], int], min_time: float) -> float:
    """Seconds per call of ``fn``, looping until ``min_time`` has elapsed."""
    loops = 0
    t0 = time.perf_counter()
    while True:
        fn()
        loops += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / loops


def bench_file(
    path: Path, frames: int, runs: int, min_time: float
) -> tuple[int, float, float, float]:
    recs = []
    for rec in read_records(path):
        recs.append(rec)
        if len(recs) >= frames:
            break
    ours, theirs = ours_fn(recs), scapy_fn(recs)
    ours_t, scapy_t, ratios = [], [], []
    for _ in range(runs):
        a = timed(ours, min_time)
        b = timed(theirs, min_time)
        ours_t.append(a)
        scapy_t.append(b)
        ratios.append(b / a)
    n = len(recs)
    return (
        n,
        n / statistics.median(ours_t),
        n / statistics.median(scapy_t),
        statistics.median(ratios),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FOOTFALL_DATA", DEFAULT_DATA))
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=2000, help="frames per capture (first N)")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds per timing, at least")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("scapy").setLevel(logging.ERROR)
    files = captures(args.data)
    if not files:
        print(f"no captures under {args.data}", file=sys.stderr)
        return 1
    print(f"{'capture':<48} {'frames':>6} {'ours f/s':>10} {'scapy f/s':>10} {'ratio':>7}")
    tot_frames = 0
    tot_ours = tot_scapy = 0.0
    for path in files:
        n, ours, theirs, ratio = bench_file(path, args.frames, args.runs, args.min_time)
        tot_frames += n
        tot_ours += n / ours
        tot_scapy += n / theirs
        print(f"{path.name[:48]:<48} {n:>6} {ours:>10,.0f} {theirs:>10,.0f} {ratio:>6.1f}x")
    print(
        f"{'ALL (time-weighted)':<48} {tot_frames:>6} {tot_frames / tot_ours:>10,.0f} "
        f"{tot_frames / tot_scapy:>10,.0f} {tot_scapy / tot_ours:>6.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
