"""End to end under throttling and failures: nothing lost, and the budget is respected.

The connector runs as a subprocess against the simulator (real HTTP) and the real Kafka broker. The
simulator's own rate limiter is the judge of "never exceeds the budget": it answers 429 to any request
beyond its limit, so zero 429s served means the connector stayed within it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_fixtures import ConnectorRunner, ConnectorSetup, Setting

from connector.testbed.broker.launcher import free_ports
from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka


def _history(hours: float) -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    return end - timedelta(hours=hours), end


def _statuses(control: Any, route: str = "query") -> dict[str, int]:
    return dict(control.counters().get(route, {}))


def _bounded(start: datetime, end: datetime) -> dict[str, Setting]:
    """A bounded run over [start, end) without re-scans."""
    return {
        "windows.start": start,
        "windows.end": end,
        "windows.max_catchup_length": "30m",
        "windows.rescan_delays": "[]",
    }


def test_429_storm_5xx_bursts_and_broken_bodies_lose_nothing(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, connector_setup: ConnectorSetup
) -> None:
    start, end = _history(3.0)
    script = [
        "429:1",
        "429:1",
        "429:2",
        "503",
        "503",
        "502",
        "504",
        "500",
        "408",
        "reset",
        "truncated",
        "html502",
    ]
    script += ["429:1"] * 6 + ["503"] * 4 + ["truncated", "html502", "reset", "reset"]
    config = SimulatorConfig(
        seed=5, history_start=start, history_end=end, volume_per_hour=300, rate_limit=2000
    )
    with start_simulator(config) as sim:
        sim.control.script_faults(script, route="query")
        topic, env = connector_setup(
            sim.base_url, "e2e-faults", {**_bounded(start, end), "genesys.backoff_base_s": "0.05"}, state="s"
        )
        proc = connector_runner.start(env)
        assert proc.wait(120) == 0, proc.log_tail()
        statuses = _statuses(sim.control)
        truth = sim.control.ground_truth(start, end)
        result = reconcile(truth, read_topic(kafka_bootstrap, topic))
        assert sim.control.pending_faults().get("query", []) == [], "every scripted fault was served"
    print(f"\n[e2e faults] served {statuses}; truth {len(truth)}, missing {len(result.missing)}")
    assert statuses.get("429", 0) >= 9
    assert statuses.get("503", 0) >= 6
    assert statuses.get("reset", 0) >= 3
    assert result.missing == []
    assert result.identical_duplicates == 0


def test_long_retry_after_pauses_then_resumes_by_itself(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, connector_setup: ConnectorSetup
) -> None:
    """A Retry-After above genesys.max_retry_after_s (a daily limit) pauses the pipeline, visibly, and
    progress resumes by itself afterwards; nothing is lost."""
    start, end = _history(2.0)
    port = free_ports(1)[0]
    config = SimulatorConfig(
        seed=6, history_start=start, history_end=end, volume_per_hour=300, rate_limit=2000
    )
    with start_simulator(config) as sim:
        sim.control.script_faults(["429:6"], route="query")
        settings = {**_bounded(start, end), "genesys.max_retry_after_s": "2", "metrics.port": str(port)}
        topic, env = connector_setup(sim.base_url, "e2e-pause", settings, state="s")
        proc = connector_runner.start(env)
        paused_seen = _wait_for_metric(
            f"http://127.0.0.1:{port}/metrics", "genesys_connector_paused", 1.0, 90
        )  # a hang guard: it returns as soon as the pause shows, however slow the start
        assert proc.wait(120) == 0, proc.log_tail()
        truth = sim.control.ground_truth(start, end)
        result = reconcile(truth, read_topic(kafka_bootstrap, topic))
    log = proc.log_path.read_text()
    assert paused_seen, "genesys_connector_paused went to 1 during the long Retry-After"
    assert re.search(r"paus", log, re.IGNORECASE), "a clear log line announces the pause"
    assert result.missing == []


def test_request_rate_never_exceeds_the_servers_budget(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, connector_setup: ConnectorSetup
) -> None:
    """The server allows 60 requests per minute; the connector is configured for 600 and must learn the
    real budget from the inin-ratelimit-* headers: no 429 at all over more than one rate-limit window,
    and everything delivered."""
    start, end = _history(40 / 60)
    config = SimulatorConfig(
        seed=8, history_start=start, history_end=end, volume_per_hour=20, rate_limit=60, rate_window_s=60
    )
    with start_simulator(config) as sim:
        settings = {
            **_bounded(start, end),
            "windows.length": "1m",
            "windows.max_catchup_length": "1m",
            "genesys.requests_per_minute": "600",
        }
        topic, env = connector_setup(sim.base_url, "e2e-budget", settings, state="s")
        began = time.monotonic()
        proc = connector_runner.start(env)
        assert proc.wait(180) == 0, proc.log_tail()
        elapsed = time.monotonic() - began
        statuses = _statuses(sim.control)
        truth = sim.control.ground_truth(start, end)
        result = reconcile(truth, read_topic(kafka_bootstrap, topic))
    total = sum(statuses.values())
    print(f"\n[e2e budget] {total} query requests in {elapsed:.0f} s against 60 per minute: {statuses}")
    assert total > 60, "the run must span more than one rate-limit window to mean anything"
    assert statuses.get("429", 0) == 0
    assert result.missing == []


def _wait_for_metric(url: str, name: str, value: float, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    pattern = re.compile(rf"^{re.escape(name)} (\S+)$", re.MULTILINE)
    while time.monotonic() < deadline:
        try:
            match = pattern.search(httpx.get(url, timeout=1.0).text)
        except httpx.HTTPError:
            match = None
        if match and float(match.group(1)) == value:
            return True
        time.sleep(0.1)
    return False
