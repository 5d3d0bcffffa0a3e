"""Typed configuration files: pydantic models that refuse unknown keys.

Every file footfall reads as configuration (the floor plan, ``node.toml``,
``store.toml``) is a tree of :class:`StrictModel` s. :func:`load_toml` reads a
TOML file into one and turns pydantic's errors into one line that names the
key's path and, for a typo, the nearest valid name::

    nodes[2].wifi_chanel: unknown key (did you mean 'wifi_channel'?)

:func:`json_schema` exports the model's JSON Schema (field titles, units and
defaults come from the field descriptions), which editors use to validate and
complete the TOML and from which the reference docs are generated.

>>> class Door(StrictModel):
...     beam_gap_m: float = 0.1
>>> validate({"beam_gap": 0.12}, Door, "door.toml")
Traceback (most recent call last):
...
firmware_bridge.errors.ConfigError: door.toml: beam_gap: unknown key (did you mean 'beam_gap_m'?)
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from firmware_bridge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A section of a configuration file: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def read_toml(path: Path, what: str = "file") -> dict[str, Any]:
    """A TOML file as a dict; a missing or unreadable file or bad TOML is one ConfigError."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def load_toml(path: Path, model: type[M], what: str = "file") -> M:
    """Read ``path`` and validate it as ``model``; errors are one-line ConfigErrors."""
    return validate(read_toml(path, what), model, str(path))


def validate(doc: Any, model: type[M], source: str) -> M:
    """Validate a parsed document; the first error becomes a ConfigError naming its key."""
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe(e, model)}") from None


def describe(e: ValidationError, model: type[BaseModel]) -> str:
    """The first of pydantic's errors as ``path: message``, with a nearest-name hint."""
    err = e.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    path = format_loc(loc)
    if err["type"] == "extra_forbidden":
        known = field_names_at(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        tail = f" (did you mean '{hint[0]}'?)" if hint else ""
        if not hint and known:
            tail = f" (valid keys: {', '.join(sorted(known))})"
        if isinstance(err.get("input"), dict):  # a [table] nobody reads
            return f"[{path}]: unknown table{tail}"
        return f"{path}: unknown key{tail}"
    if err["type"] == "missing" and field_names_at(model, loc):
        return f"[{path}]: missing table (required)"
    if err["type"] in _PLAIN:
        return f"{path}: {_PLAIN[err['type']]}, not {type(err.get('input')).__name__}"
    if err["type"] == "missing":
        return f"{path}: is required"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return f"{path}: {msg}" if path else msg


_PLAIN = {
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
}
"""pydantic's structural type errors in the words of a TOML file"""


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('nodes', 2, 'x')`` → ``nodes[2].x``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def field_names_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a document may hold at ``loc`` inside ``model`` (aliases preferred)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            f = _field(current, str(part))
            if f is None:
                return []
            current = f.annotation
        else:  # a dict's key
            args = typing.get_args(current)
            current = args[-1] if args else Any
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _field(model: type[BaseModel], key: str) -> Any:
    for n, f in model.model_fields.items():
        if key in (n, f.alias):
            return f
    return None


def _unwrap(t: Any) -> Any:
    """Through Optional, list[...], tuple[...], dict[..., V] and Annotated to the model."""
    for _ in range(8):
        origin = typing.get_origin(t)
        if origin is None:
            return t
        args = [a for a in typing.get_args(t) if a is not type(None) and a is not Ellipsis]
        if origin is typing.Annotated:
            t = args[0]
            continue
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        t = args[-1] if args else Any
    return t


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The JSON Schema of a file kind, for editors' TOML plugins (taplo, Even Better TOML)."""
    schema = model.model_json_schema(by_alias=True)
    schema["title"] = title
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
