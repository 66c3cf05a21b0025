"""`KafkaPublisher`: the confluent-kafka producer, its settings, and delivery tracking by batch.

The message format itself (key, value, headers, `content_hash`, `build_message`) lives in
`connector.records`; this module adds the `connector.version` header and sends the messages.
`producer_settings` maps the `kafka` config section onto librdkafka settings.

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
import contextlib
import enum
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from connector.clock import Clock, SystemClock
from connector.errors import ConfigError, DeliveryError
from connector.metrics import ConnectorMetrics
from connector.records import HEADER_VERSION, OutboundMessage
from connector.secrets import MASK, is_secret_name, mask_settings

log = logging.getLogger(__name__)

SettingValue = str | int | float | bool
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Keys `kafka.extra` may not override: the delivery guarantee depends on them.
ENFORCED_SETTINGS: Mapping[str, SettingValue] = {"enable.idempotence": True, "acks": "all"}
# Keys the publisher sets itself when it creates the producer (its callbacks): never from `kafka.extra`.
PUBLISHER_SETTINGS = ("error_cb", "logger", "on_delivery", "stats_cb", "throttle_cb", "oauth_cb")
_ERROR_LOG_INTERVAL_S = 30.0
_POLL_INTERVAL_S = 0.1
_BUFFER_WAIT_S = 0.05


# --- producer settings ---------------------------------------------------------------------------


class SecretLike(Protocol):
    """pydantic.SecretStr or anything else that hides its value until asked."""

    def get_secret_value(self) -> str: ...


class KafkaSettingsLike(Protocol):
    """The `kafka` config section as `producer_settings` reads it (connector.config's model fits)."""

    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str | None: ...
    @property
    def sasl_username(self) -> str | None: ...
    @property
    def sasl_password(self) -> SecretLike | None: ...
    @property
    def ssl_ca_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_certificate_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_key_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_key_password(self) -> SecretLike | None: ...
    @property
    def compression_type(self) -> str: ...
    @property
    def linger_ms(self) -> int: ...
    @property
    def queue_max_messages(self) -> int: ...
    @property
    def queue_max_kbytes(self) -> int: ...
    @property
    def delivery_timeout_ms(self) -> int: ...
    @property
    def message_max_bytes(self) -> int: ...
    @property
    def extra(self) -> Mapping[str, SettingValue]: ...


def _sasl_settings(cfg: KafkaSettingsLike, protocol: str) -> dict[str, SettingValue]:
    mechanism = (cfg.sasl_mechanism or "").upper()
    username = cfg.sasl_username or ""
    password = cfg.sasl_password.get_secret_value() if cfg.sasl_password is not None else ""
    problems = []
    if mechanism not in SASL_MECHANISMS:
        problems.append(f"kafka.sasl_mechanism: must be one of {SASL_MECHANISMS} with {protocol}")
    if not username:
        problems.append(f"kafka.sasl_username: required with {protocol}")
    if not password:
        problems.append(f"kafka.sasl_password: required with {protocol}")
    if problems:
        raise ConfigError(problems)
    return {"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password}


def _security_settings(cfg: KafkaSettingsLike) -> dict[str, SettingValue]:
    protocol = cfg.security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            [f"kafka.security_protocol: {cfg.security_protocol!r} is not one of {SECURITY_PROTOCOLS}"]
        )
    out: dict[str, SettingValue] = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        out.update(_sasl_settings(cfg, protocol))
    for key, location in (
        ("ssl.ca.location", cfg.ssl_ca_location),
        ("ssl.certificate.location", cfg.ssl_certificate_location),
        ("ssl.key.location", cfg.ssl_key_location),
    ):
        if location is not None:
            out[key] = os.fspath(location)
    if cfg.ssl_key_password is not None:
        out["ssl.key.password"] = cfg.ssl_key_password.get_secret_value()
    return out


def producer_settings(cfg: KafkaSettingsLike) -> dict[str, SettingValue]:
    """librdkafka settings for the `kafka` config section: reliable (idempotent, acks=all) by construction.

    `extra` is applied last, except that it cannot turn off idempotence or acks=all (ConfigError).
    Topics are never auto-created by the producer: a missing topic is a configuration error.
    """
    settings: dict[str, SettingValue] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": cfg.client_id,
        **_security_settings(cfg),
        "compression.type": cfg.compression_type,
        "linger.ms": cfg.linger_ms,
        "queue.buffering.max.messages": cfg.queue_max_messages,
        "queue.buffering.max.kbytes": cfg.queue_max_kbytes,
        "delivery.timeout.ms": cfg.delivery_timeout_ms,
        "message.max.bytes": cfg.message_max_bytes,
        "partitioner": "murmur2_random",  # Java-client compatible key -> partition mapping
        "allow.auto.create.topics": False,
        **ENFORCED_SETTINGS,
    }
    problems = [
        f"kafka.extra.{key}: cannot override {key}={ENFORCED_SETTINGS[key]!r} (delivery guarantee)"
        for key, value in cfg.extra.items()
        if key in ENFORCED_SETTINGS and str(value).lower() not in (str(ENFORCED_SETTINGS[key]).lower(), "-1")
    ]
    problems += [
        f"kafka.extra.{key}: set by the connector itself, cannot be configured"
        for key in cfg.extra
        if key in PUBLISHER_SETTINGS
    ]
    if problems:
        raise ConfigError(problems)
    settings.update(cfg.extra)
    return settings


def check_producer_settings(cfg: KafkaSettingsLike) -> None:
    """Everything `producer_settings` and librdkafka would reject at `run`, found without connecting.

    librdkafka validates every property (unknown names, bad values) when a producer is created. The probe
    has no `bootstrap.servers` (it would start connecting) and no file locations (it checks the settings,
    not the machine: a CA file mounted only in the pod must not fail a check elsewhere), and is closed at
    once. Raises ConfigError with one line per problem; secret values never appear in it.
    """
    settings = producer_settings(cfg)
    probe = {
        key: value
        for key, value in settings.items()
        if key != "bootstrap.servers" and key not in _FILE_SETTINGS
    }
    try:
        producer = Producer({**probe, "logger": _SILENT})
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError([f"kafka: {_rejection(exc, settings)}"]) from None
    producer.close()


#: librdkafka properties naming files it opens when a producer is created.
_FILE_SETTINGS = frozenset(
    {
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.crl.location",
        "ssl.keystore.location",
        "ssl.engine.location",
    }
)
_SILENT = logging.getLogger(__name__ + ".probe")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def _rejection(exc: Exception, settings: Mapping[str, SettingValue]) -> str:
    """librdkafka's reason for refusing `settings`, with any secret value masked."""
    text = _describe(exc) if isinstance(exc, KafkaException) else str(exc)
    for key, value in settings.items():
        if is_secret_name(key) and str(value):
            text = text.replace(str(value), MASK)
    return f"the producer settings were rejected: {text.strip()}"


def is_secret_setting(key: str) -> bool:
    """True for librdkafka keys whose values are credentials (never logged): `connector.secrets`' rule."""
    return is_secret_name(key)


def redacted(settings: Mapping[str, object]) -> dict[str, object]:
    """A copy of producer settings safe to log: credential values replaced by `***`."""
    return mask_settings(settings)


# --- delivery tracking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFailure:
    """One message Kafka did not acknowledge: its key and librdkafka's error."""

    key: str
    code: str
    error: str


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


class _ClientLogRelay:
    """librdkafka's own log lines (served by poll) into `connector.publisher.librdkafka`.

    Throttled per facility, and capped at WARNING: a broker that is down makes librdkafka log every
    reconnect at ERROR level, while the real outcome arrives as a delivery report or a fatal error.
    """

    def __init__(self, clock: Clock) -> None:
        self._logger = logging.getLogger(__name__ + ".librdkafka")
        self._throttle = _LogThrottle(clock)

    def log(self, level: int, msg: str, *args: object) -> None:
        if self._throttle.admit(str(args[0]) if args else msg) is not None:
            self._logger.log(min(level, logging.WARNING), msg, *args)


def _describe(exc: KafkaException) -> str:
    """`CODE: text` of the KafkaError inside a KafkaException."""
    err = exc.args[0] if exc.args else None
    return f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(exc)


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
    ) -> None:
        self._topic = topic
        self._bootstrap = str(settings.get("bootstrap.servers", "?"))
        self._metrics = metrics
        self._version = version.encode("utf-8")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._poll_interval_s = poll_interval_s
        self._buffer_wait_s = buffer_wait_s
        self._lock = threading.Lock()
        self._pending: set[_BatchTracker] = set()
        self._fatal_reason: str | None = None
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

    def _produce(self, message: OutboundMessage, tracker: _BatchTracker) -> bool:
        """Hand one message to librdkafka; False when its queue is full (BufferError)."""
        headers: list[tuple[str, str | bytes | None]] = [
            (name, value.encode("utf-8")) for name, value in message.headers.items()
        ]
        headers.append((HEADER_VERSION, self._version))
        key = message.key

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            self._on_delivery(tracker, key, err)

        try:
            self._producer.produce(
                self._topic, value=message.value, key=key, headers=headers, on_delivery=on_delivery
            )
        except BufferError:
            return False
        except KafkaException as exc:  # refused before queueing (e.g. MSG_SIZE_TOO_LARGE): fails now
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            self._on_delivery(tracker, key, err, fallback=str(exc))
        return True

    def _on_delivery(
        self, tracker: _BatchTracker, key: str, err: KafkaError | None, *, fallback: str = ""
    ) -> None:
        """Delivery report (poller thread): count the outcome, resolve the batch after its last one."""
        failure = None
        if err is not None or fallback:
            code, text = (err.name(), err.str()) if err is not None else ("_PRODUCE", fallback)
            failure = DeliveryFailure(key=key, code=code, error=text)
            self._metrics.kafka_delivery_errors.inc()
            if err is not None and err.fatal():
                self._latch_fatal(f"{code}: {text}")
        with self._lock:
            complete = tracker.record(failure)
        if complete:
            tracker.resolve()

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
        suppressed = self._error_log.admit(err.name())
        if suppressed is None:
            return
        more = f" ({suppressed} similar suppressed)" if suppressed else ""
        log.warning(
            "Kafka client error (retrying until delivery.timeout.ms): %s: %s%s", err.name(), err.str(), more
        )

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
            raise ConfigError([f"kafka: {_rejection(exc, settings)}"]) from None

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
        """Startup check: the cluster answers within `timeout_s` and the topic exists, else DeliveryError."""
        self._raise_if_unusable()
        try:
            metadata = self._producer.list_topics(topic=self._topic, timeout=timeout_s)
        except KafkaException as exc:
            raise DeliveryError(
                f"Kafka is unreachable at {self._bootstrap}: no metadata within {timeout_s:g} s "
                "(check kafka.bootstrap_servers, the network and the security settings)",
                kafka_error=_describe(exc),
            ) from None
        topic = metadata.topics.get(self._topic)
        error = None if topic is None else topic.error
        if topic is not None and error is None and topic.partitions:
            return
        if error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise DeliveryError(
                f"topic {self._topic!r} does not exist on the Kafka cluster at {self._bootstrap}: "
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
