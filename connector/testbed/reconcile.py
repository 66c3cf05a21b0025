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

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from connector.kafka.records import HEADER_CONTENT_HASH, content_hash
from connector.kafka.topickeys import SettingValue, read_to_watermark


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
    """Every message of `topic` from the beginning up to the end offsets at call time, in offset order.

    Read as `verify --read-topic` reads (`connector.kafka.topickeys.read_to_watermark`), keeping whole
    messages. Raises BrokerError when the topic does not exist or cannot be read.
    """
    out: list[TopicMessage] = []

    def keep(msg: Message) -> None:
        headers = {str(h[0]): _text(h[1]) for h in (msg.headers() or [])}
        value = msg.value()
        out.append(
            TopicMessage(
                _text(msg.key()),
                value if isinstance(value, bytes) else b"",
                headers,
                int(msg.partition() or 0),
                int(msg.offset() or 0),
            )
        )

    settings: dict[str, SettingValue] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"reconcile-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    read_to_watermark(settings, topic, keep, timeout_s=timeout_s)
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
