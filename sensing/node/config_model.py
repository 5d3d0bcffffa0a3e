"""The schema of ``node.toml``: what each key means, its unit, default and range.

:class:`NodeFile` is the whole file; :func:`sensing.node.config.load` validates
a file against it and builds the daemon's :class:`~sensing.node.config.NodeConfig`.
Unknown keys are errors that name the key's path and the nearest valid name
(``batch.max_itmes: unknown key (did you mean 'max_items'?)``). Paths stay
strings here; the loader resolves them against the file's directory.
``docs/schemas/node.schema.json`` is this model's JSON Schema (``#:schema`` in
``deploy/node.example.toml`` points editors at it).

This module is on the node: it imports neither numpy nor anything of ``heatmap``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from sensing.capture.channel_plan import CHANNELS_5, CHANNELS_24, MIN_DWELL_MS
from sensing.runtime.config_fields import (
    Bool,
    BrokerTls,
    IntOrText,
    PathText,
    Text,
    TomlTable,
    TopicId,
    Within,
    one_of,
)
from sensing.runtime.typed_config import UNIT

DEFAULT_STATE_DIR = "/var/lib/footfall"
DEFAULT_CHANNELS = (1, 6, 11, 36, 40, 44, 48, 149, 153, 157, 161)
LOG_LEVELS = ("debug", "info", "warning", "error")


def _channel(v: object) -> object:
    if type(v) is not int:
        raise ValueError(f"must be a channel number, not {type(v).__name__} {v!r}")
    if v not in CHANNELS_24 and v not in CHANNELS_5:
        raise ValueError(f"{v} is not a 2.4 or 5 GHz Wi-Fi channel")
    return v


Channel = Annotated[
    int,
    Field(json_schema_extra={"enum": sorted(CHANNELS_24 | CHANNELS_5)}),
    BeforeValidator(_channel),
]
"""a 2.4 GHz (1–14) or 5 GHz (32–177) Wi-Fi channel number"""
Dwell = Annotated[int, Within(MIN_DWELL_MS, 60_000)]


def has_live_source(
    wifi_interface: str | None,
    ble_adapter: str | None,
    board_ports: Iterable[str | None],
    beams: Sequence[object],
) -> bool:
    """Whether a node reads a live radio, serial port or GPIO (rather than capture files):
    the one rule, for the file's validation and the running config alike."""
    return bool(wifi_interface or ble_adapter or any(board_ports) or beams)


class NodeSection(TomlTable):
    """``[node]``: who this node is."""

    store: TopicId = Field(description="store id, as in the floor plan and the topics")
    id: TopicId = Field(description="this node's id in the floor plan")
    keyfile: PathText = Field(
        description="the store key (mode 0600); it rolls daily, so its directory must be "
        "writable by the service"
    )
    state_dir: PathText = Field(
        DEFAULT_STATE_DIR, description="directory of the node's state (spool.db lives here)"
    )


class BrokerSection(BrokerTls):
    """``[broker]``: the store's MQTT broker (on the aggregator)."""

    host: Text = Field("127.0.0.1", description="broker host: a name in its certificate")
    port: Annotated[int, Within(1, 65535)] = Field(8883, description="broker TCP port")
    keepalive_s: Annotated[int, Within(5, 3600)] = Field(
        30, description="MQTT keepalive, s", json_schema_extra={UNIT: "s"}
    )
    reconnect_max_s: Annotated[float, Within(0.5, 3600)] = Field(
        30.0,
        description="longest wait between reconnection attempts, s (it starts at 0.5 s "
        "and doubles)",
        json_schema_extra={UNIT: "s"},
    )


class BatchSection(TomlTable):
    """``[batch]``: how observations are grouped into published batches."""

    max_items: Annotated[int, Within(1, 20_000)] = Field(
        500, description="observations per batch at most"
    )
    max_age_ms: Annotated[int, Within(10, 3_600_000)] = Field(
        5000,
        description="a batch goes out when its oldest item is this old, ms",
        json_schema_extra={UNIT: "ms"},
    )


class SpoolSection(TomlTable):
    """``[spool]``: the offline spool (batches the store database does not have yet)."""

    max_mb: Annotated[float, Within(0.001, 1_000_000)] = Field(
        200.0,
        description="size bound of the spool, MiB; the oldest batches go first",
        json_schema_extra={UNIT: "MiB"},
    )
    max_batches: Annotated[int, Within(1, 10_000_000)] = Field(
        50_000, description="batches in the spool at most"
    )
    keep_until_stored: Bool = Field(
        True,
        description="keep a batch after the broker's PUBACK until the aggregator says the "
        "store database has it (its acknowledgement); false for an aggregator that "
        "publishes none (a broker crash then loses what it had not saved)",
    )
    ack_timeout_s: Annotated[float, Within(1, 86_400)] = Field(
        30.0,
        description="a batch the aggregator has not acknowledged is sent again this long "
        "after it was last sent, s (the wait doubles at each resend)",
        json_schema_extra={UNIT: "s"},
    )


class ClockSection(TomlTable):
    """``[clock]``: the node's clock must be synchronized for its timestamps to count."""

    require_sync: Bool = Field(
        True, description="refuse (drop and count) observations while the clock is not synced"
    )
    check_every_s: Annotated[float, Within(0.1, 3600)] = Field(
        10.0, description="clock sync check period, s", json_schema_extra={UNIT: "s"}
    )


class StatusSection(TomlTable):
    """``[status]``: the node's retained status message."""

    interval_s: Annotated[float, Within(0.1, 3600)] = Field(
        30.0, description="status published every, s", json_schema_extra={UNIT: "s"}
    )


class FiltersSection(TomlTable):
    """``[filters]``: what the node drops besides undecodable frames (all of it counted)."""

    min_rssi_dbm: Annotated[int, Within(-127, 20)] = Field(
        -95,
        description="frames weaker than this are dropped (counted as weak), dBm",
        json_schema_extra={UNIT: "dBm"},
    )
    infrastructure: list[Text] = Field(
        default_factory=list,
        description='the store\'s own equipment: "aa:bb:cc:dd:ee:ff", a vendor prefix '
        '"aa:bb:cc:*" or "tag:<32 hex>"',
    )
    learn_infrastructure: Bool = Field(
        True, description="learn always-on (non-randomized) addresses as equipment"
    )
    learn_hours: Annotated[int, Within(1, 24 * 30)] = Field(
        48, description="window of the learner, h", json_schema_extra={UNIT: "h"}
    )
    learn_fraction: Annotated[float, Within(0.0, 1.0)] = Field(
        0.75,
        description="fraction of the window's open hours (hours any fixed address was heard) "
        "an address must be heard in to be learned",
    )


class CaptureSection(TomlTable):
    """``[capture]``: what the node does with the frames it keeps, before pseudonymizing."""

    chain_addresses: Bool = Field(
        True,
        description="chain the rotating addresses of one device within the key epoch "
        "(sequence numbers, IE contents, timing, RSSI) and publish each frame's own "
        "pseudonym with its chain head's pseudonym beside it, for the aggregator's "
        "device count (docs/rf_count.md); false: no chain ids on the wire",
    )


class WifiSection(TomlTable):
    """``[wifi]``: the Wi-Fi monitor radio, or a capture file instead."""

    interface: Text | None = Field(
        None, description="monitor-mode interface (live capture), e.g. wlan1"
    )
    pcap: PathText | None = Field(None, description="a capture file instead of a radio")
    channels: list[Channel] = Field(
        list(DEFAULT_CHANNELS),
        json_schema_extra={"minItems": 1},
        description="channels hopped in this order, the cycle repeats",
    )
    dwell_ms: Dwell = Field(
        250, description="time on each channel, ms", json_schema_extra={UNIT: "ms"}
    )
    dwell_by_channel: dict[str, Dwell] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"pattern": "^[0-9]+$"}, UNIT: "ms"},
        description="time on the channels named here instead of dwell_ms, ms "
        "(e.g. { 1 = 500, 6 = 500 })",
    )

    @field_validator("channels")
    @classmethod
    def _some_channel(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one channel")
        return v

    @field_validator("dwell_by_channel")
    @classmethod
    def _dwell_channels(cls, v: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        channels = info.data.get("channels")
        for k in v:
            if not (k.isascii() and k.isdigit()):
                raise ValueError(f"{k!r}: keys are channel numbers")
            if channels is not None and int(k) not in channels:
                raise ValueError(f"channel {k} is not in wifi.channels")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> WifiSection:
        if self.interface and self.pcap:
            raise ValueError("give interface or pcap, not both")
        return self


class BleSection(TomlTable):
    """``[ble]``: the Bluetooth LE adapter, or a capture file instead."""

    adapter: Text | None = Field(None, description="HCI adapter (live capture), e.g. hci0")
    pcap: PathText | None = Field(
        None, description="a capture file (pcap, pcapng, btsnoop) instead of an adapter"
    )

    @model_validator(mode="after")
    def _one_source(self) -> BleSection:
        if self.adapter and self.pcap:
            raise ValueError("give adapter or pcap, not both")
        return self


class BoardSection(TomlTable):
    """``[[boards]]``: one serial link to sensor boards (or a recorded byte stream of one)."""

    port: Text | None = Field(None, description="serial device, e.g. /dev/ttyUSB0")
    replay: PathText | None = Field(
        None, description="a recorded UART byte stream (.uart with its .uart.json) instead"
    )
    door: TopicId | None = Field(None, description="door id the link's crossings are published for")
    floor: TopicId | None = Field(
        None, description="tile array id the link's tile changes are published for"
    )
    baudrate: Annotated[int, Within(300, 4_000_000)] = Field(
        115200, description="serial speed, bit/s", json_schema_extra={UNIT: "bit/s"}
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> BoardSection:
        if (self.port is None) == (self.replay is None):
            raise ValueError("give port or replay (one of them)")
        if (self.door is None) == (self.floor is None):
            raise ValueError("give door or floor (one of them)")
        return self

    @property
    def stream(self) -> str:
        """``door/{id}`` or ``floor/{id}``: the stream this link feeds."""
        return f"door/{self.door}" if self.door else f"floor/{self.floor}"


class BeamSection(TomlTable):
    """``[[beams]]``: a beam pair wired straight to the node's GPIO."""

    door: TopicId = Field(description="door id the pair's crossings are published for")
    pin_a: IntOrText = Field(description='GPIO of the street-side beam: 17 or "GPIO17"')
    pin_b: IntOrText = Field(description="GPIO of the inside beam")
    pull_up: Bool = Field(
        True,
        description="true: internal pull-up, a blocked beam reads low; false: pull-down, "
        "a blocked beam reads high",
    )
    pin_factory: Annotated[
        Literal["default", "mock"], BeforeValidator(one_of("default", "mock"))
    ] = Field("default", description="gpiozero pin factory: default (lgpio on a Pi) or mock")


class ReplaySection(TomlTable):
    """``[replay]``: how capture files are played (only with capture files)."""

    realtime: Bool = Field(
        False, description="replay at the recorded pace (true) or as fast as possible"
    )
    speed: Annotated[float, Within(0.001, 1e6)] = Field(
        1.0, description="with realtime: pace factor (2.0 = twice as fast as recorded)"
    )
    exit_when_done: Bool = Field(
        True, description="publish done, wait for every PUBACK and exit when the files end"
    )
    drain_timeout_s: Annotated[float, Within(0, 1e6)] = Field(
        120.0,
        description="how long a finished replay waits for the broker to acknowledge everything, s",
        json_schema_extra={UNIT: "s"},
    )


class NodeFile(TomlTable):
    """``node.toml``: a ceiling node's configuration (``footfall node --config``)."""

    doc_title: ClassVar[str] = "node.toml"
    """the schema's title (``footfall schema node``)"""

    node: NodeSection = Field(description="who this node is")
    broker: BrokerSection = Field(default_factory=BrokerSection, description="the MQTT broker")
    batch: BatchSection = Field(default_factory=BatchSection, description="batching")
    spool: SpoolSection = Field(default_factory=SpoolSection, description="the offline spool")
    clock: ClockSection = Field(default_factory=ClockSection, description="clock sync")
    status: StatusSection = Field(default_factory=StatusSection, description="status message")
    filters: FiltersSection = Field(
        default_factory=FiltersSection, description="what the node drops"
    )
    capture: CaptureSection = Field(
        default_factory=CaptureSection, description="address chaining before pseudonyms"
    )
    wifi: WifiSection = Field(default_factory=WifiSection, description="Wi-Fi capture")
    ble: BleSection = Field(default_factory=BleSection, description="Bluetooth LE capture")
    boards: list[BoardSection] = Field(
        default_factory=list, description="serial links to door-beam and floor-tile boards"
    )
    beams: list[BeamSection] = Field(
        default_factory=list, description="beam pairs on the node's GPIO"
    )
    replay: ReplaySection = Field(
        default_factory=ReplaySection, description="playing capture files"
    )
    shutdown_grace_s: Annotated[float, Within(0, 600)] = Field(
        5.0,
        description="on SIGTERM, how long to try to deliver what is spooled, s",
        json_schema_extra={UNIT: "s"},
    )
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], BeforeValidator(one_of(*LOG_LEVELS))
    ] = Field("info", description="log level: debug, info, warning or error")

    @property
    def live(self) -> bool:
        """True if any source is a live radio, serial port or GPIO."""
        return has_live_source(
            self.wifi.interface, self.ble.adapter, (b.port for b in self.boards), self.beams
        )

    @model_validator(mode="after")
    def _sources(self) -> NodeFile:
        streams = [b.stream for b in self.boards] + [f"door/{b.door}" for b in self.beams]
        dup = sorted({s for s in streams if streams.count(s) > 1})
        if dup:
            raise ValueError(f"{dup[0]} is fed by more than one board or beam pair")
        files = bool(self.wifi.pcap or self.ble.pcap or any(b.replay for b in self.boards))
        if not (self.live or files):
            raise ValueError("no source: configure [wifi], [ble], [[boards]] or [[beams]]")
        if self.live and files:
            raise ValueError("mixes live sources with capture files; use one or the other")
        return self
