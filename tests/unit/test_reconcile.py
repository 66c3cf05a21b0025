"""reconcile(): missing, identical duplicates, stale latest, outside, versions per conversation."""

from __future__ import annotations

from typing import Any

from connector.kafka.records import HEADER_CONTENT_HASH, content_hash, encode_record
from connector.testbed.reconcile import TopicMessage, reconcile


def version(cid: str, n: int) -> dict[str, Any]:
    return {"conversationId": cid, "conversationStart": "2026-05-01T10:00:00.000Z", "revision": n}


class Topic:
    """Builds messages the way the connector publishes them, with increasing offsets per partition."""

    def __init__(self) -> None:
        self.messages: list[TopicMessage] = []

    def publish(self, rec: dict[str, Any], *, partition: int = 0) -> Topic:
        offset = sum(1 for m in self.messages if m.partition == partition)
        headers = {HEADER_CONTENT_HASH: content_hash(rec)}
        self.messages.append(
            TopicMessage(rec["conversationId"], encode_record(rec), headers, partition, offset)
        )
        return self


def truth(*records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["conversationId"]: r for r in records}


def test_everything_delivered_once_is_clean() -> None:
    t = truth(version("a", 1), version("b", 1))
    topic = Topic().publish(version("a", 1)).publish(version("b", 1), partition=1)
    result = reconcile(t, topic.messages)
    assert result.clean
    assert (result.truth, result.messages, result.keys) == (2, 2, 2)
    assert result.missing == []
    assert result.identical_duplicates == 0
    assert result.stale_latest == []
    assert result.outside == 0
    assert result.versions_per_key == 1.0


def test_missing_lists_conversations_with_no_message_sorted() -> None:
    t = truth(version("c", 1), version("a", 1), version("b", 1))
    result = reconcile(t, Topic().publish(version("b", 1)).messages)
    assert result.missing == ["a", "c"]
    assert not result.clean
    assert result.summary()["missing"] == 2


def test_identical_duplicates_count_repeats_of_the_same_snapshot() -> None:
    t = truth(version("a", 2), version("b", 1))
    topic = (
        Topic()
        .publish(version("a", 1))
        .publish(version("a", 1))  # the same snapshot again: a duplicate
        .publish(version("a", 2))  # a new version is not a duplicate
        .publish(version("b", 1), partition=1)
        .publish(version("b", 1), partition=1)
        .publish(version("b", 1), partition=1)
    )
    result = reconcile(t, topic.messages)
    assert result.identical_duplicates == 3
    assert not result.clean
    assert result.stale_latest == []


def test_republishing_an_earlier_version_after_a_newer_one_is_an_identical_duplicate() -> None:
    t = truth(version("a", 1))
    topic = Topic().publish(version("a", 1)).publish(version("a", 2)).publish(version("a", 1))
    result = reconcile(t, topic.messages)
    assert result.identical_duplicates == 1
    assert result.stale_latest == []


def test_stale_latest_compares_the_last_message_per_key_with_the_truth() -> None:
    t = truth(version("a", 2), version("b", 2), version("c", 1))
    topic = (
        Topic()
        .publish(version("a", 1))
        .publish(version("a", 2))  # latest matches
        .publish(version("b", 2))
        .publish(version("b", 1))  # an older version published last: stale
        .publish(version("c", 0), partition=1)  # never updated: stale
    )
    result = reconcile(t, topic.messages)
    assert result.stale_latest == ["b", "c"]
    assert result.clean, "stale versions are reported separately from missing and duplicates"
    assert result.summary()["latest_differs_from_simulator"] == 2


def test_message_without_content_hash_header_counts_as_stale() -> None:
    rec = version("a", 1)
    message = TopicMessage("a", encode_record(rec), {}, 0, 0)
    assert reconcile(truth(rec), [message]).stale_latest == ["a"]


def test_outside_counts_conversations_the_truth_does_not_have() -> None:
    t = truth(version("a", 1))
    topic = (
        Topic()
        .publish(version("a", 1))
        .publish(version("z", 1), partition=1)
        .publish(version("z", 2), partition=1)
        .publish(version("y", 1), partition=2)
    )
    result = reconcile(t, topic.messages)
    assert result.outside == 2
    assert result.missing == []
    assert result.stale_latest == [], "conversations outside the range are not compared"
    assert result.clean


def test_versions_per_key_is_messages_over_distinct_conversations() -> None:
    t = truth(version("a", 3), version("b", 1))
    topic = (
        Topic()
        .publish(version("a", 1))
        .publish(version("a", 2))
        .publish(version("a", 3))
        .publish(version("b", 1), partition=1)
    )
    result = reconcile(t, topic.messages)
    assert result.versions_per_key == 2.0
    summary = result.summary()
    assert summary["versions_per_conversation"] == 2.0
    assert summary["messages_in_kafka"] == 4
    assert summary["distinct_conversations_in_kafka"] == 2
    assert summary["conversations_in_simulator"] == 2


def test_empty_topic_misses_everything() -> None:
    t = truth(version("a", 1), version("b", 1))
    result = reconcile(t, [])
    assert result.missing == ["a", "b"]
    assert (result.messages, result.keys, result.versions_per_key) == (0, 0, 0.0)
    assert not result.clean
