"""What the startup check asks the cluster about the topic: its metadata, and its `max.message.bytes`.

The metadata is asked for in slices of about a second, so that a failure no retry can fix, reported
meanwhile by the producer's poller thread into the `ConnectionWatch`, ends the wait early (a
misconfigured secured cluster fails within seconds instead of looking "unreachable" after the timeout).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # the package's stubs miss the re-export
    AdminClient,
    ConfigResource,
)

from connector.clock import Clock
from connector.errors import KafkaConnectionError
from connector.kafka.client_logs import ClientLogRelay
from connector.kafka.connection import ConnectionWatch
from connector.librdkafka import SettingValue, describe_kafka_exception
from connector.secrets import Redactor

log = logging.getLogger(__name__)

AdminFactory = Callable[[dict[str, Any]], AdminClient]

#: Settings an AdminClient needs to reach the cluster (to read the topic's max.message.bytes).
_CONNECTION_PREFIXES = ("bootstrap.", "client.id", "security.", "sasl.", "ssl.", "socket.", "broker.")
#: Metadata is asked for in slices this long, checking for a non-transient failure after each.
_METADATA_SLICE_S = 1.0


class TopicProbe:
    """The topic's metadata through the producer, and its configuration through an AdminClient."""

    def __init__(
        self,
        topic: str,
        settings: Mapping[str, SettingValue],
        *,
        watch: ConnectionWatch,
        redactor: Redactor,
        clock: Clock,
        admin_factory: AdminFactory,
    ) -> None:
        self._topic = topic
        self._admin_settings = {k: v for k, v in settings.items() if k.startswith(_CONNECTION_PREFIXES)}
        self._watch = watch
        self._redactor = redactor
        self._clock = clock
        self._admin_factory = admin_factory

    def metadata(self, producer: Producer, timeout_s: float) -> Any:
        """The topic's metadata within `timeout_s`, else KafkaConnectionError (early when the watch saw a
        non-transient failure, with what to check; else "unreachable" with librdkafka's last error)."""
        slices = max(1, math.ceil(timeout_s / _METADATA_SLICE_S))
        last = "no answer"
        for _ in range(slices):
            try:
                metadata = producer.list_topics(topic=self._topic, timeout=timeout_s / slices)
            except KafkaException as exc:
                last = self._redactor.redact(describe_kafka_exception(exc))
                failed = self._watch.error()
                if failed is not None:
                    raise failed from None
                continue
            self._watch.clear()  # it worked: an earlier failure is no longer current
            return metadata
        raise KafkaConnectionError(
            f"Kafka is unreachable at {self._watch.bootstrap}: no metadata within {timeout_s:g} s "
            "(check kafka.bootstrap_servers, the network and the security settings)",
            reason="unreachable",
            kafka_error=last,
        )

    def max_message_bytes(self, timeout_s: float, producer_bytes: int) -> int | None:
        """The topic's effective `max.message.bytes` (to name it in errors, and to truncate to it).

        Best effort: a client without the right to describe topic configs gets None (then a record the
        broker refuses is halved until it fits; see `SizeLimits.replacement`).
        """
        resource = ConfigResource(ConfigResource.Type.TOPIC, self._topic)
        try:
            admin = self._admin_factory({**self._admin_settings, "logger": ClientLogRelay(self._clock)})
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
            producer_bytes,
        )
        return limit
