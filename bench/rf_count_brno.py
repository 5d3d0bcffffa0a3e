"""RF-only head count on real data: the Brno lab (position 2) against its occupancy column.

The Brno captures (``../shared/data/wifi-probes-brno-esp32-occupancy``: the trimmed
2024-03-14 window and the five whole afternoons in ``days/``) hold Wi-Fi probe
requests heard by one ESP32 sniffer in teaching lab sc6-61 and, per frame, how many
people were in the room. Each file goes through the real node pipeline
(:class:`~sensing.node.pipeline.NodePipeline`: decode, the lab's all-in-one PCs
``dc:fb:48:*`` and ``40:ec:99:*`` configured as equipment, as the dataset's README
says, pseudonymize; with the node chainer where :mod:`sensing.capture.address_chain`
exists) and then through the aggregator's RF count (:mod:`heatmap.aggregator.rf_count`):
pseudonyms → devices → people.

Scored per 10-minute bin (UTC-aligned) against the mean of the occupancy column
over the bin's frames, on bins with occupancy ≥ 3 (goal: MAPE ≤ 20 %):

* ``rf``: present visitor devices × the people-per-device factor fitted on the
  **fit days** (:func:`heatmap.aggregator.rf_factor.people_per_device`: ratio of sums
  of occupancy and devices inside over their bins with occupancy ≥ 3 where a device
  was heard) and scored on the **score days** (never fitted on);
* ``naive``: distinct addresses per bin (the node chainer off: one pseudonym per
  address, what counting addresses gives), and the
  same scaled by a factor fitted on the fit days the same way (``naive×k``),
  so that the chaining is compared with the factor alone.

Usage::

    python bench/rf_count_brno.py [--data ../shared/data] [--fit 2024-02-08,...]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heatmap.aggregator.rf_count import CountSettings, DeviceCounts, count_devices
from heatmap.aggregator.rf_devices import Frames
from heatmap.aggregator.rf_factor import people_per_device
from sensing.capture.capture_file import read_records
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.optout import ListKey
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BRNO = "wifi-probes-brno-esp32-occupancy"
LAB_PCS = ("dc:fb:48:*", "40:ec:99:*")
BIN_MS = 600_000
MIN_OCC = 3.0
GOAL_MAPE = 20.0
TZ = ZoneInfo("Europe/Prague")
FIT_DAYS = ("2024-02-08", "2024-02-15", "2024-02-29")
"""days the factor is fitted on; the others are scored"""

F = NDArray[np.float64]


@dataclass(frozen=True)
class Day:
    day: str
    frames: Frames
    """as the node publishes them (chained where the node chains)"""
    addresses: Frames
    """one pseudonym per address (the node chainer off): the naive count's"""
    occ_bins: NDArray[np.int64]
    """bin starts (UTC ms) that have occupancy rows"""
    occ: F
    """mean occupancy per bin"""


def day_files(data: Path) -> list[tuple[str, Path, Path]]:
    """(local day, pcap, csv) of position 2: the trimmed day and the five afternoons."""
    root = data / BRNO
    out = [
        (
            "2024-03-14",
            root / "sc6-61_2024-03-14_position_2_1420-1720.pcap",
            root / "sc6-61_2024-03-14_position_2_1420-1720.csv",
        )
    ]
    for p in sorted((root / "days").glob("sc6-61_*_position_2.pcap")):
        out.append((p.name.split("_")[1], p, p.with_suffix(".csv")))
    return sorted(out)


def chainer_available() -> bool:
    """Whether the node-side address chainer (issue 20, part 1) is in this checkout."""
    return importlib.util.find_spec("sensing.capture.address_chain") is not None


def node_frames(pcap: Path, chained: bool) -> Frames:
    """The capture through the node pipeline (lab PCs configured as equipment), as the
    aggregator stores it. One pseudonym key per file (an epoch per day). ``chained``:
    the node chains (``NodeFilters.chain_addresses``): each row keeps its own pseudonym
    and carries its chain head's (``chain``), which the aggregator joins; in a checkout
    without the online chainer, the chainer's offline entry point
    :func:`sensing.capture.chain_capture.chain_capture` (one pseudonym per chain)."""
    recs = list(read_records(pcap))
    labels: list[int] | None = None
    online = "chain_addresses" in NodeFilters.__dataclass_fields__
    if chained and not online:
        from sensing.capture.chain_capture import chain_capture

        labels = chain_capture(recs)
    first = min(r.t_ns for r in recs) // 1_000_000
    day = datetime.fromtimestamp(first / 1000, UTC).date()
    sched = EpochSchedule(date.fromordinal(day.toordinal() - 1), 4, "UTC")
    pseudo = Pseudonymizer(KeyRing(bytearray(range(32)), 0), sched)
    filters = NodeFilters(infrastructure=LAB_PCS, learn_infrastructure=False)
    if online:
        filters = replace(filters, chain_addresses=chained)  # type: ignore[call-arg]
    pipe = NodePipeline(pseudo, filters, list_key=ListKey.ephemeral())
    rows = []
    for i, r in enumerate(recs):
        o = pipe.process(r)
        if o is not None:
            pid = o.pid if labels is None else f"{labels[i]:016x}"
            chain = getattr(o, "chain", None) if labels is None else None
            rows.append((o.t_ms, "brno-p2", pid, o.rssi, o.band, o.flags, o.sig, chain))
    return Frames.from_rows(rows)


def occupancy(csv_path: Path) -> tuple[NDArray[np.int64], F]:
    """Mean of the occupancy column per 10-minute bin (rows with ``nan`` skipped)."""
    sums: dict[int, list[float]] = {}
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            try:
                o = float(row["occupancy"])
            except (TypeError, ValueError):
                continue
            if o != o:
                continue
            t = datetime.fromisoformat(row["datetime"]).replace(tzinfo=TZ).timestamp()
            b = int(t * 1000) // BIN_MS * BIN_MS
            sums.setdefault(b, []).append(o)
    keys = np.array(sorted(sums), np.int64)
    return keys, np.array([np.mean(sums[k]) for k in keys.tolist()], float)


def load_days(data: Path, chained: bool) -> list[Day]:
    out = []
    for day, pcap, csv_path in day_files(data):
        bins, occ = occupancy(csv_path)
        plain = node_frames(pcap, False)
        out.append(Day(day, node_frames(pcap, True) if chained else plain, plain, bins, occ))
    return out


def day_counts(d: Day, s: CountSettings) -> tuple[DeviceCounts, NDArray[np.bool_], F]:
    """Device counts over the day's bins, which of them are scored (occupancy ≥ 3), and
    distinct addresses per bin."""
    t0, t1 = int(d.occ_bins[0]), int(d.occ_bins[-1]) + BIN_MS
    c = count_devices(d.frames, t0, t1, replace(s, bin_ms=BIN_MS))
    naive = count_devices(d.addresses, t0, t1, replace(s, bin_ms=BIN_MS)).distinct_per_bin
    idx = (d.occ_bins - t0) // BIN_MS
    keep = np.zeros(len(c.t0_ms), bool)
    keep[idx[d.occ >= MIN_OCC]] = True
    return c, keep, naive.astype(float)


def mape(est: F, truth: F) -> float:
    return float(np.mean(np.abs(est - truth) / truth) * 100) if len(truth) else float("nan")


def evaluate(days: list[Day], fit_days: tuple[str, ...], s: CountSettings) -> dict[str, object]:
    rows: dict[str, tuple[F, F, F]] = {}
    for d in days:
        c, keep, naive = day_counts(d, s)
        occ = np.zeros(len(c.t0_ms))
        occ[(d.occ_bins - c.t0_ms[0]) // BIN_MS] = d.occ
        rows[d.day] = (occ[keep], c.present[keep], naive[keep])
    fit = [rows[d] for d in fit_days if d in rows]
    occ_fit = np.concatenate([r[0] for r in fit])
    k_rf = people_per_device(occ_fit, np.concatenate([r[1] for r in fit])) or 1.0
    k_naive = people_per_device(occ_fit, np.concatenate([r[2] for r in fit])) or 1.0
    per_day = {}
    for day, (occ, pres, naive) in rows.items():
        per_day[day] = {
            "bins": len(occ),
            "occ_mean": float(occ.mean()) if len(occ) else float("nan"),
            "rf": mape(pres * k_rf, occ),
            "naive": mape(naive, occ),
            "naive_k": mape(naive * k_naive, occ),
            "fit": day in fit_days,
        }
    score = [rows[d] for d in rows if d not in fit_days]
    occ_s = np.concatenate([r[0] for r in score])
    return {
        "k_rf": k_rf,
        "k_naive": k_naive,
        "per_day": per_day,
        "rf": mape(np.concatenate([r[1] for r in score]) * k_rf, occ_s),
        "naive": mape(np.concatenate([r[2] for r in score]), occ_s),
        "naive_k": mape(np.concatenate([r[2] for r in score]) * k_naive, occ_s),
        "score_bins": len(occ_s),
    }


def plot(days: list[Day], fit_days: tuple[str, ...], s: CountSettings, k: float, out: Path) -> None:
    """Per 10 min on each score day: occupancy column, RF head count, distinct addresses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = [d for d in days if d.day not in fit_days]
    fig, axes = plt.subplots(len(score), 1, figsize=(9, 2.6 * len(score)), squeeze=False)
    for ax, d in zip(axes[:, 0], score, strict=True):
        c, _, naive = day_counts(d, s)
        occ = np.full(len(c.t0_ms), np.nan)
        occ[(d.occ_bins - c.t0_ms[0]) // BIN_MS] = d.occ
        hours = [datetime.fromtimestamp(t / 1000, TZ) for t in c.t0_ms.tolist()]
        ax.step(hours, occ, where="post", color="black", lw=2, label="occupancy (ground truth)")
        ax.step(hours, c.present * k, where="post", color="tab:blue", label="RF head count")
        ax.step(hours, naive, where="post", color="tab:red", alpha=0.6,
                label="distinct addresses")  # fmt: skip
        ax.set_title(f"Brno lab, position 2, {d.day} (scored; factor fitted on other days)")
        ax.set_ylabel("count per 10 min")
        ax.set_ylim(0, max(float(np.nanmax(occ)), float(naive.max())) * 1.05 + 1)
        ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M", tz=TZ))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--fit", default=",".join(FIT_DAYS), help="days the factor is fitted on")
    ap.add_argument("--no-node-chainer", action="store_true", help="one pseudonym per address")
    ap.add_argument("--plot", type=Path, help="write the score days' curves as a PNG here")
    ap.add_argument("--wifi-strong", type=float, default=CountSettings().wifi_strong_dbm)
    a = ap.parse_args(argv)
    fit_days = tuple(x.strip() for x in a.fit.split(",") if x.strip())
    chained = chainer_available() and not a.no_node_chainer
    days = load_days(a.data, chained)
    s = CountSettings(wifi_strong_dbm=a.wifi_strong)
    r = evaluate(days, fit_days, s)
    print(f"node chainer: {'yes' if chained else 'no'}")
    print(
        f"people per device (fitted on {', '.join(fit_days)}): rf {r['k_rf']:.3f}, "
        f"naive {r['k_naive']:.3f}"
    )
    print(
        f"{'day':<11} {'role':<6} {'bins':>4} {'occ':>5} {'rf %':>6} {'naive %':>8} "
        f"{'naive×k %':>9}"
    )
    for day, v in r["per_day"].items():  # type: ignore[attr-defined]
        print(
            f"{day:<11} {'fit' if v['fit'] else 'score':<6} {v['bins']:>4} "
            f"{v['occ_mean']:>5.1f} {v['rf']:>6.1f} {v['naive']:>8.1f} {v['naive_k']:>9.1f}"
        )
    verdict = "PASS" if r["rf"] <= GOAL_MAPE else "FAIL"  # type: ignore[operator]
    print(
        f"score days, {r['score_bins']} bins with occupancy >= {MIN_OCC:g}: "
        f"rf MAPE {r['rf']:.1f} % (goal <= {GOAL_MAPE:g} %: {verdict}), "
        f"naive {r['naive']:.1f} %, naive×k {r['naive_k']:.1f} %"
    )
    if a.plot:
        plot(days, fit_days, s, float(r["k_rf"]), a.plot)  # type: ignore[arg-type]
        print(f"plot: {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
