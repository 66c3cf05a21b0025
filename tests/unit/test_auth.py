"""OAuth client credentials: caching, proactive refresh, shared refresh, invalidation, rejection."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import pytest

from connector.clock import FakeClock
from connector.config import GenesysSettings
from connector.errors import ApiContractError, AuthenticationError, RetriesExhaustedError
from connector.genesys.auth import TokenProvider
from connector.genesys.client import GenesysClient
from connector.metrics import ConnectorMetrics
from connector.retry import RetryPolicy
from connector.secrets import Redactor

SECRET = "very-secret-client-secret"


class FakeTokenEndpoint:
    """Hands out tok-1, tok-2, ... and counts calls; optionally fails."""

    def __init__(self, clock: FakeClock, *, expires_in: float = 1000, fail: Exception | None = None) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.fail = fail
        self.calls = 0

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        for _ in range(3):
            await asyncio.sleep(0)  # let concurrent callers pile up behind the refresh
        if self.fail is not None:
            raise self.fail
        return {"access_token": f"tok-{self.calls}", "token_type": "bearer", "expires_in": self.expires_in}


def provider(clock: FakeClock, endpoint: FakeTokenEndpoint, metrics: ConnectorMetrics) -> TokenProvider:
    return TokenProvider(client_id="client-abc", request_token=endpoint, clock=clock, metrics=metrics)


def sample(metrics: ConnectorMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value("genesys_connector_" + name, labels or {})


def tokens_around(tokens: TokenProvider, clock: FakeClock, *, refresh_s: int) -> list[str]:
    """The token asked for at once, one second before `refresh_s` (virtual) and at `refresh_s`."""

    async def scenario() -> list[str]:
        seen = [await tokens.token()]
        clock.advance(refresh_s - 1)
        seen.append(await tokens.token())
        clock.advance(1)
        seen.append(await tokens.token())
        return seen

    return asyncio.run(scenario())


def test_token_is_cached_and_refreshed_proactively() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    endpoint = FakeTokenEndpoint(clock, expires_in=1000)
    tokens = provider(clock, endpoint, metrics)

    # At 84.9 % of its life still the same token; at 85 % replaced before it expires.
    assert tokens_around(tokens, clock, refresh_s=850) == ["tok-1", "tok-1", "tok-2"]
    assert endpoint.calls == 2
    assert sample(metrics, "oauth_token_requests_total", {"result": "success"}) == 2
    expiry = sample(metrics, "oauth_token_expiry_timestamp_seconds")
    assert expiry == clock.now().timestamp() + 1000


def test_short_lived_tokens_are_refreshed_a_minute_early() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    endpoint = FakeTokenEndpoint(clock, expires_in=300)
    tokens = provider(clock, endpoint, metrics)

    assert tokens_around(tokens, clock, refresh_s=240) == ["tok-1", "tok-1", "tok-2"]
    assert tokens.has_valid_token()


def test_concurrent_callers_share_one_refresh() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    endpoint = FakeTokenEndpoint(clock)
    tokens = provider(clock, endpoint, metrics)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(tokens.token() for _ in range(20))))

    assert asyncio.run(scenario()) == ["tok-1"] * 20
    assert endpoint.calls == 1


def test_invalidate_forces_a_new_token_but_only_for_the_rejected_one() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    endpoint = FakeTokenEndpoint(clock)
    tokens = provider(clock, endpoint, metrics)

    async def scenario() -> list[str]:
        first = await tokens.token()
        tokens.invalidate(first)
        assert not tokens.has_valid_token()
        second = await tokens.token()
        tokens.invalidate(first)  # a late 401 for the old token must not throw away the new one
        third = await tokens.token()
        return [first, second, third]

    assert asyncio.run(scenario()) == ["tok-1", "tok-2", "tok-2"]


def test_rejected_credentials_name_the_client_id() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    rejection = AuthenticationError("invalid client", status=401, endpoint="oauth_token")
    tokens = provider(clock, FakeTokenEndpoint(clock, fail=rejection), metrics)
    with pytest.raises(AuthenticationError) as info:
        asyncio.run(tokens.token())
    assert "client id 'client-abc'" in str(info.value)
    assert info.value.status == 401
    assert sample(metrics, "oauth_token_requests_total", {"result": "rejected"}) == 1


def test_token_response_without_a_token_is_a_contract_error() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()

    async def bad() -> Mapping[str, Any]:
        return {"token_type": "bearer"}

    tokens = TokenProvider(client_id="c", request_token=bad, clock=clock, metrics=metrics)
    with pytest.raises(ApiContractError, match="access_token"):
        asyncio.run(tokens.token())
    assert sample(metrics, "oauth_token_requests_total", {"result": "error"}) == 1


# ---------------------------------------------------------------------------------------- through the client


def settings(**overrides: Any) -> GenesysSettings:
    return GenesysSettings.model_validate(
        {
            "api_base_url": "https://api.example.test",
            "login_base_url": "https://login.example.test",
            "client_id": "client-abc",
            "client_secret": SECRET,
            "max_attempts": 3,
            **overrides,
        }
    )


def test_token_request_is_client_credentials_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(
                200, json={"access_token": "tok", "token_type": "bearer", "expires_in": 86399}
            )
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def scenario() -> None:
        async with GenesysClient(
            settings(), clock=FakeClock(), metrics=ConnectorMetrics(), transport=httpx.MockTransport(handler)
        ) as client:
            await client.query_details({"interval": "x"})

    asyncio.run(scenario())
    token_request, api_request = seen
    assert str(token_request.url) == "https://login.example.test/oauth/token"
    assert token_request.method == "POST"
    expected = base64.b64encode(f"client-abc:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.content == b"grant_type=client_credentials"
    assert api_request.headers["Authorization"] == "Bearer tok"
    assert orjson.loads(api_request.content) == {"interval": "x"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"message": "Bad credentials", "code": "bad.credentials", "status": 401}),
        (400, {"error": "invalid_client", "description": "client not found"}),
    ],
)
def test_bad_credentials_fail_clearly_without_the_secret(
    status: int, body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ConnectorMetrics()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json=body, headers={"ININ-Correlation-Id": "corr-1"})

    async def scenario() -> None:
        async with GenesysClient(
            settings(), clock=FakeClock(), metrics=metrics, transport=httpx.MockTransport(handler)
        ) as client:
            await client.query_details({})

    with pytest.raises(AuthenticationError) as info:
        asyncio.run(scenario())
    message = str(info.value)
    assert "client-abc" in message
    assert "corr-1" in message
    assert SECRET not in message
    assert SECRET not in caplog.text
    assert calls == 1  # not retried: retrying cannot fix credentials
    assert sample(metrics, "oauth_token_requests_total", {"result": "rejected"}) == 1
    assert sample(metrics, "api_requests_total", {"endpoint": "oauth_token", "code": str(status)}) == 1


def test_token_endpoint_outage_is_retried_then_reported() -> None:
    metrics = ConnectorMetrics()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>down</html>")

    async def scenario() -> None:
        async with GenesysClient(
            settings(), clock=FakeClock(), metrics=metrics, transport=httpx.MockTransport(handler)
        ) as client:
            await client.query_details({})

    with pytest.raises(RetriesExhaustedError):
        asyncio.run(scenario())
    assert sample(metrics, "api_requests_total", {"endpoint": "oauth_token", "code": "503"}) == 3
    assert sample(metrics, "oauth_token_requests_total", {"result": "error"}) == 1


def test_token_requests_back_off_with_the_one_retry_policy() -> None:
    """The token request takes the client's retry path: the policy's jittered waits, a 429's Retry-After."""
    clock, metrics = FakeClock(), ConnectorMetrics()
    script = [
        httpx.Response(503, text="<html>down</html>"),
        httpx.Response(429, json={"message": "slow"}, headers={"Retry-After": "9"}),
        httpx.Response(502, text="bad gateway"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token" and script:
            return script.pop(0)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 86399})
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def scenario() -> None:
        async with GenesysClient(
            settings(),
            clock=clock,
            metrics=metrics,
            transport=httpx.MockTransport(handler),
            retry_policy=RetryPolicy(base_s=4.0, max_s=8.0, max_attempts=3, rng=random.Random(5)),
        ) as client:
            await client.query_details({})

    start = clock.monotonic()
    asyncio.run(scenario())
    expected = RetryPolicy(base_s=4.0, max_s=8.0, max_attempts=3, rng=random.Random(5))
    first, second = expected.delay_s(1), expected.delay_s(2)  # the 429 used no attempt: 503 is 1, 502 is 2
    assert [s for s in clock.slept if s > 0] == pytest.approx([first, 9.0, second])
    assert clock.monotonic() - start == pytest.approx(first + 9.0 + second)
    assert sample(metrics, "oauth_token_requests_total", {"result": "success"}) == 1
    assert sample(metrics, "api_retries_total", {"reason": "429"}) == 1


def test_every_token_and_the_basic_credentials_are_registered_as_secrets() -> None:
    registry = Redactor()
    issued = iter(["first-token-a1", "second-token-b2"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            token = next(issued)
            return httpx.Response(
                200, json={"access_token": token, "token_type": "bearer", "expires_in": 900}
            )
        if request.headers["Authorization"] == "Bearer first-token-a1":
            return httpx.Response(401, json={"message": "expired", "code": "bad.credentials", "status": 401})
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def scenario() -> None:
        async with GenesysClient(
            settings(),
            clock=FakeClock(),
            metrics=ConnectorMetrics(),
            transport=httpx.MockTransport(handler),
            secrets=registry,
        ) as client:
            await client.query_details({"interval": "x"})  # 401 -> a second token

    asyncio.run(scenario())
    basic = base64.b64encode(f"client-abc:{SECRET}".encode()).decode()
    for secret in ("first-token-a1", "second-token-b2", basic):
        assert registry.redact(f"saw {secret} here") == "saw *** here"
