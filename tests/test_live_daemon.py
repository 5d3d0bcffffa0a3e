"""The live aggregator inside `footfall aggregator`: batches in over a real Mosquitto,
k-anonymous aggregates and the live occupancy out, progress in the status (issue 17)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.broker import RunningBroker
from heatmap.aggregator.daemon import AggregatorDaemon
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.radio_model import RadioModel
from sensing.runtime.mqtt_link import connect, make_client
from sensing.wire import payloads, topics

from ingest_fixtures import publisher, wait_until, write_config

DEFAULT_PLAN = (
    Path(__file__).resolve().parents[1] / "heatmap" / "spatial" / "data" / "default_store.toml"
)
START = 1_795_165_200_000
"""2026-11-20 10:00 local (Europe/Amsterdam), a quarter hour boundary"""
MINUTES = 40


def _shoppers(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Obs batches of ``n`` phones queueing inside for the whole period, one batch per
    node per minute, at the levels the plan's default radio model predicts (+ noise)."""
    plan = load_default()
    model = RadioModel.from_plan(plan)
    # a queue at the checkout: close enough for cells of k devices
    xy = np.column_stack([rng.uniform(6.0, 7.0, n), rng.uniform(3.5, 4.5, n)])
    mean = model.mean_rssi(xy, "ble")  # (n, nodes)
    out = []
    seq = 0
    for minute in range(MINUTES):
        for j, node in enumerate(model.node_ids):
            rows = []
            for s in range(0, 60, 2):
                for i in range(n):
                    r = round(float(mean[i, j] + rng.normal(0, 3)))
                    if r >= -95:
                        rows.append([s * 1000, f"{i:016x}", r, "ble", 0])
            out.append(
                {
                    "node": node,
                    "p": {
                        "v": 1,
                        "node": node,
                        "seq": seq,
                        "t0": START + minute * 60_000,
                        "obs": rows,
                    },
                }
            )
            seq += 1
    return out


def test_the_aggregator_writes_live_aggregates_and_occupancy(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    store = "live1"
    plan = tmp_path / "plan.toml"
    plan.write_text(
        DEFAULT_PLAN.read_text().replace('[store]\nid = "demo"', f'[store]\nid = "{store}"')
    )
    cfg = aggregator_config.load(
        write_config(
            tmp_path / "store.toml",
            store,
            mosquitto.address,
            live={"interval_s": 300, "lag_s": 30, "occupancy_interval_s": 1},
            floor_plan=str(plan),
            client_id="test-live1",
            k=5,
        )
    )
    assert cfg.live is not None and cfg.live.interval_ms == 300_000
    clock = {"s": START / 1000}
    d = AggregatorDaemon(cfg, clock=lambda: clock["s"])
    seen: dict[str, Any] = {}
    c = make_client(mosquitto.address, "test-live1-bi")
    c.on_message = lambda _c, _u, m: seen.__setitem__(m.topic, json.loads(m.payload))
    connect(c, mosquitto.address)
    c.subscribe(f"footfall/v1/{store}/occupancy", qos=1)
    d.start()
    stop = __import__("threading").Event()
    runner = __import__("threading").Thread(target=d.run, args=(stop,), daemon=True)
    runner.start()
    try:
        batches = _shoppers(8, np.random.default_rng(1))
        # 8 people walk in over the first minutes, and stay
        door = {"v": 1, "seq": 0, "t0": START, "ev": [[i * 20_000, 1] for i in range(8)]}
        with publisher(mosquitto.address, "test-live1-pub") as pub:
            pub.publish(topics.door_topic(store, "main_w"), payloads.encode(door))
            for b in batches:
                pub.publish(topics.obs_topic(store, b["node"]), payloads.encode(b["p"]))
            pub.drain()
        wait_until(lambda: d.ingest.stats.committed_messages >= len(batches) + 1, 60, "every batch")
        clock["s"] = (START + MINUTES * 60_000 + 10 * 60_000) / 1000  # the store's clock moves on
        conn = sqlite3.connect(cfg.db)

        def slots() -> int:
            return conn.execute(
                "SELECT COUNT(*) FROM aggregates WHERE kind = 'footfall' AND t1_ms - t0_ms = 900000"
            ).fetchone()[0]

        wait_until(lambda: slots() >= 2, 120, "two 15-minute slots aggregated")
        first = json.loads(
            conn.execute(
                "SELECT payload FROM aggregates WHERE kind = 'footfall' AND t0_ms = ?", (START,)
            ).fetchone()[0]
        )
        assert first["unit"] == "slot" and first["visitors"] == 8 and first["k"] == 5
        heat = json.loads(
            conn.execute(
                "SELECT payload FROM aggregates WHERE kind = 'heatmap' AND t0_ms = ?", (START,)
            ).fetchone()[0]
        )
        assert heat["cells"], "eight devices queueing together make some cells k-anonymous"
        assert heat["cells_suppressed"] > 0, "the posterior's tails reach cells of fewer"
        assert conn.execute("SELECT COUNT(*) FROM track_windows").fetchone()[0] > 0
        st = d.publish_status()
        assert st["live"]["watermark_ms"] >= START + 30 * 60_000 and st["live"]["errors"] == 0
        key = f"footfall/v1/{store}/occupancy"
        wait_until(lambda: seen.get(key, {}).get("occupancy") == 8, 30, "occupancy of 8")
        occ = seen[key]
        payloads.validate("occupancy", occ)
        assert occ["source"] == "door" and occ["occupancy"] == 8 and not occ["suppressed"]
        assert occ["low"] <= 8 <= occ["high"]
        conn.close()
    finally:
        stop.set()
        runner.join(30)
        d.stop()
        c.disconnect()
