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
        + [[99, "fedcba9876543210", -80, "wifi24", 1, "00ff00ff"]],
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
