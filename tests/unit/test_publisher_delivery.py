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
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from connector.clock import FakeClock
from connector.errors import ConfigError, DeliveryError, KafkaConnectionError
from connector.metrics import ConnectorMetrics
from connector.publisher import BatchResult, KafkaPublisher, PublisherState, classify_client_error
from connector.records import OutboundMessage

DEAD_BROKER = {
    "bootstrap.servers": "127.0.0.1:1",
    "enable.idempotence": True,
    "acks": "all",
    "delivery.timeout.ms": 60_000,
}


def message(key: str, size: int = 10) -> OutboundMessage:
    return OutboundMessage(key=key, value=b"x" * size, headers={"genesys.pass": "0"})


class CapturingFactory:
    """Builds the real producer and keeps the config (with the publisher's callbacks)."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def __call__(self, config: dict[str, Any]) -> Producer:
        self.config = config
        return Producer(config)


@pytest.fixture
def factory() -> CapturingFactory:
    return CapturingFactory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def publisher(factory: CapturingFactory, clock: FakeClock) -> Iterator[KafkaPublisher]:
    pub = KafkaPublisher(
        DEAD_BROKER, "t", ConnectorMetrics(), version="9.9.9", clock=clock, producer_factory=factory
    )
    yield pub
    pub.close(timeout_s=0.1)


def fatal(reason: str = "idempotence sequence desynchronised") -> KafkaError:
    return KafkaError(KafkaError._FATAL, reason, fatal=True)


def test_fatal_error_fails_pending_batches_and_every_later_call(
    publisher: KafkaPublisher, factory: CapturingFactory
) -> None:
    async def scenario() -> None:
        pending = asyncio.create_task(publisher.publish([message("a"), message("b")]))
        await asyncio.sleep(0.05)
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
    with caplog.at_level(logging.WARNING, logger="connector.publisher"):
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


def test_close_with_unacknowledged_messages_fails_their_batch(publisher: KafkaPublisher) -> None:
    async def scenario() -> BatchResult:
        pending = asyncio.create_task(publisher.publish([message("a"), message("b")]))
        await asyncio.sleep(0.05)
        remaining = await asyncio.to_thread(publisher.close, 0.2)
        assert remaining == 2
        return await asyncio.wait_for(pending, timeout=10)

    result = asyncio.run(scenario())
    assert not result.ok
    assert result.acked == 0
    assert {f.key for f in result.failures} == {"a", "b"}


def test_empty_batch_is_acknowledged_at_once(publisher: KafkaPublisher) -> None:
    assert asyncio.run(publisher.publish([])) == BatchResult(acked=0)


def test_oversized_messages_fail_their_batch_without_reaching_a_broker() -> None:
    metrics = ConnectorMetrics()
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


def test_verify_topic_without_an_answer_is_unreachable_after_the_timeout(publisher: KafkaPublisher) -> None:
    with pytest.raises(KafkaConnectionError, match=r"Kafka is unreachable at 127\.0\.0\.1:1") as info:
        publisher.verify_topic(timeout_s=1.5)
    assert info.value.reason == "unreachable"
