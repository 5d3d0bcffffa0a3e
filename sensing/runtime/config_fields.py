"""Field types of the configuration files, with errors in a TOML file's words.

pydantic's lax mode would read ``require_sync = "yes"`` as true and
``port = "1883"`` as a number; a configuration file must not guess. These
``Annotated`` types and :class:`Within` accept exactly the TOML type they
name, check the range, and say what is wrong in one phrase (the JSON Schema
keeps the type and the range, for editors)::

    broker.port: must be within 1..65535, not 70000
    clock.require_sync: must be true or false, not str 'yes'

:class:`TomlTable` is a table (its JSON Schema says no null: TOML has none);
:class:`BrokerTls` is the ``ca``/``cert``/``key`` trio of ``[broker]`` that
``node.toml`` and ``store.toml`` share.

>>> from sensing.runtime.typed_config import validate
>>> class Batch(StrictModel):
...     max_items: Annotated[int, Within(1, 20_000)] = 500
>>> validate({"max_items": 0}, Batch, "node.toml")
Traceback (most recent call last):
...
firmware_bridge.errors.ConfigError: node.toml: max_items: must be within 1..20000, not 0
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from sensing.runtime.typed_config import StrictModel

TOPIC_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""a store, node, door or tile array id: one level of an MQTT topic
(the rule of :func:`sensing.wire.topics.check_id`), as a JSON Schema pattern"""
_TOPIC_ID = re.compile(TOPIC_ID_PATTERN.removeprefix("^").removesuffix("$"))


def _shown(v: Any) -> str:
    """``str 'yes'``: the TOML value's type and value, short."""
    text = repr(v)
    return f"{type(v).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _num(x: float) -> str:
    """1000000 as ``1000000`` (not ``1e+06``), 0.5 as ``0.5``."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True, slots=True)
class Within:
    """``Annotated[int, Within(1, 65535)]``: a TOML number of that type within ``lo..hi``.

    An ``int`` field takes integers only (not 5.5, not true); a ``float`` field
    takes integers and floats. The JSON Schema says the range (minimum, maximum).
    """

    lo: float
    hi: float

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner: Any = {**handler(source), "ge": self.lo, "le": self.hi}
        check = self._integer if source is int else self._number
        return core_schema.no_info_before_validator_function(check, inner)

    def _integer(self, v: Any) -> Any:
        if type(v) is not int:
            raise ValueError(f"must be an integer, not {_shown(v)}")
        if not self.lo <= v <= self.hi:
            raise ValueError(f"must be within {_num(self.lo)}..{_num(self.hi)}, not {v}")
        return v

    def _number(self, v: Any) -> Any:
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ValueError(f"must be a number, not {_shown(v)}")
        if not self.lo <= v <= self.hi:  # also refuses nan
            raise ValueError(f"must be within {_num(self.lo)}..{_num(self.hi)}, not {_num(v)}")
        return float(v)


def _bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, not {_shown(v)}")
    return v


def _text(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {_shown(v)}")
    if not v.strip():
        raise ValueError("must not be empty")
    return v


def _topic_id(v: Any) -> Any:
    _text(v)
    if not _TOPIC_ID.fullmatch(v):  # not re.match: its $ takes a trailing newline
        raise ValueError(f"{v!r} must be 1 to 64 of A-Z a-z 0-9 _ - (an MQTT topic level)")
    return v


def _int_or_text(v: Any) -> Any:
    if type(v) is int:
        return v
    if isinstance(v, str) and v.strip():
        return v
    raise ValueError(f"must be a number or a name, not {_shown(v)}")


def one_of(*values: str) -> Callable[[Any], Any]:
    """A before-validator: ``v`` is one of ``values`` (a Literal says the same to the schema)."""

    def check(v: Any) -> Any:
        if v not in values:
            names = ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
            raise ValueError(f"must be {names}, not {v!r}")
        return v

    return check


Bool = Annotated[bool, BeforeValidator(_bool)]
"""true or false (not "yes", not 1)"""
Text = Annotated[str, Field(min_length=1), BeforeValidator(_text)]
"""a non-empty string"""
PathText = Annotated[str, Field(min_length=1), BeforeValidator(_text)]
"""a file or directory; relative to the configuration file's directory, ``~`` expanded"""
TopicId = Annotated[str, Field(pattern=TOPIC_ID_PATTERN), BeforeValidator(_topic_id)]
"""an id that is one MQTT topic level"""
IntOrText = Annotated[int | str, BeforeValidator(_int_or_text)]
"""a number or a name (a GPIO pin: 17, "GPIO17", "BOARD11")"""


def _toml_schema(schema: dict[str, Any]) -> None:
    """TOML has no null: an optional key is absent, so its schema has no null type or default."""
    for prop in schema.get("properties", {}).values():
        alts = prop.get("anyOf", [])
        if any(a.get("type") == "null" for a in alts):
            rest = [a for a in alts if a.get("type") != "null"]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class TomlTable(StrictModel):
    """A table of a TOML file: a :class:`StrictModel` whose JSON Schema has no nulls."""

    model_config = ConfigDict(json_schema_extra=_toml_schema)


class BrokerTls(TomlTable):
    """``ca``, ``cert`` and ``key`` of a ``[broker]`` table: TLS and a client certificate."""

    ca: PathText | None = Field(
        None, description="CA certificate of the broker (PEM): TLS on when given"
    )
    cert: PathText | None = Field(
        None, description="client certificate (PEM); goes with key, needs ca"
    )
    key: PathText | None = Field(
        None,
        description="private key of the client certificate (PEM); goes with cert",
        validate_default=True,
    )

    @field_validator("key")
    @classmethod
    def _cert_and_key(cls, key: str | None, info: ValidationInfo) -> str | None:
        cert = info.data.get("cert")
        if cert is not None and key is None:
            raise ValueError("is required with cert: give both cert and key, or neither")
        if cert is None and key is not None and "cert" in info.data:
            raise ValueError("given without cert: give both cert and key, or neither")
        return key

    @model_validator(mode="after")
    def _ca_with_cert(self) -> BrokerTls:
        if self.cert is not None and self.ca is None:
            raise ValueError("a client certificate (cert and key) needs ca, the broker's CA")
        return self
