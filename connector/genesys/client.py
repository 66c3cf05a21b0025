"""`GenesysClient`: the one place that talks HTTP to Genesys Cloud (token requests included).

Every call takes the same path: `Pacer.acquire` (budget, server window, shared 429 pause) -> bearer token
-> concurrency semaphore (`max_concurrency`) -> send -> `Pacer.release` with the rate-limit headers ->
`classify_response` -> on a 429 or an unavailable upstream, the one retry policy (`connector.retry`) says
how long to wait (a 429 waits its Retry-After in the pacer's pause, for every caller, and costs no
attempt; other failures back off with full jitter) -> after `max_attempts`, `RetriesExhaustedError`.
A 401 gets exactly one token refresh and retry. Metrics: `api_requests{endpoint,code}`,
`api_request_duration_seconds{endpoint}`, `api_throttled`, `api_retry_after_seconds`, `api_retries{reason}`,
`api_inflight_requests`. Failed calls log their `ININ-Correlation-Id`; nothing logs a token or the secret,
and both (the Basic credentials and every bearer token) are reported to the injected `secrets` registry.

HTTP outcomes are mapped onto `connector.errors` only here: `classify_response` (responses) and
`classify_transport_error` (no response). The pagination cap (400 "Pagination may not exceed...") is not
an error but a signal to the pager, `PaginationCapReached`, raised here too.


Async details jobs (genesys-api.md §2) have one method per endpoint too (`submit_job`, `job_status`,
`job_results`, `delete_job`, `data_availability`); two of their answers are the job's own outcome rather
than a failed request, so they are raised at once and never retried here: a 404 on a job id
(`JobGoneError`: expired or unknown, submit a new one) and a 429 "maximum number of concurrent jobs" on a
submission (`JobCapacityError`: wait for a job to finish). `connector.genesys.jobs` runs jobs with them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import random
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from connector import __version__
from connector.clock import Clock, parse_instant
from connector.config import GenesysSettings
from connector.errors import (
    ApiContractError,
    ApiError,
    AuthenticationError,
    JobCapacityError,
    JobGoneError,
    PermissionDeniedError,
    RateLimitedError,
    RetriesExhaustedError,
    UpstreamUnavailableError,
    describe_exception,
)
from connector.genesys.auth import TokenProvider
from connector.genesys.jobstate import JobState as JobState  # re-exported: jobs.py and tests read it here
from connector.genesys.pagination import PaginationCapReached
from connector.genesys.ratelimit import Pacer
from connector.metrics import ConnectorMetrics
from connector.retry import RetryPolicy
from connector.secrets import SecretRegistry
from connector.windows import Window

log = logging.getLogger(__name__)

QUERY_PATH = "/api/v2/analytics/conversations/details/query"
MULTIGET_PATH = "/api/v2/analytics/conversations/details"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a password
#: Endpoint labels for metrics and errors (templated names, never ids).
QUERY_ENDPOINT = "details_query"
MULTIGET_ENDPOINT = "details_multiget"
TOKEN_ENDPOINT = "oauth_token"  # noqa: S105 - a metric label
#: Most ids one multi-get request carries.
MAX_IDS_PER_GET = 100
JOBS_PATH = "/api/v2/analytics/conversations/details/jobs"
JOBS_AVAILABILITY_PATH = JOBS_PATH + "/availability"
JOBS_SUBMIT_ENDPOINT = "jobs_submit"
JOB_STATUS_ENDPOINT = "job_status"
JOB_RESULTS_ENDPOINT = "job_results"
JOB_DELETE_ENDPOINT = "job_delete"
JOBS_AVAILABILITY_ENDPOINT = "jobs_availability"
#: Endpoints addressing one job by id: a 404 there means the job (or its results) is gone.
_JOB_ID_ENDPOINTS = {JOB_STATUS_ENDPOINT, JOB_RESULTS_ENDPOINT, JOB_DELETE_ENDPOINT}
#: How a 429 "too many concurrent jobs" differs from the rate limit (INFERRED, genesys-api.md §2.5: the
#: simulator's code, and the words of its message); any other 429 on a submission is the rate limit.
_JOB_CAP_CODE = "too.many.requests.jobs"
_JOB_CAP_TEXT = "concurrent jobs"
CORRELATION_HEADER = "ININ-Correlation-Id"
_PAGINATION_CAP_TEXT = "pagination may not exceed"
_RETRIABLE_STATUSES = {408, 500, 502, 503, 504}


# --------------------------------------------------------------------------------------------- classify
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
        retry_after = _retry_after_s(response.headers)
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


def _retry_after_s(headers: httpx.Headers) -> float | None:
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


# --------------------------------------------------------------------------------------------- client
@dataclass(frozen=True)
class _Request:
    endpoint: str
    method: str
    url: str
    authenticated: bool = True
    params: Mapping[str, str] | None = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    allow_empty: bool = False  # a 2xx without a body is a success (DELETE), not a truncated body


class GenesysClient:
    """Async Genesys Cloud API client: one method per endpoint, one choke point for all of them.

    Use as `async with GenesysClient(...) as client:` or call `aclose()`. `transport` lets tests plug in
    `httpx.MockTransport`; `rng` makes the backoff jitter reproducible.
    """

    def __init__(
        self,
        config: GenesysSettings,
        *,
        clock: Clock,
        metrics: ConnectorMetrics,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        pacer: Pacer | None = None,
        retry_policy: RetryPolicy | None = None,
        secrets: SecretRegistry | None = None,
    ) -> None:
        self._config = config
        self._secrets = secrets
        self._clock = clock
        self._metrics = metrics
        self._pacer = pacer or Pacer.from_config(config, clock=clock, metrics=metrics)
        self._retry = retry_policy or RetryPolicy.for_requests(config, rng=rng or random.Random())
        self._tokens = TokenProvider(
            client_id=config.client_id,
            request_token=self._request_token,
            clock=clock,
            metrics=metrics,
            secrets=secrets,
        )
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._inflight = 0
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.request_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
            ),
            transport=transport,
            headers={"User-Agent": f"genesys-kafka-connector/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )

    # ------------------------------------------------------------------------------- properties
    @property
    def pacer(self) -> Pacer:
        """The shared pacer (the app switches its share with `set_catching_up`)."""
        return self._pacer

    @property
    def tokens(self) -> TokenProvider:
        return self._tokens

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def metrics(self) -> ConnectorMetrics:
        return self._metrics

    @property
    def config(self) -> GenesysSettings:
        return self._config

    # ------------------------------------------------------------------------------- endpoints
    async def query_details(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/v2/analytics/conversations/details/query; returns the response object.

        The result always has `conversations` (a list, empty past the last page) and `totalHits` (or None).
        """
        result = await self._call(
            _Request(
                QUERY_ENDPOINT,
                "POST",
                self._config.api_base_url + QUERY_PATH,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        )
        return _check_query_shape(result, QUERY_ENDPOINT)

    async def get_conversations(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """GET /api/v2/analytics/conversations/details?id=a,b,c (100 ids a call); unknown ids are absent."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), MAX_IDS_PER_GET):
            batch = unique[i : i + MAX_IDS_PER_GET]
            result = await self._call(
                _Request(
                    MULTIGET_ENDPOINT,
                    "GET",
                    self._config.api_base_url + MULTIGET_PATH,
                    params={"id": ",".join(batch)},
                )
            )
            found.extend(_check_query_shape(result, MULTIGET_ENDPOINT)["conversations"])
        return found

    async def check_access(self) -> None:
        """One cheap query (one conversation of a past minute): proves the token and the permission work.

        Raises AuthenticationError / PermissionDeniedError / RetriesExhaustedError like any call.
        """
        end = self._clock.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
        window = Window(end - timedelta(minutes=1), end)
        await self.query_details({"interval": window.interval, "paging": {"pageSize": 1, "pageNumber": 1}})

    # ------------------------------------------------------------------------------- async jobs
    async def submit_job(self, body: Mapping[str, Any]) -> str:
        """POST .../details/jobs (an `AsyncConversationQuery`); returns the new job's id.

        Raises JobCapacityError (no job created) when too many jobs are running.
        """
        result = await self._call(
            _Request(
                JOBS_SUBMIT_ENDPOINT,
                "POST",
                self._config.api_base_url + JOBS_PATH,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        )
        job_id = result.get("jobId") if isinstance(result, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise ApiContractError("the job submission answer has no 'jobId'", endpoint=JOBS_SUBMIT_ENDPOINT)
        return job_id

    async def job_status(self, job_id: str) -> JobStatus:
        """GET .../details/jobs/{jobId}. Raises JobGoneError for an unknown (or purged) job."""
        result = await self._call(_Request(JOB_STATUS_ENDPOINT, "GET", self._job_url(job_id)))
        return JobStatus.from_body(result)

    async def job_results(
        self, job_id: str, *, cursor: str | None = None, page_size: int = 1000
    ) -> JobResultsPage:
        """GET .../details/jobs/{jobId}/results: one page, from `cursor` (None: the first page).

        Raises JobGoneError once the results expired (404).
        """
        params = {"pageSize": str(page_size)}
        if cursor is not None:
            params["cursor"] = cursor
        result = await self._call(
            _Request(JOB_RESULTS_ENDPOINT, "GET", self._job_url(job_id) + "/results", params=params)
        )
        return JobResultsPage.from_body(result)

    async def delete_job(self, job_id: str) -> None:
        """DELETE .../details/jobs/{jobId}: cancel a running job or drop finished results.

        Raises JobGoneError when the job is already gone (callers usually ignore that).
        """
        await self._call(_Request(JOB_DELETE_ENDPOINT, "DELETE", self._job_url(job_id), allow_empty=True))

    async def data_availability(self) -> datetime:
        """GET .../details/jobs/availability: the data lake's `dataAvailabilityDate` (UTC)."""
        result = await self._call(
            _Request(JOBS_AVAILABILITY_ENDPOINT, "GET", self._config.api_base_url + JOBS_AVAILABILITY_PATH)
        )
        value = result.get("dataAvailabilityDate") if isinstance(result, dict) else None
        instant = _instant_or_none(value)
        if instant is None:
            raise ApiContractError(
                f"the availability answer has no valid 'dataAvailabilityDate' ({value!r})",
                endpoint=JOBS_AVAILABILITY_ENDPOINT,
            )
        return instant

    def _job_url(self, job_id: str) -> str:
        return f"{self._config.api_base_url}{JOBS_PATH}/{urllib.parse.quote(job_id, safe='')}"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GenesysClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------- the choke point
    async def _request_token(self) -> Mapping[str, Any]:
        """The client-credentials token request (called by TokenProvider, through `_call`)."""
        pair = f"{self._config.client_id}:{self._config.client_secret.get_secret_value()}"
        credentials = base64.b64encode(pair.encode()).decode()
        if self._secrets is not None:
            self._secrets.add(credentials)
        basic = "Basic " + credentials
        result = await self._call(
            _Request(
                TOKEN_ENDPOINT,
                "POST",
                self._config.login_base_url + TOKEN_PATH,
                authenticated=False,
                content=b"grant_type=client_credentials",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic},
            )
        )
        if not isinstance(result, dict):
            raise ApiContractError("the token response is not a JSON object", endpoint=TOKEN_ENDPOINT)
        return result

    async def _call(self, request: _Request) -> Any:
        """Send `request` until it succeeds, fails for good, or runs out of attempts (`RetryPolicy`)."""
        failures = 0
        refreshed = False
        while True:
            try:
                return await self._attempt(request)
            except AuthenticationError as exc:
                if not request.authenticated or refreshed or exc.endpoint != request.endpoint:
                    raise
                refreshed = True  # one refresh-and-retry per call; `_attempt` invalidated the token
                self._metrics.api_retries.labels("401").inc()
                log.warning("%s: token rejected (401), retrying once with a fresh token", request.endpoint)
            except (RateLimitedError, UpstreamUnavailableError) as exc:
                if self._retry.consumes_attempt(exc):
                    failures += 1
                if self._retry.gives_up(exc, failures):
                    raise RetriesExhaustedError(
                        f"{request.endpoint}: giving up after {failures} failed attempts", last=exc
                    ) from exc
                await self._wait_before_retry(request, exc, failures)

    async def _wait_before_retry(self, request: _Request, exc: ApiError, failures: int) -> None:
        delay = self._retry.delay_s(failures, exc)
        self._metrics.api_retries.labels(retry_reason(exc)).inc()
        if isinstance(exc, RateLimitedError):
            self._pacer.pause_for(delay)  # every caller waits, not just this request
            log.info("%s: rate limited (429), pausing all calls for %.1fs: %s", request.endpoint, delay, exc)
            return
        log.warning(
            "%s: attempt %d/%d failed, retrying in %.1fs: %s",
            request.endpoint,
            failures,
            self._retry.max_attempts,
            delay,
            exc,
        )
        await self._clock.sleep(delay)

    async def _attempt(self, request: _Request) -> Any:
        """One try: pace, authenticate, send, learn from the headers, classify."""
        await self._pacer.acquire()
        headers: httpx.Headers | None = None
        token: str | None = None
        try:
            token = await self._tokens.token() if request.authenticated else None
            response = await self._send(request, token)
            headers = response.headers
            if request.allow_empty and 200 <= response.status_code < 300 and not response.content:
                return None
            return classify_response(response, endpoint=request.endpoint)
        except AuthenticationError as exc:
            if token is not None and exc.status == 401:
                self._tokens.invalidate(token)
            raise
        finally:
            self._pacer.release(headers, api_limited=request.authenticated)

    async def _send(self, request: _Request, token: str | None) -> httpx.Response:
        headers = dict(request.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self._semaphore:
            self._inflight += 1
            self._metrics.api_inflight_requests.set(self._inflight)
            started = self._clock.monotonic()
            try:
                response = await self._http.request(
                    request.method,
                    request.url,
                    params=request.params,
                    content=request.content,
                    headers=headers,
                )
            except httpx.RequestError as exc:
                self._metrics.api_requests.labels(request.endpoint, "error").inc()
                raise classify_transport_error(exc, endpoint=request.endpoint) from None
            finally:
                self._inflight -= 1
                self._metrics.api_inflight_requests.set(self._inflight)
                self._metrics.api_request_duration.labels(request.endpoint).observe(
                    max(0.0, self._clock.monotonic() - started)
                )
        self._metrics.api_requests.labels(request.endpoint, str(response.status_code)).inc()
        if response.status_code == 429:
            self._metrics.api_throttled.inc()
            retry_after = _retry_after_s(response.headers)
            if retry_after is not None:
                self._metrics.api_retry_after_seconds.observe(retry_after)
        return response


def _check_query_shape(result: Any, endpoint: str) -> dict[str, Any]:
    """A query/multi-get response must be an object whose `conversations` (if any) is a list of objects."""
    if not isinstance(result, dict):
        raise ApiContractError(f"expected a JSON object, got {type(result).__name__}", endpoint=endpoint)
    conversations = result.get("conversations")
    if conversations is None:
        conversations = []
    if not isinstance(conversations, list) or not all(isinstance(c, dict) for c in conversations):
        raise ApiContractError("'conversations' is not a list of objects", endpoint=endpoint)
    total = result.get("totalHits")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        raise ApiContractError(f"'totalHits' is not an integer ({total!r})", endpoint=endpoint)
    return {**result, "conversations": conversations, "totalHits": total}


# --------------------------------------------------------------------------------------------- job models
@dataclass(frozen=True)
class JobStatus:
    """A job's status; dates are None when Genesys left them out."""

    state: JobState
    error_message: str | None = None
    expiration_date: datetime | None = None
    submission_date: datetime | None = None
    completion_date: datetime | None = None

    @classmethod
    def from_body(cls, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise ApiContractError("the job status is not a JSON object", endpoint=JOB_STATUS_ENDPOINT)
        try:
            state = JobState(str(body.get("state")))
        except ValueError:
            raise ApiContractError(
                f"unknown job state {body.get('state')!r}", endpoint=JOB_STATUS_ENDPOINT
            ) from None
        message = body.get("errorMessage")
        return cls(
            state=state,
            error_message=str(message) if message is not None else None,
            expiration_date=_instant_or_none(body.get("expirationDate")),
            submission_date=_instant_or_none(body.get("submissionDate")),
            completion_date=_instant_or_none(body.get("completionDate")),
        )


@dataclass(frozen=True)
class JobResultsPage:
    """One page of a job's results: records (with participant attributes), the cursor to the next page
    (None on the last page) and the data lake's availability date when the job ran."""

    conversations: list[dict[str, Any]]
    cursor: str | None
    data_availability_date: datetime | None

    @classmethod
    def from_body(cls, body: Any) -> JobResultsPage:
        if not isinstance(body, dict):
            raise ApiContractError("the job results are not a JSON object", endpoint=JOB_RESULTS_ENDPOINT)
        conversations = body.get("conversations") or []
        if not isinstance(conversations, list) or not all(isinstance(c, dict) for c in conversations):
            raise ApiContractError("'conversations' is not a list of objects", endpoint=JOB_RESULTS_ENDPOINT)
        cursor = body.get("cursor")
        if cursor is not None and (not isinstance(cursor, str) or not cursor):
            raise ApiContractError(f"'cursor' is not a string ({cursor!r})", endpoint=JOB_RESULTS_ENDPOINT)
        return cls(conversations, cursor, _instant_or_none(body.get("dataAvailabilityDate")))


def _instant_or_none(value: Any) -> datetime | None:
    """An ISO-8601 instant from a response, or None when absent or not one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None
