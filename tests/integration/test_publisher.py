"""KafkaPublisher against the real broker: acks, message format, ordering, concurrency, failures."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from kafka_fixtures import consume_all

from connector.errors import DeliveryError
from connector.kafka.publisher import BatchResult, KafkaPublisher
from connector.kafka.records import OutboundMessage, build_message, content_hash
from connector.librdkafka import producer_settings
from connector.metrics import ConnectorMetrics
from connector.testbed.broker import EmbeddedKafka, create_topic, require_lib_dir

pytestmark = pytest.mark.kafka

WINDOW = SimpleNamespace(
    start=datetime(2026, 5, 1, 10, 0, tzinfo=UTC), end=datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
)
OBSERVED = datetime(2026, 5, 1, 10, 7, tzinfo=UTC)


def settings(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Producer settings through the real mapping, from `kafka` config defaults plus overrides."""
    cfg = {
        "bootstrap_servers": bootstrap,
        "client_id": "test-publisher",
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": None,
        "sasl_username": None,
        "sasl_password": None,
        "ssl_ca_location": None,
        "ssl_certificate_location": None,
        "ssl_key_location": None,
        "ssl_key_password": None,
        "compression_type": "zstd",
        "linger_ms": 5,
        "queue_max_messages": 100000,
        "queue_max_kbytes": 65536,
        "delivery_timeout_ms": 30000,
        "message_max_bytes": 4194304,
        "extra": {},
    }
    cfg.update(overrides)
    return producer_settings(SimpleNamespace(**cfg))  # type: ignore[arg-type]


def conversation(cid: str, version: int, *, ended: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {
        "conversationId": cid,
        "conversationStart": "2026-05-01T10:01:00.000Z",
        "participants": [{"purpose": "agent", "sessions": [{"mediaType": "voice", "segments": [version]}]}],
        "version": version,
    }
    if ended:
        record["conversationEnd"] = "2026-05-01T10:04:00.000Z"
    return record


def to_message(record: dict[str, Any], pass_label: int = 0) -> OutboundMessage:
    return build_message(record, window=WINDOW, pass_label=pass_label, observed_at=OBSERVED)


def run(coro: Any, timeout_s: float = 60.0) -> Any:
    """Run a coroutine with a hard deadline, so a hang fails the test instead of blocking the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout_s))


def test_acked_batch_is_readable_with_key_value_and_headers(kafka_bootstrap: str, kafka_topic: str) -> None:
    records = [conversation(f"conv-{i}", 1, ended=i % 2 == 0) for i in range(20)]
    metrics = ConnectorMetrics()
    with KafkaPublisher(settings(kafka_bootstrap), kafka_topic, metrics, version="1.2.3") as pub:
        pub.verify_topic(timeout_s=10)
        assert pub.check_ready(timeout_s=10)
        result = run(pub.publish([to_message(r, pass_label=1) for r in records]))
        assert result == BatchResult(acked=20)
        assert pub.flush(10) == 0

    consumed = consume_all(kafka_bootstrap, kafka_topic, expected=20)
    assert sorted(m.key or "" for m in consumed) == sorted(r["conversationId"] for r in records)
    by_key = {r["conversationId"]: r for r in records}
    for m in consumed:
        record = by_key[m.key or ""]
        assert orjson.loads(m.value) == record
        assert m.headers == {
            "genesys.content_hash": content_hash(record),
            "genesys.ended": "true" if "conversationEnd" in record else "false",
            "genesys.window": "2026-05-01T10:00:00.000Z/2026-05-01T10:05:00.000Z",
            "genesys.pass": "1",
            "genesys.observed_at": "2026-05-01T10:07:00.000Z",
            "connector.version": "1.2.3",
        }
    assert metrics.kafka_delivery_errors._value.get() == 0


def test_versions_of_a_key_arrive_in_publish_order_across_concurrent_batches(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    keys = [f"conv-{i}" for i in range(12)]
    versions = 15

    async def publish_all(pub: KafkaPublisher) -> list[BatchResult]:
        batches = [[to_message(conversation(k, v)) for k in keys] for v in range(versions)]
        return await asyncio.gather(*(pub.publish(batch) for batch in batches))

    with KafkaPublisher(
        settings(kafka_bootstrap, linger_ms=20), kafka_topic, ConnectorMetrics(), version="1"
    ) as pub:
        results = run(publish_all(pub))
    assert all(r.ok and r.acked == len(keys) for r in results)

    seen: dict[str, list[int]] = defaultdict(list)
    for m in consume_all(kafka_bootstrap, kafka_topic, expected=len(keys) * versions):  # offset order
        seen[m.key or ""].append(orjson.loads(m.value)["version"])
    assert seen == {k: list(range(versions)) for k in keys}


def test_many_concurrent_batches_are_each_acknowledged_exactly(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    batches = [[to_message(conversation(f"b{b}-c{i}", 1)) for i in range(b % 7 + 1)] for b in range(60)]

    async def publish_all(pub: KafkaPublisher) -> list[BatchResult]:
        return await asyncio.gather(*(pub.publish(batch) for batch in batches))

    with KafkaPublisher(settings(kafka_bootstrap), kafka_topic, ConnectorMetrics(), version="1") as pub:
        results = run(publish_all(pub))
    assert [r.acked for r in results] == [len(b) for b in batches]
    assert all(r.ok for r in results)
    expected = sum(len(b) for b in batches)
    consumed = consume_all(kafka_bootstrap, kafka_topic, expected=expected)
    assert sorted(m.key or "" for m in consumed) == sorted(m.key for b in batches for m in b)


def test_full_local_queue_waits_for_room_and_loses_nothing(kafka_bootstrap: str, kafka_topic: str) -> None:
    messages = [to_message(conversation(f"conv-{i % 5}", i)) for i in range(300)]
    tiny = settings(kafka_bootstrap, queue_max_messages=5, linger_ms=1)
    with KafkaPublisher(tiny, kafka_topic, ConnectorMetrics(), version="1", buffer_wait_s=0.005) as pub:

        async def two_batches() -> list[BatchResult]:
            return await asyncio.gather(pub.publish(messages[:150]), pub.publish(messages[150:]))

        first, second = run(two_batches())
        assert pub.buffer_full_waits > 0  # the BufferError path was really taken
    assert (first.acked, second.acked) == (150, 150)

    seen: dict[str, list[int]] = defaultdict(list)
    for m in consume_all(kafka_bootstrap, kafka_topic, expected=300):
        seen[m.key or ""].append(orjson.loads(m.value)["version"])
    assert seen == {f"conv-{k}": list(range(k, 300, 5)) for k in range(5)}


def test_missing_topic_fails_the_startup_check_and_the_batch_without_hanging(kafka_bootstrap: str) -> None:
    short = settings(kafka_bootstrap, delivery_timeout_ms=2000, linger_ms=1)
    with KafkaPublisher(short, "no.such.topic", ConnectorMetrics(), version="1") as pub:
        with pytest.raises(DeliveryError, match="does not exist"):
            pub.verify_topic(timeout_s=10)
        assert not pub.check_ready(timeout_s=10)
        result = run(pub.publish([to_message(conversation("conv-x", 1))]), timeout_s=30)
    assert not result.ok
    assert [f.key for f in result.failures] == ["conv-x"]


def test_broker_that_goes_down_fails_batches_and_the_readiness_check(tmp_path: Any) -> None:
    metrics = ConnectorMetrics()
    with EmbeddedKafka(require_lib_dir(), work_dir=tmp_path) as broker:
        create_topic(broker.bootstrap_servers, "orders", 3)
        short = settings(broker.bootstrap_servers, delivery_timeout_ms=2000, linger_ms=1)
        pub = KafkaPublisher(short, "orders", metrics, version="1")
        assert run(pub.publish([to_message(conversation("before", 1))])).ok
        broker.stop()

        with pytest.raises(DeliveryError, match="unreachable"):
            pub.verify_topic(timeout_s=2)
        result = run(pub.publish([to_message(conversation(f"after-{i}", 1)) for i in range(3)]), timeout_s=30)
        assert result.acked == 0
        assert sorted(f.key for f in result.failures) == ["after-0", "after-1", "after-2"]
        assert metrics.kafka_delivery_errors._value.get() == 3
        assert pub.close(timeout_s=1) == 0
