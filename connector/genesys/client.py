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

HTTP outcomes are mapped onto `connector.errors` in one place, `connector.genesys.responses`, called here:
`classify_response` (responses) and `classify_transport_error` (no response). The pagination cap (400
"Pagination may not exceed...") is not an error but a signal to the pager, `PaginationCapReached`.
Endpoint paths and labels are in `connector.genesys.endpoints`.


Async details jobs (genesys-api.md §2) have one method per endpoint too (`submit_job`, `job_status`,
`job_results`, `delete_job`, `data_availability`); two of their answers are the job's own outcome rather
than a failed request, so they are raised at once and never retried here: a 404 on a job id
(`JobGoneError`: expired or unknown, submit a new one) and a 429 "maximum number of concurrent jobs" on a
submission (`JobCapacityError`: wait for a job to finish). `connector.genesys.jobs` runs jobs with them;
their answers are parsed by `connector.genesys.jobs_api`.
"""

from __future__ import annotations

import asyncio
import base64
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
from connector.clock import Clock
from connector.config import GenesysSettings
from connector.errors import (
    ApiContractError,
    ApiError,
    AuthenticationError,
    RateLimitedError,
    RetriesExhaustedError,
    UpstreamUnavailableError,
)
from connector.genesys.auth import TokenProvider
from connector.genesys.endpoints import (
    JOB_DELETE_ENDPOINT,
    JOB_RESULTS_ENDPOINT,
    JOB_STATUS_ENDPOINT,
    JOBS_AVAILABILITY_ENDPOINT,
    JOBS_AVAILABILITY_PATH,
    JOBS_PATH,
    JOBS_SUBMIT_ENDPOINT,
    MAX_IDS_PER_GET,
    MULTIGET_ENDPOINT,
    MULTIGET_PATH,
    QUERY_ENDPOINT,
    QUERY_PATH,
    TOKEN_ENDPOINT,
    TOKEN_PATH,
)
from connector.genesys.jobs_api import JobResultsPage, JobStatus, instant_or_none
from connector.genesys.jobstate import JobState as JobState  # re-exported: jobs.py and tests read it here
from connector.genesys.ratelimit import Pacer
from connector.genesys.responses import (
    classify_response,
    classify_transport_error,
    retry_after_s,
    retry_reason,
)
from connector.metrics import ConnectorMetrics
from connector.retry import RetryPolicy
from connector.secrets import SecretRegistry
from connector.windows import Window

log = logging.getLogger(__name__)


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
        instant = instant_or_none(value)
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
            retry_after = retry_after_s(response.headers)
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
