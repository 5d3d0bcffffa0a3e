"""node.toml and store.toml as typed models: one-line errors that name the key's
path (and the nearest valid name), committed JSON Schemas that are exactly the
models', the deploy examples valid under them, and no mutation of an example
that ends in anything but a config or one ConfigError.

Regenerate the schemas after changing a model::

    footfall schema node > docs/schemas/node.schema.json
    footfall schema store > docs/schemas/store.schema.json
"""

from __future__ import annotations

import copy
import doctest
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from firmware_bridge.errors import ConfigError, TopicError
from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.config_model import StoreFile
from sensing.cli import schema as schema_command
from sensing.node import config as node_config
from sensing.node.config_model import NodeFile
from sensing.runtime import config_fields
from sensing.runtime.typed_config import validate
from sensing.wire import topics

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "docs" / "schemas"
KINDS: dict[str, Any] = {"node": NodeFile, "store": StoreFile}
EXAMPLES = {kind: REPO / "deploy" / f"{kind}.example.toml" for kind in KINDS}


def render(kind: str) -> str:
    """The JSON Schema of ``{kind}.toml`` as committed in docs/schemas/ (``footfall schema``)."""
    assert schema_command.model_of(kind) is KINDS[kind]
    return schema_command.render(kind)


def example(kind: str) -> dict[str, Any]:
    return tomllib.loads(EXAMPLES[kind].read_text(encoding="utf-8"))


def _load(kind: str, path: Path) -> Any:
    return (node_config if kind == "node" else aggregator_config).load(path)


def _write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------ committed schemas


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_committed_schema_is_the_models(kind: str) -> None:
    committed = (SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8")
    assert committed == render(kind), (
        f"docs/schemas/{kind}.schema.json is stale: "
        f"footfall schema {kind} > docs/schemas/{kind}.schema.json"
    )
    assert json.loads(committed)["title"] == f"{kind}.toml"
    Draft202012Validator.check_schema(json.loads(committed))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_key_is_described(kind: str) -> None:
    schema = json.loads(render(kind))
    for table in [schema, *schema["$defs"].values()]:
        assert table.get("description"), table["title"]
        for key, prop in table["properties"].items():
            assert prop.get("description"), f"{table['title']}.{key} has no description"
            assert prop.get("type") != "null" and "null" not in json.dumps(prop), key


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_deploy_example_points_editors_at_its_schema(kind: str) -> None:
    first = EXAMPLES[kind].read_text(encoding="utf-8").splitlines()[0]
    assert first == f"#:schema ../docs/schemas/{kind}.schema.json"
    assert (EXAMPLES[kind].parent / first.split()[1]).resolve() == SCHEMAS / f"{kind}.schema.json"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_validates_the_example_and_rejects_a_typo(kind: str) -> None:
    v = Draft202012Validator(json.loads(render(kind)))
    doc = example(kind)
    assert list(v.iter_errors(doc)) == []
    section = "batch" if kind == "node" else "retention"
    key = next(iter(doc[section]))
    doc[section][key[:-1]] = doc[section].pop(key)
    errors = list(v.iter_errors(doc))
    assert len(errors) == 1 and list(errors[0].absolute_path) == [section]
    assert repr(key[:-1]) in errors[0].message  # "'max_item' was unexpected"


# ------------------------------------------------------------------ one-line errors

NODE = """
[node]
store = "s1"
id = "n1"
keyfile = "store.key"

[wifi]
pcap = "wifi.pcap"
"""
STORE = '[aggregator]\nstore = "demo"\ndb = "store.db"\n'


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        # a typo'd key: its path and the nearest valid name
        (
            "node",
            NODE + "[batch]\nmax_itmes = 3\n",
            "batch.max_itmes: unknown key (did you mean 'max_items'?)",
        ),
        (
            "node",
            NODE.replace("pcap =", "pacp ="),
            "wifi.pacp: unknown key (did you mean 'pcap'?)",
        ),
        (
            "store",
            STORE + "[retention]\nretention_hour = 3\n",
            "retention.retention_hour: unknown key (did you mean 'retention_hours'?)",
        ),
        (
            "store",
            STORE + "[broker]\nhots = 'x'\n",
            "broker.hots: unknown key (did you mean 'host'?)",
        ),
        # an unknown table
        ("node", NODE + "[wfi]\npcap = 'x'\n", "[wfi]: unknown table (did you mean 'wifi'?)"),
        ("store", STORE + "[mqtt]\nhost = 'x'\n", "[mqtt]: unknown table (valid keys: "),
        # a wrong type
        ("node", NODE + "[broker]\nport = '1883'\n", "broker.port: must be an integer, not str"),
        ("node", NODE + "[clock]\nrequire_sync = 1\n", "clock.require_sync: must be true or false"),
        ("store", STORE + "k = 5.5\n", "aggregator.k: must be an integer, not float 5.5"),
        ("store", STORE + "[retention]\nretention_hours = '1d'\n", "must be a number, not str"),
        ("node", NODE + "batch = 3\n", "wifi.batch: unknown key"),  # TOML: still in [wifi]
        ("node", "batch = 3\n" + NODE, "batch: must be a table, not int"),
        # a missing required key or table
        ("node", NODE.replace('keyfile = "store.key"', ""), "node.keyfile: is required"),
        ("store", STORE.replace('db = "store.db"\n', ""), "aggregator.db: is required"),
        ("node", "[wifi]\npcap = 'x'\n", "[node]: missing table (required)"),
        ("store", "", "[aggregator]: missing table (required)"),
        # ranges and cross-key rules
        ("node", NODE + "[broker]\nport = 0\n", "broker.port: must be within 1..65535, not 0"),
        ("node", NODE + "[[boards]]\nreplay = 'b.uart'\n", "boards[0]: give door or floor"),
        (
            "node",
            NODE + "[[beams]]\ndoor = 'main'\npin_a = 17\npin_b = 27\n",
            "mixes live sources with capture files",
        ),
        ("store", STORE + "[broker]\npassword = 'x'\n", "broker.password: given without username"),
        ("store", STORE + "[retention]\nretention_hours = 72\n", "within 1..48, not 72"),
    ],
)
def test_one_config_error_naming_the_path(
    tmp_path: Path, kind: str, text: str, message: str
) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        _load(kind, p)
    text_of = str(e.value)
    assert text_of.startswith(f"{p}: ") and "\n" not in text_of
    assert message in text_of, text_of


@pytest.mark.parametrize(
    "value", ["demo", "n_1-b", "x" * 64, "x" * 65, "de/mo", "n1\n", "é", " n1"]
)
def test_topic_id_rule_is_the_wire_contracts(value: str) -> None:
    """An id the models take is one check_id takes, and the schema's pattern agrees."""
    try:
        topics.check_id(value)
        wire_ok = True
    except TopicError:
        wire_ok = False
    doc = {"node": {"store": value, "id": "n1", "keyfile": "k"}, "wifi": {"pcap": "p"}}
    try:
        validate(doc, NodeFile, "node.toml")
        model_ok = True
    except ConfigError as e:
        assert str(e).startswith("node.toml: node.store: ")
        model_ok = False
    schema_ok = not list(Draft202012Validator(json.loads(render("node"))).iter_errors(doc))
    assert wire_ok == model_ok, (wire_ok, model_ok)
    # jsonschema matches patterns with Python's re, whose $ also matches before a final
    # newline; JSON Schema's (ECMA 262) $, as editors use it, does not
    assert schema_ok == wire_ok or value.endswith("\n")


def test_config_fields_doctest() -> None:
    result = doctest.testmod(config_fields)
    assert result.attempted and not result.failed


def test_node_schema_needs_no_numpy_and_no_heatmap() -> None:
    code = (
        "import sys, sensing.node.config_model; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'scipy', 'matplotlib', 'shapely', 'heatmap')); print(bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# ------------------------------------------------------------------ mutated examples

_VALUES = [None, "x", "", "/dev/ttyUSB9", 0, 1, -1, 70000, 0.5, 1e9, True, False, [], [1, "a"],
           {}, {"a": 1}]  # fmt: skip


def _keys(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key's path in a parsed TOML document (array elements by index)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*at, k))
            out += _keys(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _keys(v, (*at, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """The deploy example after 1–4 random deletions, renames and type swaps."""
    doc = copy.deepcopy(example(kind))
    for _ in range(draw(st.integers(1, 4))):
        keys = [k for k in _keys(doc) if isinstance(k[-1], str)]
        if not keys:
            break
        path = draw(st.sampled_from(keys))
        parent = _parent(doc, path)
        op = draw(st.sampled_from(["delete", "rename", "swap"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "rename":
            name = path[-1]
            new = draw(st.sampled_from([name[:-1], name + "s", name.upper(), name[1:] + name[0]]))
            parent[new or "x"] = parent.pop(name)
        else:
            value = draw(st.sampled_from(_VALUES))
            if value is None:  # TOML has no null: drop the key instead
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)
    return doc


def _one_config_error_or_a_config(kind: str, doc: dict[str, Any], base: Path) -> None:
    mod = node_config if kind == "node" else aggregator_config
    model = KINDS[kind]
    try:
        validate(doc, model, f"{kind}.toml")
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{kind}.toml: ")
    else:  # what the model takes, the exported schema takes too (editors agree)
        assert list(Draft202012Validator(json.loads(render(kind))).iter_errors(doc)) == []
    try:
        cfg = mod.parse(doc, f"{kind}.toml", base)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{kind}.toml: "), str(e)
    else:
        assert cfg is not None


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_examples_end_in_a_config_or_one_config_error(kind: str, data: Any) -> None:
    doc = data.draw(mutated(kind))
    _one_config_error_or_a_config(kind, doc, REPO / "deploy")


# ------------------------------------------------------------------ the commands


def _footfall(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


@pytest.mark.parametrize("command", ["node", "aggregator"])
def test_daemons_say_a_bad_config_in_one_line(tmp_path: Path, command: str) -> None:
    kind = "node" if command == "node" else "store"
    text = EXAMPLES[kind].read_text(encoding="utf-8")
    key = "max_items" if kind == "node" else "retention_hours"
    bad = _write(tmp_path, text.replace(f"\n{key} =", f"\n{key[:-1]} =", 1))
    r = _footfall(command, "--config", str(bad))
    section = "batch" if kind == "node" else "retention"
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (
        f"footfall: error: {bad}: {section}.{key[:-1]}: unknown key (did you mean '{key}'?)\n"
    )


def test_doctor_says_a_bad_config_as_its_one_failed_check(tmp_path: Path) -> None:
    text = EXAMPLES["node"].read_text(encoding="utf-8")
    bad = _write(tmp_path, text.replace('id = "n1"', 'id = "n/1"'))
    r = _footfall("doctor", "--config", str(bad))
    lines = r.stdout.splitlines()
    assert r.returncode == 1 and len(lines) == 2, r.stdout + r.stderr
    assert re.match(rf"FAIL  config .*{re.escape(str(bad))}: node\.id: 'n/1' must be", lines[0])
    assert lines[1] == "footfall doctor: this node is NOT fit to run (1 problem)"
