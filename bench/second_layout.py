"""The accuracy figures on a second, unseen layout.

The accuracy goals (docs/accuracy.md) hold on "the simulated store with ground truth, and
a second unseen layout". The second is ``bench/layouts/corner_grocer.toml``: drawn
once, before any figure was measured on it, and not tuned since. It differs from
the bundled store wherever that could matter (L-shaped with a bakery annex behind
a part wall, doors and street on the west, north-south gondolas, three tills, 20
nodes at 3.2 m on a ~6 m grid). Its tills are the one thing the simulator needs
besides the plan (:class:`heatmap.simulate.scenario.Checkout`, below).

1. **Localization**, as ``bench/localize.py``'s simulated-store part: seeds ×
   shadowing 4 and 8 dB, self-calibrated radio model, ours vs trilateration vs
   the CRB-derived RMSE, heatmap r of person-seconds per 1 m cell.
2. **The real pipeline**, as ``footfall demo`` but on this plan: simulated pcaps
   and UART streams → node pipeline → Mosquitto (or the embedded broker) →
   SQLite → the store report, every figure against the simulator's truth.

Usage::

    python bench/second_layout.py [--seeds 1 2 3] [--hours 1] [--pipeline-hours 2]
    python bench/second_layout.py --write-baseline   # refresh bench/baselines/second_layout.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from localize import print_store, store_run, summarize_store

from heatmap.simulate.scenario import Checkout, Scenario
from heatmap.spatial.floorplan import FloorPlan, load

PLAN = Path(__file__).resolve().parent / "layouts" / "corner_grocer.toml"
CHECKOUT = Checkout(
    tills=((4.5, 11.8), (6.75, 11.8), (9.0, 11.8)),
    cashiers=((4.5, 14.0), (6.75, 14.0), (9.0, 14.0)),
    queue_head=(11.6, 11.8),
    queue_step=(0.0, -0.7),
)
SCENARIO = Scenario(checkout=CHECKOUT)
BASELINE = Path(__file__).resolve().parent / "baselines" / "second_layout.json"


def pipeline(plan: FloorPlan, hours: float, seed: int) -> dict[str, Any]:
    """``footfall demo``'s whole path on this plan; the report's figures beside the truth."""
    from heatmap.simulate.demo import run_demo

    sc = dataclasses.replace(SCENARIO, hours=hours, seed=seed)
    with tempfile.TemporaryDirectory(prefix="footfall-second-") as d:
        t = time.perf_counter()
        res = run_demo(Path(d), sc, plan=plan)
        rep, truth = res.report, res.report.truth or {}
        zt = sum(truth["zone_person_seconds"].values()) or 1.0
        ze = sum(rep.zone_person_seconds.values()) or 1.0
        return {
            "hours": hours,
            "seed": seed,
            "seconds": time.perf_counter() - t,
            "broker": res.broker_kind,
            "door_in": [rep.door_in, truth["door_in"]],
            "passersby": [rep.passersby_est, truth["passersby"]],
            "capture_rate": [rep.capture_rate, truth["capture_rate"]],
            "mean_dwell_s": [rep.mean_dwell_s, truth["mean_dwell_s"]],
            "median_dwell_s": [rep.median_dwell_rf_s, truth["median_dwell_s"]],
            "heatmap_r_1m": truth["heatmap_pearson_r_1m"],
            "flow_tv_distance": truth.get("flow_tv_distance"),
            "zone_share": {
                z: [ps / ze, truth["zone_person_seconds"][z] / zt]
                for z, ps in rep.zone_person_seconds.items()
            },
        }


def print_pipeline(p: dict[str, Any]) -> None:
    print(
        f"\nreal pipeline on the second layout ({p['hours']:g} h, seed {p['seed']}, "
        f"broker {p['broker']}, {p['seconds']:.0f} s): measured / truth"
    )
    for key in ("door_in", "passersby", "capture_rate", "mean_dwell_s", "median_dwell_s"):
        est, tru = p[key]
        err = f"{(est - tru) / tru * 100:+.1f} %" if est is not None and tru else "n/a"
        fmt = "{:.3f}" if key == "capture_rate" else "{:.0f}"
        e = fmt.format(est) if est is not None else "-"
        print(f"  {key:18}{e:>10}{fmt.format(tru):>10}{err:>10}")
    print(f"  heatmap Pearson r (1 m cells)  {p['heatmap_r_1m']:.3f}  (goal ≥ 0.9)")
    if p["flow_tv_distance"] is not None:
        print(f"  zone flows, TV distance        {p['flow_tv_distance']:.3f}  (goal ≤ 0.1)")
    print("  zone share of person-seconds, measured / truth:")
    for z, (e, t) in sorted(p["zone_share"].items(), key=lambda kv: -kv[1][1]):
        print(f"    {z:14}{e * 100:6.1f} % / {t * 100:5.1f} %")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--shadowing", type=float, nargs="+", default=[4.0, 8.0])
    ap.add_argument("--pipeline-hours", type=float, default=2.0, help="0: skip the pipeline part")
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--write-baseline", action="store_true", help=f"write {BASELINE.name}")
    a = ap.parse_args(argv)
    plan = load(PLAN)
    report: dict[str, Any] = {"plan": str(PLAN.name)}
    runs = []
    for sh in a.shadowing:
        for seed in a.seeds:
            runs.append(store_run(plan, seed, a.hours, sh, SCENARIO))
            m = runs[-1]["methods"]
            print(
                f"  seed {seed} σ {sh:g} dB: ours {m['grid']['inside']['median_m']:.2f} m "
                f"(r {m['grid']['heatmap_r_1m']:.3f}), trilateration "
                f"{m['trilateration']['inside']['median_m']:.2f} m, "
                f"CRB {m['crb']['inside']['median_m']:.2f} m",
                flush=True,
            )
    report["store"] = {"hours": a.hours, "summary": summarize_store(runs), "runs": runs}
    print(f"\n== second layout: {plan.name} ({len(plan.nodes)} nodes) ==")
    print_store(report["store"]["summary"], a.hours)
    if a.pipeline_hours > 0:
        report["pipeline"] = pipeline(plan, a.pipeline_hours, a.seeds[0])
        print_pipeline(report["pipeline"])
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=float))
    if a.write_baseline:
        keep = {**report, "store": {k: v for k, v in report["store"].items() if k != "runs"}}
        BASELINE.write_text(json.dumps(keep, indent=1, default=float) + "\n")
        print(f"wrote {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
