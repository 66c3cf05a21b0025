"""The startup check waits out a Genesys outage with the one retry policy, and stops on what it cannot fix."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from connector.clock import FakeClock
from connector.config import GenesysSettings
from connector.errors import PermissionDeniedError
from connector.genesys.client import GenesysClient
from connector.metrics import ConnectorMetrics
from connector.retry import RetryPolicy
from connector.service import _check_genesys


def settings() -> GenesysSettings:
    return GenesysSettings.model_validate(
        {
            "api_base_url": "https://api.example.test",
            "login_base_url": "https://login.example.test",
            "client_id": "client-abc",
            "client_secret": "s3cret",
        }
    )


def check(script: list[httpx.Response], clock: FakeClock, startup: RetryPolicy, requests: RetryPolicy) -> int:
    """Run the startup check against a scripted API; returns how many API requests it made."""
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 86399})
        sent += 1
        if script:
            return script.pop(0)
        return httpx.Response(200, json={"conversations": [], "totalHits": 0})

    async def main() -> None:
        async with GenesysClient(
            settings(),
            clock=clock,
            metrics=ConnectorMetrics(),
            transport=httpx.MockTransport(handler),
            retry_policy=requests,
        ) as client:
            await _check_genesys(client, clock, startup)

    asyncio.run(main())
    return sent


def test_an_outage_is_waited_out_with_the_policy_delays_and_no_attempt_limit() -> None:
    clock = FakeClock()
    requests = RetryPolicy(base_s=1.0, max_s=2.0, max_attempts=2, rng=random.Random(1))
    startup = RetryPolicy(base_s=10.0, max_s=40.0, max_attempts=1, rng=random.Random(2)).unbounded()
    down = [httpx.Response(503, text="<html>down</html>")] * 6  # three checks of two attempts each fail

    sent = check(down, clock, startup, requests)

    assert sent == 7
    twin_requests = RetryPolicy(base_s=1.0, max_s=2.0, max_attempts=2, rng=random.Random(1))
    twin_startup = RetryPolicy(base_s=10.0, max_s=40.0, max_attempts=None, rng=random.Random(2))
    expected: list[float] = []
    for failure in (1, 2, 3):
        expected += [twin_requests.delay_s(1), twin_startup.delay_s(failure)]
    assert [s for s in clock.slept if s > 0] == expected


def test_a_missing_permission_stops_at_once() -> None:
    clock = FakeClock()
    policy = RetryPolicy(base_s=1.0, max_s=2.0, max_attempts=2, rng=random.Random(1))
    denied = [httpx.Response(403, json={"message": "missing permissions"})]
    with pytest.raises(PermissionDeniedError):
        check(denied, clock, policy.unbounded(), policy)
    assert [s for s in clock.slept if s > 0] == []
