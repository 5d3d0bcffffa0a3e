"""Extract the tables tests/test_ha_discovery.py checks against from a Home Assistant release.

    pip download homeassistant==2026.11.0 --no-deps --only-binary=:all: --python-version 3.14.2
    unzip homeassistant-2026.11.0-py3-none-any.whl 'homeassistant/*' -d ha-2026.11.0
    python3 tests/data/ha/extract_ha_tables.py ha-2026.11.0 2026.11.0 tests/data/ha

The source is read as syntax trees, never imported (a release may need a newer Python
than the one at hand): names resolve through the module-level constants and the enum
classes of homeassistant/const.py, components/mqtt/const.py and components/sensor/const.py.
Writes ``mqtt-{release}.json`` (discovery abbreviations, the keys device discovery accepts,
MQTT defaults) and ``sensor-{release}.json`` (device classes, state classes, their units).
"""

from __future__ import annotations

import ast
import contextlib
import json
import sys
from pathlib import Path
from typing import Any


class Names:
    """Module-level constants and enum members of the modules read so far."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}
        self.enums: dict[str, dict[str, Any]] = {}

    def scan(self, tree: ast.Module) -> None:
        for _ in range(2):  # a constant may be defined after the enum that uses it
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    members = {}
                    for st in node.body:
                        target, value = _assignment(st)
                        if target is not None and value is not None:
                            with contextlib.suppress(KeyError, TypeError, ValueError):
                                members[target] = self.eval(value)
                    if members:
                        self.enums[node.name] = members
                else:
                    target, value = _assignment(node)
                    if target is not None and value is not None:
                        with contextlib.suppress(KeyError, TypeError, ValueError):
                            self.consts[target] = self.eval(value)

    def eval(self, n: ast.expr) -> Any:
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return self.consts[n.id]
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            return self.enums[n.value.id][n.attr]
        if isinstance(n, ast.JoinedStr):
            return "".join(
                str(self.eval(v.value)) if isinstance(v, ast.FormattedValue) else str(v.value)
                for v in n.values
            )
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add):
            return self.eval(n.left) + self.eval(n.right)
        if isinstance(n, (ast.Set, ast.List, ast.Tuple)):
            out = []
            for e in n.elts:
                if isinstance(e, ast.Starred) and isinstance(e.value, ast.Name):
                    out.extend(self.enums[e.value.id].values())
                else:
                    out.append(self.eval(e))
            return out
        if isinstance(n, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(n.keys, n.values, strict=True)}
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            if n.func.id in ("set", "frozenset") and not n.args:
                return []
            if n.func.id in ("set", "frozenset", "list", "tuple"):
                (arg,) = n.args
                if isinstance(arg, ast.Name) and arg.id in self.enums:
                    return list(self.enums[arg.id].values())
                return self.eval(arg)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "union":
            return self.eval(n.func.value) + [x for a in n.args for x in self.eval(a)]
        raise KeyError(ast.dump(n)[:80])


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _top(tree: ast.Module, name: str) -> ast.expr | None:
    for node in tree.body:
        target, value = _assignment(node)
        if target == name:
            return value
    return None


def _schema_keys(names: Names, n: ast.expr | None, tree: ast.Module | None = None) -> list[str]:
    """The keys of the dict literal a voluptuous/probatio schema is built from (its
    outermost ``{Required(KEY): ..., Optional(KEY): ..., Exclusive(KEY, group): ...}``),
    with those of a ``..._SCHEMA_BASE`` of ``tree`` it extends."""
    keys: list[str] = []
    if n is None:
        return keys
    if tree is not None:
        for ref in ast.walk(n):
            if isinstance(ref, ast.Name) and ref.id.endswith("SCHEMA_BASE"):
                keys += _schema_keys(names, _top(tree, ref.id), tree)
    own: list[str] = []
    for d in ast.walk(n):
        if isinstance(d, ast.Dict):
            for k in d.keys:
                if (
                    isinstance(k, ast.Call)
                    and isinstance(k.func, ast.Attribute)
                    and k.func.attr in ("Required", "Optional", "Exclusive")
                ):
                    own.append(names.eval(k.args[0]))
            if own:
                break
    return keys + own


def _sorted(vals: list[Any]) -> list[Any]:
    return sorted(set(vals), key=lambda u: (u is None, str(u)))


def main(root: Path, release: str, out_dir: Path) -> None:
    ha = root / "homeassistant"
    names = Names()
    for rel in ("const.py", "components/mqtt/const.py", "components/sensor/const.py"):
        names.scan(ast.parse((ha / rel).read_text()))
    sensor = ast.parse((ha / "components/sensor/const.py").read_text())
    mqtt_const = ast.parse((ha / "components/mqtt/const.py").read_text())
    schemas = ast.parse((ha / "components/mqtt/schemas.py").read_text())
    abbreviations = ast.parse((ha / "components/mqtt/abbreviations.py").read_text())

    def table(tree: ast.Module, name: str) -> Any:
        value = _top(tree, name)
        return None if value is None else names.eval(value)

    sensor_out: dict[str, Any] = {
        "release": release,
        "source": "homeassistant/components/sensor/const.py",
        "device_classes": list(names.enums["SensorDeviceClass"].values()),
        "state_classes": list(names.enums["SensorStateClass"].values()),
        "device_class_units": {
            k: _sorted(v) for k, v in table(sensor, "DEVICE_CLASS_UNITS").items()
        },
        "device_class_state_classes": {
            k: _sorted(v) for k, v in table(sensor, "DEVICE_CLASS_STATE_CLASSES").items()
        },
        "state_class_units": {
            k: _sorted(v) for k, v in (table(sensor, "STATE_CLASS_UNITS") or {}).items()
        },
    }
    abbr = {
        _assignment(n)[0].lower(): ast.literal_eval(n.value)  # type: ignore[union-attr]
        for n in abbreviations.body
        if isinstance(n, ast.Assign)
    }
    root_keys = _schema_keys(names, _top(schemas, "DEVICE_DISCOVERY_SCHEMA"))
    for part in ("_MQTT_AVAILABILITY_SINGLE_SCHEMA", "_MQTT_AVAILABILITY_LIST_SCHEMA"):
        root_keys += _schema_keys(names, _top(schemas, part))
    avty_list = _top(schemas, "_MQTT_AVAILABILITY_LIST_SCHEMA")
    inner = [d for d in ast.walk(avty_list) if isinstance(d, ast.Dict)] if avty_list else []
    avty_item_keys = _schema_keys(names, inner[1]) if len(inner) > 1 else []
    device_schema = "MQTT_DEVICE_INFO_SCHEMA"  # device discovery's (2026: no child_device)
    if _top(schemas, device_schema) is None:
        device_schema = "MQTT_ENTITY_DEVICE_INFO_SCHEMA"
    mqtt_out = {
        "release": release,
        "source": "homeassistant/components/mqtt/{abbreviations,const,schemas}.py",
        "abbreviations": abbr["abbreviations"],
        "device_abbreviations": abbr["device_abbreviations"],
        "origin_abbreviations": abbr["origin_abbreviations"],
        "device_discovery_keys": sorted(set(root_keys)),
        "availability_keys": sorted(set(avty_item_keys)),
        "device_keys": sorted(set(_schema_keys(names, _top(schemas, device_schema), schemas))),
        "origin_keys": sorted(set(_schema_keys(names, _top(schemas, "MQTT_ORIGIN_INFO_SCHEMA")))),
        "payload_none": table(mqtt_const, "PAYLOAD_NONE"),
        "default_payload_available": table(mqtt_const, "DEFAULT_PAYLOAD_AVAILABLE"),
        "default_payload_not_available": table(mqtt_const, "DEFAULT_PAYLOAD_NOT_AVAILABLE"),
        "default_birth_will_topic": table(mqtt_const, "DEFAULT_BIRTH_WILL_TOPIC"),
    }
    for name, body in (("sensor", sensor_out), ("mqtt", mqtt_out)):
        path = out_dir / f"{name}-{release}.json"
        path.write_text(json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
