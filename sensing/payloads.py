"""v1 MQTT payloads: encode to compact JSON, decode and validate against the
JSON Schemas in ``sensing/schemas/`` (one per topic kind).

The schemas are the contract; this module only loads them once and applies them.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from sensing.errors import PayloadError

# topic kind (see sensing.topics) -> schema file
SCHEMA_FILES: dict[str, str] = {
    "obs": "obs.schema.json",
    "node_status": "node_status.schema.json",
    "door_events": "door_events.schema.json",
    "floor_events": "floor_events.schema.json",
    "occupancy": "occupancy.schema.json",
    "zone_stats": "zone_stats.schema.json",
    "footfall": "footfall.schema.json",
}

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (as a dict) of payloads of topic ``kind``."""
    return json.loads(resources.files("sensing.schemas").joinpath(SCHEMA_FILES[kind]).read_text())


@cache
def _validator(kind: str) -> Any:
    from jsonschema import Draft202012Validator

    s = schema(kind)
    Draft202012Validator.check_schema(s)
    return Draft202012Validator(s)


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as published."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def decode(kind: str, raw: bytes) -> dict[str, Any]:
    """Parse and validate a payload of topic ``kind``.

    Raises
    ------
    PayloadError
        with ``reason`` one of ``too_large``, ``not_utf8``, ``not_json``,
        ``schema`` (the message names the failing field).
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}", "too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(f"payload is not UTF-8: {e}", "not_utf8") from e
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise PayloadError(f"payload is not JSON: {e}", "not_json") from e
    if kind not in SCHEMA_FILES:
        raise PayloadError(f"no schema for topic kind {kind!r}", "unknown_kind")
    err = next(iter(_validator(kind).iter_errors(obj)), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise PayloadError(f"{kind} payload invalid at {where}: {err.message}", "schema")
    return obj
