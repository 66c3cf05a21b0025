"""Every exception the connector raises, grouped by what the caller does about it.

```
ConnectorError
├── ConfigError                 bad or missing settings; raised before anything connects; exit code 2
├── FatalError                  stop the loop, keep the checkpoint as it is, exit non-zero (the pod restarts)
│   ├── AuthenticationError     bad client id/secret, or 401 again right after a fresh token
│   ├── PermissionDeniedError   403: the OAuth client lacks a permission (named in .permission)
│   ├── ApiContractError        400/404/unexpected response shape that retrying cannot fix
│   ├── DeliveryError           Kafka refused a message for good (fatal producer error, topic missing...)
│   │   └── KafkaConnectionError  the startup check cannot reach Kafka: .reason authentication/tls/unreachable
│   ├── CheckpointError         checkpoint unreadable, corrupt, newer format, or directory locked/unwritable
│   │   └── StateDirectoryFullError  the state volume is full or over quota: not corruption, free space
│   ├── RetriesExhaustedError   a retriable failure that kept failing past the retry budget
│   ├── JobFailedError          an async job span FAILED again and again (jobs.max_failures); nothing skipped
│   └── BrokerError             the embedded Kafka broker (tests, demo) could not be fetched or started
├── JobError                    an async job's own outcome; the job runner handles it, the retry policy never
│   │                           sees it (connector.genesys.jobs)
│   ├── JobGoneError            404 on a job: expired (results deleted) or unknown: submit a new job
│   └── JobCapacityError        429 "maximum number of concurrent jobs": wait for one to finish, submit again
├── RetriableError              back off and try the same thing again (bounded by the retry policy)
│   ├── RateLimitedError        429; carries .retry_after_s
│   ├── UpstreamUnavailableError 5xx, 408, timeouts, connection resets, truncated or non-JSON bodies
│   ├── PaginationCapError      400 "Pagination may not exceed 100000 results": split the window instead
│   └── PublishTimeoutError     flush() left messages unacknowledged
└── SkippableError              log, count, continue
```

HTTP status codes are mapped onto this tree in exactly one place,
`connector.genesys.client.classify_response`, and the retry policy lives only in
`connector.genesys.ratelimit`. Errors carry their context as attributes (status, correlation id,
window...) so logs and metrics can use them without parsing messages. No error message may contain a
secret: build messages from ids, statuses and Genesys' own ErrorBody text only.
"""

from __future__ import annotations

import errno


class ConnectorError(Exception):
    """Root of every error raised by the connector."""


class ConfigError(ConnectorError):
    """Configuration is invalid. `problems` holds one human-readable line per wrong field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class FatalError(ConnectorError):
    """The connector cannot continue; the checkpoint is left as it is so a restart resumes safely."""


class ApiError(ConnectorError):
    """Mixin carrying what Genesys said about a failed call."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.correlation_id = correlation_id
        self.endpoint = endpoint
        parts = [message]
        if status is not None:
            parts.append(f"status={status}")
        if code:
            parts.append(f"code={code}")
        if endpoint:
            parts.append(f"endpoint={endpoint}")
        if correlation_id:
            parts.append(f"correlation_id={correlation_id}")
        super().__init__(" ".join(parts))
        self.message = message


class AuthenticationError(FatalError, ApiError):
    """The OAuth client credentials were rejected, or a fresh token was rejected again."""


class PermissionDeniedError(FatalError, ApiError):
    """403: the OAuth client's roles lack a permission this connector needs."""

    permission = "analytics:conversationDetail:view"


class ApiContractError(FatalError, ApiError):
    """Genesys answered in a way retrying cannot fix (400, 404, a body that is not the documented shape)."""


class DeliveryError(FatalError):
    """Kafka rejected a message for good, or the producer hit a fatal error."""

    def __init__(self, message: str, *, kafka_error: str | None = None) -> None:
        self.kafka_error = kafka_error
        super().__init__(message if kafka_error is None else f"{message}: {kafka_error}")


class KafkaConnectionError(DeliveryError):
    """The cluster could not be used at all: `reason` says why, so the message can say what to fix.

    "authentication" (SASL credentials rejected) and "tls" (the handshake failed: untrusted broker
    certificate, or a client certificate the broker refused) are raised as soon as librdkafka reports
    them, since retrying cannot fix them; "unreachable" only after the whole startup timeout.
    """

    def __init__(self, message: str, *, reason: str, kafka_error: str | None = None) -> None:
        self.reason = reason
        super().__init__(message, kafka_error=kafka_error)


class CheckpointError(FatalError):
    """The checkpoint directory or file cannot be used; `path` names it. The file is never modified."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(f"{message} ({path})")


class StateDirectoryFullError(CheckpointError):
    """The state directory's volume is full, over quota, or below `checkpoint.min_free_bytes`.

    Distinct from corruption on purpose: nothing must be moved aside or rebuilt (that would re-publish
    everything); the operator frees space or grows the volume and the worker resumes where it stopped.
    `operation` says what found out (the start-up check, a change-store write, a checkpoint save...).
    """

    def __init__(self, *, path: str, free_bytes: int, operation: str) -> None:
        self.path = path
        self.free_bytes = free_bytes
        self.operation = operation
        FatalError.__init__(  # not CheckpointError's "(path)" suffix: the path is in the sentence already
            self,
            f"state directory full: {free_bytes} bytes free at {path} ({operation}); "
            "free space or grow the volume",
        )


class RetriableError(ConnectorError):
    """Transient failure: the same operation may succeed if tried again later."""


class RateLimitedError(RetriableError, ApiError):
    """429 Too Many Requests. `retry_after_s` is what the server asked us to wait (None if it did not say)."""

    def __init__(self, message: str, *, retry_after_s: float | None, **kwargs: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class UpstreamUnavailableError(RetriableError, ApiError):
    """5xx, 408, timeouts, connection resets, truncated or non-JSON bodies; `reason` is a metric label."""

    def __init__(self, message: str, *, reason: str, **kwargs: object) -> None:
        self.reason = reason
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class PaginationCapError(RetriableError, ApiError):
    """400 "Pagination may not exceed 100000 results": the window must be split, not retried as is."""


class PublishTimeoutError(RetriableError):
    """flush() returned with messages still unacknowledged."""

    def __init__(self, undelivered: int) -> None:
        self.undelivered = undelivered
        super().__init__(f"{undelivered} message(s) not acknowledged by Kafka in time")


class RetriesExhaustedError(FatalError):
    """A retriable failure persisted past the retry budget; `last` is the final underlying error."""

    def __init__(self, message: str, *, last: BaseException | None = None) -> None:
        self.last = last
        super().__init__(message if last is None else f"{message}: {last}")


class JobError(ApiError):
    """An async details job answered with its own outcome; `connector.genesys.jobs` decides what next.

    Not retriable by the client: resubmitting (a new job id) or waiting for a job slot is a decision about
    the job, not about the HTTP request, so the client raises these at once.
    """


class JobGoneError(JobError):
    """404 on a job id: its results expired and were deleted, or the id is unknown. Submit a new job."""


class JobCapacityError(JobError):
    """429 on a job submission because too many jobs are running (not the request rate limit): no job was
    created; submit again once one of ours has finished."""


class JobFailedError(FatalError):
    """A job span failed again and again (FAILED, CANCELLED or stuck) past `jobs.max_failures`.

    Nothing was skipped: the span is still unread and the checkpoint is where it was. `interval` names the
    span and `error_message` is Genesys' last `errorMessage`, so the caller can split the span or stop.
    """

    def __init__(self, message: str, *, interval: str, error_message: str | None, attempts: int) -> None:
        self.interval = interval
        self.error_message = error_message
        self.attempts = attempts
        super().__init__(message)


class BrokerError(FatalError):
    """The embedded Kafka broker (`connector.testbed.broker`: tests, demo) could not be fetched or started."""


class SkippableError(ConnectorError):
    """A problem with one item that must be counted and logged but must not stop the pipeline."""


def describe_exception(exc: BaseException) -> str:
    """`Type: text` of an exception, from its causes when its own text is empty.

    Transport libraries re-raise low-level failures under their own types, often with no text (httpx's
    `ReadError` after a connection reset prints as nothing). Then the chain (`__cause__`, else
    `__context__`) is walked for the first exception that says something, and OS errors are shown with
    their errno name: `ReadError (caused by ConnectionResetError: ECONNRESET [errno 104] Connection reset by
    peer)`. Only exception types, errnos and library texts are used, never request data.
    """
    own = _exception_text(exc)
    if own:
        return f"{type(exc).__name__}: {own}"
    chain: list[str] = []
    seen = {id(exc)}
    current = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen and len(chain) < 5:
        seen.add(id(current))
        text = _exception_text(current)
        chain.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        if text:
            break
        current = current.__cause__ or current.__context__
    if not chain:
        return f"{type(exc).__name__} (no further detail from the transport)"
    return f"{type(exc).__name__} (caused by {' <- '.join(chain)})"


def _exception_text(exc: BaseException) -> str:
    """What an exception says; for an OSError with an errno, its symbolic name, number and strerror."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, "")
        return " ".join(p for p in (name, f"[errno {exc.errno}]", exc.strerror or "") if p)
    return str(exc).strip()
