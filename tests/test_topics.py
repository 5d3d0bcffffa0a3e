import pytest

from firmware_bridge.errors import TopicError
from sensing.wire import topics


@pytest.mark.parametrize(
    ("kind", "entity", "topic"),
    [
        ("obs", "n1", "footfall/v1/s1/node/n1/obs"),
        ("node_status", "n1", "footfall/v1/s1/node/n1/status"),
        ("door_events", "main", "footfall/v1/s1/door/main/events"),
        ("floor_events", "promo_tiles", "footfall/v1/s1/floor/promo_tiles/events"),
        ("occupancy", None, "footfall/v1/s1/occupancy"),
        ("zone_stats", "promo", "footfall/v1/s1/zone/promo/stats"),
        ("footfall", "2026-11-20T10", "footfall/v1/s1/footfall/2026-11-20T10"),
    ],
)
def test_build_and_parse_round_trip(kind: str, entity: str | None, topic: str) -> None:
    assert topics.build(kind, "s1", entity) == topic
    assert topics.parse(topic) == topics.Topic(kind, "s1", entity)


@pytest.mark.parametrize(
    "bad",
    [
        "footfall/v2/s1/node/n1/obs",
        "footfall/v1/s1/node/n1",
        "footfall/v1/s1/node/n+/obs",
        "footfall/v1/s1/node/n1/obs/x",
        "other/v1/s1/occupancy",
        "",
    ],
)
def test_parse_rejects_foreign_topics(bad: str) -> None:
    with pytest.raises(TopicError):
        topics.parse(bad)


@pytest.mark.parametrize("bad_id", ["a/b", "a+b", "#", "", "x" * 65, "é", "n1\n"])
def test_ids_limited_to_safe_characters(bad_id: str) -> None:
    with pytest.raises(TopicError):
        topics.build("obs", "s1", bad_id)
    with pytest.raises(ValueError):  # TopicError is also a ValueError
        topics.build("occupancy", bad_id)
