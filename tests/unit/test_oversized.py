"""The reducer of oversized conversations (`kafka.oversized_records: truncate`): what is kept, what goes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson

from connector.kafka.oversized import (
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_HASH,
    HEADER_TRUNCATED,
    HEADER_TRUNCATED_FIELDS,
    reduce_record,
    truncated_message,
    wire_size,
)
from connector.kafka.records import HEADER_CONTENT_HASH, build_message, encode_record, value_hash
from connector.windows import Window


def segment(i: int) -> dict[str, Any]:
    return {
        "segmentStart": f"2026-05-01T10:{i % 60:02d}:00.000Z",
        "segmentEnd": f"2026-05-01T10:{i % 60:02d}:30.000Z",
        "segmentType": "interact",
        "queueId": "q-1",
    }


def conversation(segments: int = 3, metrics: int = 2) -> dict[str, Any]:
    """A conversation whose agent session has `segments` segments (the big part when large)."""
    return {
        "conversationId": "c-1",
        "conversationStart": "2026-05-01T10:00:00.000Z",
        "conversationEnd": "2026-05-01T11:00:00.000Z",
        "originatingDirection": "inbound",
        "divisionIds": ["d-1"],
        "participants": [
            {
                "participantId": "p-customer",
                "purpose": "customer",
                "externalContactId": "ext-9",
                "sessions": [{"sessionId": "s-1", "mediaType": "email", "segments": [segment(0)]}],
            },
            {
                "participantId": "p-agent",
                "participantName": "Ann",
                "purpose": "agent",
                "userId": "u-1",
                "sessions": [
                    {
                        "sessionId": "s-2",
                        "mediaType": "email",
                        "metrics": [{"name": "tTalk", "value": i} for i in range(metrics)],
                        "segments": [segment(i) for i in range(segments)],
                    }
                ],
            },
        ],
    }


def test_a_record_that_fits_is_left_as_it_is() -> None:
    record = conversation()
    reduction = reduce_record(record, 10_000)
    assert reduction is not None
    assert reduction.value == encode_record(record)
    assert reduction.dropped == ()


def test_the_largest_part_goes_first_and_only_as_much_as_needed() -> None:
    record = conversation(segments=400)
    full = len(encode_record(record))
    reduction = reduce_record(record, 5_000)
    assert full > 20_000
    assert reduction is not None
    assert len(reduction.value) <= 5_000
    assert reduction.dropped == ("participants[].sessions[].segments",)
    reduced = orjson.loads(reduction.value)
    agent_session = reduced["participants"][1]["sessions"][0]
    assert "segments" not in agent_session
    assert len(agent_session["metrics"]) == 2  # smaller parts survive when dropping the big one is enough
    assert reduced["participants"][0]["sessions"][0]["segments"] == [segment(0)]
    assert record["participants"][1]["sessions"][0]["segments"][0] == segment(0)  # the input is untouched


def test_conversation_fields_and_participant_identities_survive_the_deepest_cut() -> None:
    record = conversation(segments=50, metrics=50)
    for participant in record["participants"]:
        participant.update({"flaggedReason": "general", "screenRecording": False, "wrapUpNote": "x" * 200})
    record["participants"] = [copy.deepcopy(p) for p in record["participants"] * 20]  # too many to fit
    reduction = reduce_record(record, 4_000)
    assert reduction is not None
    reduced = orjson.loads(reduction.value)
    assert len(reduction.value) <= 4_000
    assert len(reduced["participants"]) == 40
    assert {k: reduced[k] for k in ("conversationId", "conversationStart", "conversationEnd")} == {
        k: record[k] for k in ("conversationId", "conversationStart", "conversationEnd")
    }
    assert reduced["originatingDirection"] == "inbound"
    assert reduced["participants"][1] == {
        "participantId": "p-agent",
        "participantName": "Ann",
        "purpose": "agent",
        "userId": "u-1",
    }
    assert {"participants[].sessions", "participants[].*"} <= set(reduction.dropped)


def test_none_when_even_the_identities_do_not_fit() -> None:
    assert reduce_record(conversation(segments=100), 100) is None


def test_truncated_message_is_flagged_verifiable_and_fits_its_limit() -> None:
    record = conversation(segments=600)
    window = Window(datetime(2026, 5, 1, 10, tzinfo=UTC), datetime(2026, 5, 1, 11, tzinfo=UTC))
    original = build_message(record, window=window, pass_label=0, observed_at=window.end)
    limit = 20_480
    assert wire_size(original) > limit

    cut = truncated_message(original, limit)

    assert cut is not None
    assert wire_size(cut) <= limit
    assert cut.key == original.key
    assert cut.headers[HEADER_TRUNCATED] == "true"
    assert cut.headers[HEADER_ORIGINAL_BYTES] == str(len(original.value))
    assert cut.headers[HEADER_ORIGINAL_HASH] == original.content_hash
    assert cut.headers[HEADER_CONTENT_HASH] == value_hash(cut.value)  # consumers can still verify the value
    assert cut.headers[HEADER_TRUNCATED_FIELDS] == "participants[].sessions[].segments"
    assert cut.headers["genesys.window"] == original.headers["genesys.window"]


def test_cutting_again_keeps_the_original_size_and_hash() -> None:
    window = Window(datetime(2026, 5, 1, 10, tzinfo=UTC), datetime(2026, 5, 1, 11, tzinfo=UTC))
    record = conversation(segments=600, metrics=300)
    original = build_message(record, window=window, pass_label=0, observed_at=window.end)
    first = truncated_message(original, 20_000)
    assert first is not None
    second = truncated_message(first, 4_000)
    assert second is not None
    assert second.headers[HEADER_ORIGINAL_BYTES] == str(len(original.value))
    assert second.headers[HEADER_ORIGINAL_HASH] == original.content_hash
    fields = second.headers[HEADER_TRUNCATED_FIELDS].split(",")
    assert "participants[].sessions[].segments" in fields
    assert "participants[].sessions[].metrics" in fields
