"""Pacing (budget, server headers) and the shared 429 pause, on a FakeClock (retry waits: test_retry.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import pytest
from rate_window import max_in_any_minute

from connector.clock import FakeClock
from connector.genesys.ratelimit import Pacer
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
    start = clock.monotonic()
    pacer.pause_for(30)
    pacer.pause_for(5)  # a shorter pause does not end the longer one early
    run(pacer.acquire())
    assert clock.monotonic() - start == pytest.approx(30)
    pacer.release()
    pacer.pause_for(30)
    pacer.pause_for(60)  # a longer one extends it
    run(pacer.acquire())
    assert clock.monotonic() - start == pytest.approx(90)


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


def test_requests_outside_the_api_limit_teach_nothing() -> None:
    clock, metrics = FakeClock(), ConnectorMetrics()
    pacer = make_pacer(clock, metrics, rpm=300)
    run(pacer.acquire())
    pacer.release({"inin-ratelimit-allowed": "5", "inin-ratelimit-count": "5"}, api_limited=False)
    assert pacer.budget_per_minute == 300
    before = clock.monotonic()
    run(pacer.acquire())  # neither "5 of 5 used" nor a request still counted in flight holds this one
    assert clock.monotonic() == before
