"""Compare what is in Kafka with what Genesys (the simulator's ground truth) holds.

Used by `genesys-connector demo`, the end-to-end tests and the benchmark, so all three judge delivery the
same way:

- **missing**: conversations of the ground truth with no message in the topic;
- **identical duplicates**: the same snapshot (key and content hash) published more than once — the
  connector promises none in a run without crashes, and a bounded number across crashes;
- **stale latest**: conversations whose latest message differs from the simulator's current version
  (expected to be 0 once the settlement re-scans have run after the last change);
- **outside**: messages for conversations the ground truth of the range does not have (e.g. filtered out).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connector.kafka.records import HEADER_CONTENT_HASH, content_hash


@dataclass(frozen=True)
class TopicMessage:
    """One message read back from the topic."""

    key: str
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int

    @property
    def content_hash(self) -> str:
        return self.headers.get(HEADER_CONTENT_HASH, "")


def read_topic(bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> list[TopicMessage]:
    """Every message of `topic` from the beginning up to the end offsets at call time, in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reconcile-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: _high_watermark(consumer, TopicPartition(topic, p), timeout_s) for p in partitions}
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return _drain(consumer, ends, todo, timeout_s)
    finally:
        consumer.close()


#: Answers while a new topic's partition leadership settles; librdkafka does not flag them retriable here.
_SETTLING = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
)


def _high_watermark(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> int:
    """The partition's end offset; retries while leadership settles (e.g. right after topic creation)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            settling = error is not None and (error.retriable() or error.code() in _SETTLING)
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _drain(consumer: Consumer, ends: dict[int, int], todo: set[int], timeout_s: float) -> list[TopicMessage]:
    out: list[TopicMessage] = []
    idle = 0.0
    while todo and idle < timeout_s:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1.0
            continue
        idle = 0.0
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                todo.discard(int(msg.partition() or 0))
                continue
            raise RuntimeError(f"reading the topic failed: {err}")
        partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
        headers = {str(h[0]): _text(h[1]) for h in (msg.headers() or [])}
        value = msg.value()
        out.append(
            TopicMessage(
                _text(msg.key()), value if isinstance(value, bytes) else b"", headers, partition, offset
            )
        )
        if offset + 1 >= ends[partition]:
            todo.discard(partition)
    if todo:
        raise RuntimeError(f"timed out reading partitions {sorted(todo)} of the topic")
    return out


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


@dataclass
class Reconciliation:
    """The verdict of one comparison; `clean` means nothing missing and no identical duplicate."""

    truth: int
    messages: int
    keys: int
    missing: list[str] = field(default_factory=list)
    identical_duplicates: int = 0
    stale_latest: list[str] = field(default_factory=list)
    outside: int = 0
    versions_per_key: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.missing and self.identical_duplicates == 0

    def summary(self) -> dict[str, Any]:
        return {
            "conversations_in_simulator": self.truth,
            "messages_in_kafka": self.messages,
            "distinct_conversations_in_kafka": self.keys,
            "missing": len(self.missing),
            "identical_duplicates": self.identical_duplicates,
            "latest_differs_from_simulator": len(self.stale_latest),
            "in_kafka_beyond_the_reconciled_range": self.outside,
            "versions_per_conversation": round(self.versions_per_key, 3),
        }


def reconcile(truth: Mapping[str, Mapping[str, Any]], messages: Iterable[TopicMessage]) -> Reconciliation:
    """Compare `truth` (conversationId -> current record) with the messages read from the topic."""
    msgs = list(messages)
    latest: dict[str, TopicMessage] = {}
    snapshot_counts: Counter[tuple[str, str]] = Counter()
    for m in msgs:  # offset order within a partition; one key lives in one partition
        latest[m.key] = m
        snapshot_counts[(m.key, m.content_hash)] += 1
    in_range = [k for k in latest if k in truth]
    result = Reconciliation(
        truth=len(truth),
        messages=len(msgs),
        keys=len(latest),
        missing=sorted(set(truth) - set(latest)),
        identical_duplicates=sum(n - 1 for n in snapshot_counts.values() if n > 1),
        outside=len(set(latest) - set(truth)),
    )
    result.stale_latest = sorted(k for k in in_range if latest[k].content_hash != content_hash(truth[k]))
    result.versions_per_key = len(msgs) / len(latest) if latest else 0.0
    return result
