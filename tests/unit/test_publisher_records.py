"""The Kafka message format: value bytes, content hash, headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from connector.clock import format_instant
from connector.kafka.records import build_message, content_hash, encode_record, value_hash


@dataclass(frozen=True)
class Win:
    start: datetime
    end: datetime


WINDOW = Win(datetime(2026, 5, 1, 10, 0, tzinfo=UTC), datetime(2026, 5, 1, 10, 5, tzinfo=UTC))
OBSERVED = datetime(2026, 5, 1, 10, 7, 30, 123456, tzinfo=UTC)

RECORD = {
    "conversationId": "c0ffee00-0000-4000-8000-000000000001",
    "conversationStart": "2026-05-01T10:01:02.345Z",
    "conversationEnd": "2026-05-01T10:04:00.000Z",
    "originatingDirection": "inbound",
    "participants": [{"purpose": "customer", "sessions": [{"mediaType": "voice", "metrics": []}]}],
    "divisionIds": ["d1"],
    "unknownFutureField": {"nested": [1, 2.5, None, True]},
}


def test_value_keeps_every_field_and_value() -> None:
    assert orjson.loads(encode_record(RECORD)) == RECORD


def test_value_is_canonical_so_consumers_can_check_the_hash() -> None:
    msg = build_message(RECORD, window=WINDOW, pass_label=0, observed_at=OBSERVED)
    assert msg.value == orjson.dumps(RECORD, option=orjson.OPT_SORT_KEYS)
    assert value_hash(msg.value) == msg.headers["genesys.content_hash"] == content_hash(RECORD)


def test_precomputed_value_and_hash_are_used_as_given() -> None:
    value = encode_record(RECORD)
    msg = build_message(
        RECORD, window=WINDOW, pass_label=0, observed_at=OBSERVED, value=value, record_hash="cd" * 16
    )
    assert msg.value is value
    assert msg.headers["genesys.content_hash"] == "cd" * 16


def test_content_hash_ignores_key_order_at_every_level() -> None:
    reordered = {
        "unknownFutureField": {"nested": [1, 2.5, None, True]},
        "participants": [{"sessions": [{"metrics": [], "mediaType": "voice"}], "purpose": "customer"}],
        **{k: v for k, v in RECORD.items() if k not in ("participants", "unknownFutureField")},
    }
    assert list(reordered) != list(RECORD)
    assert content_hash(reordered) == content_hash(RECORD)


def test_content_hash_is_blake2b_128_of_canonical_json() -> None:
    import hashlib

    canonical = b'{"a":1,"b":{"c":[2,{"d":3,"e":4}]}}'
    expected = hashlib.blake2b(canonical, digest_size=16).hexdigest()
    assert content_hash({"b": {"c": [2, {"e": 4, "d": 3}]}, "a": 1}) == expected
    assert len(expected) == 32


def test_content_hash_changes_when_any_value_changes() -> None:
    changed = {**RECORD, "divisionIds": ["d2"]}
    assert content_hash(changed) != content_hash(RECORD)


def test_build_message_sets_key_value_and_headers() -> None:
    msg = build_message(RECORD, window=WINDOW, pass_label=0, observed_at=OBSERVED)
    assert msg.key == RECORD["conversationId"]
    assert orjson.loads(msg.value) == RECORD
    assert dict(msg.headers) == {
        "genesys.content_hash": content_hash(RECORD),
        "genesys.ended": "true",
        "genesys.window": "2026-05-01T10:00:00.000Z/2026-05-01T10:05:00.000Z",
        "genesys.pass": "0",
        "genesys.observed_at": "2026-05-01T10:07:30.123Z",
    }
    assert msg.content_hash == content_hash(RECORD)


def test_open_conversation_and_rescan_pass() -> None:
    ongoing = {k: v for k, v in RECORD.items() if k != "conversationEnd"}
    rescan = build_message(ongoing, window=WINDOW, pass_label=2, observed_at=OBSERVED)
    assert (rescan.headers["genesys.ended"], rescan.headers["genesys.pass"]) == ("false", "2")
    follow_up = build_message(ongoing, window=WINDOW, pass_label="open", observed_at=OBSERVED)
    assert follow_up.headers["genesys.pass"] == "open"


def test_precomputed_hash_is_used_as_given() -> None:
    msg = build_message(RECORD, window=WINDOW, pass_label=1, observed_at=OBSERVED, record_hash="ab" * 16)
    assert msg.headers["genesys.content_hash"] == "ab" * 16


def test_instants_are_rendered_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_instant(datetime(2026, 5, 1, 12, 0, tzinfo=plus_two)) == "2026-05-01T10:00:00.000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_instant(datetime(2026, 5, 1, 12, 0))


@pytest.mark.parametrize("bad", [-1, "2", True, "OPEN"])
def test_bad_pass_labels_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="pass_label"):
        build_message(RECORD, window=WINDOW, pass_label=bad, observed_at=OBSERVED)  # type: ignore[arg-type]


def test_record_without_conversation_id_cannot_be_keyed() -> None:
    with pytest.raises(ValueError, match="conversationId"):
        build_message({"x": 1}, window=WINDOW, pass_label=0, observed_at=OBSERVED)
