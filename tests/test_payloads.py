"""Payload schemas, and the hand-written obs check agreeing with jsonschema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from firmware_bridge.errors import PayloadError
from sensing.wire import payloads


def valid_obs(n: int = 3) -> dict[str, Any]:
    return {
        "v": 1,
        "node": "n1",
        "seq": 4,
        "t0": 1_795_000_000_000,
        "epoch": 0,
        "obs": [[i * 10, "0123456789abcdef", -70 + i, "ble", 0x14] for i in range(n)]
        + [[99, "fedcba9876543210", -80, "wifi24", 1, "00ff00ff"]]
        + [[120, "00112233445566ff", -75, "ble", 0x15, None, "0123456789abcdef"]]
        + [[130, "0011223344556677", -79, "wifi24", 1, "00ff00ff", "fedcba9876543210"]],
    }


@pytest.mark.parametrize("kind", sorted(payloads.SCHEMA_FILES))
def test_every_schema_is_a_valid_2020_12_schema(kind: str) -> None:
    Draft202012Validator.check_schema(payloads.schema(kind))


def test_valid_obs_round_trip() -> None:
    p = valid_obs()
    assert payloads.decode("obs", payloads.encode(p)) == p


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[]", "schema"),
        (json.dumps({**valid_obs(), "v": 2}).encode(), "schema"),
        (json.dumps({**valid_obs(), "extra": 1}).encode(), "schema"),
        (b"x" * (payloads.MAX_PAYLOAD_BYTES + 1), "too_large"),
    ],
)
def test_bad_payloads_rejected_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as e:
        payloads.decode("obs", raw)
    assert e.value.reason == reason


def test_chained_rows_accepted_beside_old_ones() -> None:
    """A v1 row may carry its node's chain head (7th item, sig null where it has none);
    a batch of old 5- and 6-item rows is as valid as before."""
    p = valid_obs(2)
    assert payloads.decode("obs", payloads.encode(p)) == p
    payloads.validate("obs", p)
    old = {**p, "obs": [r for r in p["obs"] if len(r) < 7]}
    payloads.check_obs(old)
    payloads.validate("obs", old)


@pytest.mark.parametrize(
    ("row", "where", "what"),
    [
        ([0, "00112233445566ff", -70, "ble", 1, None, "ABCDEF0123456789"], "obs/0/6", "chain"),
        ([0, "00112233445566ff", -70, "ble", 1, None, "0123"], "obs/0/6", "chain"),
        ([0, "00112233445566ff", -70, "ble", 1, None, 7], "obs/0/6", "chain"),
        ([0, "00112233445566ff", -70, "ble", 1, None, None], "obs/0/6", "chain"),
        ([0, "00112233445566ff", -70, "ble", 1, None, "00112233445566ff"], "obs/0/6", "differ"),
        ([0, "00112233445566ff", -70, "ble", 1, 5, "0123456789abcdef"], "obs/0/5", "sig"),
        ([0, "00112233445566ff", -70, "ble", 1, "00FF00FF", "0123456789abcdef"], "obs/0/5", "sig"),
        ([0, "00112233445566ff", -70, "ble", 1, None], "obs/0/5", "sig"),
        ([0, "00112233445566ff", -70, "ble", 1, None, "0123456789abcdef", 1], "obs/0", "items"),
    ],
)
def test_bad_chained_rows_rejected_naming_the_item(row: list[Any], where: str, what: str) -> None:
    """Bad chain pattern, chain equal to the row's pid, a 7-item row's sig of a wrong
    type, a null sig without a chain, an 8th item: rejected, the error naming the item,
    by the fast check and by the schema alike."""
    p = {**valid_obs(0), "obs": [row]}
    with pytest.raises(PayloadError, match=f"at {where}: .*{what}") as e:
        payloads.decode("obs", payloads.encode(p))
    assert e.value.reason == "schema"
    with pytest.raises(PayloadError, match=f"at {where}"):
        payloads.validate("obs", p)


def test_error_names_the_field() -> None:
    p = valid_obs()
    p["obs"][1][1] = "AA:BB:CC:DD:EE:FF"
    with pytest.raises(PayloadError, match="obs/1/1"):
        payloads.decode("obs", payloads.encode(p))


# --- differential test: fast path == jsonschema ------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-200, 5_000_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -60.0, 4.0, 20.0]),
    st.sampled_from(
        [
            "0123456789abcdef",
            "ble",
            "wifi24",
            "wifi5",
            "00ff00ff",
            "n1",
            "ABCDEF0123456789",
            "",
            "x/y",
            "n1\n",
            "0123456789abcdef\n",
            "ble\n",
            "00ff00ff\n",
        ]
    ),
)


def mutate(draw: st.DrawFn) -> Any:
    p = valid_obs(draw(st.integers(0, 4)))
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return p
    if choice == 1:  # replace a top-level value (node and seq most often)
        p[draw(st.sampled_from(sorted(p)))] = draw(scalars)
    elif choice == 2 and p["obs"]:  # replace a row item
        row = p["obs"][draw(st.integers(0, len(p["obs"]) - 1))]
        row[draw(st.integers(0, len(row) - 1))] = draw(scalars)
    elif choice == 3 and p["obs"]:  # change row length
        row = p["obs"][0]
        if draw(st.booleans()):
            row.append(draw(scalars))
        else:
            row.pop()
    elif choice == 4:
        del p[draw(st.sampled_from(sorted(p)))]
    else:
        p[draw(st.sampled_from(["x", "obs2"]))] = 1
    return p


@settings(max_examples=1500, deadline=None)
@given(st.composite(mutate)())
def test_obs_fast_check_agrees_with_jsonschema(p: Any) -> None:
    """One verdict per document: the hand-written check and the schema (applied with
    JSON's types and ECMA patterns by :func:`payloads.validate`) agree exactly."""
    try:
        payloads.validate("obs", p)
        schema_ok = True
    except PayloadError:
        schema_ok = False
    try:
        payloads.check_obs(p)
        fast_ok = True
    except PayloadError:
        fast_ok = False
    assert fast_ok == schema_ok, p


def valid_events(kind: str, n: int) -> dict[str, Any]:
    rows: list[list[int]] = (
        [[i * 10, 1 if i % 2 else -1] for i in range(n)]
        if kind == "door_events"
        else [[i * 10, i % 256, i % 2] for i in range(n)]
    )
    p: dict[str, Any] = {"v": 1, "seq": 4, "t0": 1_795_000_000_000, "ev": rows}
    if n % 2:
        p["board"] = {"frames": 5012, "crc_errors": 0}
    return p


def _paths(x: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(x, dict):
        for k, v in x.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += _paths(v, (*prefix, i))
    return out


event_scalars = st.one_of(
    scalars,
    st.sampled_from([1, -1, 0, 2, 255, 256, 3_600_000, 3_600_001, -0.0, 1.0, True, False]),
)


def mutate_any(draw: st.DrawFn, kind: str) -> Any:
    """A valid ``kind`` document with one change at any depth: a value replaced, a key
    removed or added, an item appended or removed."""
    p = valid_events(kind, draw(st.integers(0, 4)))
    paths = [q for q in _paths(p) if q]
    choice = draw(st.integers(0, 4))
    if choice == 0 or not paths:
        return p
    path = draw(st.sampled_from(paths))
    parent: Any = p
    for k in path[:-1]:
        parent = parent[k]
    target = parent[path[-1]]
    if choice == 1:
        parent[path[-1]] = draw(event_scalars)
    elif choice == 2:
        del parent[path[-1]]
    elif choice == 3 and isinstance(target, list):
        target.append(draw(event_scalars))
    elif choice == 3 and isinstance(target, dict):
        target[draw(st.sampled_from(["x", "frames", "ev", "v"]))] = draw(event_scalars)
    else:
        p[draw(st.sampled_from(["x", "node", "board"]))] = draw(event_scalars)
    return p


@pytest.mark.parametrize("kind", ["door_events", "floor_events"])
@settings(max_examples=700, deadline=None)
@given(data=st.data())
def test_event_fast_checks_agree_with_jsonschema(kind: str, data: st.DataObject) -> None:
    p = data.draw(st.composite(mutate_any)(kind))
    try:
        payloads.validate(kind, p)
        schema_ok = True
    except PayloadError:
        schema_ok = False
    try:
        payloads.FAST_CHECKS[kind](p)
        fast_ok = True
    except PayloadError:
        fast_ok = False
    assert fast_ok == schema_ok, p


def test_a_giant_event_batch_is_checked_fast() -> None:
    """20,000 door events took jsonschema ~2 s; the fast check takes milliseconds."""
    import time

    raw = payloads.encode(valid_events("door_events", 20_000))
    t = time.perf_counter()
    payloads.decode("door_events", raw)
    assert time.perf_counter() - t < 0.5
