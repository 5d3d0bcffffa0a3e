"""Home Assistant MQTT device-based discovery of one store (Home Assistant 2024.11 and later).

One retained message on ``homeassistant/device/{store}/config`` makes the store one
device in Home Assistant with these sensors, read straight from the v1 topics the
aggregator keeps retained (no extra topics; nothing pseudonymous, only k-anonymous
figures):

========================  =========================================  ==========  =============
component                 state topic, field                         unit        state class
========================  =========================================  ==========  =============
``occupancy``             ``occupancy``, ``occupancy``               people      measurement
``visitors_today``        ``footfall/today``, ``visitors``           people      total [1]_
``passersby_today``       ``footfall/today``, ``passersby``          people      total [1]_
``capture_rate_today``    ``footfall/today``, ``capture_rate`` ×100  %           measurement
``dwell_mean_today``      ``footfall/today``, ``dwell_mean_s``       s           measurement
``zone_{zone}_occupancy`` ``zone/{zone}/stats``, ``occupancy``       people      measurement
========================  =========================================  ==========  =============

Only the mean dwell has a device class (``duration``): Home Assistant has none for a count
of people or a ratio, and with no device class any unit is allowed; a unit (``people``,
``%``) and a state class make the sensor numeric, graphed and kept in long-term statistics.

.. [1] A daily total that restarts at local midnight and may also go down during the day
   (late batches revise it, suppression under k lifts). ``total_increasing`` would take
   any decrease for a new meter cycle and count the day again in the statistics;
   ``total`` with ``last_reset`` (read from the payload's ``period``: the local midnight
   that began the day) starts a cycle exactly at each new day and follows changes either
   way within it.

A figure suppressed under k is JSON ``null``: every value template renders ``None`` for it
(and for a field that is absent), which Home Assistant's MQTT sensor takes as "no value":
the state shows *unknown*, not 0 and not an error (``PAYLOAD_NONE`` in
homeassistant/components/mqtt/sensor.py). Every entity is available while the aggregator's
retained status (``footfall/v1/{store}/aggregator/status``) says ``online``; ``stopping``
and the broker's last will (``{"v":1,"state":"offline"}``) make them unavailable.

Removing a zone's entity takes two steps (device-based discovery removes a component
whose config holds nothing but its platform, ``{"p": "sensor"}``, and does nothing for a
component simply left out):

1. a component in the ``previous`` payload (the one the broker holds retained) that is
   no longer wanted is published as ``{"p": "sensor"}``: every Home Assistant connected
   deletes the entity, and one that reconnects reads it from the retained message;
2. it stays in the payload until Home Assistant announces itself online again
   (``ha_birth=True``): Home Assistant sends its birth message only after it has
   subscribed and read the retained discovery, so by then it has acted on it (a restarted
   Home Assistant never rediscovers the entity, whether or not it is listed).

:func:`encode` gives the same bytes for the same inputs, so the daemon publishes only
on a change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from firmware_bridge.errors import ConfigError
from heatmap.spatial.floorplan import FloorPlan
from sensing.wire import topics

DISCOVERY_TOPIC = "homeassistant/device/{store}/config"
HA_STATUS_TOPIC = "homeassistant/status"
"""Home Assistant's birth (``online``) and last will (``offline``), by default"""
PLATFORM = "sensor"
MANUFACTURER = "footfall"
MODEL = "Store aggregator"
PEOPLE = "people"
QOS = 1

AVAILABLE_TPL = "{{ 'online' if value_json.state == 'online' else 'offline' }}"
"""``online`` only while the aggregator says so: ``stopping``, ``offline`` (its last will)
and anything unreadable are unavailable"""


def discovery_topic(store: str) -> str:
    """``homeassistant/device/{store}/config``; TopicError for an invalid store id."""
    return DISCOVERY_TOPIC.format(store=topics.check_id(store, "store"))


def value_template(field: str, scale: float | None = None, ndigits: int = 1) -> str:
    """A template rendering ``value_json[field]`` (times ``scale``, rounded), or ``None``
    when the field is null or absent: Home Assistant's MQTT sensor shows that as unknown.

    >>> value_template("visitors")
    '{{ value_json.visitors if value_json.visitors is number else None }}'
    """
    v = f"value_json.{field}"
    shown = v if scale is None else f"({v} * {scale:g}) | round({ndigits})"
    return f"{{{{ {shown} if {v} is number else None }}}}"


LAST_RESET_TPL = "{{ value_json.period.split('/')[0] }}"
"""the start of the payload's period (local midnight of ``today``, ISO 8601 with offset)"""


def _sensor(
    uniq_id: str,
    name: str,
    state_topic: str,
    val_tpl: str,
    unit: str,
    state_class: str,
    icon: str | None = None,
    device_class: str | None = None,
    precision: int | None = None,
    last_reset_tpl: str | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "p": PLATFORM,
        "name": name,
        "uniq_id": uniq_id,
        "stat_t": state_topic,
        "val_tpl": val_tpl,
        "unit_of_meas": unit,
        "stat_cla": state_class,
    }
    if device_class is not None:
        c["dev_cla"] = device_class
    if icon is not None:
        c["ic"] = icon
    if precision is not None:
        c["sug_dsp_prc"] = precision
    if last_reset_tpl is not None:
        c["lrst_val_tpl"] = last_reset_tpl
    return c


def _components(store: str, zones: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """component id → config of every sensor wanted now."""
    uid = f"footfall_{store}"
    occ = topics.build("occupancy", store)
    today = topics.build("footfall", store, "today")
    out = {
        "occupancy": _sensor(
            f"{uid}_occupancy",
            "Occupancy",
            occ,
            value_template("occupancy"),
            PEOPLE,
            "measurement",
            "mdi:account-group",
            precision=0,
        ),
        "visitors_today": _sensor(
            f"{uid}_visitors_today",
            "Visitors today",
            today,
            value_template("visitors"),
            PEOPLE,
            "total",
            "mdi:account-arrow-left",
            precision=0,
            last_reset_tpl=LAST_RESET_TPL,
        ),
        "passersby_today": _sensor(
            f"{uid}_passersby_today",
            "Passers-by today",
            today,
            value_template("passersby"),
            PEOPLE,
            "total",
            "mdi:walk",
            precision=0,
            last_reset_tpl=LAST_RESET_TPL,
        ),
        "capture_rate_today": _sensor(
            f"{uid}_capture_rate_today",
            "Capture rate today",
            today,
            value_template("capture_rate", scale=100, ndigits=1),
            "%",
            "measurement",
            "mdi:percent",
            precision=1,
        ),
        "dwell_mean_today": _sensor(
            f"{uid}_dwell_mean_today",
            "Mean dwell today",
            today,
            value_template("dwell_mean_s"),
            "s",
            "measurement",
            "mdi:timer-outline",
            device_class="duration",
            precision=0,
        ),
    }
    for zone, zone_name in zones:
        topics.check_id(zone, "zone")
        key = f"zone_{zone}_occupancy"
        if key in out:
            raise ConfigError(f"zone {zone!r} is listed twice")
        out[key] = _sensor(
            f"{uid}_{key}",
            f"{zone_name or zone} occupancy",
            topics.build("zone_stats", store, zone),
            value_template("occupancy"),
            PEOPLE,
            "measurement",
            "mdi:account-group-outline",
            precision=0,
        )
    return out


def _removals(
    previous: dict[str, Any] | None, wanted: dict[str, Any], ha_birth: bool
) -> dict[str, dict[str, str]]:
    """Removal forms (``{"p": platform}``) for components of ``previous`` not wanted now:
    a live config becomes one; one already removed stays until Home Assistant's birth."""
    cmps = previous.get("cmps") if isinstance(previous, dict) else None
    out: dict[str, dict[str, str]] = {}
    if not isinstance(cmps, dict):
        return out
    for key, c in cmps.items():
        if key in wanted or not isinstance(key, str) or not isinstance(c, dict):
            continue
        platform = c.get("p", c.get("platform"))
        if not isinstance(platform, str):
            continue
        removed_already = set(c) <= {"p", "platform"}
        if not (removed_already and ha_birth):
            out[key] = {"p": platform}
    return out


def discovery_payload(
    store: str,
    store_name: str,
    zones: list[tuple[str, str]],
    version: str,
    previous: dict[str, Any] | None = None,
    *,
    ha_birth: bool = False,
) -> dict[str, Any]:
    """The device discovery payload of ``store`` (publish retained, QoS 1, on
    :func:`discovery_topic`).

    Parameters
    ----------
    store, store_name
        the store id (topic level) and the name Home Assistant shows for the device.
    zones
        ``(zone id, zone name)`` of every zone of the floor plan: one occupancy sensor each.
    version
        footfall's version (device and origin ``sw``).
    previous
        the payload the broker holds retained (None: none): its components that are
        no longer wanted are removed (module docstring); anything unreadable in it is
        ignored.
    ha_birth
        composed in answer to Home Assistant's birth message: components removed in
        ``previous`` are left out from now on.

    Raises
    ------
    TopicError
        ``store`` or a zone id is not a valid topic level.
    ConfigError
        a zone id is listed twice.
    """
    topics.check_id(store, "store")
    wanted = _components(store, zones)
    cmps = {**_removals(previous, wanted, ha_birth), **wanted}
    return {
        "dev": {
            "ids": [f"footfall_{store}"],
            "name": store_name or store,
            "mf": MANUFACTURER,
            "mdl": MODEL,
            "sw": version,
        },
        "o": {"name": "footfall", "sw": version},
        "avty": [
            {
                "t": topics.aggregator_status_topic(store),
                "val_tpl": AVAILABLE_TPL,
                "pl_avail": "online",
                "pl_not_avail": "offline",
            }
        ],
        "qos": QOS,
        "cmps": {k: cmps[k] for k in sorted(cmps)},
    }


def for_plan(
    store: str, plan: FloorPlan, version: str
) -> Callable[[dict[str, Any] | None, bool], dict[str, Any]]:
    """The discovery of ``store`` with ``plan``'s zones, given the payload the broker holds
    and whether Home Assistant has just announced itself (what
    :class:`~heatmap.aggregator.publish.bi_publisher.BiPublisher` calls)."""
    zones = [(z.id, z.name) for z in plan.zones]
    return lambda previous, birth: discovery_payload(
        store, plan.name, zones, version, previous, ha_birth=birth
    )


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON with sorted keys: the same payload gives the same bytes."""
    return json.dumps(
        payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
    ).encode()


def is_ha_online(payload: bytes) -> bool:
    """Whether a message on ``homeassistant/status`` is Home Assistant's birth (``online``):
    it has just (re)connected and read the retained discovery; send it again.

    >>> is_ha_online(b"online"), is_ha_online(b"offline"), is_ha_online(b"\\xff")
    (True, False, False)
    """
    return payload.strip() == b"online"
