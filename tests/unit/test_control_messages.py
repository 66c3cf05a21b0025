"""Control-topic messages: the range-final event and the watermark heartbeat, their keys and round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from connector.kafka.control import (
    HEADER_CONTROL_TYPE,
    RangeFinal,
    Watermark,
    parse_control,
    range_final_message,
    watermark_message,
)
from connector.metrics import SETTLED_BY as METRIC_SETTLED_BY

H9 = datetime(2026, 5, 1, 9, tzinfo=UTC)


def event(**overrides: object) -> RangeFinal:
    values: dict[str, object] = {
        "start": H9,
        "end": H9 + timedelta(hours=1),
        "topic": "genesys.conversations",
        "expected": 120,
        "delivered": 118,
        "settled_by": "job",
        "settled_at": H9 + timedelta(hours=30),
        "connector_version": "1.2.3",
        "data_availability_date": H9 + timedelta(hours=12),
        "found_late": {"rescan": 2, "job": 1},
        "topic_offsets": {1: 40, 0: 17},
    }
    values.update(overrides)
    return RangeFinal(**values)  # type: ignore[arg-type]


def test_range_final_message_shape() -> None:
    message = range_final_message(event())
    assert message.key == b"2026-05-01T09:00:00.000Z"
    assert message.headers == [(HEADER_CONTROL_TYPE, b"range_final")]
    assert message.value == orjson.dumps(
        orjson.loads(message.value), option=orjson.OPT_SORT_KEYS
    )  # canonical
    assert orjson.loads(message.value) == {
        "type": "range_final",
        "schema_version": 1,
        "range": {"start": "2026-05-01T09:00:00.000Z", "end": "2026-05-01T10:00:00.000Z"},
        "topic": "genesys.conversations",
        "expected": 120,
        "delivered": 118,
        "missing": 2,
        "complete": False,
        "settled_by": "job",
        "data_availability_date": "2026-05-01T21:00:00.000Z",
        "found_late": {"rescan": 2, "job": 1},
        "topic_offsets": {"0": 17, "1": 40},
        "settled_at": "2026-05-02T15:00:00.000Z",
        "connector_version": "1.2.3",
    }


def test_round_trip() -> None:
    original = event(delivered=120, topic_offsets=None, data_availability_date=None, settled_by="rescan")
    parsed = parse_control(range_final_message(original).value)
    assert parsed == original
    assert isinstance(parsed, RangeFinal)
    assert parsed.complete
    beat = Watermark(H9, H9 - timedelta(days=1), H9 + timedelta(minutes=5), "t", "1.2.3")
    message = watermark_message(beat)
    assert message.key == b"watermark"
    assert message.headers == [(HEADER_CONTROL_TYPE, b"watermark")]
    assert parse_control(message.value) == beat
    empty = Watermark(None, None, H9, "t", "1.2.3")
    assert parse_control(watermark_message(empty).value) == empty


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"settled_by": "guess"}, "settled_by must be one of"),
        ({"end": H9}, "must start before it ends"),
        ({"expected": -1}, "cannot be negative"),
    ],
)
def test_invalid_events_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event(**overrides)


def test_foreign_values_are_refused() -> None:
    for value in (b"not json", b"[]", b'{"schema_version": 2}', b'{"schema_version": 1, "type": "x"}'):
        with pytest.raises(ValueError, match="control message"):
            parse_control(value)


def test_metric_labels_match_the_settlement_kinds() -> None:
    from connector.kafka.control import SETTLED_BY

    assert tuple(METRIC_SETTLED_BY) == SETTLED_BY
