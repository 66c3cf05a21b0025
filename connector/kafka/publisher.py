"""`KafkaPublisher`: the confluent-kafka producer, its settings, and delivery tracking by batch.

The message format itself (key, value, headers, `content_hash`, `build_message`) lives in
`connector.kafka.records`; this module adds the `connector.version` header and sends the messages.
`producer_settings` maps the `kafka` config section onto librdkafka settings.

Delivery rule: `await publisher.publish(batch)` returns only once Kafka has answered for EVERY message of
the batch, with a `BatchResult` (acked count, failed messages). The caller advances its checkpoint only
for batches whose result is `ok`; a failed batch means "replay the window pass". Fatal producer errors
(`KafkaError.fatal()`, e.g. an idempotence sequence failure) are latched: pending and later calls raise
`DeliveryError` and the connector must exit. Non-fatal client errors (broker down, transport) are only
logged, rate-limited: librdkafka keeps retrying until `delivery.timeout.ms`, after which the affected
messages fail their batch.

Connecting: `verify_topic` (the startup check) waits for the cluster's metadata, but ends that wait as soon
as librdkafka reports a failure no retry can fix - SASL credentials rejected, a TLS handshake failed - with
a `KafkaConnectionError` saying which settings to check, so a misconfigured secured cluster fails within
seconds instead of looking "unreachable" after the full timeout.

Ordering: messages are produced in call order, and whole batches are enqueued one after another in the
order `publish()` was called (a batch waiting for room in the local queue holds back later batches). The
idempotent producer keeps that order per partition, and one key always maps to one partition, so the
versions of a conversation reach Kafka in the order they were published.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # the package's stubs miss the re-export
    AdminClient,
    ConfigResource,
)

from connector.clock import Clock, SystemClock
from connector.errors import ConfigError, DeliveryError, KafkaConnectionError
from connector.kafka.oversized import (
    HEADER_ORIGINAL_BYTES,
    OversizedPolicy,
    SizeLimit,
    size_margin,
    truncated_message,
    wire_size,
)
from connector.kafka.records import HEADER_VERSION, OutboundMessage
from connector.librdkafka import (
    SettingValue,
    describe_kafka_exception,
    describe_rejection,
    redacted,
)
from connector.metrics import ConnectorMetrics
from connector.secrets import is_secret_name

log = logging.getLogger(__name__)

# Keys `kafka.extra` may not override: the delivery guarantee depends on them.
# Keys the publisher sets itself when it creates the producer (its callbacks): never from `kafka.extra`.
_ERROR_LOG_INTERVAL_S = 30.0
_POLL_INTERVAL_S = 0.1
_BUFFER_WAIT_S = 0.05
#: librdkafka's codes for "too large" (10: the producer's own refusal and the broker's; 18: the broker's).
_SIZE_ERRORS = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)
#: A message refused for its size is re-produced (reduced) at most this many times.
_MAX_SIZE_ATTEMPTS = 3
#: Settings an AdminClient needs to reach the cluster (to read the topic's max.message.bytes).
_CONNECTION_PREFIXES = ("bootstrap.", "client.id", "security.", "sasl.", "ssl.", "socket.", "broker.")

# verify_topic asks for metadata in slices this long, checking for a non-transient failure after each.
_METADATA_SLICE_S = 1.0
# Text of a TLS alert the peer sent (e.g. "ssl/tls alert bad certificate": the broker refused our client
# certificate). librdkafka reports it as _TRANSPORT; a broker going away gives "unexpected eof" instead.
_TLS_ALERT_MARKER = "ssl/tls alert"


# --- delivery tracking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFailure:
    """One message Kafka did not acknowledge: its key and librdkafka's error."""

    key: str
    code: str
    error: str
    hint: str = ""  # what to do about it, when the publisher knows (e.g. which size limit to raise)


@dataclass(frozen=True)
class BatchResult:
    """Kafka's answer for a whole batch. `ok` means every message was acknowledged."""

    acked: int
    failures: tuple[DeliveryFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(eq=False)  # identity semantics: trackers live in a set
class _BatchTracker:
    """Counts the outcomes of one batch; resolves its future (in its loop) after the last one."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[BatchResult]
    total: int
    acked: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)

    def record(self, failure: DeliveryFailure | None) -> bool:
        """Count one outcome (caller holds the lock); True when the batch is complete."""
        if failure is None:
            self.acked += 1
        else:
            self.failures.append(failure)
        return self.acked + len(self.failures) >= self.total

    def resolve(self) -> None:
        result = BatchResult(acked=self.acked, failures=tuple(self.failures))
        self._call(_set_result, result)

    def fail(self, error: DeliveryError) -> None:
        self._call(_set_exception, error)

    def _call(self, fn: Callable[[asyncio.Future[BatchResult], Any], None], arg: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(fn, self.future, arg)


def _set_result(future: asyncio.Future[BatchResult], result: BatchResult) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[BatchResult], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class _LogThrottle:
    """At most one log line per key per interval; counts what it suppressed meanwhile."""

    def __init__(self, clock: Clock, interval_s: float = _ERROR_LOG_INTERVAL_S) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._seen: dict[str, tuple[float, int]] = {}

    def admit(self, key: str) -> int | None:
        """None when `key` was logged less than interval_s ago; else how many lines were suppressed."""
        now = self._clock.monotonic()
        last, suppressed = self._seen.get(key, (None, 0))
        if last is not None and now - last < self._interval_s:
            self._seen[key] = (last, suppressed + 1)
            return None
        self._seen[key] = (now, 0)
        return suppressed


#: librdkafka log lines that are expected and harmless, logged at INFO whatever librdkafka's level:
#: (facility, text in the line). A fresh broker answers the idempotent producer's first PID request with
#: "Coordinator load in progress" while its transaction coordinator loads; librdkafka retries and succeeds.
_HARMLESS_CLIENT_LOGS = (("GETPID", "Coordinator load in progress"),)


class _ClientLogRelay:
    """librdkafka's own log lines (served by poll) into `connector.kafka.publisher.librdkafka`.

    Throttled per facility, and capped at WARNING: a broker that is down makes librdkafka log every
    reconnect at ERROR level, while the real outcome arrives as a delivery report or a fatal error.
    Lines known to be harmless (`_HARMLESS_CLIENT_LOGS`) are logged at INFO.
    """

    def __init__(self, clock: Clock) -> None:
        self._logger = logging.getLogger(__name__ + ".librdkafka")
        self._throttle = _LogThrottle(clock)

    def log(self, level: int, msg: str, *args: object) -> None:
        relayed = _relay_level(level, args)
        # per facility and level: a harmless INFO line must not hold back a real warning of its facility
        if self._throttle.admit(f"{args[0] if args else msg}/{relayed}") is not None:
            self._logger.log(relayed, msg, *args)


def _relay_level(level: int, args: tuple[object, ...]) -> int:
    """The Python level of one librdkafka line; `args` are confluent-kafka's (facility, name, text)."""
    facility = str(args[0]) if args else ""
    text = " ".join(str(a) for a in args[1:])
    if any(facility == fac and needle in text for fac, needle in _HARMLESS_CLIENT_LOGS):
        return min(level, logging.INFO)
    return min(level, logging.WARNING)


@dataclass(frozen=True)
class ConnectionFailure:
    """A client error retrying cannot fix: `reason` ("authentication" or "tls") and what to check."""

    reason: str
    advice: str


def classify_client_error(err: KafkaError) -> ConnectionFailure | None:
    """The non-transient connection failure `err` reports, or None for errors worth retrying.

    _AUTHENTICATION: SASL credentials rejected. _SSL: the TLS handshake failed on our side (most often
    "certificate verify failed": the broker's certificate is not signed by kafka.ssl_ca_location).
    _TRANSPORT carrying a TLS alert: the broker refused the handshake (usually the client certificate).
    Any other _TRANSPORT (connection refused, reset, broker restarting) is transient.
    """
    code, text = err.code(), err.str()
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return ConnectionFailure(
            "authentication", "check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism"
        )
    if code == KafkaError._SSL and "certificate verify failed" in text:
        return ConnectionFailure(
            "tls",
            "the broker's certificate is not trusted: check kafka.ssl_ca_location "
            "(the CA that signed the broker's certificate)",
        )
    if code == KafkaError._SSL:
        return ConnectionFailure(
            "tls",
            "check kafka.security_protocol, kafka.ssl_ca_location and, for mutual TLS, "
            "kafka.ssl_certificate_location and kafka.ssl_key_location",
        )
    if code == KafkaError._TRANSPORT and _TLS_ALERT_MARKER in text.lower():
        return ConnectionFailure(
            "tls",
            "the broker sent a TLS alert (it refused the client certificate, or got none): check "
            "kafka.ssl_certificate_location and kafka.ssl_key_location (a certificate signed by a CA the "
            "broker trusts)",
        )
    return None


class PublisherState(enum.Enum):
    """OPEN -> CLOSED, or OPEN -> FAILED on a fatal producer error."""

    OPEN = "open"
    FAILED = "failed"
    CLOSED = "closed"


ProducerFactory = Callable[[dict[str, Any]], Producer]
AdminFactory = Callable[[dict[str, Any]], AdminClient]


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
        self._oversized: OversizedPolicy = oversized
        self._producer_limit = int(settings.get("message.max.bytes", 1_000_000))
        self._topic_limit: int | None = None  # the topic's max.message.bytes, read by verify_topic
        self._admin_settings = {k: v for k, v in settings.items() if k.startswith(_CONNECTION_PREFIXES)}
        self._admin_factory = admin_factory
        self._serial = 0
        self._latest: dict[str, int] = {}  # key -> serial of its latest produced message, while in flight
        self._bootstrap = str(settings.get("bootstrap.servers", "?"))
        self._metrics = metrics
        self._version = version.encode("utf-8")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._poll_interval_s = poll_interval_s
        self._buffer_wait_s = buffer_wait_s
        self._lock = threading.Lock()
        self._pending: set[_BatchTracker] = set()
        self._fatal_reason: str | None = None
        self._connection_failure: tuple[ConnectionFailure, str] | None = None  # (what, librdkafka's text)
        self._secrets = [str(v) for k, v in settings.items() if is_secret_name(k) and str(v)]
        self._sasl_user = str(settings.get("sasl.username", ""))
        self._sasl_mechanism = str(settings.get("sasl.mechanism", ""))
        self.state = PublisherState.OPEN
        self._enqueue_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._error_log = _LogThrottle(self._clock)
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
        tracker = _BatchTracker(loop, loop.create_future(), len(messages))
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

    async def _enqueue(self, messages: Sequence[OutboundMessage], tracker: _BatchTracker) -> None:
        for message in messages:
            while not self._produce(message, tracker):
                self._raise_if_unusable()
                self.buffer_full_waits += 1
                await asyncio.sleep(self._buffer_wait_s)  # the poller thread frees room meanwhile

    def _produce(
        self,
        message: OutboundMessage,
        tracker: _BatchTracker,
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
        tracker: _BatchTracker,
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
    def _limit_text(self, limit: SizeLimit) -> str:
        if limit == "producer":
            return f"kafka.message_max_bytes (librdkafka message.max.bytes = {self._producer_limit} bytes)"
        known = f" = {self._topic_limit} bytes" if self._topic_limit is not None else ""
        return f"the max.message.bytes of topic {self._topic!r}{known}"

    def _on_too_large(
        self, tracker: _BatchTracker, message: OutboundMessage, serial: int, limit: SizeLimit, attempt: int
    ) -> bool:
        """A message refused for its size: send a reduced one (truncate), else fail it naming the limit.

        Runs in the caller's thread for the producer's own limit (so the replacement takes the original's
        place in the produce order) and in the poller thread for the broker's. Returns False only when the
        replacement found the local queue full (the caller waits for room and tries the original again).
        """
        if self._oversized == "truncate" and attempt < _MAX_SIZE_ATTEMPTS:
            with self._lock:
                superseded = self._latest.get(message.key) != serial
            if superseded:  # a newer snapshot of this conversation was produced after it: do not overtake it
                err = KafkaError(KafkaError._STATE, "superseded by a newer snapshot while refused for size")
                self._on_delivery(tracker, message.key, err, serial=serial)
                return True
            replacement = self._replacement(message, limit)
            if replacement is not None:
                self._release_serial(message.key, serial)
                return self._send_replacement(tracker, message, replacement, limit, attempt)
        err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, f"refused by the {limit}'s size limit")
        self._on_delivery(tracker, message.key, err, serial=serial, hint=self._size_hint(message, limit))
        return True

    def _send_replacement(
        self,
        tracker: _BatchTracker,
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

    def _size_hint(self, message: OutboundMessage, limit: SizeLimit) -> str:
        """Which limit refused `message`, and what to do about it (for the fatal error's message)."""
        size = wire_size(message)
        original = message.headers.get(HEADER_ORIGINAL_BYTES)
        prefix = f"{original} bytes before truncation, {size} after; " if original else f"{size} bytes; "
        limit_text = self._limit_text(limit)
        if limit == "topic" and self._topic_limit is not None and size < self._topic_limit:
            return f"{prefix}refused with its record batch, which exceeded {limit_text}: set " + (
                "kafka.message_max_bytes at most that"
            )
        if self._oversized == "truncate":
            return f"{prefix}even its reduced form exceeds {limit_text}"
        return f"{prefix}the limit hit is {limit_text}: raise it, or set kafka.oversized_records: truncate"

    def _replacement(self, message: OutboundMessage, limit: SizeLimit) -> OutboundMessage | None:
        """What to send instead: the message itself if it fits the limit on its own, else a reduced one.

        A broker rejects a whole record batch, so a message that fits may have been rejected along with
        an oversized neighbour: it is sent again unchanged. When the topic's limit is unknown (no right to
        describe the topic), each refusal halves the target size.
        """
        size = wire_size(message)
        limit_bytes = self._producer_limit if limit == "producer" else self._topic_limit
        if limit_bytes is None:
            return truncated_message(message, size // 2)
        if limit == "topic" and size <= limit_bytes - size_margin(limit_bytes):
            return message
        return truncated_message(message, limit_bytes)

    def _note_truncated(self, limit: SizeLimit, message: OutboundMessage) -> None:
        self._metrics.records_truncated.labels(limit).inc()
        log.warning(
            "conversation %s was %s bytes, over %s: published a truncated version of %d bytes "
            "(header genesys.truncated=true)",
            message.key,
            message.headers.get(HEADER_ORIGINAL_BYTES, "?"),
            self._limit_text(limit),
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
        text = self._scrub(f"{err.name()}: {err.str()}")
        if failure is not None:
            with self._lock:
                self._connection_failure = (failure, text)
        suppressed = self._error_log.admit(err.name())
        if suppressed is None:
            return
        more = f" ({suppressed} similar suppressed)" if suppressed else ""
        if failure is not None:
            log.warning("%s (librdkafka keeps retrying): %s%s", self._failure_message(failure), text, more)
            return
        log.warning("Kafka client error (retrying until delivery.timeout.ms): %s%s", text, more)

    def _failure_message(self, failure: ConnectionFailure) -> str:
        """One line naming the cluster, the SASL user when it matters, and the settings to check."""
        if failure.reason == "authentication":
            return (
                f"Kafka at {self._bootstrap} rejected the SASL credentials of user {self._sasl_user!r} "
                f"({self._sasl_mechanism or 'no mechanism'}): {failure.advice}"
            )
        return f"TLS handshake with Kafka at {self._bootstrap} failed: {failure.advice}"

    def _scrub(self, text: str) -> str:
        """`text` with every credential of the producer settings replaced by `***`."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

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
            "logger": _ClientLogRelay(self._clock),
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
        metadata = self._topic_metadata(timeout_s)
        topic = metadata.topics.get(self._topic)
        error = None if topic is None else topic.error
        if topic is not None and error is None and topic.partitions:
            if self._topic_limit is None:
                self._topic_limit = self._read_topic_limit(timeout_s)
            return
        if error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise DeliveryError(
                f"topic {self._topic!r} does not exist on the Kafka cluster at {self._bootstrap}: "
                "create it, or fix kafka.topic (the connector never creates topics)"
            )
        raise DeliveryError(
            f"topic {self._topic!r} is not usable", kafka_error=f"{error.name()}: {error.str()}"
        )

    def _read_topic_limit(self, timeout_s: float) -> int | None:
        """The topic's effective `max.message.bytes` (to name it in errors, and to truncate to it).

        Best effort: a client without the right to describe topic configs gets None (then a record the
        broker refuses is halved until it fits; see `_replacement`).
        """
        resource = ConfigResource(ConfigResource.Type.TOPIC, self._topic)
        try:
            admin = self._admin_factory({**self._admin_settings, "logger": _ClientLogRelay(self._clock)})
            future = admin.describe_configs([resource], request_timeout=timeout_s)[resource]
            limit = int(future.result(timeout=timeout_s)["max.message.bytes"].value)
        except Exception as exc:  # noqa: BLE001 - only the error messages and truncation depend on it
            log.info("cannot read max.message.bytes of topic %r (%s): it is left unknown", self._topic, exc)
            return None
        log.info(
            "topic %r accepts record batches up to %d bytes (max.message.bytes); "
            "kafka.message_max_bytes is %d",
            self._topic,
            limit,
            self._producer_limit,
        )
        return limit

    def _topic_metadata(self, timeout_s: float) -> Any:
        """The topic's metadata, asked for in slices of about a second so that a non-transient failure
        reported meanwhile (by the poller thread, into `_connection_failure`) ends the wait early."""
        slices = max(1, math.ceil(timeout_s / _METADATA_SLICE_S))
        last = "no answer"
        for _ in range(slices):
            try:
                metadata = self._producer.list_topics(topic=self._topic, timeout=timeout_s / slices)
            except KafkaException as exc:
                last = self._scrub(describe_kafka_exception(exc))
                with self._lock:
                    found = self._connection_failure
                if found is not None:
                    failure, text = found
                    raise KafkaConnectionError(
                        self._failure_message(failure), reason=failure.reason, kafka_error=text
                    ) from None
                continue
            with self._lock:
                self._connection_failure = None  # it worked: an earlier failure is no longer current
            return metadata
        raise KafkaConnectionError(
            f"Kafka is unreachable at {self._bootstrap}: no metadata within {timeout_s:g} s "
            "(check kafka.bootstrap_servers, the network and the security settings)",
            reason="unreachable",
            kafka_error=last,
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
