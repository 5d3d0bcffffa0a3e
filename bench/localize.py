"""Localization accuracy and speed: ours vs weighted centroid vs trilateration vs the CRB.

Three parts, each printed as a table and written to a JSON report:

1. **Simulated store** (the bundled plan; several seeds; shadowing 4 and 8 dB).
   The day is drawn with the simulator's own code and seed
   (:mod:`heatmap.simulate.accuracy_harness`: same people, phones, adverts and RSSI as
   ``footfall simulate`` writes to pcaps), grouped per advertising address and
   5 s window like the aggregator's pseudonyms; the truth of a window is where
   the phone was while sending it. The radio model is *self-calibrated* as in a
   store (node-to-node beacons, then the phone population; ours also fits its
   motion model's dwelling diffusion, as the report does); all strategies get
   that same radio model. Errors are over windows whose truth is inside the store
   (passersby on the street are reported apart). The CRB-derived RMSE is the
   median over those windows of √trace(CRB) at the true position with the
   frames the phone really sent and the *true* radio parameters
   (:mod:`heatmap.spatial.crb`; one window alone — a motion model may beat it).
2. **Real data**: the Kolakowski apartment (6 BLE anchors, robot test). The
   model is fitted on its calibration walk only; hyper-parameters (residual map
   bandwidth, motion diffusion) are chosen on the walk's last 20 % held out,
   then everything is refitted on the whole walk and run once on the test.
   The baselines range with per-anchor log-distance fits of the same walk.
3. **Heatmap vs truth** through the real pipeline (``--demo``: pcap → nodes →
   MQTT → SQLite → ``analyze``), Pearson r of person-seconds per 1 m cell.

Throughput: windows per second of ours (median over runs, one BLAS thread).

Usage::

    python bench/localize.py [--seeds 1 2 3] [--hours 1] [--shadowing 4 8] [--demo]
    python bench/localize.py --quick            # the scenario tests/test_localize_bench.py reruns
    python bench/localize.py --write-baseline   # refresh bench/baselines/localize.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products: threads only thrash

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heatmap import calibration
from heatmap.localizers import get
from heatmap.simulate import accuracy_harness as harness
from heatmap.simulate import kolakowski_harness as kolakowski
from heatmap.simulate.scenario import Scenario
from heatmap.spatial import crb
from heatmap.spatial.floorplan import FloorPlan, load_default
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "bench" / "baselines" / "localize.json"
DATA = ROOT.parent / "shared" / "data" / "ble-rss-kolakowski-apartment"
STRATEGIES = ("grid", "weighted_centroid", "trilateration")
LABEL = {
    "grid": "ours (grid posterior + motion)",
    "grid_independent": "ours, one window alone (no motion/pooling)",
    "grid_oracle": "ours, true radio model (reference)",
    "weighted_centroid": "weighted centroid",
    "trilateration": "trilateration (Nelder–Mead)",
    "crb": "CRB-derived RMSE (one window)",
}
METHODS = ("grid", "grid_independent", "grid_oracle", "weighted_centroid", "trilateration", "crb")
QUICK = {"seed": 1, "hours": 0.25, "shadowing_db": 6.0}


def _stats(e: np.ndarray) -> dict[str, float]:
    return {"median_m": float(np.median(e)), "p90_m": float(np.percentile(e, 90)), "n": len(e)}


def store_run(
    plan: FloorPlan, seed: int, hours: float, shadowing: float, base: Scenario | None = None
) -> dict[str, Any]:
    """One seeded simulated store day through every strategy (``base``: the scenario's
    other knobs, e.g. another layout's tills)."""
    sc = harness.with_shadowing(
        dataclasses.replace(base or Scenario(), hours=hours, seed=seed), shadowing
    )
    sw = harness.simulate_windows(plan, sc)
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    ins = shapely.contains(plan.outline_polygon, shapely.points(sw.truth_xy))
    t = time.perf_counter()
    model, links = calibration.fit_links(
        harness.simulate_links(plan, sc), RadioModel.from_plan(plan)
    )
    model, pop = calibration.calibrate_population(
        model, sw.windows, grid, rng=np.random.default_rng(seed)
    )
    motion, motion_fit = calibration.calibrate_motion(
        model, sw.windows, grid, np.random.default_rng(seed)
    )
    t_cal = time.perf_counter() - t
    oracle = harness.oracle_model(plan, sc.radio)
    oracle_motion, _ = calibration.calibrate_motion(
        oracle, sw.windows, grid, np.random.default_rng(seed)
    )
    out: dict[str, Any] = {
        "seed": seed,
        "hours": hours,
        "shadowing_db": shadowing,
        "windows": len(sw.windows),
        "windows_inside": int(ins.sum()),
        "calibration": {
            "seconds": t_cal,
            "exponent": links.exponent,
            "sigma_db": links.sigma_db,
            "phone_level_shift_db": pop.get("shift_db"),
            "offset_sigma_db": pop.get("offset_sigma_db"),
            "dwell_diffusion_m2_s": motion_fit.get("dwell_diffusion_m2_s"),
        },
        "methods": {},
    }
    runs: list[tuple[str, RadioModel, dict[str, Any]]] = [
        ("grid", model, {"motion": motion}),
        ("grid_independent", model, {"motion": False, "pool_offsets": False}),
        ("grid_oracle", oracle, {"motion": oracle_motion}),
        *((s, model, {}) for s in STRATEGIES[1:]),
    ]
    for name, m, kw in runs:
        strat = get("grid" if name.startswith("grid") else name)
        w, c = time.perf_counter(), time.process_time()
        post = strat(sw.windows, m, grid, **kw)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        e = harness.errors(post.mean_xy, sw.truth_xy)
        out["methods"][name] = {
            "inside": _stats(e[ins]),
            "outside": _stats(e[~ins]) if (~ins).any() else None,
            "seconds": wall,
            "cpu_seconds": cpu,
            "windows_per_s": len(sw.windows) / max(wall, 1e-9),
            "heatmap_r_1m": harness.heatmap_r(plan, sw, post.person_seconds),
        }
    bound = crb.rmse(crb.position_bound(oracle, sw.truth_xy[ins], sw.sent[ins]))
    out["methods"]["crb"] = {
        "inside": {
            "median_m": float(np.median(bound)),
            "p90_m": float(np.percentile(bound, 90)),
            "n": int(ins.sum()),
        }
    }
    return out


def summarize_store(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per shadowing level: median over seeds of each figure."""
    out: dict[str, Any] = {}
    for sh in sorted({r["shadowing_db"] for r in runs}):
        rs = [r for r in runs if r["shadowing_db"] == sh]
        level: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
        for name in METHODS:
            ms = [r["methods"][name] for r in rs]
            level[name] = {
                "median_m": statistics.median(m["inside"]["median_m"] for m in ms),
                "p90_m": statistics.median(m["inside"]["p90_m"] for m in ms),
            }
            if "heatmap_r_1m" in ms[0]:
                level[name]["heatmap_r_1m"] = statistics.median(m["heatmap_r_1m"] for m in ms)
                level[name]["windows_per_s"] = statistics.median(m["windows_per_s"] for m in ms)
        g, tri, bound = (
            level["grid"]["median_m"],
            level["trilateration"]["median_m"],
            level["crb"]["median_m"],
        )
        level["ours_over_crb"] = g / bound
        level["one_window_over_crb"] = level["grid_independent"]["median_m"] / bound
        level["ours_better_than_trilateration"] = 1.0 - g / tri
        out[f"{sh:g}"] = level
    return out


def print_store(summary: dict[str, Any], hours: float) -> None:
    for sh, lv in summary.items():
        print(
            f"\nsimulated store, shadowing {sh} dB (seeds {lv['seeds']}, {hours:g} h each; "
            "windows inside the store; medians over seeds)"
        )
        print(f"  {'method':44}{'median m':>10}{'p90 m':>9}{'heatmap r':>11}{'windows/s':>11}")
        for name in METHODS:
            m = lv[name]
            r = f"{m['heatmap_r_1m']:.3f}" if "heatmap_r_1m" in m else ""
            wps = f"{m['windows_per_s']:.0f}" if "windows_per_s" in m else ""
            print(f"  {LABEL[name]:44}{m['median_m']:>10.2f}{m['p90_m']:>9.2f}{r:>11}{wps:>11}")
        print(
            f"  ours / CRB = {lv['ours_over_crb']:.2f} (goal ≤ 1.3; one window alone: "
            f"{lv['one_window_over_crb']:.2f});  ours better than trilateration by "
            f"{100 * lv['ours_better_than_trilateration']:.0f} % (goal ≥ 30 %)"
        )


# ------------------------------------------------------------------------------ real data


def real_data(data: Path) -> dict[str, Any]:
    """The Kolakowski protocol (:func:`heatmap.simulate.kolakowski_harness.evaluate`)."""
    return kolakowski.evaluate(data)


def print_real(res: dict[str, Any]) -> None:
    print(
        f"\nKolakowski apartment, robot test ({res['test_rows']} rows; model fitted on the "
        f"{res['walk_rows']}-row calibration walk only; chosen on its hold-out: "
        f"{res['chosen_on_walk_holdout']})"
    )
    print(f"  {'method':38}{'median m':>10}{'p90 m':>9}")
    labels = {
        "grid": "ours (grid posterior + motion)",
        "grid_no_motion": "ours, windows independent",
        "weighted_centroid": "weighted centroid",
        "trilateration": "trilateration (Nelder–Mead)",
    }
    for name, m in res["methods"].items():
        print(f"  {labels[name]:38}{m['median_m']:>10.2f}{m['p90_m']:>9.2f}")
    print(
        "  goal: ours median ≤ 1.2 m (published baselines on it: centroid 1.98, Nelder–Mead 1.82)"
    )


# ------------------------------------------------------------------------------ pipeline


def demo_heatmap(hours: float, seed: int) -> dict[str, Any]:
    from heatmap.simulate.demo import default_scenario, run_demo

    with tempfile.TemporaryDirectory(prefix="footfall-bench-") as d:
        t = time.perf_counter()
        res = run_demo(Path(d), default_scenario(hours, seed, None))
        truth = res.report.truth or {}
        return {
            "hours": hours,
            "seed": seed,
            "heatmap_r_1m": truth.get("heatmap_pearson_r_1m"),
            "seconds": {**res.seconds, "total": time.perf_counter() - t},
            "windows": res.report.windows,
        }


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in d.items()}


def quick(plan: FloorPlan) -> dict[str, Any]:
    """The small scenario the test reruns and compares with the committed baseline."""
    r = store_run(plan, QUICK["seed"], QUICK["hours"], QUICK["shadowing_db"])
    return {
        "scenario": QUICK,
        "median_m": {k: v["inside"]["median_m"] for k, v in r["methods"].items()},
        "heatmap_r_1m": r["methods"]["grid"]["heatmap_r_1m"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--shadowing", type=float, nargs="+", default=[4.0, 8.0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--demo", action="store_true", help="also run footfall demo for the heatmap r")
    ap.add_argument("--demo-hours", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help="only the quick scenario")
    ap.add_argument(
        "--write-baseline", action="store_true", help=f"write {BASELINE.relative_to(ROOT)}"
    )
    ap.add_argument("--json", type=Path, help="write the full report here")
    a = ap.parse_args(argv)
    plan = load_default()
    report: dict[str, Any] = {"quick": quick(plan)}
    print(f"quick scenario {QUICK}: median m {report['quick']['median_m']}")
    if not a.quick:
        runs = []
        for sh in a.shadowing:
            for seed in a.seeds:
                runs.append(store_run(plan, seed, a.hours, sh))
                m = runs[-1]["methods"]
                print(
                    f"  seed {seed} σ {sh:g} dB: ours {m['grid']['inside']['median_m']:.2f} m, "
                    f"trilateration {m['trilateration']['inside']['median_m']:.2f} m, "
                    f"CRB {m['crb']['inside']['median_m']:.2f} m, "
                    f"{m['grid']['windows_per_s']:.0f} windows/s",
                    flush=True,
                )
        report["store"] = {"hours": a.hours, "summary": summarize_store(runs), "runs": runs}
        print_store(report["store"]["summary"], a.hours)
        if a.data.exists():
            report["kolakowski"] = real_data(a.data)
            print_real(report["kolakowski"])
        else:
            print(f"\n(no real data at {a.data}: Kolakowski part skipped)")
        if a.demo:
            report["demo"] = demo_heatmap(a.demo_hours, 1)
            d = report["demo"]
            print(
                f"\nheatmap through the real pipeline ({d['hours']:g} h demo, seed 1): "
                "Pearson r of "
                f"person-seconds per 1 m cell = {d['heatmap_r_1m']:.3f} (goal ≥ 0.9); "
                f"seconds {_rounded(d['seconds'])}"
            )
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=float))
    if a.write_baseline:
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in report.items() if k != "store"}
        if "store" in report:
            keep["store"] = {
                "hours": report["store"]["hours"],
                "summary": report["store"]["summary"],
            }
        BASELINE.write_text(json.dumps(keep, indent=1, default=float) + "\n")
        print(f"wrote {BASELINE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
