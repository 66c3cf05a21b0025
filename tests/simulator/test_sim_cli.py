"""The `simulate` command, `python -m connector.testbed.simulator`, and the subprocess mode of e2e tests."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import timedelta

import httpx

from connector.testbed.simulator import spawn_simulator
from connector.testbed.simulator.cli import config_from_args, register

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
    "--data-lake-step",
    "--max-concurrent-jobs",
    "--job-max-interval-days",
    "--job-failure-probability",
    "--unstable-tie-order",
    "--start-granularity",
    "--late-index-probability",
    "--late-index-delay",
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


def test_job_data_lake_and_index_options_map_onto_the_config() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "simulate",
            "--data-lake-step",
            "900",
            "--max-concurrent-jobs",
            "0",
            "--job-max-interval-days",
            "7",
            "--job-failure-probability",
            "0.1",
            "--unstable-tie-order",
            "--start-granularity",
            "1",
            "--late-index-probability",
            "0.05",
            "--late-index-delay",
            "600",
        ]
    )
    config = config_from_args(args)
    assert (config.data_lake_step_s, config.max_concurrent_jobs, config.job_max_interval_days) == (900, 0, 7)
    assert (config.job_failure_probability, config.unstable_tie_order, config.start_granularity_s) == (
        0.1,
        True,
        1,
    )
    assert (config.late_index_probability, config.late_index_delay_s) == (0.05, 600)
    defaults = config_from_args(parser.parse_args(["simulate"]))
    assert (defaults.data_lake_step_s, defaults.max_concurrent_jobs, defaults.job_max_interval_days) == (
        3600,
        5,
        31,
    )
    assert (defaults.unstable_tie_order, defaults.late_index_probability, defaults.start_granularity_s) == (
        False,
        0,
        0,
    )
