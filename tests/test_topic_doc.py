"""The topic tree and its schemas are complete, and the committed topic reference
(docs/mqtt.md) is exactly what sensing.wire.topic_reference generates."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from sensing.wire import payloads, topic_reference, topics

DOC = Path(__file__).resolve().parents[1] / "docs" / "mqtt.md"


def test_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == topic_reference.render(), (
        "docs/mqtt.md is stale: python -m sensing.wire.topic_reference --write docs/mqtt.md"
    )
    assert topic_reference.main(["--check", str(DOC)]) == 0


def test_check_flags_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "mqtt.md"
    stale.write_text(topic_reference.render().replace("QoS 1", "QoS 0", 1))
    assert topic_reference.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().out


def test_every_kind_has_a_spec_a_schema_and_a_section() -> None:
    assert set(topics.SPECS) == set(payloads.SCHEMA_FILES) == set(topics._KINDS)
    doc = topic_reference.render()
    for kind, spec in topics.SPECS.items():
        assert spec.kind == kind and spec.direction in ("inbound", "outbound") and spec.qos == 1
        assert f"## `{topics.pattern(kind)}`" in doc
    inbound = {k for k, s in topics.SPECS.items() if s.direction == "inbound"}
    filters = topics.inbound_filters("s1")
    assert len(filters) == len(inbound)
    for kind in inbound:  # the aggregator subscribes to exactly the inbound kinds
        assert topics.pattern(kind).format(store="s1", node="+", door="+", array="+") in filters


@pytest.mark.parametrize("kind", sorted(payloads.SCHEMA_FILES))
def test_schema_documents_every_field_and_its_examples_validate(kind: str) -> None:
    s = payloads.schema(kind)
    Draft202012Validator.check_schema(s)
    assert s["title"] and s.get("examples"), kind
    assert s["properties"]["v"] == {"const": 1, "description": "payload version"}
    for name, prop in s["properties"].items():
        assert prop.get("description"), f"{kind}.{name} has no description"
    for ex in s["examples"]:
        payloads.validate(kind, ex)
        assert payloads.decode(kind, payloads.encode(ex)) == ex


@pytest.mark.parametrize("kind", ["footfall", "zone_stats"])
def test_suppressed_aggregates_carry_no_figures(kind: str) -> None:
    """k-anonymity in the contract: a suppressed payload with a number is invalid."""
    ok = payloads.schema(kind)["examples"][-1]
    assert ok["suppressed"] is True
    payloads.validate(kind, ok)
    figure = {"footfall": {"in": 3}, "zone_stats": {"person_seconds": 12.0}}[kind]
    with pytest.raises(ValueError, match=r"invalid at"):
        payloads.validate(kind, {**ok, **figure})
    with pytest.raises(ValueError, match=r"invalid at"):
        payloads.validate(kind, {**ok, "dwell_s": {**ok["dwell_s"], "p50": 12.0}})
    payloads.validate(kind, {**ok, **figure, "suppressed": False})
    with pytest.raises(ValueError):
        payloads.validate(kind, {**ok, "period": "today"})
    with pytest.raises(ValueError):
        payloads.validate(kind, {k: v for k, v in ok.items() if k != "as_of"})


def test_aggregator_status_topic_round_trip() -> None:
    t = topics.aggregator_status_topic("s1")
    assert t == "footfall/v1/s1/aggregator/status"
    assert topics.parse(t) == topics.Topic("aggregator_status", "s1", None)
    assert topics.SPECS["aggregator_status"].last_will == '{"v":1,"state":"offline"}'
    payloads.validate("aggregator_status", {"v": 1, "state": "offline"})
    with pytest.raises(ValueError):
        payloads.validate("aggregator_status", {"v": 1, "state": "online"})  # needs the figures


def test_every_home_assistant_sensor_is_in_the_reference() -> None:
    """The discovery table of docs/mqtt.md names every component the aggregator announces."""
    from heatmap.aggregator.publish.ha_discovery import discovery_payload

    doc = (Path(__file__).resolve().parents[1] / "docs" / "mqtt.md").read_text()
    p = discovery_payload("s1", "Shop", [("checkout", "Checkout")], "0.1.0")
    assert len(p["cmps"]) == 6
    for key in p["cmps"]:
        assert f"`{key.replace('checkout', '{zone}')}`" in doc, key
