"""Connection failures no retry can fix (SASL credentials rejected, a TLS handshake failed), told apart
from transient ones, and kept until the startup check asks.

librdkafka reports client errors on the poller thread and keeps retrying whatever they are; the startup
check (`KafkaPublisher.verify_topic`) waits for metadata on the caller's thread. A `ConnectionWatch` sits
between the two, so that the check ends its wait within about a second with a `KafkaConnectionError`
saying which settings to check, instead of reporting "unreachable" after the full timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError

from connector.errors import KafkaConnectionError

# Text of a TLS alert the peer sent (e.g. "ssl/tls alert bad certificate": the broker refused our client
# certificate). librdkafka reports it as _TRANSPORT; a broker going away gives "unexpected eof" instead.
_TLS_ALERT_MARKER = "ssl/tls alert"


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


class ConnectionWatch:
    """The latest non-transient failure reported (poller thread) until a metadata request succeeds."""

    def __init__(self, settings: Mapping[str, object]) -> None:
        self.bootstrap = str(settings.get("bootstrap.servers", "?"))
        self._sasl_user = str(settings.get("sasl.username", ""))
        self._sasl_mechanism = str(settings.get("sasl.mechanism", ""))
        self._lock = threading.Lock()
        self._found: tuple[ConnectionFailure, str] | None = None  # (what, librdkafka's text, scrubbed)

    def note(self, failure: ConnectionFailure, text: str) -> None:
        with self._lock:
            self._found = (failure, text)

    def clear(self) -> None:
        """Metadata arrived: an earlier failure is no longer current."""
        with self._lock:
            self._found = None

    def error(self) -> KafkaConnectionError | None:
        """The error to raise for the failure noted since the last `clear`, if any."""
        with self._lock:
            found = self._found
        if found is None:
            return None
        failure, text = found
        return KafkaConnectionError(self.message(failure), reason=failure.reason, kafka_error=text)

    def message(self, failure: ConnectionFailure) -> str:
        """One line naming the cluster, the SASL user when it matters, and the settings to check."""
        if failure.reason == "authentication":
            return (
                f"Kafka at {self.bootstrap} rejected the SASL credentials of user {self._sasl_user!r} "
                f"({self._sasl_mechanism or 'no mechanism'}): {failure.advice}"
            )
        return f"TLS handshake with Kafka at {self.bootstrap} failed: {failure.advice}"
