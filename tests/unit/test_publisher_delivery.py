"""KafkaPublisher without a broker: fatal-error latching, error logging, closing, local refusals.

The producer is a real confluent_kafka.Producer pointed at a closed local port, so nothing is ever
acknowledged; the factory hook only captures the callbacks the publisher registers with librdkafka.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from fakes import eventually, sample

from connector.clock import FakeClock
from connector.errors import ConfigError, DeliveryError, KafkaConnectionError
from connector.kafka.client_logs import ClientLogRelay
from connector.kafka.connection import classify_client_error
from connector.kafka.oversized import OversizedPolicy
from connector.kafka.publisher import BatchResult, KafkaPublisher, PublisherState
from connector.kafka.records import OutboundMessage, build_message
from connector.metrics import ConnectorMetrics
from connector.passes import _raise_if_permanent
from connector.windows import Window

DEAD_BROKER = {
    "bootstrap.servers": "127.0.0.1:1",
    "enable.idempotence": True,
    "acks": "all",
    "delivery.timeout.ms": 60_000,
}


def message(key: str, size: int = 10) -> OutboundMessage:
    return OutboundMessage(key=key, value=b"x" * size, headers={"genesys.pass": "0"})


class CapturingFactory:
    """Builds the real producer and keeps it and its config (with the publisher's callbacks)."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.producer: Producer | None = None

    def __call__(self, config: dict[str, Any]) -> Producer:
        self.config = config
        self.producer = Producer(config)
        return self.producer

    def queued(self) -> int:
        """Messages handed to librdkafka and not yet answered for (a dead broker answers none)."""
        return 0 if self.producer is None else len(self.producer)


@pytest.fixture
def factory() -> CapturingFactory:
    return CapturingFactory()


@pytest.fixture
def publisher(
    factory: CapturingFactory, clock: FakeClock, metrics: ConnectorMetrics
) -> Iterator[KafkaPublisher]:
    pub = KafkaPublisher(DEAD_BROKER, "t", metrics, version="9.9.9", clock=clock, producer_factory=factory)
    yield pub
    pub.close(timeout_s=0.1)


def fatal(reason: str = "idempotence sequence desynchronised") -> KafkaError:
    return KafkaError(KafkaError._FATAL, reason, fatal=True)


def test_fatal_error_fails_pending_batches_and_every_later_call(
    publisher: KafkaPublisher, factory: CapturingFactory
) -> None:
    async def scenario() -> None:
        pending = asyncio.create_task(publisher.publish([message("a"), message("b")]))
        await eventually(lambda: factory.queued() == 2, what="both messages handed to librdkafka")
        assert not pending.done()  # nothing can be acknowledged by a dead broker
        threading.Thread(target=factory.config["error_cb"], args=(fatal(),)).start()  # as the poller would
        with pytest.raises(DeliveryError, match="idempotence sequence desynchronised"):
            await asyncio.wait_for(pending, timeout=10)
        with pytest.raises(DeliveryError, match="failed fatally"):
            await publisher.publish([message("c")])

    asyncio.run(scenario())
    assert publisher.state is PublisherState.FAILED
    with pytest.raises(DeliveryError):
        publisher.flush(0.1)
    assert publisher.check_ready(0.1) is False


def test_non_fatal_client_errors_are_logged_rate_limited(
    publisher: KafkaPublisher, factory: CapturingFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # a code the real (dead-broker) client does not raise itself, so only these calls count
    down = KafkaError(KafkaError.BROKER_NOT_AVAILABLE, "broker not available")
    with caplog.at_level(logging.WARNING, logger="connector.kafka.publisher"):
        for _ in range(5):
            factory.config["error_cb"](down)
        clock.advance(31)
        factory.config["error_cb"](down)
    lines = [r.getMessage() for r in caplog.records if "BROKER_NOT_AVAILABLE" in r.getMessage()]
    assert len(lines) == 2
    assert "(4 similar suppressed)" in lines[1]
    assert publisher.state is PublisherState.OPEN


def test_closed_publisher_refuses_work_and_close_is_idempotent(publisher: KafkaPublisher) -> None:
    assert publisher.close(timeout_s=0.1) == 0
    assert publisher.close(timeout_s=0.1) == 0
    with pytest.raises(DeliveryError, match="closed"):
        asyncio.run(publisher.publish([message("a")]))
    with pytest.raises(DeliveryError, match="closed"):
        publisher.flush(0.1)


def test_close_with_unacknowledged_messages_fails_their_batch(
    publisher: KafkaPublisher, factory: CapturingFactory
) -> None:
    async def scenario() -> BatchResult:
        pending = asyncio.create_task(publisher.publish([message("a"), message("b")]))
        await eventually(lambda: factory.queued() == 2, what="both messages handed to librdkafka")
        remaining = await asyncio.to_thread(publisher.close, 0.2)
        assert remaining == 2
        return await asyncio.wait_for(pending, timeout=10)

    result = asyncio.run(scenario())
    assert not result.ok
    assert result.acked == 0
    assert {f.key for f in result.failures} == {"a", "b"}


def test_empty_batch_is_acknowledged_at_once(publisher: KafkaPublisher) -> None:
    assert asyncio.run(publisher.publish([])) == BatchResult(acked=0)


def test_oversized_messages_fail_their_batch_without_reaching_a_broker(metrics: ConnectorMetrics) -> None:
    with KafkaPublisher({**DEAD_BROKER, "message.max.bytes": 1000}, "t", metrics, version="1") as pub:
        batch = [message("big-1", size=5000), message("big-2", size=2000)]
        result = asyncio.run(asyncio.wait_for(pub.publish(batch), timeout=10))
        assert result.acked == 0
        assert [(f.key, f.code) for f in result.failures] == [
            ("big-1", "MSG_SIZE_TOO_LARGE"),
            ("big-2", "MSG_SIZE_TOO_LARGE"),
        ]
        assert metrics.kafka_delivery_errors._value.get() == 2


def test_rejected_settings_are_a_config_error_without_the_secret() -> None:
    settings = {**DEAD_BROKER, "sasl.password": "hunter2-secret", "linger.ms": "hunter2-secret"}
    with pytest.raises(ConfigError) as info:
        KafkaPublisher(settings, "t", ConnectorMetrics(), version="1")
    assert "Invalid value" in str(info.value)
    assert "hunter2" not in str(info.value)


# --- oversized conversations: which limit, fail or truncate ------------------------------------------


class FakeProducer:
    """In-process stand-in for librdkafka and a broker, for the size paths only.

    Like librdkafka, `produce()` refuses a value over `producer_limit` with MSG_SIZE_TOO_LARGE; like a
    broker, the delivery report fails with MSG_SIZE_TOO_LARGE for a value over `topic_limit`, and once for
    each key in `reject_once` (a small record rejected together with an oversized one in its batch).
    """

    def __init__(self, producer_limit: int, topic_limit: int, reject_once: set[str] | None = None) -> None:
        self.producer_limit = producer_limit
        self.topic_limit = topic_limit
        self.reject_once = set(reject_once or ())
        self.written: list[tuple[str, bytes, dict[str, str]]] = []
        self._queue: list[tuple[str, bytes, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def produce(
        self, topic: str, *, value: bytes, key: str, headers: list[tuple[str, bytes]], on_delivery: Any
    ) -> None:
        if len(value) > self.producer_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Unable to produce message"))
        with self._lock:
            self._queue.append((key, value, {k: v.decode() for k, v in headers}, on_delivery))
        self._wake.set()

    def poll(self, timeout: float) -> int:
        self._wake.wait(timeout)
        self._wake.clear()
        with self._lock:
            queue, self._queue = self._queue, []
        for key, value, headers, on_delivery in queue:
            if len(value) > self.topic_limit or key in self.reject_once:
                self.reject_once.discard(key)
                on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"), None)
            else:
                self.written.append((key, value, headers))
                on_delivery(None, None)
        return len(queue)

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def flush(self, timeout: float) -> int:
        return len(self)

    def purge(self, **_kwargs: Any) -> None:
        with self._lock:
            self._queue.clear()

    def close(self) -> None:
        pass

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})


class FakeAdmin:
    """Answers describe_configs with the topic's max.message.bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Future[Any]]:
        future: Future[Any] = Future()
        future.set_result({"max.message.bytes": SimpleNamespace(value=str(self.limit))})
        return {resources[0]: future}


def conversation_message(cid: str, segments: int) -> OutboundMessage:
    record = {
        "conversationId": cid,
        "conversationStart": "2026-05-01T10:00:00.000Z",
        "participants": [
            {
                "participantId": f"{cid}-p",
                "purpose": "agent",
                "sessions": [
                    {
                        "sessionId": "s",
                        "segments": [{"segmentType": "interact", "n": i} for i in range(segments)],
                    }
                ],
            }
        ],
    }
    window = Window(datetime(2026, 5, 1, 10, tzinfo=UTC), datetime(2026, 5, 1, 11, tzinfo=UTC))
    return build_message(record, window=window, pass_label=0, observed_at=window.end)


def fake_publisher(
    producer: FakeProducer, *, oversized: OversizedPolicy, metrics: ConnectorMetrics
) -> KafkaPublisher:
    pub = KafkaPublisher(
        {**DEAD_BROKER, "message.max.bytes": producer.producer_limit},
        "t",
        metrics,
        version="1",
        producer_factory=lambda _config: producer,  # type: ignore[arg-type,return-value]
        admin_factory=lambda _config: FakeAdmin(producer.topic_limit),  # type: ignore[arg-type,return-value]
        oversized=oversized,
    )
    pub.verify_topic(1.0)
    return pub


def truncated(metrics: ConnectorMetrics, limit: str) -> float:
    return sample(metrics, "records_truncated_total", limit=limit)


def test_truncate_replaces_a_conversation_over_the_producer_limit_in_its_place(
    caplog: pytest.LogCaptureFixture, metrics: ConnectorMetrics
) -> None:
    producer = FakeProducer(producer_limit=20_000, topic_limit=10**7)
    batch = [conversation_message("a", 3), conversation_message("big", 2000), conversation_message("c", 3)]
    with (
        caplog.at_level(logging.WARNING),
        fake_publisher(producer, oversized="truncate", metrics=metrics) as pub,
    ):
        result = asyncio.run(asyncio.wait_for(pub.publish(batch), timeout=10))
    assert result == BatchResult(acked=3)
    assert [key for key, _, _ in producer.written] == ["a", "big", "c"]  # produce order kept
    _, value, headers = producer.written[1]
    assert len(value) < 20_000 < len(batch[1].value)
    assert headers["genesys.truncated"] == "true"
    assert headers["genesys.original_bytes"] == str(len(batch[1].value))
    assert "genesys.truncated" not in producer.written[0][2]
    assert (truncated(metrics, "producer"), truncated(metrics, "topic")) == (1.0, 0.0)
    warning = next(r.getMessage() for r in caplog.records if "truncated" in r.getMessage())
    assert "big" in warning
    assert str(len(batch[1].value)) in warning
    assert "kafka.message_max_bytes" in warning


def test_truncate_cuts_to_the_topic_limit_and_resends_batch_neighbours_unchanged(
    metrics: ConnectorMetrics,
) -> None:
    producer = FakeProducer(producer_limit=4_194_304, topic_limit=20_480, reject_once={"small"})
    batch = [conversation_message("small", 3), conversation_message("big", 2000)]
    with fake_publisher(producer, oversized="truncate", metrics=metrics) as pub:
        result = asyncio.run(asyncio.wait_for(pub.publish(batch), timeout=10))
    assert result == BatchResult(acked=2)
    written = {key: (value, headers) for key, value, headers in producer.written}
    assert written["small"][0] == batch[0].value
    assert "genesys.truncated" not in written["small"][1]
    big_value, big_headers = written["big"]
    assert big_headers["genesys.truncated"] == "true"
    assert len(big_value) < 20_480
    assert (truncated(metrics, "producer"), truncated(metrics, "topic")) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("producer_limit", "topic_limit", "named", "not_named"),
    [
        (
            20_000,
            10**7,
            "kafka.message_max_bytes (librdkafka message.max.bytes = 20000 bytes)",
            "max.message.bytes of",
        ),
        (4_194_304, 20_480, "the max.message.bytes of topic 't' = 20480 bytes", "kafka.message_max_bytes"),
    ],
    ids=["producer", "topic"],
)
def test_fail_policy_stops_naming_the_limit_that_was_hit(
    producer_limit: int, topic_limit: int, named: str, not_named: str, metrics: ConnectorMetrics
) -> None:
    producer = FakeProducer(producer_limit, topic_limit)
    with fake_publisher(producer, oversized="fail", metrics=metrics) as pub:
        result = asyncio.run(asyncio.wait_for(pub.publish([conversation_message("big", 2000)]), timeout=10))
    assert [(f.key, f.code) for f in result.failures] == [("big", "MSG_SIZE_TOO_LARGE")]
    with pytest.raises(DeliveryError) as info:
        _raise_if_permanent(result.failures)
    text = str(info.value)
    assert named in text
    assert not_named not in text.split("the limit hit is")[1]
    assert "kafka.oversized_records: truncate" in text
    assert producer.written == []
    assert truncated(metrics, "producer") == truncated(metrics, "topic") == 0.0


def test_coordinator_load_at_startup_is_info_and_other_client_warnings_stay_warnings(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    relay = ClientLogRelay(clock)
    with caplog.at_level(logging.DEBUG, logger="connector.kafka.publisher.librdkafka"):
        relay.log(
            logging.WARNING,
            "%s [%s] %s",
            "GETPID",
            "rdkafka#producer-1",
            "[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: "
            "Broker: Coordinator load in progress: retrying",
        )
        relay.log(
            logging.WARNING,
            "%s [%s] %s",
            "GETPID",
            "rdkafka#producer-2",
            "Failed: Broker: Cluster authorization failed",
        )
        relay.log(
            logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to ipv4#127.0.0.1:1 failed"
        )
    levels = [(r.levelno, r.getMessage().split(" ")[0]) for r in caplog.records]
    assert levels == [(logging.INFO, "GETPID"), (logging.WARNING, "GETPID"), (logging.WARNING, "FAIL")]


@pytest.mark.parametrize(
    ("code", "text", "reason", "advice"),
    [
        (
            KafkaError._AUTHENTICATION,
            "SASL authentication error: invalid credentials",
            "authentication",
            "kafka.sasl_password",
        ),
        (KafkaError._SSL, "SSL handshake failed: certificate verify failed", "tls", "kafka.ssl_ca_location"),
        (KafkaError._SSL, "SSL handshake failed: no shared cipher", "tls", "kafka.security_protocol"),
        (
            KafkaError._TRANSPORT,
            "Receive failed: SSL routines::ssl/tls alert bad certificate",
            "tls",
            "kafka.ssl_certificate_location",
        ),
    ],
)
def test_authentication_and_tls_failures_are_classified(
    code: int, text: str, reason: str, advice: str
) -> None:
    failure = classify_client_error(KafkaError(code, text))
    assert failure is not None
    assert failure.reason == reason
    assert advice in failure.advice


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
        (KafkaError._TRANSPORT, "Receive failed: SSL routines::unexpected eof while reading"),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
    ],
)
def test_transient_client_errors_are_not_classified(code: int, text: str) -> None:
    assert classify_client_error(KafkaError(code, text)) is None


def test_verify_topic_stops_waiting_once_credentials_are_rejected(factory: CapturingFactory) -> None:
    settings = {
        **DEAD_BROKER,
        "sasl.username": "svc",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.password": "hunter2-secret",
    }
    with KafkaPublisher(settings, "t", ConnectorMetrics(), version="1", producer_factory=factory) as pub:
        # as the poller would serve it; the (made-up) text quoting the password must not leak it
        rejected = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error (hunter2-secret)")
        threading.Thread(target=factory.config["error_cb"], args=(rejected,)).start()
        began = time.monotonic()
        with pytest.raises(KafkaConnectionError) as info:
            pub.verify_topic(timeout_s=60)
        assert time.monotonic() - began < 30  # a few 1 s metadata slices at most, not the 60 s budget
    assert info.value.reason == "authentication"
    assert "rejected the SASL credentials of user 'svc' (SCRAM-SHA-512)" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_client_errors_quoting_a_credential_encoded_are_masked_by_the_one_rule(
    factory: CapturingFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The publisher masks with `connector.secrets`' Redactor: also the URL-encoded form of a password."""
    settings = {**DEAD_BROKER, "sasl.username": "svc", "sasl.password": "p@ss word/1"}
    with (
        KafkaPublisher(settings, "t", ConnectorMetrics(), version="1", producer_factory=factory),
        caplog.at_level(logging.WARNING, logger="connector.kafka.publisher"),
    ):
        rejected = KafkaError(KafkaError._AUTHENTICATION, "SASL failed for p%40ss%20word%2F1")
        factory.config["error_cb"](rejected)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "rejected the SASL credentials" in logged
    assert "p%40ss" not in logged
    assert "p@ss" not in logged


def test_verify_topic_without_an_answer_is_unreachable_after_the_timeout(publisher: KafkaPublisher) -> None:
    with pytest.raises(KafkaConnectionError, match=r"Kafka is unreachable at 127\.0\.0\.1:1") as info:
        publisher.verify_topic(timeout_s=1.5)
    assert info.value.reason == "unreachable"
