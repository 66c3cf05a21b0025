"""GenesysClient: status mapping, retries, 401 refresh, 429s, metrics, logs (MockTransport + FakeClock)."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from connector.clock import FakeClock
from connector.config import GenesysSettings
from connector.errors import (
    ApiContractError,
    AuthenticationError,
    ConnectorError,
    PermissionDeniedError,
    RateLimitedError,
    RetriesExhaustedError,
    UpstreamUnavailableError,
    describe_exception,
)
from connector.genesys.client import GenesysClient, classify_response, classify_transport_error
from connector.genesys.pagination import PaginationCapReached
from connector.metrics import ConnectorMetrics
from connector.retry import RetryPolicy

SECRET = "client-secret-never-logged"
TOKEN_PREFIX = "bearer-token-never-logged-"
API = "https://api.example.test"
QUERY_URL = API + "/api/v2/analytics/conversations/details/query"

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def settings(**overrides: Any) -> GenesysSettings:
    return GenesysSettings.model_validate(
        {
            "api_base_url": API,
            "login_base_url": "https://login.example.test",
            "client_id": "client-abc",
            "client_secret": SECRET,
            "max_attempts": 4,
            "max_concurrency": 4,
            **overrides,
        }
    )


class FakeGenesys:
    """Token endpoint + a scripted API: each API request pops the next scripted response (default 200)."""

    def __init__(self, script: list[httpx.Response | Exception] | None = None) -> None:
        self.script = list(script or [])
        self.tokens_issued = 0
        self.api_requests: list[httpx.Request] = []
        self.tokens_seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens_issued += 1
            token = f"{TOKEN_PREFIX}{self.tokens_issued}"
            return httpx.Response(
                200, json={"access_token": token, "token_type": "bearer", "expires_in": 86399}
            )
        self.api_requests.append(request)
        self.tokens_seen.append(request.headers.get("Authorization", ""))
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return httpx.Response(200, json={"conversations": [{"conversationId": "c1"}], "totalHits": 1})


def run_client(
    handler: Handler,
    action: Callable[[GenesysClient], Awaitable[Any]],
    *,
    clock: FakeClock | None = None,
    metrics: ConnectorMetrics | None = None,
    retry_policy: RetryPolicy | None = None,
    **overrides: Any,
) -> Any:
    async def main() -> Any:
        async with GenesysClient(
            settings(**overrides),
            clock=clock or FakeClock(),
            metrics=metrics or ConnectorMetrics(),
            transport=httpx.MockTransport(handler),
            retry_policy=retry_policy,
        ) as client:
            return await action(client)

    return asyncio.run(main())


def sample(metrics: ConnectorMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value("genesys_connector_" + name, labels or {}) or 0.0


def response(status: int, body: Any = None, *, text: str | None = None, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", QUERY_URL)
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if text is not None:
        return httpx.Response(status, text=text, headers=hdrs, request=request)
    return httpx.Response(status, content=orjson.dumps(body), headers=hdrs, request=request)


# ---------------------------------------------------------------------------------------- classify


def test_2xx_with_json_is_the_body() -> None:
    assert classify_response(response(200, {"conversations": []}), endpoint="q") == {"conversations": []}


@pytest.mark.parametrize(
    ("resp", "error", "attrs"),
    [
        (response(200, text='{"conversations": [{"conv'), UpstreamUnavailableError, {"reason": "bad_body"}),
        (response(200, text="<html>gateway</html>"), UpstreamUnavailableError, {"reason": "bad_body"}),
        (
            response(429, {"message": "Rate limit exceeded"}, Retry_After="7"),
            RateLimitedError,
            {"retry_after_s": 7},
        ),
        (
            response(429, {"message": "slow"}, inin_ratelimit_reset="12"),
            RateLimitedError,
            {"retry_after_s": 12},
        ),
        (response(429, text=""), RateLimitedError, {"retry_after_s": None}),
        (response(500, text="<html>oops</html>"), UpstreamUnavailableError, {"reason": "5xx", "status": 500}),
        (response(502, text="<html>bad gateway</html>"), UpstreamUnavailableError, {"reason": "5xx"}),
        (response(503, {"message": "Service Unavailable"}), UpstreamUnavailableError, {"reason": "5xx"}),
        (response(504, {"message": "The request timed out."}), UpstreamUnavailableError, {"reason": "5xx"}),
        (response(408, {"message": "timeout"}), UpstreamUnavailableError, {"reason": "408"}),
        (
            response(
                400, {"message": "interval is invalid", "code": "invalid.value"}, ININ_Correlation_Id="corr-9"
            ),
            ApiContractError,
            {"status": 400, "code": "invalid.value", "correlation_id": "corr-9"},
        ),
        (
            response(404, {"message": "HTTP 404 Not Found", "contextId": "ctx-1"}),
            ApiContractError,
            {"correlation_id": "ctx-1"},
        ),
        (response(401, {"message": "credentials expired"}), AuthenticationError, {"status": 401}),
        (response(403, {"message": "missing permissions"}), PermissionDeniedError, {"status": 403}),
    ],
)
def test_status_mapping(resp: httpx.Response, error: type[Exception], attrs: dict[str, Any]) -> None:
    with pytest.raises(error) as info:
        classify_response(resp, endpoint="details_query")
    for name, value in attrs.items():
        assert getattr(info.value, name) == value
    assert getattr(info.value, "endpoint", None) == "details_query"


def test_error_messages_carry_genesys_text_and_correlation_id() -> None:
    with pytest.raises(ApiContractError) as info:
        classify_response(
            response(400, {"message": "interval is invalid"}, ININ_Correlation_Id="corr-9"),
            endpoint="details_query",
        )
    assert "interval is invalid" in str(info.value)
    assert "correlation_id=corr-9" in str(info.value)
    with pytest.raises(PermissionDeniedError) as denied:
        classify_response(response(403, {"message": "no"}), endpoint="details_query")
    assert "analytics:conversationDetail:view" in str(denied.value)


def test_retry_after_as_an_http_date() -> None:
    resp = response(
        429, {}, Retry_After="Fri, 01 May 2026 00:00:30 GMT", Date="Fri, 01 May 2026 00:00:00 GMT"
    )
    with pytest.raises(RateLimitedError) as info:
        classify_response(resp, endpoint="q")
    assert info.value.retry_after_s == 30


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectTimeout("connect timed out"), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (httpx.ReadError("connection reset by peer"), "connection"),
        (
            httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
            "connection",
        ),
        (httpx.DecodingError("bad gzip"), "bad_body"),
    ],
)
def test_transport_errors(exc: httpx.RequestError, reason: str) -> None:
    error = classify_transport_error(exc, endpoint="details_query")
    assert isinstance(error, UpstreamUnavailableError)
    assert error.reason == reason


def _reset_by_peer() -> httpx.RequestError:
    """What httpx raises when the server resets the connection (a real local socket, SO_LINGER 0)."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST instead of FIN

    threading.Thread(target=serve, daemon=True).start()

    async def call() -> httpx.RequestError:
        async with httpx.AsyncClient() as http:
            try:
                await http.get(f"http://127.0.0.1:{server.getsockname()[1]}/")
            except httpx.RequestError as exc:
                return exc
        raise AssertionError("the reset connection answered")

    try:
        return asyncio.run(call())
    finally:
        server.close()


def test_a_connection_reset_says_what_happened_although_httpx_says_nothing() -> None:
    exc = _reset_by_peer()
    assert str(exc) == ""  # what used to be logged as "ReadError: "
    error = classify_transport_error(exc, endpoint="details_query")
    assert error.reason == "connection"
    assert error.message.startswith(f"{type(exc).__name__} (caused by ")
    assert "ConnectionResetError: ECONNRESET [errno 104] Connection reset by peer" in error.message


def test_describe_exception_walks_the_chain_and_names_errnos() -> None:
    def chained() -> httpx.ReadError:
        try:
            try:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            except OSError as low:
                raise RuntimeError() from low
        except RuntimeError as mid:
            error = httpx.ReadError("")
            error.__cause__ = mid
            return error

    assert describe_exception(httpx.ReadError("read failed")) == "ReadError: read failed"
    assert describe_exception(chained()) == (
        "ReadError (caused by RuntimeError <- "
        "ConnectionRefusedError: ECONNREFUSED [errno 111] Connection refused)"
    )
    assert describe_exception(httpx.ReadError("")) == "ReadError (no further detail from the transport)"


# ---------------------------------------------------------------------------------------- calls and retries


def test_query_posts_json_with_the_bearer_token() -> None:
    fake = FakeGenesys()
    result = run_client(
        fake, lambda c: c.query_details({"interval": "a/b", "paging": {"pageSize": 100, "pageNumber": 1}})
    )
    assert result == {"conversations": [{"conversationId": "c1"}], "totalHits": 1}
    (request,) = fake.api_requests
    assert request.method == "POST"
    assert str(request.url) == QUERY_URL
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN_PREFIX}1"
    assert request.headers["User-Agent"].startswith("genesys-kafka-connector/")
    assert orjson.loads(request.content)["paging"] == {"pageSize": 100, "pageNumber": 1}


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    fake = FakeGenesys(
        [
            response(503, text="<html>unavailable</html>"),
            httpx.ReadTimeout("slow"),
            response(200, text='{"conversations": ['),
            response(502, text="bad gateway"),
        ]
    )
    result = run_client(fake, lambda c: c.query_details({}), clock=clock, metrics=metrics, max_attempts=5)
    assert result["totalHits"] == 1
    assert len(fake.api_requests) == 5
    labels = {"endpoint": "details_query"}
    assert sample(metrics, "api_requests_total", {**labels, "code": "503"}) == 1
    assert sample(metrics, "api_requests_total", {**labels, "code": "error"}) == 1
    assert sample(metrics, "api_requests_total", {**labels, "code": "200"}) == 2
    assert sample(metrics, "api_retries_total", {"reason": "5xx"}) == 2
    assert sample(metrics, "api_retries_total", {"reason": "timeout"}) == 1
    assert sample(metrics, "api_retries_total", {"reason": "bad_body"}) == 1
    assert sample(metrics, "api_request_duration_seconds_count", labels) == 5
    backoffs = [s for s in clock.slept if s > 0]
    assert backoffs  # it waited between attempts
    assert all(s <= 60 for s in backoffs)


def test_attempts_are_bounded() -> None:
    fake = FakeGenesys([response(500, text="no")] * 10)
    with pytest.raises(RetriesExhaustedError) as info:
        run_client(fake, lambda c: c.query_details({}), max_attempts=3)
    assert len(fake.api_requests) == 3
    assert isinstance(info.value.last, UpstreamUnavailableError)
    assert "giving up after 3" in str(info.value)


def test_fatal_errors_are_not_retried() -> None:
    for status, error in [(400, ApiContractError), (403, PermissionDeniedError), (404, ApiContractError)]:
        fake = FakeGenesys([response(status, {"message": "no"})] * 3)
        with pytest.raises(error):
            run_client(fake, lambda c: c.query_details({}))
        assert len(fake.api_requests) == 1


def test_pagination_cap_is_a_signal_for_the_pager_not_an_error() -> None:
    fake = FakeGenesys([response(400, {"message": "Pagination may not exceed 100000 results"})])
    with pytest.raises(PaginationCapReached) as info:
        run_client(fake, lambda c: c.query_details({}))
    assert not isinstance(info.value, ConnectorError)  # no retry or failure handler can take it for one
    assert "Pagination may not exceed" in str(info.value)
    assert len(fake.api_requests) == 1


def test_request_retries_wait_what_the_one_retry_policy_says() -> None:
    clock = FakeClock()
    fake = FakeGenesys([response(503, text="unavailable")] * 3)
    policy = RetryPolicy(base_s=2.0, max_s=5.0, max_attempts=4, rng=random.Random(11))
    expected = RetryPolicy(base_s=2.0, max_s=5.0, max_attempts=4, rng=random.Random(11))
    result = run_client(fake, lambda c: c.query_details({}), clock=clock, retry_policy=policy)
    assert result["totalHits"] == 1
    assert [s for s in clock.slept if s > 0] == [expected.delay_s(n) for n in (1, 2, 3)]


def test_the_request_policy_defaults_to_the_genesys_settings() -> None:
    clock = FakeClock()
    fake = FakeGenesys([response(503, text="unavailable")] * 10)
    with pytest.raises(RetriesExhaustedError):
        run_client(fake, lambda c: c.query_details({}), clock=clock, max_attempts=6, backoff_max_s=3)
    backoffs = [s for s in clock.slept if s > 0]
    assert len(fake.api_requests) == 6  # genesys.max_attempts
    assert len(backoffs) == 5
    assert all(0 <= s <= 3 for s in backoffs)  # genesys.backoff_max_s bounds every wait


def test_an_absurd_retry_after_is_capped_at_a_day() -> None:
    clock = FakeClock()
    fake = FakeGenesys([response(429, {"message": "slow"}, Retry_After="999999999")])
    start = clock.monotonic()
    assert run_client(fake, lambda c: c.query_details({}), clock=clock)["totalHits"] == 1
    assert clock.monotonic() - start == pytest.approx(86_400)


def test_a_429_storm_slows_down_but_never_fails() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    fake = FakeGenesys([response(429, {"message": "Rate limit exceeded"}, Retry_After="2")] * 25)
    start = clock.monotonic()
    result = run_client(fake, lambda c: c.query_details({}), clock=clock, metrics=metrics, max_attempts=2)
    assert result["totalHits"] == 1
    assert len(fake.api_requests) == 26
    assert clock.monotonic() - start >= 25 * 2  # every Retry-After was honoured
    assert sample(metrics, "api_throttled_total") == 25
    assert sample(metrics, "api_retries_total", {"reason": "429"}) == 25
    assert sample(metrics, "api_retry_after_seconds_count") == 25
    assert sample(metrics, "api_retry_after_seconds_sum") == 50


def test_a_429_pauses_every_concurrent_request() -> None:
    clock = FakeClock()
    sent_at: list[float] = []
    first = True

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal first
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        sent_at.append(clock.monotonic())
        if first:
            first = False
            return httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "30"})
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def action(client: GenesysClient) -> None:
        await client.query_details({})  # gets the 429, pauses everyone for 30 s, then succeeds
        await asyncio.gather(*(client.query_details({}) for _ in range(3)))

    start = clock.monotonic()
    run_client(handler, action, clock=clock)
    assert sent_at[0] - start < 1
    assert all(t >= start + 30 for t in sent_at[1:])
    assert len(sent_at) == 5


def test_a_long_retry_after_pauses_the_pipeline_then_resumes(caplog: pytest.LogCaptureFixture) -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    paused_during: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        paused_during.append(sample(metrics, "paused"))
        if len(paused_during) == 1:
            return httpx.Response(429, json={"message": "daily limit"}, headers={"Retry-After": "7200"})
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    start = clock.monotonic()
    with caplog.at_level(logging.INFO):
        run_client(
            handler, lambda c: c.query_details({}), clock=clock, metrics=metrics, max_retry_after_s=180
        )
    assert clock.monotonic() - start >= 7200
    assert sample(metrics, "paused") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2:00:00" in w and "resumes by itself" in w for w in warnings)


def test_a_401_refreshes_the_token_once_and_retries() -> None:
    metrics = ConnectorMetrics()
    fake = FakeGenesys([response(401, {"message": "token expired"})])
    result = run_client(fake, lambda c: c.query_details({}), metrics=metrics)
    assert result["totalHits"] == 1
    assert fake.tokens_issued == 2
    assert fake.tokens_seen == [f"Bearer {TOKEN_PREFIX}1", f"Bearer {TOKEN_PREFIX}2"]
    assert sample(metrics, "api_retries_total", {"reason": "401"}) == 1


def test_a_second_401_is_an_authentication_error() -> None:
    fake = FakeGenesys([response(401, {"message": "no"}), response(401, {"message": "still no"})])
    with pytest.raises(AuthenticationError):
        run_client(fake, lambda c: c.query_details({}))
    assert fake.tokens_issued == 2
    assert len(fake.api_requests) == 2


def test_unexpected_shapes_are_contract_errors() -> None:
    for body in ({"conversations": {"a": 1}}, {"conversations": ["x"]}, {"totalHits": "many"}, [1, 2]):
        fake = FakeGenesys([response(200, body)])
        with pytest.raises(ApiContractError):
            run_client(fake, lambda c: c.query_details({}))


def test_past_the_last_page_conversations_is_an_empty_list() -> None:
    fake = FakeGenesys([response(200, {"totalHits": 250})])
    assert run_client(fake, lambda c: c.query_details({})) == {"totalHits": 250, "conversations": []}


def test_multi_get_batches_ids_by_100() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        assert request.method == "GET"
        assert request.url.path == "/api/v2/analytics/conversations/details"
        ids = request.url.params["id"].split(",")
        batches.append(len(ids))
        return httpx.Response(
            200, json={"conversations": [{"conversationId": i} for i in ids if i != "gone"]}
        )

    batches: list[int] = []
    ids = [f"c{i}" for i in range(249)] + ["gone", "c1"]  # a repeat is asked once
    found = run_client(handler, lambda c: c.get_conversations(ids))
    assert batches == [100, 100, 50]
    assert [c["conversationId"] for c in found] == [f"c{i}" for i in range(249)]


def test_check_access_queries_one_conversation_and_reports_permissions() -> None:
    fake = FakeGenesys()
    run_client(fake, lambda c: c.check_access())
    body = orjson.loads(fake.api_requests[0].content)
    assert body["paging"] == {"pageSize": 1, "pageNumber": 1}
    assert "/" in body["interval"]
    denied = FakeGenesys([response(403, {"message": "Missing permission"})])
    with pytest.raises(PermissionDeniedError, match="analytics:conversationDetail:view"):
        run_client(denied, lambda c: c.check_access())


def test_concurrency_is_bounded_by_max_concurrency() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def action(client: GenesysClient) -> None:
        await asyncio.gather(*(client.query_details({}) for _ in range(12)))

    run_client(handler, action, max_concurrency=2)
    assert peak == 2


def test_rate_limit_headers_feed_the_pacer() -> None:
    metrics = ConnectorMetrics()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        headers = {"inin-ratelimit-allowed": "180", "inin-ratelimit-count": "5", "inin-ratelimit-reset": "42"}
        return httpx.Response(200, json={"conversations": []}, headers=headers)

    run_client(handler, lambda c: c.query_details({}), metrics=metrics)
    assert sample(metrics, "api_ratelimit_allowed") == 180
    assert sample(metrics, "api_ratelimit_remaining") == 175
    assert sample(metrics, "api_budget_requests_per_minute") == 180
    assert sample(metrics, "api_inflight_requests") == 0


def test_failed_calls_log_the_correlation_id_but_never_secrets(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeGenesys(
        [
            response(503, {"message": "Service Unavailable"}, ININ_Correlation_Id="corr-503"),
            response(401, {"message": "expired"}, ININ_Correlation_Id="corr-401"),
        ]
    )
    with caplog.at_level(logging.DEBUG):
        run_client(fake, lambda c: c.query_details({}))
    assert "corr-503" in caplog.text
    assert SECRET not in caplog.text
    assert TOKEN_PREFIX not in caplog.text
