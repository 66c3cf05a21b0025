"""GenesysClient + WindowFetcher against the real simulator over real HTTP.

Both sides share one FakeClock: pacing waits, backoffs and Retry-After pauses move virtual time instantly,
and the simulator's token lifetimes and rate-limit windows follow the same clock, so "requests per minute"
is measured in the same time the connector paces in. The simulator keeps its realistic defaults for
totalHits jitter and ghost duplicates (short pages), which the paging rules must survive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from rate_window import max_in_any_minute
from simulated_genesys import DAY0, NOW, quiet_simulator, run_with_client, settings_for

from connector.clock import FakeClock
from connector.config import Settings
from connector.errors import AuthenticationError, PermissionDeniedError
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import Page, WindowFetcher
from connector.metrics import ConnectorMetrics
from connector.testbed.simulator import DEFAULT_CLIENT_ID, SimulatorHandle
from connector.windows import Window

WINDOW = Window(
    DAY0, DAY0 + timedelta(hours=6)
)  # starts at UTC midnight: exactly the conversations started in it


def simulator(clock: FakeClock, **overrides: Any) -> contextlib.AbstractContextManager[SimulatorHandle]:
    return quiet_simulator(
        clock, seed=5, history_end=DAY0 + timedelta(days=1), volume_per_hour=100, **overrides
    )


class SendLog(httpx.AsyncHTTPTransport):
    """The real HTTP transport, noting the (virtual) time each API request is sent."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/"):
            self.sent.append(self.clock.monotonic())
        return await super().handle_async_request(request)


def run(
    config: Settings,
    clock: FakeClock,
    action: Callable[[GenesysClient, WindowFetcher], Awaitable[Any]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: ConnectorMetrics | None = None,
) -> Any:
    return run_with_client(
        config,
        clock,
        lambda client: action(client, WindowFetcher(client, config)),
        transport=transport,
        metrics=metrics,
    )


async def fetch_all(fetcher: WindowFetcher, window: Window = WINDOW) -> list[Page]:
    return [page async for page in fetcher.fetch(window, 0)]


def records(pages: list[Page]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for page in pages:
        for conversation in page.conversations:
            found[conversation["conversationId"]] = conversation
    return found


def test_a_whole_window_matches_the_ground_truth() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(WINDOW.start, WINDOW.end)
        pages = run(settings_for(sim, page_size="50"), clock, lambda c, f: fetch_all(f))
    assert len(truth) > 200  # several pages, some short (ghost duplicates), totalHits approximate
    assert records(pages) == truth
    assert [p.page_number for p in pages] == list(range(1, len(pages) + 1))
    assert sum(len(p.conversations) for p in pages) == len(truth)  # nothing yielded twice


def test_a_429_storm_and_a_5xx_burst_lose_nothing() -> None:
    clock = FakeClock(NOW)
    metrics = ConnectorMetrics()
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(WINDOW.start, WINDOW.end)
        storm = ["429:5"] * 12
        burst = ["503", "reset", "truncated", "html502", "502", "504", "408", "500", "revoke"]
        sim.control.script_faults([*storm, "ok", *burst, "ok", "429:3", "503", "429:1"], route="query")
        config = settings_for(sim, page_size="50", max_attempts="10", max_concurrency="4")
        pages = run(config, clock, lambda c, f: fetch_all(f), metrics=metrics)
        served = sim.control.counters()["query"]
        assert sim.control.pending_faults() == {}
    assert records(pages) == truth
    assert served.get("429", 0) == 14
    assert sum(served.get(code, 0) for code in ("500", "502", "503", "504", "408")) >= 7
    throttled = metrics.registry.get_sample_value("genesys_connector_api_throttled_total")
    assert throttled == 14
    assert metrics.registry.get_sample_value("genesys_connector_paused") == 0


def test_the_request_rate_never_exceeds_the_budget() -> None:
    clock = FakeClock(NOW)
    with simulator(clock, rate_limit=40) as sim:
        sim.control.set_paging(total_hits_jitter=0.0, duplicate_probability=0.0)
        truth = sim.control.ground_truth(WINDOW.start, WINDOW.end)
        transport = SendLog(clock)
        config = settings_for(sim, page_size="5", requests_per_minute="40", max_concurrency="4")
        start = clock.monotonic()
        pages = run(config, clock, lambda c, f: fetch_all(f), transport=transport)
        served = sim.control.counters()
    assert records(pages) == truth
    assert len(transport.sent) > 100  # several minutes of budget
    assert clock.monotonic() - start >= 60 * (len(transport.sent) / 40 - 1)
    assert max_in_any_minute(transport.sent) <= 40
    assert served["query"].get("429", 0) == 0  # the server never had to refuse a request


def test_the_pacer_adopts_a_lower_limit_from_the_server_headers() -> None:
    clock = FakeClock(NOW)
    metrics = ConnectorMetrics()
    with simulator(clock, rate_limit=30) as sim:
        transport = SendLog(clock)
        config = settings_for(sim, page_size="20", requests_per_minute="600", max_concurrency="2")
        pages = run(config, clock, lambda c, f: fetch_all(f), transport=transport, metrics=metrics)
        served = sim.control.counters()
    assert pages
    assert served["query"].get("429", 0) == 0
    assert metrics.registry.get_sample_value("genesys_connector_api_ratelimit_allowed") == 30
    assert metrics.registry.get_sample_value("genesys_connector_api_budget_requests_per_minute") == 30


def test_follow_open_fetches_conversations_by_id() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(WINDOW.start, WINDOW.end)
        wanted = [*sorted(truth)[:130], "00000000-0000-0000-0000-000000000000"]
        found = run(settings_for(sim), clock, lambda c, f: f.follow_open(wanted))
    assert {c["conversationId"]: c for c in found} == {cid: truth[cid] for cid in sorted(truth)[:130]}


def test_check_access_and_its_failures() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        run(settings_for(sim), clock, lambda c, f: c.check_access())
        sim.control.add_client("no-analytics", "pw-1", permissions=())
        denied = settings_for(sim, client_id="no-analytics", client_secret="pw-1")
        with pytest.raises(PermissionDeniedError):
            run(denied, clock, lambda c, f: c.check_access())
        wrong = settings_for(sim, client_secret="not-the-secret")
        with pytest.raises(AuthenticationError, match=DEFAULT_CLIENT_ID) as info:
            run(wrong, clock, lambda c, f: c.check_access())
        assert "not-the-secret" not in str(info.value)


def test_a_revoked_token_is_replaced_transparently() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:

        async def action(client: GenesysClient, fetcher: WindowFetcher) -> list[Page]:
            await client.check_access()
            sim.control.revoke_tokens()
            return await fetch_all(fetcher)

        pages = run(settings_for(sim, page_size="100"), clock, action)
        assert records(pages) == sim.control.ground_truth(WINDOW.start, WINDOW.end)
        assert sim.control.counters()["token"]["200"] == 2
