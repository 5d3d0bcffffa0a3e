"""Address chaining on real labelled phones: the Baccichet et al. probe requests.

``../shared/data/wifi-probes-baccichet-labelled/`` holds one capture per phone (11
phones: iPhone 7, XR ×2, 11 ×4, 12, 12 Pro, Galaxy S21 Ultra, Oppo Find X3 Neo).
They were recorded on different days, so they are **overlaid** into one stream:
each file's records are sorted by capture time (three sniffers were merged upstream,
so time goes backwards inside some files) and shifted so that every file starts at
the same instant, the first frame of the earliest file; the shifted records of all
files are then merged in time order (ties: file order). The phones thus scan side
by side, as in a room with 11 people. iPhone11-M holds two sessions 21.8 days
apart: its second session stays 21.8 days later, alone.

The stream goes through :func:`sensing.capture.chain_capture.chain_capture` (one
chainer throughout, no epoch roll, nothing filtered) and the chains are scored
pairwise over frames against the phone labels (:mod:`chain_score`), next to
"every address its own device" and "all one device".

Caveats of the data (its README): the upstream anonymisation replaced every
address with a random 48-bit value, so the locally-administered bit is random;
here every address counts as randomized (the LA bit is set on a copy of each
frame's address byte before decoding), or half the addresses could never be
chained. Sequence numbers, IEs, timing and RSSI are untouched.

Usage::

    python bench/chain_baccichet.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain_score import PairScore, pair_scores

from sensing.capture.address_chain import ChainParams
from sensing.capture.capture_file import Record, read_records
from sensing.capture.chain_capture import chain_capture

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBDIR = "wifi-probes-baccichet-labelled"


def set_la_bit(rec: Record) -> Record:
    """The record with its transmitter address's locally-administered bit set
    (radiotap + 802.11: addr2 starts 10 bytes into the 802.11 header)."""
    if rec.linktype != 127 or len(rec.data) < 4:
        return rec
    it_len = rec.data[2] | rec.data[3] << 8
    pos = it_len + 10
    if pos >= len(rec.data):
        return rec
    data = bytearray(rec.data)
    data[pos] = (data[pos] | 0x02) & 0xFE  # locally administered, unicast
    return replace(rec, data=bytes(data))


def overlay(files: list[Path]) -> tuple[list[Record], list[int]]:
    """All files' records in one time-ordered stream, each file shifted to start at
    the earliest file's start; returns (records, file index per record)."""
    per_file = [sorted(read_records(f), key=lambda r: r.t_ns) for f in files]
    t0 = min(recs[0].t_ns for recs in per_file if recs)
    rows: list[tuple[int, int, Record]] = []
    for i, recs in enumerate(per_file):
        if not recs:
            continue
        shift = t0 - recs[0].t_ns
        rows += [(r.t_ns + shift, i, replace(set_la_bit(r), t_ns=r.t_ns + shift)) for r in recs]
    rows.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in rows], [i for _, i, _ in rows]


def address_labels(recs: list[Record]) -> list[int]:
    """Every address its own device (label: the raw transmitter address)."""
    out, ids = [], {}
    for r in recs:
        it_len = r.data[2] | r.data[3] << 8
        a = r.data[it_len + 10 : it_len + 16]
        out.append(ids.setdefault(a, len(ids)))
    return out


def score(files: list[Path], params: ChainParams | None = None) -> dict[str, PairScore]:
    """Chains, one-address-one-device and all-one-device, scored on the overlay."""
    recs, truth = overlay(files)
    labels = chain_capture(recs, params)
    keep = [i for i, lab in enumerate(labels) if lab >= 0]
    t = [truth[i] for i in keep]
    addrs = address_labels([recs[i] for i in keep])
    return {
        "chains": pair_scores(t, [labels[i] for i in keep]),
        "address = device": pair_scores(t, addrs),
        "all one device": pair_scores(t, [0] * len(t)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FOOTFALL_DATA", DEFAULT_DATA))
    )
    args = ap.parse_args(argv)
    files = sorted((args.data / SUBDIR).glob("*.pcap"))
    if not files:
        print(f"no captures under {args.data / SUBDIR}", file=sys.stderr)
        return 1
    res = score(files)
    print(f"{len(files)} phones overlaid")
    print(f"{'method':<18} {'precision':>9} {'recall':>7} {'ARI':>6} {'clusters':>8}")
    for name, s in res.items():
        print(f"{name:<18} {s.precision:>9.3f} {s.recall:>7.3f} {s.ari:>6.3f} {s.clusters:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
