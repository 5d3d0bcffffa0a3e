"""Helpers for the ingest, retention and aggregator tests: payload builders, a
bounded wait, a QoS 1 publisher, the aggregator CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.wire import payloads

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_000_000_000
"""a fixed Unix ms (2026-11-18 11:06:40 UTC) for tests that do not expire data"""


def obs_payload(
    seq: int, node: str = "n1", t0: int | None = None, rows: int = 10, span_ms: int = 900
) -> dict[str, Any]:
    """An obs batch whose rows lie in [t0, t0 + span_ms] and whose pids name (seq, row)."""
    t0 = T0 + seq * 1000 if t0 is None else t0
    step = span_ms // max(rows - 1, 1)
    return {
        "v": 1,
        "node": node,
        "seq": seq,
        "t0": t0,
        "obs": [[i * step, f"{seq:08x}{i:08x}", -60, "ble", 0] for i in range(rows)],
    }


def obs(seq: int, node: str = "n1", **kw: Any) -> bytes:
    return payloads.encode(obs_payload(seq, node, **kw))


def door(seq: int, t0: int | None = None, ev: list[list[int]] | None = None) -> bytes:
    """Door batch ``seq``, by default 1 s after batch ``seq - 1`` (events are stored
    once by identity, so batches of other seqs must hold other crossings)."""
    t = T0 + 1000 * seq if t0 is None else t0
    return payloads.encode({"v": 1, "seq": seq, "t0": t, "ev": ev or [[0, 1], [10, -1]]})


def floor(seq: int, t0: int | None = None) -> bytes:
    t = T0 + 1000 * seq if t0 is None else t0
    return payloads.encode({"v": 1, "seq": seq, "t0": t, "ev": [[0, 3, 1], [50, 3, 0]]})


def status(state: str = "online", **kw: Any) -> bytes:
    return payloads.encode({"v": 1, "state": state, **kw})


def wait_until(
    cond: Callable[[], object], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout_s:.0f} s")


@contextmanager
def publisher(addr: BrokerAddress, client_id: str) -> Iterator[Publisher]:
    c = make_client(addr, client_id)
    connect(c, addr)
    try:
        yield Publisher(c)
    finally:
        c.disconnect()
        c.loop_stop()


def write_config(
    path: Path,
    store: str,
    addr: BrokerAddress,
    live: dict[str, Any] | None = None,
    **aggregator: Any,
) -> Path:
    """A store.toml for ``store`` on ``addr``; ``aggregator`` keys go to [aggregator],
    ``live`` keys to [live]."""
    a = {"store": store, "db": "store.db", "status_interval_s": 0.5, **aggregator}
    lines = ["[aggregator]"] + [f"{k} = {json.dumps(v)}" for k, v in a.items()]
    if live is not None:
        lines += ["", "[live]"] + [f"{k} = {json.dumps(v)}" for k, v in live.items()]
    lines += ["", "[broker]", f'host = "{addr.host}"', f"port = {addr.port}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_aggregator(
    config: Path, log: Path, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``footfall aggregator --config …`` in a subprocess, output to ``log``."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "sensing.cli.main", "aggregator", "--config", str(config)],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
