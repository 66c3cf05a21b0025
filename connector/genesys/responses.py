"""HTTP outcomes mapped onto `connector.errors`, only here: `classify_response` (responses) and
`classify_transport_error` (no response), and `retry_reason` for the retry metric (`GenesysClient` calls
them on every request). The pagination cap (400 "Pagination may not exceed...") is not an error but a
signal to the pager, `PaginationCapReached`, raised here too; a 404 on a job id and a 429 "concurrent
jobs" on a submission are the job's own outcome (`JobGoneError`, `JobCapacityError`).
"""

from __future__ import annotations

import email.utils
from typing import Any

import httpx
import orjson

from connector.errors import (
    ApiContractError,
    ApiError,
    AuthenticationError,
    JobCapacityError,
    JobGoneError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamUnavailableError,
    describe_exception,
)
from connector.genesys.endpoints import (
    JOB_DELETE_ENDPOINT,
    JOB_RESULTS_ENDPOINT,
    JOB_STATUS_ENDPOINT,
    JOBS_SUBMIT_ENDPOINT,
)
from connector.genesys.pagination import PaginationCapReached

#: Endpoints addressing one job by id: a 404 there means the job (or its results) is gone.
_JOB_ID_ENDPOINTS = {JOB_STATUS_ENDPOINT, JOB_RESULTS_ENDPOINT, JOB_DELETE_ENDPOINT}
#: How a 429 "too many concurrent jobs" differs from the rate limit (INFERRED, genesys-api.md §2.5: the
#: simulator's code, and the words of its message); any other 429 on a submission is the rate limit.
_JOB_CAP_CODE = "too.many.requests.jobs"
_JOB_CAP_TEXT = "concurrent jobs"
CORRELATION_HEADER = "ININ-Correlation-Id"
_PAGINATION_CAP_TEXT = "pagination may not exceed"
_RETRIABLE_STATUSES = {408, 500, 502, 503, 504}


def classify_response(response: httpx.Response, *, endpoint: str) -> Any:
    """Return the parsed JSON body of a successful response; raise the matching error otherwise.

    2xx with a JSON body -> the body. 2xx with a truncated/non-JSON body -> UpstreamUnavailableError
    ("bad_body"). 429 -> RateLimitedError (Retry-After, else inin-ratelimit-reset). 408/5xx (HTML error pages
    included) -> UpstreamUnavailableError ("408"/"5xx"). 400 "Pagination may not exceed..." ->
    PaginationCapReached (a signal to the pager, not an error). 401 -> AuthenticationError. 403 ->
    PermissionDeniedError. Other statuses -> ApiContractError with Genesys' ErrorBody message.
    """
    status = response.status_code
    correlation_id = response.headers.get(CORRELATION_HEADER)
    if 200 <= status < 300:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailableError(
                "response body is not valid JSON (truncated?)",
                reason="bad_body",
                status=status,
                correlation_id=correlation_id,
                endpoint=endpoint,
            ) from None
    message, code, context_id = _error_body(response)
    ctx: dict[str, Any] = {
        "status": status,
        "code": code,
        "correlation_id": correlation_id or context_id,
        "endpoint": endpoint,
    }
    if status == 429 and endpoint == JOBS_SUBMIT_ENDPOINT and _is_job_cap(code, message):
        raise JobCapacityError(message or "too many concurrent jobs", **ctx)
    if status == 404 and endpoint in _JOB_ID_ENDPOINTS:
        raise JobGoneError(message or "job not found", **ctx)
    if status == 429:
        retry_after = retry_after_s(response.headers)
        raise RateLimitedError(message or "rate limited", retry_after_s=retry_after, **ctx)
    if status in _RETRIABLE_STATUSES or status >= 500:
        reason = "408" if status == 408 else "5xx"
        raise UpstreamUnavailableError(message or f"HTTP {status}", reason=reason, **ctx)
    if status == 400 and _PAGINATION_CAP_TEXT in (message or "").lower():
        raise PaginationCapReached(message or "pagination cap")
    if status == 401:
        raise AuthenticationError(message or "authentication required", **ctx)
    if status == 403:
        raise PermissionDeniedError(
            f"the OAuth client lacks the permission {PermissionDeniedError.permission} "
            f"(Genesys said: {message or 'forbidden'})",
            **ctx,
        )
    raise ApiContractError(f"Genesys rejected the request: {message or f'HTTP {status}'}", **ctx)


def _is_job_cap(code: str | None, message: str | None) -> bool:
    """A 429 on a job submission that is the concurrent-jobs cap, not the request rate limit."""
    return code == _JOB_CAP_CODE or _JOB_CAP_TEXT in (message or "").lower()


def classify_transport_error(exc: httpx.RequestError, *, endpoint: str) -> UpstreamUnavailableError:
    """No (complete) response: timeouts, refused/reset connections, protocol errors, undecodable bodies."""
    if isinstance(exc, httpx.TimeoutException):
        reason = "timeout"
    elif isinstance(exc, httpx.DecodingError):
        reason = "bad_body"
    else:
        reason = "connection"
    return UpstreamUnavailableError(describe_exception(exc), reason=reason, endpoint=endpoint)


def retry_reason(error: ApiError) -> str:
    """`reason` label of `api_retries_total` for a retried failure: `429`, or the unavailability's reason
    (`5xx`, `408`, `timeout`, `connection`, `bad_body`); the 401 refresh-and-retry counts as `401`."""
    if isinstance(error, RateLimitedError):
        return "429"
    if isinstance(error, UpstreamUnavailableError):
        return error.reason
    return type(error).__name__


def _error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """`message`, `code`, `contextId` of a Genesys ErrorBody (None when the body is not one, e.g. HTML)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    message = body.get("message") or body.get("error_description") or body.get("description")
    code, context = body.get("code") or body.get("error"), body.get("contextId")
    return (
        str(message)[:500] if message is not None else None,
        str(code) if code is not None else None,
        str(context) if context is not None else None,
    )


def retry_after_s(headers: httpx.Headers) -> float | None:
    """Retry-After (seconds or HTTP date), else inin-ratelimit-reset; None when neither is usable."""
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
            sent = email.utils.parsedate_to_datetime(headers.get("date", value))
            return max(0.0, (when - sent).total_seconds())
        except (TypeError, ValueError):
            pass
    reset = headers.get("inin-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset))
        except ValueError:
            return None
    return None
