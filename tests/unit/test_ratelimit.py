"""Pacing (budget, server headers), the shared 429 pause, and the retry policy; all on a FakeClock."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.errors import (
    ApiContractError,
    PaginationCapError,
    RateLimitedError,
    UpstreamUnavailableError,
)
from connector.genesys.ratelimit import DEFAULT_RETRY_AFTER_S, Pacer, RetryPolicy
from connector.metrics import ConnectorMetrics


def make_pacer(
    clock: FakeClock, metrics: ConnectorMetrics, *, rpm: float = 300, share: float = 1.0, live: float = 0.5
) -> Pacer:
    return Pacer(
        requests_per_minute=rpm,
        budget_share=share,
        live_budget_share=live,
        max_retry_after_s=180,
        clock=clock,
        metrics=metrics,
    )


def gauge(metrics: ConnectorMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value("genesys_connector_" + name, labels or {})
    assert value is not None, name
    return value


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def max_in_any_minute(times: list[float]) -> int:
    """Largest number of grants inside any half-open 60-second span."""
    times = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(times):
        while times[left] <= t - 60:
            left += 1
        best = max(best, right - left + 1)
    return best


async def hammer(pacer: Pacer, clock: FakeClock, *, workers: int, until: float) -> list[float]:
    """`workers` concurrent callers acquiring and releasing as fast as the pacer lets them."""
    grants: list[float] = []

    async def worker() -> None:
        while clock.monotonic() < until:
            await pacer.acquire()
            grants.append(clock.monotonic())
            await asyncio.sleep(0)
            pacer.release()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [t for t in grants if t < until]


# ---------------------------------------------------------------------------------------- pacing


@pytest.mark.parametrize(
    ("rpm", "share"), [(300, 1.0), (300, 0.5), (180, 1.0), (10, 1.0), (3, 1.0), (2, 0.5)]
)
def test_pacer_never_exceeds_the_budget_in_any_minute(rpm: int, share: float) -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=rpm, share=share)
    start = clock.monotonic()
    grants = run(hammer(pacer, clock, workers=40, until=start + 300))
    allowed = rpm * share
    assert max_in_any_minute(grants) <= allowed
    # ...and it is not needlessly slow: in steady state it uses most of what it may.
    per_minute = len([t for t in grants if t >= start + 60]) / 4
    assert per_minute >= 0.8 * allowed - 1


def test_sharing_switches_between_catch_up_and_live() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300, share=1.0, live=0.5)
    assert pacer.requests_per_minute == 300
    pacer.set_catching_up(False)
    assert pacer.requests_per_minute == 150
    assert gauge(metrics, "api_budget_requests_per_minute") == 150
    start = clock.monotonic()
    grants = run(hammer(pacer, clock, workers=8, until=start + 180))
    assert max_in_any_minute(grants) <= 150
    pacer.set_catching_up(True)
    assert gauge(metrics, "api_budget_requests_per_minute") == 300


def test_budget_follows_the_allowed_header() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300)
    pacer.observe(
        {"inin-ratelimit-allowed": "120", "inin-ratelimit-count": "1", "inin-ratelimit-reset": "59"}
    )
    assert pacer.budget_per_minute == 120
    assert gauge(metrics, "api_ratelimit_allowed") == 120
    assert gauge(metrics, "api_ratelimit_remaining") == 119
    assert gauge(metrics, "api_ratelimit_reset_seconds") == 59
    assert gauge(metrics, "api_budget_requests_per_minute") == 120
    start = clock.monotonic()
    grants = run(hammer(pacer, clock, workers=10, until=start + 240))
    assert max_in_any_minute(grants) <= 120


def test_a_longer_server_window_scales_the_budget() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    pacer.observe(
        {"inin-ratelimit-allowed": "600", "inin-ratelimit-count": "0", "inin-ratelimit-reset": "300"}
    )
    assert pacer.budget_per_minute == 120  # 600 per 5 minutes


def test_never_plans_more_than_the_server_has_left_before_the_reset() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300)
    pacer.observe(
        {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "298", "inin-ratelimit-reset": "40"}
    )
    start = clock.monotonic()

    async def scenario() -> list[float]:
        await pacer.acquire()
        await pacer.acquire()  # 2 left, both now in flight
        granted = [clock.monotonic()]
        await pacer.acquire()  # no room until the server's window resets
        granted.append(clock.monotonic())
        return granted

    first, third = run(scenario())
    assert first - start < 1
    assert third - start >= 40


def test_in_flight_requests_count_against_the_remaining_requests() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300)

    async def scenario() -> float:
        await pacer.acquire()
        await pacer.acquire()
        # The first response says 1 left; one request is still in flight -> nothing may go until the reset.
        pacer.release(
            {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "299", "inin-ratelimit-reset": "20"}
        )
        before = clock.monotonic()
        await pacer.acquire()
        return clock.monotonic() - before

    assert run(scenario()) >= 20


def test_a_late_response_does_not_raise_the_remaining_count() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    pacer.observe(
        {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "290", "inin-ratelimit-reset": "30"}
    )
    pacer.observe(
        {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "280", "inin-ratelimit-reset": "30"}
    )
    assert gauge(metrics, "api_ratelimit_remaining") == 10
    clock.advance(31)
    pacer.observe(
        {"inin-ratelimit-allowed": "300", "inin-ratelimit-count": "3", "inin-ratelimit-reset": "59"}
    )
    assert gauge(metrics, "api_ratelimit_remaining") == 297  # a new window


def test_garbage_headers_are_ignored() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    pacer.observe(
        {"inin-ratelimit-allowed": "lots", "inin-ratelimit-count": "-1", "inin-ratelimit-reset": "nan"}
    )
    assert pacer.budget_per_minute == 300


def test_utilization_and_wait_metrics() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=60)
    start = clock.monotonic()
    grants = run(hammer(pacer, clock, workers=3, until=start + 120))
    assert len(grants) > 60
    ratio = gauge(metrics, "api_budget_utilization_ratio")
    assert 0.8 <= ratio <= 1.0
    assert gauge(metrics, "api_pacing_wait_seconds_total") > 0


# ---------------------------------------------------------------------------------------- 429 pause


def test_a_pause_blocks_every_caller() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    start = clock.monotonic()
    pacer.pause_for(10)
    assert pacer.is_paused()

    async def scenario() -> list[float]:
        times: list[float] = []

        async def one() -> None:
            await pacer.acquire()
            times.append(clock.monotonic())
            pacer.release()

        await asyncio.gather(*(one() for _ in range(5)))
        return times

    times = run(scenario())
    assert len(times) == 5
    assert all(t >= start + 10 for t in times)
    assert gauge(metrics, "paused") == 0  # a short pause is not a pipeline pause


def test_pauses_extend_but_never_shorten() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    pacer.pause_for(30)
    until = pacer.paused_until
    pacer.pause_for(5)
    assert pacer.paused_until == until
    pacer.pause_for(60)
    assert pacer.paused_until > until


def test_a_long_retry_after_pauses_the_pipeline_and_resumes_by_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics)
    start = clock.monotonic()

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    with caplog.at_level(logging.INFO, logger="connector.genesys.ratelimit"):
        pacer.pause_for(4 * 3600)
        assert gauge(metrics, "paused") == 1
        assert len(warnings()) == 1
        assert "4:00:00" in warnings()[0]
        assert "2026-05-01T04:00:00Z" in warnings()[0]  # FakeClock starts at 2026-05-01T00:00Z
        pacer.pause_for(3600)  # a shorter 429 during the pause changes nothing and logs nothing
        assert len(caplog.records) == 1
        run(pacer.acquire())
    assert clock.monotonic() - start >= 4 * 3600
    assert gauge(metrics, "paused") == 0
    assert len(warnings()) == 1
    assert "resuming" in caplog.records[-1].getMessage()


# ---------------------------------------------------------------------------------------- retry policy


def policy(metrics: ConnectorMetrics, *, attempts: int = 6, seed: int = 1) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts,
        backoff_base_s=1.0,
        backoff_max_s=60.0,
        rng=random.Random(seed),
        metrics=metrics,
    )


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    retry = policy(ConnectorMetrics())
    error = UpstreamUnavailableError("boom", reason="5xx")
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (7, 60.0), (30, 60.0)]:
        delays = [retry.delay_for(attempt, error) for _ in range(400)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < 0.05 * ceiling  # full jitter: close to zero happens...
        assert max(delays) > 0.95 * ceiling  # ...and so does close to the ceiling


def test_backoff_is_reproducible_with_the_injected_random() -> None:
    error = UpstreamUnavailableError("boom", reason="timeout")
    a = [policy(ConnectorMetrics(), seed=7).delay_for(3, error) for _ in range(3)]
    b = [policy(ConnectorMetrics(), seed=7).delay_for(3, error) for _ in range(3)]
    assert a == b


def test_attempts_are_bounded_but_429s_do_not_use_them_up() -> None:
    retry = policy(ConnectorMetrics(), attempts=3)
    upstream = UpstreamUnavailableError("boom", reason="5xx")
    assert retry.should_retry(upstream, 1)
    assert retry.should_retry(upstream, 2)
    assert not retry.should_retry(upstream, 3)
    throttled = RateLimitedError("slow down", retry_after_s=5)
    assert not retry.consumes_attempt(throttled)
    assert retry.should_retry(throttled, 3)
    assert retry.should_retry(throttled, 1000)


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (UpstreamUnavailableError("x", reason="5xx"), True),
        (RateLimitedError("x", retry_after_s=None), True),
        (PaginationCapError("Pagination may not exceed 100000 results"), False),
        (ApiContractError("bad request"), False),
        (ValueError("not ours"), False),
    ],
)
def test_which_errors_are_retried(error: Exception, retriable: bool) -> None:
    assert RetryPolicy.is_retriable(error) is retriable
    assert policy(ConnectorMetrics()).should_retry(error, 0) is retriable


def test_a_429_waits_what_the_server_asked() -> None:
    retry = policy(ConnectorMetrics())
    assert retry.delay_for(1, RateLimitedError("x", retry_after_s=42)) == 42
    assert retry.delay_for(9, RateLimitedError("x", retry_after_s=None)) == DEFAULT_RETRY_AFTER_S


def test_retries_are_counted_by_reason() -> None:
    metrics = ConnectorMetrics()
    retry = policy(metrics)
    retry.record_retry(RateLimitedError("x", retry_after_s=1))
    retry.record_retry(UpstreamUnavailableError("x", reason="timeout"))
    retry.record_retry(UpstreamUnavailableError("x", reason="timeout"))
    retry.record_reason("401")
    assert gauge(metrics, "api_retries_total", {"reason": "429"}) == 1
    assert gauge(metrics, "api_retries_total", {"reason": "timeout"}) == 2
    assert gauge(metrics, "api_retries_total", {"reason": "401"}) == 1


def test_from_config_uses_the_settings() -> None:
    from connector.config import load_config

    settings = load_config(
        None,
        environ={
            "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "a",
            "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "b",
            "GENESYS_CONNECTOR__GENESYS__REGION": "us_east_1",
            "GENESYS_CONNECTOR__GENESYS__REQUESTS_PER_MINUTE": "200",
            "GENESYS_CONNECTOR__GENESYS__BUDGET_SHARE": "0.5",
            "GENESYS_CONNECTOR__GENESYS__MAX_ATTEMPTS": "2",
        },
    )
    metrics = ConnectorMetrics()
    pacer = Pacer.from_config(settings.genesys, clock=FakeClock(), metrics=metrics)
    assert pacer.requests_per_minute == 100
    retry = RetryPolicy.from_config(settings.genesys, rng=random.Random(0), metrics=metrics)
    assert retry.max_attempts == 2


def test_requests_outside_the_api_limit_teach_nothing() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300)
    run(pacer.acquire())
    assert pacer.in_flight == 1
    pacer.release({"inin-ratelimit-allowed": "5", "inin-ratelimit-count": "5"}, api_limited=False)
    assert pacer.in_flight == 0
    assert pacer.budget_per_minute == 300
