"""Read back which conversations a topic holds (`verify --read-topic`): key -> conversationStart.

A throw-away consumer group that never commits: every partition is assigned from the beginning and read
up to its high watermark *as it was when reading began*, so a worker publishing meanwhile cannot keep the
read going forever. Only the key and the value's `conversationStart` are kept (one small entry per
conversation, not the messages), so a topic of millions of snapshots fits in memory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from connector.errors import BrokerError

SettingValue = str | int | float | bool
Progress = Callable[[int, int], None]
"""Called with (messages read, messages to read) now and then."""


def read_topic_starts(
    settings: Mapping[str, SettingValue],
    topic: str,
    *,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
) -> dict[str, datetime | None]:
    """Every key of `topic` with the latest `conversationStart` its values carry (None if unreadable).

    `settings` are librdkafka consumer settings (`connector.librdkafka.consumer_settings`). Raises
    BrokerError when the topic does not exist or a partition cannot be read within `timeout_s` of silence.
    """
    out: dict[str, datetime | None] = {}

    def keep(msg: Message) -> None:
        key = msg.key()
        if key is not None:
            cid = key.decode() if isinstance(key, bytes) else str(key)
            start = conversation_start(msg.value())
            if start is not None or cid not in out:
                out[cid] = start

    read_to_watermark(settings, topic, keep, timeout_s=timeout_s, progress=progress)
    return out


def read_to_watermark(
    settings: Mapping[str, SettingValue],
    topic: str,
    on_message: Callable[[Message], None],
    *,
    timeout_s: float,
    progress: Progress | None = None,
) -> None:
    """Hand every message of `topic`, from the beginning up to the high watermarks at call time, to
    `on_message` (in offset order within a partition), with a throw-away consumer group.

    Shared by `verify --read-topic` and the test bed's reconciliation, so both read a topic the same way.
    `settings` are librdkafka consumer settings with `enable.partition.eof`; a missing `group.id` gets a
    fresh one. Raises BrokerError when the topic does not exist or a partition cannot be read within
    `timeout_s` of silence.
    """
    consumer = Consumer({**settings, "group.id": str(settings.get("group.id") or f"verify-{uuid.uuid4()}")})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise BrokerError(f"topic {topic!r} does not exist or cannot be described")
        ends = {p: _high_watermark(consumer, TopicPartition(topic, p), timeout_s) for p in found.partitions}
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(found.partitions)])
        _drain(consumer, ends, todo, timeout_s, on_message, progress)
    except KafkaException as exc:
        raise BrokerError(f"reading topic {topic!r} failed: {exc}") from None
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
            time.sleep(0.2)  # leadership settling: retry until the deadline


def _drain(
    consumer: Consumer,
    ends: dict[int, int],
    todo: set[int],
    timeout_s: float,
    on_message: Callable[[Message], None],
    progress: Progress | None,
) -> None:
    total = sum(ends.values())
    read, silent_since = 0, time.monotonic()
    while todo:
        messages = consumer.consume(500, 1.0)
        if not messages:
            if time.monotonic() - silent_since > timeout_s:
                raise BrokerError(f"timed out reading partitions {sorted(todo)}")
            continue
        silent_since = time.monotonic()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(int(msg.partition() or 0))
                    continue
                raise BrokerError(f"reading the topic failed: {err}")
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            if offset >= ends[partition]:
                todo.discard(partition)
                continue
            read += 1
            on_message(msg)
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        if progress is not None:
            progress(read, total)


def conversation_start(value: object) -> datetime | None:
    """The `conversationStart` of a message value (canonical JSON), or None if it has none."""
    if not isinstance(value, bytes):
        return None
    try:
        record = orjson.loads(value)
        text = record.get("conversationStart") if isinstance(record, dict) else None
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except (orjson.JSONDecodeError, ValueError):
        return None
