"""Node daemon throughput and memory: ``footfall node`` replaying a busy capture
through a real Mosquitto.

What is measured (medians of ``--runs`` runs, the machine is shared):

* **fast-forward**: the daemon (a separate process, as systemd runs it) reads
  the capture as fast as it can: decode → pseudonymize → batch → spool (fsync'd
  SQLite) → publish QoS 1 → PUBACK → delete. frames/s from the daemon's own
  ``stopped`` log line (start-up excluded), peak RSS from ``wait4``'s ru_maxrss.
* **baseline**: the bare pipeline (read → decode → pseudonymize → batch, no
  threads, no spool, no MQTT) on the same files in this process, so the daemon's
  cost is a ratio.
* **paced**: the same capture at a busy store's rate (``--rate`` frames/s, real
  time) for ``--paced-s`` seconds: the daemon's CPU share of one core and RSS.

Goals (docs/accuracy.md): node end-to-end ≥ 20,000 frames/s on one core; node
daemon RSS ≤ 80 MB.

Usage::

    python bench/node.py [--frames 300000] [--runs 3] [--rate 500] [--paced-s 20]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heatmap.aggregator.broker import start_mosquitto
from heatmap.simulate import frames as air
from sensing.capture.capture_file import CaptureReader
from sensing.node.batcher import Batcher
from sensing.node.pipeline import NodePipeline
from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import Pseudonymizer

T0_MS = 1_795_000_000_000


def write_capture(out: Path, n: int, devices: int, rate: float, seed: int = 1) -> None:
    """A busy node's air: ``n`` frames, half probe requests, half BLE adverts."""
    rng = random.Random(seed)
    macs = [bytes([0x02 | (rng.randrange(256) & 0xFC)]) + rng.randbytes(5) for _ in range(devices)]
    ies = [(1, b"\x02\x04\x0b\x16"), (50, b"\x0c\x12\x18\x24\x30\x48\x60\x6c")]
    out.mkdir(parents=True, exist_ok=True)
    files = {127: (out / "wifi.pcap").open("wb"), 256: (out / "ble.pcap").open("wb")}
    for lt, f in files.items():
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, lt))
    for i in range(n):
        t = T0_MS + int(i * 1000 / rate)
        mac = macs[rng.randrange(devices)]
        rssi = rng.randrange(-92, -40)
        if i % 2 == 0:
            ch = rng.choice((1, 6, 11, 36, 44))
            data = air.wifi_frame(air.probe_request_body(mac, i & 0xFFF, b"", ies, ch), ch, rssi)
            f = files[127]
        else:
            pdu = air.adv_pdu(mac, air.adv_data_for("android", rng.randbytes(5)))
            data = air.ble_frame(pdu, rng.choice((37, 38, 39)), rssi)
            f = files[256]
        f.write(struct.pack("<IIII", t // 1000, (t % 1000) * 1000, len(data), len(data)))
        f.write(data)
    for f in files.values():
        f.close()


def baseline(capture: Path, key: Path) -> float:
    """frames/s of the bare pipeline: read the files, decode, pseudonymize, batch
    (what the daemon does minus threads, spool and MQTT), in this process."""
    ring, sched = KeyFile(key).load()
    pipe = NodePipeline(Pseudonymizer(ring, sched))
    b = Batcher("obs", header={"node": "n1"})
    t = time.perf_counter()
    readers = [iter(CaptureReader(p)) for p in sorted(capture.glob("*.pcap"))]
    n = 0
    for r in heapq.merge(*readers, key=lambda r: r.t_ns):
        n += 1
        o = pipe.process(r)
        if o is not None:
            b.add(o.t_ms, [o.pid, o.rssi, o.band, o.flags])
    b.flush()
    return n / (time.perf_counter() - t)


def node_toml(
    path: Path, port: int, state: Path, key: Path, capture: Path, **replay: object
) -> Path:
    lines = [
        "[node]",
        'store = "bench"',
        'id = "n1"',
        f'keyfile = "{key}"',
        f'state_dir = "{state}"',
        "[broker]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[clock]",
        "require_sync = false",
        "[wifi]",
        f'pcap = "{capture / "wifi.pcap"}"',
        "[ble]",
        f'pcap = "{capture / "ble.pcap"}"',
        "[replay]",
        *(f"{k} = {json.dumps(v)}" for k, v in replay.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_node(conf: Path, timeout_s: float) -> tuple[dict[str, object], float, float, float]:
    """(stopped event, wall s, CPU s, peak RSS MB) of one ``footfall node`` run."""
    t = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-m", "sensing.cli.main", "node", "--config", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t
    if p.returncode != 0 or wall > timeout_s:
        raise SystemExit(f"footfall node failed ({p.returncode}):\n{err}")
    stopped = [json.loads(x) for x in err.splitlines() if '"event":"stopped"' in x][-1]
    # the daemon's own VmHWM: wait4's ru_maxrss would also count this (fat) process,
    # whose pages the child shares between fork and exec
    rss = float(stopped["rss_peak_mb"])  # type: ignore[arg-type]
    return stopped, wall, ru.ru_utime + ru.ru_stime, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--devices", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=500.0, help="paced run, frames/s")
    ap.add_argument("--paced-s", type=float, default=20.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="footfall-bench-node-"))
    cap = work / "capture"
    write_capture(cap, a.frames, a.devices, rate=a.rate)
    key = work / "store.key"
    KeyFile.provision(key, date(2026, 11, 1), 4, "UTC", key=bytes(32))
    broker = start_mosquitto(work / "broker")
    try:
        rates, walls, rss, base = [], [], [], []
        for i in range(a.runs):
            base.append(baseline(cap, key))
            conf = node_toml(work / f"ff{i}.toml", broker.address.port, work / f"s{i}", key, cap)
            st, wall, _cpu, mb = run_node(conf, 600)
            rates.append(float(st["frames"]) / float(st["seconds"]))  # type: ignore[arg-type]
            walls.append(wall)
            rss.append(mb)
            print(
                f"run {i + 1}: daemon {rates[-1]:,.0f} frames/s ({st['frames']} frames in "
                f"{st['seconds']} s, process {wall:.1f} s), peak RSS {mb:.1f} MB; "
                f"bare pipeline {base[-1]:,.0f} frames/s",
                flush=True,
            )
        paced_frames = int(a.rate * a.paced_s)
        cap2 = work / "paced"
        write_capture(cap2, paced_frames, a.devices, rate=a.rate, seed=2)
        conf = node_toml(work / "paced.toml", broker.address.port, work / "sp", key, cap2,
                         realtime=True)  # fmt: skip
        st, wall, cpu, mb = run_node(conf, a.paced_s * 3 + 60)
    finally:
        broker.stop()
    med, med_base = statistics.median(rates), statistics.median(base)
    print()
    print(f"fast-forward, {a.frames:,} frames ({a.devices} devices), medians of {a.runs} runs:")
    print(f"  node daemon end to end     {med:>9,.0f} frames/s   (goal >= 20,000 on one core)")
    print(f"  bare pipeline, same run    {med_base:>9,.0f} frames/s   (daemon = "
          f"{med / med_base:.2f} x pipeline)")  # fmt: skip
    print(f"  peak RSS                   {max(rss):>9.1f} MB        (goal <= 80 MB; median "
          f"{statistics.median(rss):.1f})")  # fmt: skip
    print(f"paced at {a.rate:g} frames/s for {a.paced_s:g} s (a busy store):")
    print(f"  CPU {100 * cpu / wall:.1f} % of one core, peak RSS {mb:.1f} MB, "
          f"{st['frames']} frames, {st['observations']} observations")  # fmt: skip


if __name__ == "__main__":
    main()
