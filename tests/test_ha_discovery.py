"""Home Assistant device discovery of a store (heatmap/aggregator/publish/ha_discovery.py).

Checked against tables extracted from Home Assistant Core 2024.12.0 and 2026.11.0
(tests/data/ha/README.md): every key is one Home Assistant knows, every device class,
state class and unit a combination it allows; the value templates, rendered with Jinja2
as Home Assistant renders them, give the numbers for the contract's example payloads and
Home Assistant's "no value" (``None``) for suppressed ones.
"""

from __future__ import annotations

import copy
import doctest
import json
import os
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from firmware_bridge.errors import ConfigError, TopicError
from heatmap.aggregator.broker import free_port, start_mosquitto
from heatmap.aggregator.publish import ha_discovery
from heatmap.aggregator.publish.ha_discovery import discovery_payload, encode
from sensing.wire import payloads, topics

from broker_fixtures import wait_for

DATA = Path(__file__).parent / "data" / "ha"
SCHEMAS = Path(payloads.__file__).parent / "schemas"
RELEASES = ("2024.12.0", "2026.11.0")
STORE = "s1"
ZONES = [("checkout", "Checkout"), ("fitting", "Fitting rooms")]


def _ha(kind: str, release: str) -> dict[str, Any]:
    return json.loads((DATA / f"{kind}-{release}.json").read_text())


def _examples(kind: str) -> list[dict[str, Any]]:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())["examples"]


def _payload(previous: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return discovery_payload(STORE, "Example Store", ZONES, "0.1.0", previous, **kw)


def _live(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The components that configure an entity (not removal forms)."""
    return {k: c for k, c in payload["cmps"].items() if set(c) != {"p"}}


# ------------------------------------------------------------------ keys and classes


def _expand(
    keys: dict[str, Any],
    abbreviations: dict[str, str],
    where: str,
    full: frozenset[str] = frozenset(),
) -> set[str]:
    """Full names of ``keys``; each must be an abbreviation HA documents, or one of the
    option names ``full`` (those without an abbreviation)."""
    for k in keys:
        assert k in abbreviations or k in full, f"{where}: {k!r} is no abbreviation or option"
    return {abbreviations.get(k, k) for k in keys}


@pytest.mark.parametrize("release", RELEASES)
def test_every_key_is_one_home_assistant_documents(release: str) -> None:
    mqtt = _ha("mqtt", release)
    abbr = mqtt["abbreviations"]
    previous = _payload()
    p = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", previous)
    assert any(set(c) == {"p"} for c in p["cmps"].values())  # a removal form is checked too

    root = _expand(p, abbr, "root", frozenset(mqtt["device_discovery_keys"]))
    # device discovery refuses any other key at its top level: the whole device is lost
    assert root <= set(mqtt["device_discovery_keys"]), root - set(mqtt["device_discovery_keys"])
    assert {"device", "origin", "components"} <= root
    dev = {mqtt["device_abbreviations"].get(k, k) for k in p["dev"]}
    assert set(p["dev"]) <= set(mqtt["device_abbreviations"]), p["dev"]
    assert dev <= set(mqtt["device_keys"])
    origin = {mqtt["origin_abbreviations"].get(k, k) for k in p["o"]}
    assert set(p["o"]) <= set(mqtt["origin_abbreviations"]) and origin <= set(mqtt["origin_keys"])
    for item in p["avty"]:
        assert _expand(item, abbr, "avty") <= set(mqtt["availability_keys"])
    for key, c in p["cmps"].items():
        # a sensor drops unknown keys without a word: a typo would lose the option
        assert "platform" in _expand(c, abbr, key) and c["p"] == "sensor"


@pytest.mark.parametrize("release", RELEASES)
def test_classes_and_units_are_combinations_home_assistant_allows(release: str) -> None:
    sensor = _ha("sensor", release)
    for key, c in _live(_payload()).items():
        sc, dc, unit = c["stat_cla"], c.get("dev_cla"), c["unit_of_meas"]
        assert sc in sensor["state_classes"], key
        if sc in sensor.get("state_class_units", {}):
            assert unit in sensor["state_class_units"][sc], key
        if dc is None:
            continue
        assert dc in sensor["device_classes"], key
        assert unit in sensor["device_class_units"].get(dc, [unit]), (key, unit)
        assert sc in sensor["device_class_state_classes"].get(dc, [sc]), (key, sc)


def test_what_each_sensor_is() -> None:
    c = _payload()["cmps"]
    # people counts: no device class (HA has none), a unit and a state class make them numeric
    for key in ("occupancy", "visitors_today", "passersby_today", "zone_checkout_occupancy"):
        assert "dev_cla" not in c[key] and c[key]["unit_of_meas"] == "people", key
    assert c["occupancy"]["stat_cla"] == c["zone_fitting_occupancy"]["stat_cla"] == "measurement"
    # a daily total that restarts at midnight and may go down: total with last_reset
    # (mqtt/sensor.py refuses last_reset_value_template with any other state class)
    for key in ("visitors_today", "passersby_today"):
        assert c[key]["stat_cla"] == "total" and "lrst_val_tpl" in c[key], key
    assert all("lrst_val_tpl" not in v for k, v in c.items() if v["stat_cla"] != "total")
    assert c["capture_rate_today"]["unit_of_meas"] == "%"
    assert (c["dwell_mean_today"]["dev_cla"], c["dwell_mean_today"]["unit_of_meas"]) == (
        "duration",
        "s",
    )
    assert c["zone_fitting_occupancy"]["name"] == "Fitting rooms occupancy"
    assert c["zone_fitting_occupancy"]["stat_t"] == topics.build("zone_stats", STORE, "fitting")
    assert c["visitors_today"]["stat_t"] == topics.build("footfall", STORE, "today")
    assert c["occupancy"]["stat_t"] == topics.build("occupancy", STORE)
    uniq = [v["uniq_id"] for v in c.values()]
    assert len(set(uniq)) == len(uniq) and all(u.startswith("footfall_s1_") for u in uniq)


def test_one_device_per_store_with_origin_availability_and_qos() -> None:
    p = _payload()
    assert ha_discovery.discovery_topic(STORE) == "homeassistant/device/s1/config"
    assert p["dev"] == {
        "ids": ["footfall_s1"],
        "name": "Example Store",
        "mf": "footfall",
        "mdl": "Store aggregator",
        "sw": "0.1.0",
    }
    assert p["o"] == {"name": "footfall", "sw": "0.1.0"} and p["qos"] == 1
    (avty,) = p["avty"]
    assert avty["t"] == topics.aggregator_status_topic(STORE)
    assert discovery_payload(STORE, "", [], "1")["dev"]["name"] == STORE
    with pytest.raises(TopicError):
        ha_discovery.discovery_topic("s/1")
    with pytest.raises(TopicError):
        discovery_payload("s+1", "x", [], "1")
    with pytest.raises(TopicError):
        discovery_payload(STORE, "x", [("a b", "A")], "1")
    with pytest.raises(ConfigError, match="listed twice"):
        discovery_payload(STORE, "x", [("a", "A"), ("a", "B")], "1")


# ------------------------------------------------------------------ templates

ENV = ImmutableSandboxedEnvironment()
"""Home Assistant renders templates in an immutable Jinja2 sandbox"""


def _render(template: str, payload: dict[str, Any]) -> str:
    """As Home Assistant renders an MQTT value template: ``value`` the payload text,
    ``value_json`` the payload parsed."""
    raw = payloads.encode(payload).decode()
    return ENV.from_string(template).render(value=raw, value_json=json.loads(raw)).strip()


def _today(example: dict[str, Any]) -> dict[str, Any]:
    """A contract example made a ``footfall/today`` payload (the day in progress)."""
    p = dict(example, unit="day", final=False)
    p["period"] = "2026-11-20T00:00:00+01:00/2026-11-21T00:00:00+01:00"
    payloads.validate("footfall", p)
    return p


@pytest.mark.parametrize("release", RELEASES)
def test_templates_render_the_contract_examples(release: str) -> None:
    none = _ha("mqtt", release)["payload_none"]
    assert none == "None"
    c = _payload()["cmps"]
    seen, hidden = [_today(e) for e in _examples("footfall")]
    assert not seen["suppressed"] and hidden["suppressed"]
    expected = {
        "visitors_today": "112",
        "passersby_today": "389",
        "capture_rate_today": "22.4",
        "dwell_mean_today": "731.4",
    }
    for key, want in expected.items():
        assert _render(c[key]["val_tpl"], seen) == want, key
        assert _render(c[key]["val_tpl"], hidden) == none, key  # HA shows "unknown"
        # the day starts a new meter cycle at local midnight
        reset = _render(c[key]["lrst_val_tpl"], seen) if "lrst_val_tpl" in c[key] else None
        if reset is not None:
            assert datetime.fromisoformat(reset).isoformat() == "2026-11-20T00:00:00+01:00"
    absent = {k: v for k, v in seen.items() if k != "passersby"}
    payloads.validate("footfall", absent)
    assert _render(c["passersby_today"]["val_tpl"], absent) == none

    zone_seen, zone_hidden = _examples("zone_stats")
    assert _render(c["zone_checkout_occupancy"]["val_tpl"], zone_seen) == "6"
    assert _render(c["zone_fitting_occupancy"]["val_tpl"], zone_hidden) == none
    (occ,) = _examples("occupancy")
    assert _render(c["occupancy"]["val_tpl"], occ) == "23"
    occ_hidden = dict(occ, occupancy=None, low=None, high=None, suppressed=True)
    payloads.validate("occupancy", occ_hidden)
    assert _render(c["occupancy"]["val_tpl"], occ_hidden) == none
    for p, key in ((seen, "visitors_today"), (zone_seen, "zone_checkout_occupancy")):
        float(_render(c[key]["val_tpl"], p))  # a number HA's numeric sensor takes


@pytest.mark.parametrize("release", RELEASES)
def test_availability_follows_the_aggregator_status(release: str) -> None:
    mqtt = _ha("mqtt", release)
    (avty,) = _payload()["avty"]
    assert (avty["pl_avail"], avty["pl_not_avail"]) == (
        mqtt["default_payload_available"],
        mqtt["default_payload_not_available"],
    )
    online, will = _examples("aggregator_status")
    assert will == {"v": 1, "state": "offline"}
    assert _render(avty["val_tpl"], online) == "online"
    assert _render(avty["val_tpl"], will) == "offline"
    assert _render(avty["val_tpl"], dict(online, state="stopping")) == "offline"


# ------------------------------------------------------------------ removal, idempotence


def test_same_inputs_give_the_same_bytes() -> None:
    first = encode(_payload())
    assert encode(_payload()) == first
    assert encode(discovery_payload(STORE, "Example Store", ZONES[::-1], "0.1.0")) == first
    # the payload read back from the broker is a fixed point: nothing to publish again
    assert encode(_payload(json.loads(first))) == first
    assert encode(_payload(json.loads(first), ha_birth=True)) == first
    assert encode(discovery_payload(STORE, "Example Store", ZONES, "0.2.0")) != first


def test_a_removed_zone_is_removed_in_two_steps() -> None:
    both = _payload()
    one = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", both)
    # step 1: the component with only its platform: Home Assistant deletes the entity
    assert one["cmps"]["zone_fitting_occupancy"] == {"p": "sensor"}
    assert _live(one) == {k: v for k, v in both["cmps"].items() if k != "zone_fitting_occupancy"}
    # it stays while Home Assistant may not have read it: nothing new to publish
    again = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", one)
    assert encode(again) == encode(one)
    # step 2: after Home Assistant's birth (it has read the retained payload) it is dropped
    dropped = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", one, ha_birth=True)
    assert "zone_fitting_occupancy" not in dropped["cmps"] and _live(dropped) == _live(one)
    stable = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", dropped)
    assert encode(stable) == encode(dropped)
    # a zone that comes back is configured again
    back = _payload(one)
    assert encode(back) == encode(both)
    # a birth never drops a live component's removal before it was published once
    at_birth = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", both, ha_birth=True)
    assert at_birth["cmps"]["zone_fitting_occupancy"] == {"p": "sensor"}


@pytest.mark.parametrize(
    "previous",
    [
        None,
        {},
        [],
        "text",
        {"cmps": 3},
        {"cmps": {"x": 5, "y": {"p": 7}, "z": {"name": "no platform"}, "7": []}},
        {"dev": {}, "cmps": {"old": {"platform": "sensor", "name": "x"}}},
    ],
)
def test_anything_read_back_is_taken_or_ignored(previous: Any) -> None:
    fresh = _payload()
    p = _payload(copy.deepcopy(previous))
    assert _live(p) == _live(fresh)
    removals = {k: c for k, c in p["cmps"].items() if set(c) == {"p"}}
    if isinstance(previous, dict) and previous.get("dev") == {}:
        assert removals == {"old": {"p": "sensor"}}  # full option names are ours too
    else:
        assert removals == {}


def test_home_assistant_birth() -> None:
    assert _ha("mqtt", RELEASES[-1])["default_birth_will_topic"] == ha_discovery.HA_STATUS_TOPIC
    assert ha_discovery.is_ha_online(b"online")
    assert ha_discovery.is_ha_online(b"online\n")
    for payload in (b"offline", b"", b"ONLINE", b"\xff\xfe", b'{"state":"online"}'):
        assert not ha_discovery.is_ha_online(payload), payload


def test_docstring_examples() -> None:
    result = doctest.testmod(ha_discovery)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------ a real Home Assistant

HA_PYTHON_ENV = "FOOTFALL_HA_PYTHON"
HA_SETUP = (
    "Home Assistant with device discovery (2024.11+) needs Python >= 3.12; set "
    f"{HA_PYTHON_ENV} to a Python that has it, e.g. python3.12 -m venv ha && ha/bin/pip "
    "install homeassistant==2024.12.0 paho-mqtt==1.6.1 home-assistant-frontend==20241127.4"
)
HA_NOISE = ("homeassistant.components.mqtt", "homeassistant.components.sensor", "template")


def _ha_python() -> str:
    """The Python Home Assistant runs under, or skip (this suite runs on 3.11)."""
    exe = os.environ.get(HA_PYTHON_ENV)
    if not exe or not Path(exe).exists():
        pytest.skip(HA_SETUP)
    out = subprocess.run(
        [exe, "-c", "import homeassistant.const as c; print(c.MAJOR_VERSION, c.MINOR_VERSION)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        pytest.skip(f"{exe} cannot import homeassistant: {HA_SETUP}")
    major, minor = map(int, out.stdout.split())
    if (major, minor) < (2024, 11):
        pytest.skip(f"Home Assistant {major}.{minor} has no device discovery: {HA_SETUP}")
    return exe


def _ha_config(cfg: Path, broker_port: int) -> None:
    """A minimal Home Assistant: its MQTT integration on the loopback broker, its HTTP
    server on loopback, and mqtt_statestream mirroring every state to ``hastate/``."""
    (cfg / ".storage").mkdir(parents=True)
    (cfg / "configuration.yaml").write_text(
        "homeassistant:\n  name: footfall test\n  time_zone: Europe/Berlin\n"
        "  unit_system: metric\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 0\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {free_port()}\n"
        "mqtt_statestream:\n  base_topic: hastate\n  publish_attributes: true\n"
        "logger:\n  default: warning\n"
    )
    now = "2026-12-07T00:00:00+00:00"
    entry = {
        "created_at": now,
        "modified_at": now,
        "data": {"broker": "127.0.0.1", "port": broker_port},
        "discovery_keys": {},
        "disabled_by": None,
        "domain": "mqtt",
        "entry_id": "footfalltestmqtt",
        "minor_version": 1,
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "title": "loopback",
        "unique_id": None,
        "version": 1,
    }
    (cfg / ".storage" / "core.config_entries").write_text(
        json.dumps(
            {
                "version": 1,
                "minor_version": 4,
                "key": "core.config_entries",
                "data": {"entries": [entry]},
            }
        )
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_real_home_assistant_shows_the_store(tmp_path: Path) -> None:
    ha_python = _ha_python()
    broker = start_mosquitto(tmp_path / "broker")
    got: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        with lock:
            got[m.topic] = m.payload

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-ha")
    client.on_message = on_message
    client.connect("127.0.0.1", broker.address.port)
    client.loop_start()
    client.subscribe([("hastate/#", 1), (ha_discovery.HA_STATUS_TOPIC, 1)])

    def publish(topic: str, body: bytes) -> None:
        client.publish(topic, body, qos=1, retain=True).wait_for_publish(10)

    def state(entity: str, attribute: str = "state") -> str | None:
        with lock:
            raw = got.get(f"hastate/sensor/example_store_{entity}/{attribute}")
        return None if raw is None else raw.decode()

    def states_are(want: dict[str, str], what: str) -> None:
        wait_for(lambda: all(state(e) == v for e, v in want.items()), 30, what)

    seen, hidden = [_today(e) for e in _examples("footfall")]
    zone_seen, zone_hidden = _examples("zone_stats")
    (occ,) = _examples("occupancy")
    online, will = _examples("aggregator_status")
    status = topics.aggregator_status_topic(STORE)
    today = topics.build("footfall", STORE, "today")
    publish(status, payloads.encode(online))
    publish(topics.build("occupancy", STORE), payloads.encode(occ))
    publish(today, payloads.encode(seen))
    publish(topics.build("zone_stats", STORE, "checkout"), payloads.encode(zone_seen))
    publish(topics.build("zone_stats", STORE, "fitting"), payloads.encode(zone_hidden))
    both = _payload()
    publish(ha_discovery.discovery_topic(STORE), encode(both))

    cfg = tmp_path / "ha"
    _ha_config(cfg, broker.address.port)
    log = tmp_path / "ha.log"
    with log.open("wb") as out:
        ha = subprocess.Popen(
            [ha_python, "-m", "homeassistant", "-c", str(cfg), "--skip-pip"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Home Assistant's birth comes once it has read the retained discovery
        wait_for(lambda: ha_discovery.is_ha_online(got.get("homeassistant/status", b"")), 90)
        states_are(
            {
                "occupancy": "23",
                "visitors_today": "112",
                "passers_by_today": "389",
                "capture_rate_today": "22.4",
                "mean_dwell_today": "731.4",
                "checkout_occupancy": "6",
                "fitting_rooms_occupancy": "unknown",  # suppressed under k
            },
            "the example figures in Home Assistant",
        )
        assert state("visitors_today", "state_class") == '"total"'
        assert state("visitors_today", "last_reset") == '"2026-11-20T00:00:00+01:00"'
        assert state("occupancy", "unit_of_measurement") == '"people"'
        assert state("mean_dwell_today", "device_class") == '"duration"'

        publish(today, payloads.encode(hidden))
        states_are(
            {e: "unknown" for e in ("visitors_today", "capture_rate_today", "mean_dwell_today")},
            "a suppressed day shown as unknown",
        )
        publish(status, payloads.encode(will))
        states_are({"occupancy": "unavailable", "checkout_occupancy": "unavailable"}, "will")
        publish(status, payloads.encode(online))
        states_are({"occupancy": "23", "checkout_occupancy": "6"}, "available again")

        # the fitting rooms leave the floor plan: their entity is removed
        one = discovery_payload(STORE, "Example Store", ZONES[:1], "0.1.0", both)
        publish(ha_discovery.discovery_topic(STORE), encode(one))
        uid = both["cmps"]["zone_fitting_occupancy"]["uniq_id"]
        registry = cfg / ".storage" / "core.entity_registry"

        def removed() -> bool:
            if not registry.exists():
                return False
            data = json.loads(registry.read_text())["data"]
            live = {e["unique_id"] for e in data["entities"]}
            return uid not in live and uid in {e["unique_id"] for e in data["deleted_entities"]}

        wait_for(removed, 30, "the fitting rooms' entity removed")
        assert state("checkout_occupancy") == "6"
    finally:
        ha.terminate()
        try:
            ha.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ha.kill()
            ha.wait(timeout=10)
        client.loop_stop()
        client.disconnect()
        broker.stop()
    noise = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if (" WARNING " in line or " ERROR " in line) and any(n in line for n in HA_NOISE)
    ]
    assert not noise, "\n".join(noise)
