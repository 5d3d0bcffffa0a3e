"""The node's retained status payload (``footfall/v1/{store}/node/{node}/status``).

A pure function of what the daemon knows; the contract is
``sensing/wire/schemas/node_status.schema.json``. The broker publishes the last will
``{"v":1,"state":"offline"}`` (retained) if the node vanishes; a node that stops
cleanly publishes ``offline`` itself, with its final counters.

>>> s = build("online", 12.5, NodeCounters(frames=10, observations=8), None)
>>> (s["state"], s["frames"], s["spool_depth"], s["clock"])
('online', 10, 0, {'synced': False, 'source': 'unknown'})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sensing.node.clock_sync import ClockState
from sensing.runtime.version import __version__
from sensing.wire import payloads

OFFLINE_WILL = payloads.encode({"v": 1, "state": "offline"})
"""the last will the broker publishes (retained) when the node's link dies"""


@dataclass
class NodeCounters:
    """Everything the status reports, gathered by the daemon."""

    frames: int = 0
    observations: int = 0
    published: int = 0
    """batches acknowledged by the broker since start"""
    key_epoch: int | None = None
    last_seq: int | None = None
    spool_depth: int = 0
    spool_bytes: int = 0
    unconfirmed: int = 0
    """spooled batches the broker acknowledged and the aggregator has not yet"""
    dropped: Mapping[str, int] = field(default_factory=dict)
    radio: Mapping[str, Any] | None = None
    boards: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    chaining: Mapping[str, int] | None = None
    """address chaining counters (``NodePipeline.chain_stats``); None when off"""


def build(
    state: str,
    uptime_s: float,
    c: NodeCounters,
    clock: ClockState | None,
    clock_required: bool = True,
    problems: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The status payload (``state``: online, offline or done); ``problems``: the
    reasons that drop everything (:mod:`sensing.node.total_loss`), which make it
    ``healthy: false``."""
    st: dict[str, Any] = {
        "v": 1,
        "state": state,
        "version": __version__,
        "uptime_s": round(max(uptime_s, 0.0), 3),
        "spool_depth": c.spool_depth,
        "spool_bytes": c.spool_bytes,
        "unconfirmed": c.unconfirmed,
        "last_seq": c.last_seq,
        "frames": c.frames,
        "observations": c.observations,
        "published": c.published,
        "dropped": {k: int(v) for k, v in sorted(c.dropped.items()) if v},
        "healthy": not problems,
    }
    if problems:
        st["problems"] = list(problems)
    if c.key_epoch is not None:
        st["key_epoch"] = c.key_epoch
    clk = clock.as_status() if clock is not None else {"synced": False, "source": "unknown"}
    if clock is not None:
        clk["required"] = clock_required
    st["clock"] = clk
    if c.radio:
        st["radio"] = dict(c.radio)
    if c.boards:
        st["boards"] = {k: dict(v) for k, v in c.boards.items()}
    if c.chaining:
        st["chaining"] = dict(c.chaining)
    return st
