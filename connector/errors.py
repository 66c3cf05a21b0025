"""Every exception the connector raises, grouped by what the caller does about it.

```
ConnectorError
├── ConfigError                 bad or missing settings; raised before anything connects; exit code 2
├── FatalError                  stop the worker, keep the checkpoint as it is, exit 1 (the pod restarts)
│   ├── AuthenticationError     bad client id/secret, or 401 again right after a fresh token
│   ├── PermissionDeniedError   403: the OAuth client lacks a permission (named in .permission)
│   ├── ApiContractError        400/404/unexpected response shape that retrying cannot fix
│   ├── DeliveryError           Kafka refused a message for good (fatal producer error, topic missing...)
│   │   └── KafkaConnectionError  the startup check cannot reach Kafka: .reason authentication/tls/unreachable
│   ├── CheckpointError         checkpoint unreadable, corrupt, newer format, or directory locked/unwritable
│   │   └── StateDirectoryFullError  the state volume is full or over quota: not corruption, free space
│   ├── JobFailedError          an async job span FAILED again and again (jobs.max_failures); nothing skipped
│   └── BrokerError             the embedded Kafka broker (tests, demo) could not be fetched or started
├── JobError                    an async job's own outcome, handled by the job runner alone (it resubmits
│   │                           or waits); never seen by the retry policy (connector.genesys.jobs)
│   ├── JobGoneError            404 on a job: expired (results deleted) or unknown: submit a new job
│   └── JobCapacityError        429 "maximum number of concurrent jobs": wait for one to finish, submit again
└── RetriableError              try the same work again later: the loop retries the pass from its last
    │                           acked page (a window is never skipped), the startup check waits it out
    ├── RateLimitedError        429 (.retry_after_s): the client waits it out in place, costs no attempt
    ├── UpstreamUnavailableError 5xx, 408, timeouts, resets, bad bodies (.reason): the client backs off and
    │                           tries again in place, up to genesys.max_attempts
    ├── RetriesExhaustedError   the client gave up on one request after max_attempts (.last)
    └── BatchNotDelivered       Kafka did not acknowledge every message of a page (.page_number, .failures)
```

The one policy for *how long* to wait before trying again is `connector.retry.RetryPolicy` (requests,
token requests, startup checks, pass retries). HTTP status codes are mapped onto this tree in exactly one
place, `connector.genesys.responses.classify_response`. Control flow is not an error: Genesys' 400 "Pagination
may not exceed 100000 results" becomes `connector.genesys.pagination.PaginationCapReached`, a signal the
pager catches to split the window, outside this tree so no error handler can mistake it for a failure.

Errors carry their context as attributes (status, correlation id, window...) so logs and metrics can use
them without parsing messages. No error message may contain a secret: build messages from ids, statuses
and Genesys' own ErrorBody text only.
"""

from __future__ import annotations

import errno
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only: errors.py imports nothing of the connector at run time
    from connector.state.progress import PassKey


class ExitCode(IntEnum):
    """Process exit codes of every command (`run`, `check-config`, `status`...), one per error branch."""

    OK = 0  #: stopped cleanly, or a bounded run finished
    FATAL = 1  #: a FatalError (or a bug) stopped the worker
    CONFIG = 2  #: a ConfigError: bad or missing settings, or bad command-line input
    MISSING = 1  #: `verify`: Genesys has conversations the topic (or the ledger) lacks
    UNVERIFIED = 3  #: `verify`: Genesys or Kafka could not be read, so nothing was concluded


class ConnectorError(Exception):
    """Root of every error raised by the connector."""


class ConfigError(ConnectorError):
    """Configuration is invalid. `problems` holds one human-readable line per wrong field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class FatalError(ConnectorError):
    """The connector cannot continue; the checkpoint is left as it is so a restart resumes safely.

    Retrying cannot fix these (rejected credentials, a missing permission, a refused message, an unusable
    checkpoint): the worker stops and exits 1 (`ExitCode.FATAL`).
    """


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


class BrokerError(FatalError):
    """The embedded Kafka broker (`connector.testbed.broker`: tests, demo) could not be fetched or started."""


class RetriableError(ConnectorError):
    """Transient failure: the same work may succeed if tried again later, so it is, never skipped.

    The main loop retries a failed pass later (`connector.app`, a plain isinstance on this class); the
    startup check waits and checks again (`connector.service`); the client retries the request-level
    subclasses (429, unavailable) in place first. How long each waits: `connector.retry.RetryPolicy`.
    """


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


class RetriesExhaustedError(RetriableError):
    """The client gave up on one request after `genesys.max_attempts` failures; `last` is the final one.

    Retriable, one level up: the loop retries the whole pass later from its last acked page, the startup
    check checks again later. Only the *request* gave up; the work is never skipped.
    """

    def __init__(self, message: str, *, last: BaseException | None = None) -> None:
        self.last = last
        super().__init__(message if last is None else f"{message}: {last}")


class BatchNotDelivered(RetriableError):
    """Kafka did not acknowledge every message of a page; the pass resumes from that page later.

    `key` is the pass (a `connector.state.progress.PassKey`, None when following open conversations),
    `failures` the librdkafka error of each undelivered message.
    """

    def __init__(self, key: PassKey | None, page_number: int, failures: list[str]) -> None:
        self.key = key
        self.page_number = page_number
        self.failures = failures
        sample = "; ".join(sorted(set(failures))[:3])
        super().__init__(f"{len(failures)} message(s) of page {page_number} not delivered: {sample}")


class JobError(ConnectorError):
    """An async details job answered with its own outcome; `connector.genesys.jobs` decides what next.

    Not retriable by the client: resubmitting (a new job id) or waiting for a job slot is a decision about
    the job, not about the HTTP request, so the client raises these at once.
    """


class JobGoneError(JobError, ApiError):
    """404 on a job id: its results expired and were deleted, or the id is unknown. Submit a new job."""


class JobCapacityError(JobError, ApiError):
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
