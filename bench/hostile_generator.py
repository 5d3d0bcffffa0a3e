"""The generator of ``bench/hostile.py``: valid inbound payloads of every kind
(obs batches, node status, door and floor events) and their hostile mutations,
seeded, each structure-aware (it knows where the fields are) or byte-level."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from sensing.wire import payloads, topics

STORE = "hostile"
NODES = ("n1", "n2", "n3")
BANDS = ("wifi24", "wifi5", "wifi6", "ble")
HOUR_MS = 3_600_000
MARK = "\u2063MARK\u2063"
"""placeholder string a text mutation replaces with raw JSON text"""
WRONG = (
    None,
    True,
    False,
    0,
    -1,
    1.0,
    0.5,
    -0.0,
    "",
    "x",
    "n1\n",
    "\u0000",
    "\ud800",
    "\u202e",
    [],
    {},
    [1, 2],
    {"v": 1},
    2**53,
    2**63,
    -(2**63),
    10**30,
    "0123456789ABCDEF",
    "ff" * 8 + "\n",
)
BAD_BYTES = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xc0\xaf",
)
NUMBERS = (
    "9" * 20,
    "9" * 400,
    "9" * 4301,
    "9" * 100_000,
    "-" + "9" * 5000,
    "1e999",
    "-1e400",
    "1" + "0" * 400 + ".5",
    "1.0e-400",
    "1E+308",
    "0.0000000000000000000000001",
    "-0",
    "1.0",
    "1e2",
)
CONSTANTS = ("NaN", "Infinity", "-Infinity")
GIANT_SHARE = 0.03
"""of the draws of the giant-array mutation, the share kept (about 1 payload in 1,000)"""
DEPTHS = (17, 64, 900, 999, 1000, 1001, 5000, 10_000, 100_000)
BAD_TOPICS = (
    "footfall/v1/other/node/n1/obs",
    f"footfall/v1/{STORE}/node/n.1/obs",
    f"footfall/v1/{STORE}/node/n1\n/obs",
    f"footfall/v1/{STORE}/node/+/obs",
    f"footfall/v1/{STORE}/node/#",
    f"footfall/v1/{STORE}/node//obs",
    f"footfall/v1/{STORE}/node/{'x' * 65}/obs",
    f"footfall/v1/{STORE}/node/ñ/obs",
    f"footfall/v1/{STORE}/aggregator/status",
    f"footfall/v1/{STORE}/occupancy",
    f"footfall/v2/{STORE}/node/n1/obs",
    f"footfall/v1/{STORE}/node/n1/obs/extra",
    "",
    "/",
)


class Generator:
    """Valid payloads of every inbound kind, and their hostile mutations (seeded)."""

    def __init__(self, rng: random.Random, now_ms: int, topic_mutations: bool = True) -> None:
        self.rng = rng
        self.now_ms = now_ms
        self.topic_mutations = topic_mutations
        self.seq: Counter[tuple[str, str]] = Counter()
        self.kinds: list[tuple[str, Callable[[], tuple[str, dict[str, Any]]]]] = [
            ("obs", self.obs),
            ("obs", self.obs),
            ("node_status", self.node_status),
            ("door_events", self.door),
            ("floor_events", self.floor),
        ]
        self.mutations: list[Callable[[str, dict[str, Any]], tuple[str, bytes]]] = [
            self.m_wrong_type,
            self.m_wrong_type,
            self.m_float_int,
            self.m_drop_key,
            self.m_extra_key,
            self.m_time,
            self.m_time,
            self.m_giant_array,
            self.m_seq_reuse,
            self.m_node_mismatch,
            self.m_deep,
            self.m_deep,
            self.m_number,
            self.m_number,
            self.m_constant,
            self.m_dup_key,
            self.m_truncate,
            self.m_truncate,
            self.m_bad_utf8,
            self.m_bad_utf8,
            self.m_bom,
            self.m_byte_flip,
            self.m_splice,
            self.m_not_object,
            self.m_oversize,
            self.m_topic,
        ]

    # ------------------------------------------------------------ valid payloads

    def _next_seq(self, kind: str, ident: str) -> int:
        s = self.seq[(kind, ident)]
        self.seq[(kind, ident)] += 1
        return s

    def _t0(self) -> int:
        return self.now_ms - self.rng.randint(0, 30 * HOUR_MS)

    def obs(self, rows: int | None = None) -> tuple[str, dict[str, Any]]:
        r = self.rng
        node = r.choice(NODES)
        n = r.randint(0, 20) if rows is None else rows
        obs = []
        for _ in range(n):
            row: list[Any] = [
                r.randint(0, 60_000),
                f"{r.getrandbits(64):016x}",
                r.randint(-127, 20),
                r.choice(BANDS),
                r.randint(0, 65535),
            ]
            if r.random() < 0.3:
                row.append(f"{r.getrandbits(32):08x}")
            obs.append(row)
        p: dict[str, Any] = {"v": 1, "node": node, "seq": self._next_seq("obs", node)}
        p["t0"] = self._t0()
        if r.random() < 0.8:
            p["epoch"] = r.randint(0, 400)
        p["obs"] = obs
        return topics.obs_topic(STORE, node), p

    def node_status(self) -> tuple[str, dict[str, Any]]:
        r = self.rng
        node = r.choice(NODES)
        p: dict[str, Any] = {"v": 1, "state": r.choice(["online", "offline", "done"])}
        if r.random() < 0.8:
            p |= {
                "version": "0.1.0",
                "uptime_s": round(r.uniform(0, 1e6), 3),
                "spool_depth": r.randint(0, 1000),
                "last_seq": r.choice([None, r.randint(0, 10**6)]),
                "dropped": {"no_rssi": r.randint(0, 100), "clock_unsynced": r.randint(0, 9)},
                "clock": {"synced": r.random() < 0.9, "offset_ms": r.uniform(-5, 5)},
                "boards": {"door/main": {"last_seq": r.randint(-1, 100), "frames": 12}},
            }
        return topics.node_status_topic(STORE, node), p

    def door(self) -> tuple[str, dict[str, Any]]:
        r = self.rng
        ev = [[r.randint(0, 60_000), r.choice([1, -1])] for _ in range(r.randint(0, 10))]
        p: dict[str, Any] = {"v": 1, "seq": self._next_seq("door", "main"), "t0": self._t0()}
        p["ev"] = ev
        if r.random() < 0.5:
            p["board"] = {"frames": r.randint(0, 10**6), "crc_errors": r.randint(0, 9)}
        return topics.door_topic(STORE, "main"), p

    def floor(self) -> tuple[str, dict[str, Any]]:
        r = self.rng
        ev = [[r.randint(0, 60_000), r.randint(0, 255), r.randint(0, 1)] for _ in range(5)]
        p = {"v": 1, "seq": self._next_seq("floor", "tiles"), "t0": self._t0(), "ev": ev}
        return topics.floor_topic(STORE, "tiles"), p

    def valid(self) -> tuple[str, dict[str, Any]]:
        return self.rng.choice(self.kinds)[1]()

    # ------------------------------------------------------------ one payload

    def payload(self) -> tuple[str, bytes, str]:
        """(topic, payload bytes, mutation name or ``valid``)."""
        topic, p = self.valid()
        if self.rng.random() < 0.2:
            return topic, payloads.encode(p), "valid"
        m = self.rng.choice(self.mutations)
        if m == self.m_topic and not self.topic_mutations:
            m = self.m_wrong_type
        if m == self.m_giant_array and self.rng.random() > GIANT_SHARE:
            m = self.m_extra_key  # giants cost ~100 ms each to make and parse: a few
        topic, raw = m(topic, p)
        return topic, raw, m.__name__[2:]

    # ------------------------------------------------------------ helpers

    def _paths(self, p: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix] if prefix else []
        if isinstance(p, dict):
            for k, v in p.items():
                out += self._paths(v, (*prefix, k))
        elif isinstance(p, list):
            for i, v in enumerate(p[:3]):
                out += self._paths(v, (*prefix, i))
        return out

    def _set(self, p: dict[str, Any], value: Any) -> dict[str, Any]:
        """``p`` with one random value (at any depth) replaced by ``value``."""
        path = self.rng.choice(self._paths(p))
        d: Any = p
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
        return p

    def _text(self, p: dict[str, Any], raw: str) -> bytes:
        """``p`` with one random value replaced by the raw JSON text ``raw``."""
        s = json.dumps(self._set(p, MARK), separators=(",", ":"))
        return s.replace(json.dumps(MARK), raw).encode()

    @staticmethod
    def _enc(p: Any) -> bytes:
        return json.dumps(p, separators=(",", ":")).encode()

    # ------------------------------------------------------------ value mutations

    def m_wrong_type(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return topic, self._enc(self._set(p, self.rng.choice(WRONG)))

    def m_float_int(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        for k in ("seq", "t0", "v", "spool_depth"):
            if k in p and self.rng.random() < 0.6:
                p[k] = float(p[k])
                return topic, self._enc(p)
        for rows in (p.get("obs"), p.get("ev")):
            if rows:
                rows[0][0] = float(rows[0][0])
        return topic, self._enc(p)

    def m_drop_key(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        del p[self.rng.choice(sorted(p))]
        return topic, self._enc(p)

    def m_extra_key(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        p[self.rng.choice(["x", "obs2", "__proto__", "V", ""])] = self.rng.choice(WRONG)
        return topic, self._enc(p)

    def m_time(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        r = self.rng
        if "t0" not in p:
            return topic, self._enc(p)
        p["t0"] = r.choice(
            [
                2**53 - 1,
                2**53 - 1 - HOUR_MS,
                self.now_ms + 11 * 60_000,
                self.now_ms + r.randint(11 * 60_000, 10**13),
                0,
                5,
                1_000_000_000_000,
                -1,
                2**63,
            ]
        )
        return topic, self._enc(p)

    def m_giant_array(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        r = self.rng
        if "obs" in p:
            n = r.choice([20_000, 20_001, 30_000])
            row = p["obs"][0] if p["obs"] else [0, "0123456789abcdef", -60, "ble", 0]
            p["obs"] = [row] * n
        elif "ev" in p:
            p["ev"] = [[0, 1] if "main" in topic else [0, 1, 1]] * r.choice([20_000, 20_001])
        else:
            p["dropped"] = {f"r{i}": i for i in range(r.choice([100, 20_000]))}
        return topic, self._enc(p)

    def m_seq_reuse(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        if "seq" in p and p["seq"] > 0:
            p["seq"] = self.rng.randint(0, p["seq"] - 1)
        return topic, self._enc(p)

    def m_node_mismatch(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        if "node" in p:
            p["node"] = self.rng.choice([n for n in NODES if n != p["node"]] + ["zz"])
        return topic, self._enc(p)

    # ------------------------------------------------------------ text and byte mutations

    def m_deep(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        d = self.rng.choice(DEPTHS)
        o, c = self.rng.choice([("[", "]"), ('{"a":', "}")])
        inner = o * d + "1" + c * d if o != "[" else o * d + c * d
        if self.rng.random() < 0.3:
            return topic, inner.encode()
        return topic, self._text(p, inner)

    def m_number(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return topic, self._text(p, self.rng.choice(NUMBERS))

    def m_constant(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return topic, self._text(p, self.rng.choice(CONSTANTS))

    def m_dup_key(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        k = self.rng.choice(sorted(p))
        dup = json.dumps(k) + ":" + json.dumps(self.rng.choice([p[k], 7, "n1"])) + ","
        return topic, ("{" + dup + self._enc(p).decode()[1:]).encode()

    def m_truncate(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        raw = self._enc(p)
        return topic, raw[: self.rng.randint(0, max(len(raw) - 1, 0))]

    def m_bad_utf8(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        raw = self._enc(p)
        i = self.rng.randint(0, len(raw))
        return topic, raw[:i] + self.rng.choice(BAD_BYTES) + raw[i:]

    def m_bom(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return topic, b"\xef\xbb\xbf" + self._enc(p)

    def m_byte_flip(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        raw = bytearray(self._enc(p))
        for _ in range(self.rng.randint(1, 4)):
            i = self.rng.randrange(len(raw))
            raw[i] = self.rng.randrange(256)
        return topic, bytes(raw)

    def m_splice(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        a, b = self._enc(p), self._enc(self.valid()[1])
        return topic, a[: self.rng.randint(0, len(a))] + b[self.rng.randint(0, len(b)) :]

    def m_not_object(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return topic, self.rng.choice([b"[]", b"null", b'"x"', b"1", b"", b" ", b"{}", b"[{}]"])

    def m_oversize(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        if self.rng.random() < 0.05:  # 4 MiB each: rare, or the bench measures memcpy
            return topic, b'{"v":1,"pad":"' + b"x" * payloads.MAX_PAYLOAD_BYTES + b'"}'
        p["pad"] = "x" * self.rng.choice([1000, 100_000])
        return topic, self._enc(p)

    def m_topic(self, topic: str, p: dict[str, Any]) -> tuple[str, bytes]:
        return self.rng.choice(BAD_TOPICS), self._enc(p)
