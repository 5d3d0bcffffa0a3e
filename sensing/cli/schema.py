"""``footfall schema KIND [--markdown]``: a configuration file's JSON Schema or reference.

KIND names a typed model (:class:`~sensing.runtime.typed_config.StrictModel`) in
:data:`KINDS`. The JSON Schema is what editors read through a ``#:schema``
directive (taplo, Even Better TOML); ``--markdown`` renders the reference page
(``docs/floorplan.md`` is ``footfall schema floorplan --markdown``). A model may
give the page its words as class variables: ``doc_title``, ``doc_intro`` (Markdown)
and ``doc_example`` (a TOML file).

Light at import time: the handler imports pydantic and the model when run.
"""

from __future__ import annotations

import argparse
from typing import Any

from firmware_bridge.errors import ConfigError

KINDS = {
    "floorplan": "heatmap.spatial.floorplan_model:FloorPlanFile",
    "node": "sensing.node.config_model:NodeFile",
    "store": "heatmap.aggregator.config_model:StoreFile",
}
"""file kind → ``module:Model`` of its schema, imported only when asked for"""


def model_of(kind: str) -> Any:
    """The model class of ``kind``; a kind whose model cannot be loaded is a ConfigError."""
    import importlib

    from pydantic import BaseModel

    try:
        target = KINDS[kind]
    except KeyError:
        raise ConfigError(f"no file kind {kind!r} (kinds: {', '.join(KINDS)})") from None
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"no schema for {kind!r} files yet: {e}") from e
    except Exception as e:  # a model module that does not import: one line, not a traceback
        raise ConfigError(f"the {kind!r} schema ({module_name}) does not load: {e}") from e
    model = getattr(module, name, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"no schema for {kind!r} files yet: {module_name} has no model {name}")
    return model


def render(kind: str, markdown: bool = False) -> str:
    """The JSON Schema (indented, newline-terminated) or the Markdown reference of ``kind``."""
    import json

    from sensing.runtime.typed_config import json_schema, markdown_reference

    model = model_of(kind)
    title = getattr(model, "doc_title", "") or f"The {kind} file"
    if markdown:
        intro = getattr(model, "doc_intro", "") or (model.__doc__ or "")
        example = getattr(model, "doc_example", "") or None
        return markdown_reference(model, title, intro, example=example)
    return json.dumps(json_schema(model, title), indent=2, ensure_ascii=False) + "\n"


def cmd_schema(a: argparse.Namespace) -> int:
    print(render(a.kind, a.markdown), end="")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "schema", help="JSON Schema (or --markdown reference) of a configuration file kind"
    )
    p.add_argument("kind", choices=tuple(KINDS), help="the file kind")
    p.add_argument("--markdown", action="store_true", help="the reference page in Markdown instead")
    p.set_defaults(func=cmd_schema)
