"""The schema of ``store.toml``: what each key means, its unit, default and range.

:class:`StoreFile` is the whole file; :func:`heatmap.aggregator.config.load`
validates a file against it, then checks what a schema cannot (the floor plan
and the TLS files exist, the plan is this store's) and builds the
:class:`~heatmap.aggregator.config.AggregatorConfig`. Unknown keys and tables
are errors that name the path and the nearest valid name
(``aggregator.retention_hour: unknown key (did you mean 'retention_hours'?)``).
Paths stay strings here; the loader resolves them against the file's directory.
``docs/schemas/store.schema.json`` is this model's JSON Schema.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from heatmap.aggregator.retention import MAX_RETENTION_HOURS
from sensing.runtime.config_fields import (
    Bool,
    BrokerTls,
    PathText,
    Text,
    TomlTable,
    TopicId,
    Within,
    one_of,
)
from sensing.runtime.typed_config import UNIT


class AggregatorSection(TomlTable):
    """``[aggregator]``: the store, its database and its floor plan."""

    store: TopicId = Field(description="store id, as in the topics and the floor plan")
    db: PathText = Field(description="the store database (SQLite), e.g. /var/lib/footfall/store.db")
    floor_plan: PathText | None = Field(
        None,
        description="the store's floor plan (TOML): its nodes are expected online, its time "
        "zone is the aggregates'",
    )
    k: Annotated[int, Within(2, 1000)] = Field(
        5, description="k-anonymity of every aggregate: fewer visitors are not published"
    )
    status_interval_s: Annotated[float, Within(0.1, 3600)] = Field(
        10.0,
        description="retained aggregator status published every, s",
        json_schema_extra={UNIT: "s"},
    )
    offline_after_s: Annotated[float, Within(1, 86400)] = Field(
        300.0, description="a node silent this long is offline, s", json_schema_extra={UNIT: "s"}
    )
    client_id: Text | None = Field(
        None,
        description="MQTT client id (persistent session); default footfall-aggregator-{store}",
    )


class RetentionSection(TomlTable):
    """``[retention]``: how long visitors' rows live, and who is a visitor."""

    retention_hours: Annotated[float, Within(1, MAX_RETENTION_HOURS)] = Field(
        24.0,
        description=f"visitors' pseudonymous rows are kept this long, h (at most "
        f"{MAX_RETENTION_HOURS:g})",
        json_schema_extra={UNIT: "h"},
    )
    aggregate_after_s: Annotated[float, Within(0, 3600)] = Field(
        300.0,
        description="grace for late batches before an hour is aggregated, s",
        json_schema_extra={UNIT: "s"},
    )
    ble_min_rssi_dbm: Annotated[int, Within(-127, 20)] = Field(
        -80,
        description="a BLE observation at least this strong is strong, dBm",
        json_schema_extra={UNIT: "dBm"},
    )
    wifi_min_rssi_dbm: Annotated[int, Within(-127, 20)] = Field(
        -70,
        description="a Wi-Fi observation at least this strong is strong, dBm",
        json_schema_extra={UNIT: "dBm"},
    )
    visitor_min_span_s: Annotated[float, Within(1, 3600)] = Field(
        60.0,
        description="strong observations spanning at least this long make a visitor, s",
        json_schema_extra={UNIT: "s"},
    )


class LiveSection(TomlTable):
    """``[live]``: the live aggregator (needs ``aggregator.floor_plan``)."""

    enabled: Bool = Field(
        True, description="locate the rows every interval and keep k-anonymous aggregates"
    )
    interval_s: Annotated[float, Within(30, 900)] = Field(
        300.0,
        description="rows are located and folded into aggregates every, s (divides 900)",
        json_schema_extra={UNIT: "s"},
    )
    lag_s: Annotated[float, Within(0, 3600)] = Field(
        30.0,
        description="an interval is processed this long after it ended (late batches), s",
        json_schema_extra={UNIT: "s"},
    )
    cell_m: Annotated[float, Within(0.25, 5)] = Field(
        1.0, description="heatmap grid cell, m", json_schema_extra={UNIT: "m"}
    )
    window_s: Annotated[int, Within(1, 10)] = Field(
        5,
        description="localization window, s (1 s: finer tracks, about 3x the CPU)",
        json_schema_extra={UNIT: "s"},
    )
    occupancy_interval_s: Annotated[float, Within(1, 3600)] = Field(
        10.0,
        description="live occupancy published (retained) every, s",
        json_schema_extra={UNIT: "s"},
    )

    @field_validator("interval_s")
    @classmethod
    def _divides_slot(cls, v: float) -> float:
        if 900 % v or v % 5:
            raise ValueError(f"must divide 900 s and be whole 5 s windows, not {v:g}")
        return v


PRIVACY_MODES = ("standard", "strict")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
URL_PATTERN = r"^https?://[^\s]+$"


def _matching(pattern: str, what: str) -> BeforeValidator:
    """A before-validator: a string matching ``pattern``, else "not {what}: '...'"."""

    def check(v: object) -> object:
        if not isinstance(v, str):
            raise ValueError(f"must be text, not {type(v).__name__}")
        if not re.fullmatch(pattern, v):
            raise ValueError(f"not {what}: {v[:60]!r}")
        return v

    return BeforeValidator(check)


Email = Annotated[str, Field(pattern=EMAIL_PATTERN), _matching(EMAIL_PATTERN, "an e-mail address")]
Url = Annotated[str, Field(pattern=URL_PATTERN), _matching(URL_PATTERN, "an http(s) address")]


class PrivacySection(TomlTable):
    """``[privacy]``: who answers for the data, and the mode; what the notice says
    (``footfall privacy notice``) and the audit checks (``footfall privacy audit``)."""

    controller: Text | None = Field(
        None, description="the data controller: the legal name of the store's operator"
    )
    contact: Text | None = Field(
        None, description="how to reach the controller: a postal address or a desk in the store"
    )
    contact_email: Email | None = Field(
        None, description="the data protection officer's (or privacy contact's) e-mail"
    )
    notice_url: Url | None = Field(
        None,
        description="where the notice's HTML page is published (http or https): the QR code "
        "on the signs points here",
    )
    mode: Annotated[Literal["standard", "strict"], BeforeValidator(one_of(*PRIVACY_MODES))] = Field(
        "standard",
        description="standard: passers-by's pseudonymous rows go once their hour is "
        "aggregated, visitors' after retention_hours; strict: no pseudonymous row older "
        "than 5 minutes on any disk (the live aggregator works from memory, 60 s intervals)",
    )


class BrokerSection(BrokerTls):
    """``[broker]``: the store's MQTT broker."""

    host: Text = Field("127.0.0.1", description="broker host")
    port: Annotated[int, Within(1, 65535)] | None = Field(
        None, description="broker TCP port; default 8883 with TLS (ca given), 1883 without"
    )
    username: Text | None = Field(None, description="MQTT user name")
    password: Text | None = Field(None, description="MQTT password (goes with username)")

    @field_validator("password")
    @classmethod
    def _with_username(cls, password: str | None, info: ValidationInfo) -> str | None:
        if password is not None and info.data.get("username") is None:
            raise ValueError("given without username")
        return password


class StoreFile(TomlTable):
    """``store.toml``: the store aggregator's configuration (``footfall aggregator --config``)."""

    doc_title: ClassVar[str] = "store.toml"
    """the schema's title (``footfall schema store``)"""

    aggregator: AggregatorSection = Field(description="the store, its database and floor plan")
    retention: RetentionSection = Field(
        default_factory=RetentionSection, description="retention and the visitor rule"
    )
    live: LiveSection = Field(
        default_factory=LiveSection, description="the live aggregator and its aggregates"
    )
    broker: BrokerSection = Field(default_factory=BrokerSection, description="the MQTT broker")
    privacy: PrivacySection = Field(
        default_factory=PrivacySection,
        description="the controller, the privacy contact, the notice's address and the mode",
    )
