"""`KafkaPublisher`: the connector's one confluent-kafka producer, from creation to close, and `publish`.

The message format (key, value, headers) is `connector.kafka.records`; this module adds the
`connector.version` header and sends the messages. Beside it, by role: `delivery` (batches and their
results), `oversized` (size limits, reduced records), `connection` (failures no retry fixes), `topic` (the
startup check's questions about the topic), `client_logs` (librdkafka's own log lines); the settings come
from `connector.librdkafka`.

Delivery rule: `await publisher.publish(batch)` returns only once Kafka has answered for EVERY message of
the batch, with a `BatchResult` (acked count, failed messages). The caller advances its checkpoint only
for batches whose result is `ok`; a failed batch means "replay the window pass". Fatal producer errors
(`KafkaError.fatal()`, e.g. an idempotence sequence failure) are latched: pending and later calls raise
`DeliveryError` and the connector must exit. Non-fatal client errors (broker down, transport) are only
logged, rate-limited: librdkafka keeps retrying until `delivery.timeout.ms`, after which the affected
messages fail their batch.

Ordering: messages are produced in call order, and whole batches are enqueued one after another in the
order `publish()` was called (a batch waiting for room in the local queue holds back later batches). The
idempotent producer keeps that order per partition, and one key always maps to one partition, so the
versions of a conversation reach Kafka in the order they were published.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from connector.clock import Clock, SystemClock
from connector.errors import ConfigError, DeliveryError
from connector.kafka.client_logs import ClientLogRelay, LogThrottle
from connector.kafka.connection import ConnectionWatch, classify_client_error
from connector.kafka.delivery import BatchResult, BatchTracker, DeliveryFailure
from connector.kafka.oversized import HEADER_ORIGINAL_BYTES, OversizedPolicy, SizeLimit, SizeLimits
from connector.kafka.records import HEADER_VERSION, OutboundMessage
from connector.kafka.topic import AdminFactory, TopicProbe
from connector.librdkafka import (
    SettingValue,
    describe_rejection,
    redacted,
    settings_redactor,
)
from connector.metrics import ConnectorMetrics

__all__ = [
    "AdminFactory",
    "BatchResult",
    "DeliveryFailure",
    "KafkaPublisher",
    "ProducerFactory",
    "PublisherState",
]

log = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.1
_BUFFER_WAIT_S = 0.05
#: librdkafka's codes for "too large" (10: the producer's own refusal and the broker's; 18: the broker's).
_SIZE_ERRORS = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)
#: A message refused for its size is re-produced (reduced) at most this many times.
_MAX_SIZE_ATTEMPTS = 3


class PublisherState(enum.Enum):
    """OPEN -> CLOSED, or OPEN -> FAILED on a fatal producer error."""

    OPEN = "open"
    FAILED = "failed"
    CLOSED = "closed"


ProducerFactory = Callable[[dict[str, Any]], Producer]


class KafkaPublisher:
    """The connector's only Kafka producer: publishes batches and reports when each is fully acknowledged.

    A background thread polls the producer, which serves delivery reports and client errors. `publish()`
    is a coroutine (use one event loop per publisher); `flush`, `close`, `verify_topic` and `check_ready`
    block, so call them from a worker thread (`asyncio.to_thread`) when inside the loop.

    A message too large for the producer's `message.max.bytes` or the topic's `max.message.bytes` fails
    its batch with a hint naming that limit, or, with `oversized="truncate"`, is replaced by a reduced,
    flagged version (`connector.kafka.oversized`) within the same batch, so the batch completes as usual.
    """

    def __init__(
        self,
        settings: Mapping[str, SettingValue],
        topic: str,
        metrics: ConnectorMetrics,
        *,
        version: str,
        clock: Clock | None = None,
        producer_factory: ProducerFactory = Producer,
        poll_interval_s: float = _POLL_INTERVAL_S,
        buffer_wait_s: float = _BUFFER_WAIT_S,
        oversized: OversizedPolicy = "fail",
        admin_factory: AdminFactory = AdminClient,
    ) -> None:
        self._topic = topic
        self._limits = SizeLimits(topic, oversized, int(settings.get("message.max.bytes", 1_000_000)))
        self._serial = 0
        self._latest: dict[str, int] = {}  # key -> serial of its latest produced message, while in flight
        self._watch = ConnectionWatch(settings)
        self._metrics = metrics
        self._version = version.encode("utf-8")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._poll_interval_s = poll_interval_s
        self._buffer_wait_s = buffer_wait_s
        self._lock = threading.Lock()
        self._pending: set[BatchTracker] = set()
        self._fatal_reason: str | None = None
        self._redactor = settings_redactor(settings)
        self._probe = TopicProbe(
            topic,
            settings,
            watch=self._watch,
            redactor=self._redactor,
            clock=self._clock,
            admin_factory=admin_factory,
        )
        self.state = PublisherState.OPEN
        self._enqueue_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._error_log = LogThrottle(self._clock)
        self.buffer_full_waits = 0
        self._producer = self._create_producer(settings, producer_factory)
        log.info("Kafka producer for topic %r: %s", topic, redacted(settings))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-publisher-poll", daemon=True)
        self._poller.start()

    # --- publishing ------------------------------------------------------------------------------
    async def publish(self, messages: Sequence[OutboundMessage]) -> BatchResult:
        """Enqueue a batch and wait until Kafka has answered for every message of it.

        Many batches may be in flight at once; they are enqueued in call order. Raises DeliveryError if
        the producer has failed fatally (before or while waiting) or is closed.
        """
        self._raise_if_unusable()
        if not messages:
            return BatchResult(acked=0)
        loop = asyncio.get_running_loop()
        tracker = BatchTracker(loop, loop.create_future(), len(messages))
        with self._lock:
            self._raise_if_unusable()
            self._pending.add(tracker)
        try:
            async with self._loop_enqueue_lock(loop):
                await self._enqueue(messages, tracker)
            return await tracker.future
        except BaseException:
            tracker.future.cancel()  # nobody will read a late result or exception
            raise
        finally:
            with self._lock:
                self._pending.discard(tracker)

    async def _enqueue(self, messages: Sequence[OutboundMessage], tracker: BatchTracker) -> None:
        for message in messages:
            while not self._produce(message, tracker):
                self._raise_if_unusable()
                self.buffer_full_waits += 1
                await asyncio.sleep(self._buffer_wait_s)  # the poller thread frees room meanwhile

    def _produce(
        self,
        message: OutboundMessage,
        tracker: BatchTracker,
        *,
        attempt: int = 0,
        cut: SizeLimit | None = None,
    ) -> bool:
        """Hand one message to librdkafka; False when its queue is full (BufferError).

        `attempt` counts earlier size refusals of this conversation in this batch; `cut` says which limit
        a truncated replacement was cut for (it is counted and logged once acknowledged).
        """
        headers: list[tuple[str, str | bytes | None]] = [
            (name, value.encode("utf-8")) for name, value in message.headers.items()
        ]
        headers.append((HEADER_VERSION, self._version))
        serial = self._claim_serial(message.key)

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None and err.code() in _SIZE_ERRORS:
                self._on_too_large(tracker, message, serial, "topic", attempt)
            else:
                self._on_delivery(tracker, message.key, err, serial=serial, cut=(cut, message))

        try:
            self._producer.produce(
                self._topic, value=message.value, key=message.key, headers=headers, on_delivery=on_delivery
            )
        except BufferError:
            self._release_serial(message.key, serial)
            return False
        except KafkaException as exc:  # refused before queueing: fails (or is truncated) now
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is not None and err.code() in _SIZE_ERRORS:
                return self._on_too_large(tracker, message, serial, "producer", attempt)
            self._on_delivery(tracker, message.key, err, fallback=str(exc), serial=serial)
        return True

    def _claim_serial(self, key: str) -> int:
        with self._lock:
            self._serial += 1
            self._latest[key] = self._serial
            return self._serial

    def _release_serial(self, key: str, serial: int) -> None:
        with self._lock:
            if self._latest.get(key) == serial:
                del self._latest[key]

    def _on_delivery(
        self,
        tracker: BatchTracker,
        key: str,
        err: KafkaError | None,
        *,
        fallback: str = "",
        serial: int = 0,
        hint: str = "",
        cut: tuple[SizeLimit | None, OutboundMessage] | None = None,
    ) -> None:
        """Delivery report (poller thread): count the outcome, resolve the batch after its last one."""
        self._release_serial(key, serial)
        failure = None
        if err is not None or fallback:
            code, text = (err.name(), err.str()) if err is not None else ("_PRODUCE", fallback)
            failure = DeliveryFailure(key=key, code=code, error=text, hint=hint)
            self._metrics.kafka_delivery_errors.inc()
            if err is not None and err.fatal():
                self._latch_fatal(f"{code}: {text}")
        elif cut is not None and cut[0] is not None:
            self._note_truncated(cut[0], cut[1])
        with self._lock:
            complete = tracker.record(failure)
        if complete:
            tracker.resolve()

    # --- oversized messages ----------------------------------------------------------------------
    def _on_too_large(
        self, tracker: BatchTracker, message: OutboundMessage, serial: int, limit: SizeLimit, attempt: int
    ) -> bool:
        """A message refused for its size: send a reduced one (truncate), else fail it naming the limit.

        Runs in the caller's thread for the producer's own limit (so the replacement takes the original's
        place in the produce order) and in the poller thread for the broker's. Returns False only when the
        replacement found the local queue full (the caller waits for room and tries the original again).
        """
        if self._limits.policy == "truncate" and attempt < _MAX_SIZE_ATTEMPTS:
            with self._lock:
                superseded = self._latest.get(message.key) != serial
            if superseded:  # a newer snapshot of this conversation was produced after it: do not overtake it
                err = KafkaError(KafkaError._STATE, "superseded by a newer snapshot while refused for size")
                self._on_delivery(tracker, message.key, err, serial=serial)
                return True
            replacement = self._limits.replacement(message, limit)
            if replacement is not None:
                self._release_serial(message.key, serial)
                return self._send_replacement(tracker, message, replacement, limit, attempt)
        err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, f"refused by the {limit}'s size limit")
        self._on_delivery(tracker, message.key, err, serial=serial, hint=self._limits.hint(message, limit))
        return True

    def _send_replacement(
        self,
        tracker: BatchTracker,
        message: OutboundMessage,
        replacement: OutboundMessage,
        limit: SizeLimit,
        attempt: int,
    ) -> bool:
        cut = limit if replacement is not message else None
        if limit == "producer":
            return self._produce(replacement, tracker, attempt=attempt + 1, cut=cut)
        if not self._produce(replacement, tracker, attempt=attempt + 1, cut=cut):  # poller thread: no waiting
            err = KafkaError(KafkaError._QUEUE_FULL, "local queue full while re-producing a refused record")
            self._on_delivery(tracker, message.key, err)
        return True

    def _note_truncated(self, limit: SizeLimit, message: OutboundMessage) -> None:
        self._metrics.records_truncated.labels(limit).inc()
        log.warning(
            "conversation %s was %s bytes, over %s: published a truncated version of %d bytes "
            "(header genesys.truncated=true)",
            message.key,
            message.headers.get(HEADER_ORIGINAL_BYTES, "?"),
            self._limits.text(limit),
            len(message.value),
            extra={"conversation_id": message.key, "limit": limit},
        )

    def _loop_enqueue_lock(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        if self._enqueue_lock is None or self._enqueue_lock[0] is not loop:
            self._enqueue_lock = (loop, asyncio.Lock())
        return self._enqueue_lock[1]

    # --- errors ----------------------------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        """librdkafka client-level error (poller thread): fatal ones are latched, others logged."""
        if err.fatal() or err.code() == KafkaError._FATAL:
            self._latch_fatal(f"{err.name()}: {err.str()}")
            return
        failure = classify_client_error(err)
        text = self._redactor.redact(f"{err.name()}: {err.str()}")
        if failure is not None:
            self._watch.note(failure, text)
        suppressed = self._error_log.admit(err.name())
        if suppressed is None:
            return
        more = f" ({suppressed} similar suppressed)" if suppressed else ""
        if failure is not None:
            log.warning("%s (librdkafka keeps retrying): %s%s", self._watch.message(failure), text, more)
            return
        log.warning("Kafka client error (retrying until delivery.timeout.ms): %s%s", text, more)

    def _latch_fatal(self, reason: str) -> None:
        with self._lock:
            first = self._fatal_reason is None
            if first:
                self._fatal_reason = reason
                self.state = PublisherState.FAILED
            pending, self._pending = list(self._pending), set()
        if first:
            log.error("Kafka producer failed fatally: %s", reason)
        for tracker in pending:
            tracker.fail(self._fatal_error())

    def _fatal_error(self) -> DeliveryError:
        return DeliveryError(
            "the Kafka producer failed fatally and cannot continue", kafka_error=self._fatal_reason
        )

    def _raise_if_unusable(self) -> None:
        if self._fatal_reason is not None:
            raise self._fatal_error()
        if self.state is PublisherState.CLOSED:
            raise DeliveryError("the Kafka publisher is closed")

    # --- lifecycle and checks ----------------------------------------------------------------------
    def _create_producer(self, settings: Mapping[str, SettingValue], factory: ProducerFactory) -> Producer:
        config: dict[str, Any] = {
            **settings,
            "error_cb": self._on_error,
            "logger": ClientLogRelay(self._clock),
        }
        try:
            return factory(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError([f"kafka: {describe_rejection(exc, settings)}"]) from None

    def _poll_loop(self) -> None:
        """Serve delivery reports and client errors until close(); keep the queue gauge current."""
        while not self._stop.is_set():
            try:
                self._producer.poll(self._poll_interval_s)
            except Exception as exc:  # noqa: BLE001 - a callback bug must not silently stop all acks
                self._latch_fatal(f"delivery callback failed: {exc!r}")
                return
            self._metrics.kafka_queue_messages.set(len(self._producer))

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def queue_length(self) -> int:
        """librdkafka's out-queue: messages queued or in flight, plus unserved reports (sets the gauge)."""
        length = len(self._producer)
        self._metrics.kafka_queue_messages.set(length)
        return length

    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for everything queued to be answered; returns the messages still queued."""
        if self.state is PublisherState.CLOSED:
            raise DeliveryError("the Kafka publisher is closed")
        remaining = int(self._producer.flush(timeout_s))
        self._metrics.kafka_queue_messages.set(remaining)
        self._raise_if_unusable()  # a fatal error latched while flushing
        return remaining

    def verify_topic(self, timeout_s: float = 30.0) -> None:
        """Startup check: the cluster answers within `timeout_s` and the topic exists, else DeliveryError.

        Raises KafkaConnectionError: at once (within about a second) when librdkafka reports rejected
        SASL credentials or a failed TLS handshake, else after `timeout_s` without metadata.
        """
        self._raise_if_unusable()
        metadata = self._probe.metadata(self._producer, timeout_s)
        topic = metadata.topics.get(self._topic)
        error = None if topic is None else topic.error
        if topic is not None and error is None and topic.partitions:
            if self._limits.topic_bytes is None:
                self._limits.topic_bytes = self._probe.max_message_bytes(
                    timeout_s, self._limits.producer_bytes
                )
            return
        if error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise DeliveryError(
                f"topic {self._topic!r} does not exist on the Kafka cluster at {self._watch.bootstrap}: "
                "create it, or fix kafka.topic (the connector never creates topics)"
            )
        raise DeliveryError(
            f"topic {self._topic!r} is not usable", kafka_error=f"{error.name()}: {error.str()}"
        )

    def check_ready(self, timeout_s: float = 5.0) -> bool:
        """For /readyz: the producer is healthy and the topic's metadata answers within `timeout_s`."""
        try:
            self.verify_topic(timeout_s)
        except DeliveryError:
            return False
        return True

    def close(self, timeout_s: float = 30.0) -> int:
        """Flush up to `timeout_s`, purge what is left (failing its batches), stop polling. Idempotent.

        Returns how many messages were still unacknowledged at the deadline (0 on a clean close).
        """
        if self.state is PublisherState.CLOSED:
            return 0
        remaining = int(self._producer.flush(timeout_s))
        if remaining:
            log.warning("closing the Kafka producer with %d unacknowledged message(s)", remaining)
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.poll(0)  # serve the purge failures: their batches resolve as failed
        self._stop.set()
        self._poller.join()
        with self._lock:
            self.state = PublisherState.CLOSED
            pending, self._pending = list(self._pending), set()
        for tracker in pending:
            tracker.fail(DeliveryError("the Kafka publisher was closed before the batch was acknowledged"))
        self._producer.close()
        self._metrics.kafka_queue_messages.set(0)
        return remaining

    def __enter__(self) -> KafkaPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
