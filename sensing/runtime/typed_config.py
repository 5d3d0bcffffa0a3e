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
import json
import re
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
    """Validate a parsed document; the first error becomes a ConfigError naming its key.

    The message starts with ``source`` (the file's name), unless it is ``""``.
    """
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        msg = describe(e, model)
        raise ConfigError(f"{source}: {msg}" if source else msg) from None


def config_path(value: str | None, base: Path) -> Path | None:
    """A path named in a config file: ``~`` expanded, a relative one taken against ``base``
    (the file's folder); ``None`` stays ``None``."""
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def describe(e: ValidationError, model: type[BaseModel]) -> str:
    """The first of pydantic's errors as ``path: message``, with a nearest-name hint."""
    err = _first(e.errors(include_url=False))
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
        if _is_tables(err.get("input")):  # an [[array of tables]] nobody reads
            return f"[[{path}]]: unknown array of tables{tail}"
        return f"{path}: unknown key{tail}"
    if err["type"] == "missing" and field_names_at(model, loc):
        if _array_at(model, loc):
            return f"[[{path}]]: missing array of tables (required)"
        return f"[{path}]: missing table (required)"
    if err["type"] in _PLAIN:
        what = f"{path}: " if path else "the file "
        return f"{what}{_PLAIN[err['type']]}, not {type(err.get('input')).__name__}"
    if err["type"] == "missing":
        return f"{path}: is required"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return f"{path}: {msg}" if path else msg


def _first(errors: list[Any]) -> Any:
    """The error to report: an unknown key beside a missing one (a renamed key) first."""
    missing_in = {tuple(x["loc"][:-1]) for x in errors if x["type"] == "missing"}
    for x in errors:
        if x["type"] == "extra_forbidden" and tuple(x["loc"][:-1]) in missing_in:
            return x
    return errors[0]


_PLAIN = {
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
}
"""pydantic's structural type errors in the words of a TOML file"""


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _array_at(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether the key at ``loc`` holds an array (of tables), not one table."""
    if not loc or isinstance(loc[-1], int):
        return False

    def is_model(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, BaseModel)

    parent: Any = model
    for part in loc[:-1]:
        if not isinstance(part, int) and is_model(parent):
            f = _field(parent, str(part))
            parent = _unwrap(f.annotation) if f is not None else None
    if not is_model(parent):
        return False
    f = _field(parent, str(loc[-1]))
    t = f.annotation if f is not None else None
    for _ in range(4):  # through Annotated and Optional
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if typing.get_origin(t) in (list, tuple):
            return True
        if typing.get_origin(t) is None or not args:
            return False
        t = args[0]
    return False


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('nodes', 2, 'x')`` → ``nodes[2].x``; a key TOML must quote is quoted (one line)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part)
            if not _BARE_KEY.fullmatch(key):
                key = json.dumps(key, ensure_ascii=False)
            out += ("." if out else "") + key
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""a TOML key written without quotes"""


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


# ---------------------------------------------------------------- Markdown reference

UNIT = "unit"
"""The JSON Schema keyword of a key's unit: ``Field(json_schema_extra={UNIT: "m"})``."""


def markdown_reference(
    model: type[BaseModel], title: str, intro: str, *, example: str | None = None
) -> str:
    """A file kind's reference in Markdown, rendered from its JSON Schema.

    ``# title``, then ``intro`` (Markdown), then one section per table (``[name]``)
    and array of tables (``[[name]]``), each with the table's docstring and a row
    per key: type (with its range), unit (the ``unit`` keyword), default, whether
    it is required, and its description; then ``example`` (TOML) if given.
    """
    schema = json_schema(model, title)
    defs: dict[str, Any] = schema.get("$defs", {})
    out = [f"# {title}", "", intro.strip(), ""]
    for heading, table in _tables(schema, defs, "", False, set()):
        out += [f"## {heading}", ""]
        if heading != "Top level" and table.get("description"):
            out += [_cell(table["description"]), ""]
        out += [
            "| key | type | unit | default | required | description |",
            "|---|---|---|---|---|---|",
        ]
        required = set(table.get("required", ()))
        for key, prop in table.get("properties", {}).items():
            row = (
                f"`{key}`",
                _type_text(prop, defs),
                _cell(str(prop.get(UNIT, ""))),
                _default_text(prop, key in required),
                "yes" if key in required else "no",
                _cell(prop.get("description", "")),
            )
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    if example:
        out += ["## Example", "", "```toml", example.strip(), "```", ""]
    return "\n".join(out)


def _tables(
    table: dict[str, Any], defs: dict[str, Any], name: str, array: bool, seen: set[str]
) -> typing.Iterator[tuple[str, dict[str, Any]]]:
    """(heading, schema) of ``table`` and, depth first, of the tables inside it."""
    yield ((f"`[[{name}]]`" if array else f"`[{name}]`") if name else "Top level"), table
    for key, prop in table.get("properties", {}).items():
        sub, sub_array, ref = _table_of(prop, defs)
        if sub is not None and ref not in seen:
            yield from _tables(sub, defs, f"{name}.{key}" if name else key, sub_array, seen | {ref})


def _deref(s: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Through ``$ref`` and an ``anyOf`` with null (an optional key) to the schema."""
    ref = ""
    for _ in range(8):
        if "$ref" in s:
            ref = s["$ref"].rsplit("/", 1)[-1]
            s = defs.get(ref, {})
        elif "anyOf" in s:
            alts = [a for a in s["anyOf"] if a.get("type") != "null"]
            if len(alts) != 1:
                return s, ref
            s = alts[0]
        else:
            break
    return s, ref


def _table_of(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[Any, bool, str]:
    """(table schema, is an array of tables, its name in $defs) of a key, or (None, …)."""
    s, ref = _deref(prop, defs)
    if s.get("type") == "object" and "properties" in s:
        return s, False, ref
    if s.get("type") == "array" and isinstance(s.get("items"), dict):
        item, ref = _deref(s["items"], defs)
        if item.get("type") == "object" and "properties" in item:
            return item, True, ref
    return None, False, ""


_TYPES = {"number": "float", "integer": "integer", "string": "string", "boolean": "boolean"}


def _type_text(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """``float (0 … 60)``, ``[float, float]``, ``array of tables``: a key's type, briefly."""
    s, _ = _deref(prop, defs)
    if _table_of(s, defs)[0] is not None:
        return "array of tables" if s.get("type") == "array" else "table"
    if "anyOf" in s or "oneOf" in s:
        alts = [a for a in s.get("anyOf", s.get("oneOf", [])) if a.get("type") != "null"]
        return " or ".join(_type_text(a, defs) for a in alts)
    if "const" in s:
        return f"`{_toml(s['const'])}`"
    if "enum" in s:
        return "one of " + ", ".join(f"`{_toml(v)}`" for v in s["enum"])
    kind = s.get("type")
    if kind == "array":
        if "prefixItems" in s:
            text = "[" + ", ".join(_type_text(i, defs) for i in s["prefixItems"]) + "]"
        else:
            item = s.get("items")
            text = "array of " + (_type_text(item, defs) if isinstance(item, dict) else "any")
            lo, hi = s.get("minItems"), s.get("maxItems")
            if lo is not None and lo == hi:
                text += f", exactly {lo}"
            elif lo or hi is not None:
                text += f", at least {lo}" if hi is None else f", {lo or 0} to {hi}"
        return text
    text = _TYPES.get(str(kind), str(kind) if kind else "any")
    lo = s.get("minimum", s.get("exclusiveMinimum"))
    hi = s.get("maximum", s.get("exclusiveMaximum"))
    if lo is not None and hi is not None:
        text += f" ({_num(lo)} … {_num(hi)})"
    elif lo is not None:
        text += f" ({'>' if 'exclusiveMinimum' in s else '≥'} {_num(lo)})"
    elif hi is not None:
        text += f" ({'<' if 'exclusiveMaximum' in s else '≤'} {_num(hi)})"
    return text


def _num(v: float) -> str:
    return f"{v:g}"


def _default_text(prop: dict[str, Any], required: bool) -> str:
    if required or prop.get("default") is None:
        return "—"
    d = prop["default"]
    if isinstance(d, dict):
        return "its keys' defaults" if d else "`{}`"
    return f"`{_toml(d)}`"


def _toml(v: Any) -> str:
    """A value as TOML writes it (``true``, ``"UTC"``, ``[1, 2]``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
