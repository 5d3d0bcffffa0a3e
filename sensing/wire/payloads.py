"""v1 MQTT payloads: encode to compact JSON, decode and validate against the
JSON Schemas in ``sensing/wire/schemas/`` (one per topic kind).

The schemas are the contract; this module only loads them once and applies them,
with JSON's meaning rather than Python's where the two differ: an ``integer`` is an
int (not ``1.0``, not ``true``; ``const`` and ``enum`` compare the same way), a
``number`` is finite (the tokens ``NaN`` and
``Infinity`` and numbers beyond a double's range are not JSON), and a pattern's
``$`` ends the string (Python's ``$`` also matches before a final newline). A
hostile payload (nested 10,000 deep, a million-digit number, ...) is a
:class:`PayloadError` with a reason, never another exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from firmware_bridge.errors import PayloadError

# topic kind (see sensing.wire.topics) -> schema file
SCHEMA_FILES: dict[str, str] = {
    "obs": "obs.schema.json",
    "node_status": "node_status.schema.json",
    "door_events": "door_events.schema.json",
    "floor_events": "floor_events.schema.json",
    "occupancy": "occupancy.schema.json",
    "zone_stats": "zone_stats.schema.json",
    "footfall": "footfall.schema.json",
    "aggregator_status": "aggregator_status.schema.json",
    "aggregator_ack": "aggregator_ack.schema.json",
    "optout": "optout.schema.json",
}

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
MAX_BYTES_BY_KIND: dict[str, int] = {
    "node_status": 64 * 1024,
    "aggregator_status": 1024 * 1024,
    "aggregator_ack": 64 * 1024,
    "optout": 2 * 1024 * 1024,
}
"""tighter bounds for kinds that jsonschema checks (slow per item) and that are small
when sound, bytes: a node status is about 1 kB"""
MAX_DEPTH = 16
"""deepest nesting of arrays and objects a payload may have (the schemas need 4)"""


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (as a dict) of payloads of topic ``kind``."""
    s: dict[str, Any] = json.loads(
        resources.files("sensing.wire.schemas").joinpath(SCHEMA_FILES[kind]).read_text()
    )
    return s


def _is_integer(_checker: Any, v: Any) -> bool:
    return type(v) is int


def _is_number(_checker: Any, v: Any) -> bool:
    return type(v) is int or (type(v) is float and math.isfinite(v))


@cache
def _ecma_pattern(p: str) -> re.Pattern[str]:
    # ECMA-262 (the schemas' dialect): a final "$" matches only at the end; Python's
    # also matches before a trailing newline, so "n1\n" would pass "^...$".
    if p.endswith("$") and not p.endswith("\\$"):
        p = p[:-1] + r"\Z"
    return re.compile(p)


def _pattern(_v: Any, pattern: str, instance: Any, _schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _same(a: Any, b: Any) -> bool:
    """JSON equality with integers apart from floats (``1.0`` is not ``1``) and
    booleans apart from numbers."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _const(_v: Any, const: Any, instance: Any, _schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not _same(instance, const):
        yield ValidationError(f"{const!r} was expected")


def _enum(_v: Any, enums: Any, instance: Any, _schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not any(_same(instance, e) for e in enums):
        yield ValidationError(f"{instance!r} is not one of {enums!r}")


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    )
    return validators.extend(
        Draft202012Validator,
        validators={"pattern": _pattern, "const": _const, "enum": _enum},
        type_checker=checker,
    )


@cache
def _validator(kind: str) -> Any:
    s = schema(kind)
    cls = _validator_class()
    cls.check_schema(s)
    return cls(s)


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as published."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def decode(kind: str, raw: bytes) -> dict[str, Any]:
    """Parse and validate a payload of topic ``kind``.

    Raises
    ------
    PayloadError
        with ``reason`` one of ``too_large`` (over :data:`MAX_PAYLOAD_BYTES`, or the
        kind's :data:`MAX_BYTES_BY_KIND`),
        ``not_utf8``, ``not_json`` (also ``NaN``, ``Infinity`` and numbers out of
        a double's range), ``too_deep`` (nested deeper than :data:`MAX_DEPTH`),
        ``schema`` (the message names the failing field; a key given twice in
        one object is a ``schema`` error too).
    """
    return decode_with_text(kind, raw)[0]


def decode_with_text(kind: str, raw: bytes) -> tuple[dict[str, Any], str]:
    """:func:`decode`, also returning the payload's text (for a consumer that hands
    the validated text itself to another JSON reader, such as SQLite's)."""
    limit = MAX_BYTES_BY_KIND.get(kind, MAX_PAYLOAD_BYTES)
    if len(raw) > limit:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds {limit}", "too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(f"payload is not UTF-8: {e}", "not_utf8") from e
    if kind not in SCHEMA_FILES:
        raise PayloadError(f"no schema for topic kind {kind!r}", "unknown_kind")
    obj = parse(text)
    fast = FAST_CHECKS.get(kind)
    if fast is not None:
        fast(obj)
    else:
        check_depth(obj)
        validate(kind, obj)
    return obj, text


def parse(text: str) -> Any:
    """Strict JSON: no ``NaN``/``Infinity``, no number beyond a double, no key given
    twice in one object.

    Raises
    ------
    PayloadError
        ``not_json``, ``too_deep`` (deeper than the parser's recursion limit;
        :func:`check_depth` bounds it tighter), ``too_large`` (out of memory), or
        ``schema`` (a repeated key).
    """
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except PayloadError:
        raise
    except RecursionError as e:
        raise PayloadError("payload nested too deep to parse", "too_deep") from e
    except MemoryError as e:
        raise PayloadError("payload too large to parse", "too_large") from e
    except ValueError as e:  # also a number of more than 4300 digits
        raise PayloadError(f"payload is not JSON: {e}", "not_json") from e


def _no_constant(name: str) -> Any:
    raise PayloadError(f"payload is not JSON: {name} is not a JSON number", "not_json")


def _finite_float(s: str) -> float:
    f = float(s)
    if not math.isfinite(f):
        raise PayloadError(f"payload is not JSON: number {s[:20]!r} out of range", "not_json")
    return f


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """Raise PayloadError ``too_deep`` if arrays and objects nest deeper than ``limit``
    (iterative: whatever the depth, no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        items = o.values() if type(o) is dict else o if type(o) is list else None
        if items is None:
            continue
        if d > limit:
            raise PayloadError(f"payload nested deeper than {limit}", "too_deep")
        stack.extend((v, d + 1) for v in items if type(v) in (dict, list))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON readers disagree on which of two equal keys wins (Python: the last,
    # SQLite: the first), so a payload that has one could be validated as one
    # thing and stored as another: it is refused.
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise PayloadError(f"payload invalid: key {k!r} given twice", "schema")
            seen.add(k)
    return d


def validate(kind: str, obj: Any) -> None:
    """Validate a parsed payload with the full JSON Schema of ``kind`` (JSON's types
    and ECMA patterns, see the module docstring); an obs row's ``chain`` must also
    differ from its ``pid``, which the schema cannot express.

    Raises
    ------
    PayloadError
        ``schema`` naming the failing field, or ``too_deep``.
    """
    try:
        err = next(iter(_validator(kind).iter_errors(obj)), None)
    except RecursionError as e:
        raise PayloadError(f"{kind} payload nested too deep to validate", "too_deep") from e
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise PayloadError(f"{kind} payload invalid at {where}: {err.message[:200]}", "schema")
    if kind == "obs":
        _check_obs_chains(obj)


# ------------------------------------------------------------------ fast paths
# The obs batch is the hot path of ingest (every observation of every node).
# jsonschema takes ~45 ms for a 500-row batch here (bench/ingest.py), and ~2 s for
# a door or floor batch of 20,000 events (bench/hostile.py: one such payload
# stalled ingest that long), so these hand-written checks implement
# obs.schema.json, door_events.schema.json and floor_events.schema.json exactly;
# tests/test_payloads.py feeds each and :func:`validate` the same generated valid
# and invalid documents and asserts the same verdict.

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PID = re.compile(r"[0-9a-f]{16}")
_SIG = re.compile(r"[0-9a-f]{8}")
_BANDS = frozenset({"wifi24", "wifi5", "wifi6", "ble"})
_OBS_KEYS = frozenset({"v", "node", "seq", "t0", "epoch", "obs"})
_MAX_INT = 9007199254740991


def _bad(where: str, what: str) -> PayloadError:
    return PayloadError(f"obs payload invalid at {where}: {what}", "schema")


def _int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _check_envelope(
    obj: Any,
    required: tuple[str, ...],
    allowed: frozenset[str],
    bad: Callable[[str, str], PayloadError],
) -> None:
    """What every batch's check begins with: an object, its required keys, no other
    keys than ``allowed``, and ``v`` = 1 (an integer)."""
    if type(obj) is not dict:
        raise bad("(root)", "not an object")
    for k in required:
        if k not in obj:
            raise bad("(root)", f"{k!r} is a required property")
    extra = obj.keys() - allowed
    if extra:
        raise bad("(root)", f"additional properties not allowed: {sorted(extra)}")
    if obj["v"] != 1 or type(obj["v"]) is not int:
        raise bad("v", "must be 1")


def _rows(obj: dict[str, Any], key: str, bad: Callable[[str, str], PayloadError]) -> list[Any]:
    """A batch's rows: an array of at most 20,000 items."""
    rows = obj[key]
    if type(rows) is not list:
        raise bad(key, "must be an array")
    if len(rows) > 20000:
        raise bad(key, "more than 20000 items")
    return rows


def check_obs(obj: Any) -> None:
    """Raise PayloadError unless ``obj`` satisfies obs.schema.json."""
    _check_envelope(obj, ("v", "node", "seq", "t0", "obs"), _OBS_KEYS, _bad)
    if type(obj["node"]) is not str or not _ID.fullmatch(obj["node"]):
        raise _bad("node", "must match [A-Za-z0-9_-]{1,64}")
    if not _int(obj["seq"], 0, _MAX_INT):
        raise _bad("seq", "must be an integer >= 0")
    if not _int(obj["t0"], 0, _MAX_INT):
        raise _bad("t0", "must be an integer >= 0")
    if "epoch" in obj and not _int(obj["epoch"], 0, _MAX_INT):
        raise _bad("epoch", "must be an integer >= 0")
    rows = _rows(obj, "obs", _bad)
    pid_ok, sig_ok = _PID.fullmatch, _SIG.fullmatch
    for i, r in enumerate(rows):
        if type(r) is not list or not 5 <= len(r) <= 7:
            raise _bad(f"obs/{i}", "must be an array of 5, 6 or 7 items")
        dt, pid, rssi, band, flags = r[0], r[1], r[2], r[3], r[4]
        if type(dt) is not int or not 0 <= dt <= 3600000:
            raise _bad(f"obs/{i}/0", "dt_ms must be an integer within 0..3600000")
        if type(pid) is not str or not pid_ok(pid):
            raise _bad(f"obs/{i}/1", "pid must be 16 lowercase hex characters")
        if type(rssi) is not int or not -127 <= rssi <= 20:
            raise _bad(f"obs/{i}/2", "rssi must be an integer within -127..20 dBm")
        if type(band) is not str or band not in _BANDS:
            raise _bad(f"obs/{i}/3", f"band must be one of {sorted(_BANDS)}")
        if type(flags) is not int or not 0 <= flags <= 65535:
            raise _bad(f"obs/{i}/4", "flags must be an integer within 0..65535")
        if len(r) == 6 and (type(r[5]) is not str or not sig_ok(r[5])):
            raise _bad(f"obs/{i}/5", "sig must be 8 lowercase hex characters")
        if len(r) == 7:
            sig, chain = r[5], r[6]
            if sig is not None and (type(sig) is not str or not sig_ok(sig)):
                raise _bad(f"obs/{i}/5", "sig must be 8 lowercase hex characters or null")
            if type(chain) is not str or not pid_ok(chain):
                raise _bad(f"obs/{i}/6", "chain must be 16 lowercase hex characters")
            if chain == pid:
                raise _bad(f"obs/{i}/6", "chain must differ from the row's pid (omit it)")


def _check_obs_chains(obj: Any) -> None:
    """What obs.schema.json cannot say (JSON Schema compares no two values of a row):
    a row's ``chain`` differs from its ``pid``. For :func:`validate`, after the schema."""
    for i, r in enumerate(obj["obs"]):
        if len(r) == 7 and r[6] == r[1]:
            raise _bad(f"obs/{i}/6", "chain must differ from the row's pid (omit it)")


_EVENT_KEYS = frozenset({"v", "seq", "t0", "board", "ev"})


def _check_events(obj: Any, kind: str, width: int, row_ok: Callable[[list[Any]], bool]) -> None:
    def bad(where: str, what: str) -> PayloadError:
        return PayloadError(f"{kind} payload invalid at {where}: {what}", "schema")

    _check_envelope(obj, ("v", "seq", "t0", "ev"), _EVENT_KEYS, bad)
    if not _int(obj["seq"], 0, _MAX_INT):
        raise bad("seq", "must be an integer >= 0")
    if not _int(obj["t0"], 0, _MAX_INT):
        raise bad("t0", "must be an integer >= 0")
    if "board" in obj:
        board = obj["board"]
        if type(board) is not dict:
            raise bad("board", "must be an object")
        for k, v in board.items():
            if type(v) is not int or v < 0:
                raise bad(f"board/{k}", "must be an integer >= 0")
    rows = _rows(obj, "ev", bad)
    for i, r in enumerate(rows):
        if type(r) is not list or len(r) != width:
            raise bad(f"ev/{i}", f"must be an array of {width} items")
        if type(r[0]) is not int or not 0 <= r[0] <= 3600000:
            raise bad(f"ev/{i}/0", "dt_ms must be an integer within 0..3600000")
        if not row_ok(r):
            raise bad(f"ev/{i}", "event values out of their ranges")


def _door_row(r: list[Any]) -> bool:
    return type(r[1]) is int and r[1] in (1, -1)


def _floor_row(r: list[Any]) -> bool:
    return _int(r[1], 0, 255) and type(r[2]) is int and r[2] in (0, 1)


def check_door_events(obj: Any) -> None:
    """Raise PayloadError unless ``obj`` satisfies door_events.schema.json."""
    _check_events(obj, "door_events", 2, _door_row)


def check_floor_events(obj: Any) -> None:
    """Raise PayloadError unless ``obj`` satisfies floor_events.schema.json."""
    _check_events(obj, "floor_events", 3, _floor_row)


FAST_CHECKS: dict[str, Callable[[Any], None]] = {
    "obs": check_obs,
    "door_events": check_door_events,
    "floor_events": check_floor_events,
}
"""topic kind → a check equal to its schema, faster than jsonschema"""
