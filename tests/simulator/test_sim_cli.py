"""The `simulate` command, `python -m connector.testbed.simulator`, and the subprocess mode of e2e tests."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import timedelta

import httpx

from connector.testbed.simulator import spawn_simulator
from connector.testbed.simulator.cli import register

OPTIONS = (
    "--host",
    "--port",
    "--seed",
    "--history-days",
    "--volume",
    "--live-rate",
    "--rate-limit",
    "--latency-ms",
    "--client-id",
    "--client-secret",
    "--token-ttl",
    "--max-page-size",
    "--data-lake-lag",
    "--fault",
    "--config",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=False)


def test_genesys_connector_simulate_help_documents_the_options() -> None:
    result = run("-m", "connector", "simulate", "--help")
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout
    assert "demo-client" in result.stdout
    assert "demo-secret" in result.stdout
    assert "SIMULATOR_URL" in result.stdout


def test_module_entry_point_has_the_same_options() -> None:
    result = run("-m", "connector.testbed.simulator", "--help")
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout


def test_register_sets_a_handler() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--seed", "3", "--rate-limit", "50"])
    assert callable(args.handler)
    assert (args.seed, args.rate_limit) == (3, 50)


def test_bad_options_exit_2_with_a_message() -> None:
    result = run("-m", "connector.testbed.simulator", "--rate-limit", "0", "--port", "0")
    assert result.returncode == 2
    assert "rate_limit" in result.stderr
    result = run("-m", "connector.testbed.simulator", "--fault", "503", "--port", "0")
    assert result.returncode == 2
    assert "KIND=PROBABILITY" in result.stderr


def test_subprocess_prints_its_url_serves_tokens_and_stops_cleanly() -> None:
    args = [
        "--history-days",
        "0.2",
        "--volume",
        "30",
        "--live-rate",
        "0",
        "--client-secret",
        "pw",
        "--seed",
        "4",
    ]
    with spawn_simulator(args) as sim:
        assert sim.base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=sim.base_url) as http:
            token = http.post(
                f"{sim.login_url}/oauth/token",
                auth=("demo-client", "pw"),
                data={"grant_type": "client_credentials"},
            )
            assert token.status_code == 200
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            now = sim.control.now()
            window = f"{(now - timedelta(hours=1)).isoformat()}/{now.isoformat()}"
            sim.control.script_faults(["503"])
            query = "/api/v2/analytics/conversations/details/query"
            assert http.post(query, json={"interval": window}, headers=headers).status_code == 503
            served = http.post(
                query,
                json={"interval": window, "paging": {"pageSize": 100, "pageNumber": 1}},
                headers=headers,
            )
            assert served.status_code == 200
        truth = sim.control.truth(now - timedelta(days=1), now, records=False)
        assert truth
        assert sim.control.counters()["query"] == {"503": 1, "200": 1}
        assert sim.control.record(truth[0]["conversationId"])["conversationId"] == truth[0]["conversationId"]
    assert sim.process.returncode == 0
