"""HealthServer over real HTTP (port 0): /metrics, /healthz, /readyz and the start/stop lifecycle."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from connector.clock import FakeClock
from connector.errors import ConfigError
from connector.health import HealthServer, Heartbeat, LoopStallMonitor, ServerState
from connector.logs import Redactor
from connector.metrics import ConnectorMetrics, metric_names


@pytest.fixture
def heartbeat(clock: FakeClock) -> Heartbeat:
    return Heartbeat(clock, max_age_s=60)


@pytest.fixture
def server(metrics: ConnectorMetrics, heartbeat: Heartbeat) -> Iterator[HealthServer]:
    s = HealthServer("127.0.0.1", 0, registry=metrics.registry, heartbeat=heartbeat)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def http(server: HealthServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as client:
        yield client


def test_metrics_serves_the_injected_registry(
    server: HealthServer, http: httpx.Client, metrics: ConnectorMetrics
) -> None:
    metrics.windows_completed.labels(**{"pass": "0"}).inc()
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'genesys_connector_windows_completed_total{pass="0"} 1.0' in r.text


def test_metrics_negotiates_openmetrics(http: httpx.Client) -> None:
    r = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")


def test_healthz_follows_the_heartbeat(http: httpx.Client, heartbeat: Heartbeat, clock: FakeClock) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    clock.advance(61)
    r = http.get("/healthz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    assert body["reason"] == "main loop has not reported for 61.0 s (limit 60 s)"
    assert body["heartbeat_age_s"] == 61.0
    heartbeat.beat()
    assert http.get("/healthz?verbose=1").status_code == 200


def test_readyz_without_checks_is_ready(http: httpx.Client) -> None:
    r = http.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "failing": [], "checks": {}}


def test_readyz_lists_failing_checks(server: HealthServer, http: httpx.Client) -> None:
    state = {"producer": False}
    server.add_readiness_check("token", lambda: (True, "token valid for 3600 s"))
    server.add_readiness_check("producer", lambda: (state["producer"], "broker unreachable"))
    r = http.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["failing"] == ["producer"]
    assert body["checks"]["token"] == {"ok": True, "detail": "token valid for 3600 s"}
    assert body["checks"]["producer"] == {"ok": False, "detail": "broker unreachable"}
    state["producer"] = True
    assert http.get("/readyz").status_code == 200


def test_readyz_never_serves_secrets(metrics: ConnectorMetrics, heartbeat: Heartbeat) -> None:
    redactor = Redactor(["p4ssw0rd-xyz"])

    def leaky() -> tuple[bool, str]:
        return False, "login failed with p4ssw0rd-xyz"

    def broken() -> tuple[bool, str]:
        raise RuntimeError("p4ssw0rd-xyz in an exception")

    with HealthServer(
        "127.0.0.1", 0, registry=metrics.registry, heartbeat=heartbeat, redact=redactor.redact
    ) as s:
        s.add_readiness_check("leaky", leaky)
        s.add_readiness_check("broken", broken)
        r = httpx.get(s.url + "/readyz", timeout=5, trust_env=False)
    assert r.status_code == 503
    assert "p4ssw0rd-xyz" not in r.text
    assert r.json()["checks"]["broken"] == {"ok": False, "detail": "check raised RuntimeError"}
    assert sorted(r.json()["failing"]) == ["broken", "leaky"]


def test_unknown_path_method_and_head(http: httpx.Client) -> None:
    assert http.get("/nope").status_code == 404
    assert http.post("/healthz").status_code == 405
    r = http.head("/healthz")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) > 0


def test_port_in_use_is_a_clear_config_error(metrics: ConnectorMetrics, heartbeat: Heartbeat) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = HealthServer("127.0.0.1", port, registry=metrics.registry, heartbeat=heartbeat)
        with pytest.raises(ConfigError, match=f"port {port} is already in use on 127.0.0.1"):
            s.start()
    assert s.state is ServerState.NEW


def test_unusable_host_is_a_config_error(metrics: ConnectorMetrics, heartbeat: Heartbeat) -> None:
    s = HealthServer("192.0.2.1", 0, registry=metrics.registry, heartbeat=heartbeat)  # TEST-NET: not ours
    with pytest.raises(ConfigError, match=r"cannot listen on 192\.0\.2\.1:0"):
        s.start()


def test_lifecycle_is_idempotent(metrics: ConnectorMetrics, heartbeat: Heartbeat) -> None:
    s = HealthServer("127.0.0.1", 0, registry=metrics.registry, heartbeat=heartbeat)
    with pytest.raises(RuntimeError, match="before start"):
        _ = s.port
    s.start()
    s.start()  # already running: no second server
    url = s.url
    assert httpx.get(url + "/healthz", timeout=5, trust_env=False).status_code == 200
    s.stop()
    s.stop()
    assert s.state is ServerState.STOPPED
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5, trust_env=False)
    with pytest.raises(RuntimeError, match="restarted"):
        s.start()
    HealthServer("127.0.0.1", 0, registry=metrics.registry, heartbeat=heartbeat).stop()  # before start


def test_heartbeat_gives_the_loop_time_to_start(clock: FakeClock) -> None:
    hb = Heartbeat(clock, max_age_s=10)
    assert hb.check() == (True, "main loop reported 0.0 s ago")
    clock.advance(10)
    assert hb.check()[0] is True
    clock.advance(0.5)
    assert hb.check()[0] is False
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(clock, max_age_s=0)


def test_heartbeat_keeps_the_longest_gap_between_beats(clock: FakeClock) -> None:
    hb = Heartbeat(clock, max_age_s=10)
    clock.advance(30)  # start-up before the first beat is not a gap of the loop
    hb.beat()
    clock.advance(0.5)
    hb.beat()
    clock.advance(2.5)
    hb.beat()
    clock.advance(1.0)
    hb.beat()
    assert hb.max_gap_s == 2.5


def test_stall_monitor_measures_a_blocking_call_on_the_event_loop() -> None:
    async def scenario() -> tuple[float, float]:
        monitor = LoopStallMonitor(interval_s=0.05)
        monitor.start()
        for _ in range(3):  # let the monitor reach its first sleep
            await asyncio.sleep(0)
        quiet = monitor.max_stall_s
        time.sleep(0.3)  # blocks the event loop, as a synchronous prune would
        deadline = time.monotonic() + 10
        while monitor.max_stall_s < 0.2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await monitor.stop()
        return quiet, monitor.max_stall_s

    quiet, stalled = asyncio.run(scenario())
    assert quiet == 0.0
    # The monitor's timer was due at most interval_s after the block began: it woke >= 0.25 s late.
    assert stalled >= 0.25


def test_loop_gauges_are_exposed(metrics: ConnectorMetrics) -> None:
    names = metric_names(metrics)
    assert "genesys_connector_loop_max_stall_seconds" in names
    assert "genesys_connector_loop_max_heartbeat_gap_seconds" in names
