"""Operating the connector: graceful shutdown, health endpoints, status, and every kind of bad input.

Each bad input must give a clear message naming what is wrong and a non-zero exit, lose nothing,
overwrite nothing, and never print a secret.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from e2e_fixtures import (
    ConnectorRunner,
    ConnectorSetup,
    config_instant,
    connector_env,
    create_test_topic,
    settings_env,
    wait_for,
)

from connector.state.checkpoint import read_only_load
from connector.testbed.broker.launcher import free_ports
from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorConfig, start_simulator

SECRET = "s3cr3t-value-that-must-never-leak"


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.mark.kafka
def test_sigterm_stops_gracefully_then_resumes_without_loss(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, tmp_path: Path, connector_setup: ConnectorSetup
) -> None:
    start = config_instant(datetime.now(UTC) - timedelta(hours=8))
    port = free_ports(1)[0]
    config = SimulatorConfig(
        seed=3, history_start=start, volume_per_hour=300, latency_ms=30, live_rate_per_minute=30
    )
    with start_simulator(config) as sim:
        topic, env = connector_setup(
            sim.base_url,
            "e2e-sigterm",
            {
                "windows.start": start,
                "windows.max_catchup_length": "20m",
                "windows.length": "10s",
                "windows.lag": "3s",
                "metrics.port": str(port),
            },
        )
        proc = connector_runner.start(env)
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _get(base + "/readyz") == 200, 60), proc.log_tail()
        assert _get(base + "/healthz") == 200
        metrics = httpx.get(base + "/metrics").text
        assert "genesys_connector_api_requests_total" in metrics
        assert SECRET not in metrics
        assert "demo-secret" not in metrics
        # Mid-backfill: the first windows are checkpointed (a watermark) and hours of history remain.
        assert wait_for(lambda: _watermark(tmp_path / "state") is not None, 60), proc.log_tail()
        began = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.log_tail()
        stop_s = time.monotonic() - began
        state = read_only_load(tmp_path / "state")
        assert state is not None
        assert state.watermark is not None
        status = _cli("status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        report = orjson.loads(status.stdout)
        assert report["watermark"] is not None
        assert "demo-secret" not in status.stdout
        # Resume: a bounded run to where the first run was, then everything before it must be there.
        end = config_instant(datetime.now(UTC) - timedelta(seconds=30))
        resumed = connector_runner.start(
            {**env, **settings_env({"windows.end": end, "windows.rescan_delays": "[]"})}
        )
        assert resumed.wait(120) == 0, resumed.log_tail()
        truth = sim.control.truth_versions(start, end)
        messages = read_topic(kafka_bootstrap, topic)
    keys = {m.key for m in messages}
    missing = set(truth) - keys
    print(f"\n[e2e sigterm] stopped in {stop_s:.1f} s; {len(truth)} conversations, {len(messages)} messages")
    assert not missing
    assert stop_s < 30
    assert reconcile({}, messages).identical_duplicates == 0, "a graceful stop re-sends nothing"


def _watermark(state_dir: Path) -> datetime | None:
    """The watermark of the checkpoint on disk (read as `status` reads it, while the worker runs)."""
    state = read_only_load(state_dir)
    return None if state is None else state.watermark


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


def test_bad_config_lists_every_wrong_field_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "genesys:\n  region: mars_north_1\n  client_id: x\n  client_secret: "
        + SECRET
        + "\n  page_size: 500\n"
        "kafka:\n  bootstrap_server: typo:9092\n"
    )
    result = _cli("run", "--config", str(cfg))
    assert result.returncode == 2
    assert "genesys.page_size" in result.stderr
    assert "500" in result.stderr
    assert "region" in result.stderr
    assert "bootstrap_server" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = _cli("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr


def _base_env(
    tmp_path: Path, api: str = "http://127.0.0.1:9", bootstrap: str = "127.0.0.1:9"
) -> dict[str, str]:
    return connector_env(
        api_url=api,
        bootstrap=bootstrap,
        topic="t",
        state_dir=tmp_path / "state",
        settings={"genesys.client_secret": SECRET, "logging.format": "text"},
    )


def test_corrupt_checkpoint_stops_with_clear_message_and_file_untouched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    corrupt = b'{"format": 1, "watermark": "not a date"'
    (state / "checkpoint.json").write_bytes(corrupt)
    result = _cli("run", env=_base_env(tmp_path))
    assert result.returncode == 1
    assert "checkpoint" in result.stderr
    assert "corrupt" in result.stderr
    assert "--reset-checkpoint" in result.stderr
    assert (state / "checkpoint.json").read_bytes() == corrupt
    status = _cli("status", env=_base_env(tmp_path))
    assert status.returncode == 1
    assert "corrupt" in status.stderr


def test_unwritable_checkpoint_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {**_base_env(tmp_path), "GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY": str(blocker / "state")}
    result = _cli("run", env=env)
    assert result.returncode == 2, "a configuration error, found before anything is opened"
    assert f"checkpoint.directory: {blocker} is not a directory" in result.stderr
    assert str(blocker / "state") in result.stderr


def test_broker_down_is_a_clear_error(tmp_path: Path) -> None:
    port = free_ports(1)[0]  # nothing listens there
    env = {
        **_base_env(tmp_path, bootstrap=f"127.0.0.1:{port}"),
        "GENESYS_CONNECTOR__KAFKA__DELIVERY_TIMEOUT_MS": "4000",
    }
    result = _cli("run", env=env, timeout=90)
    assert result.returncode == 1
    assert "Kafka is unreachable" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.kafka
def test_bad_credentials_and_missing_permission(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = create_test_topic(kafka_bootstrap, "e2e-auth")
    with start_simulator(SimulatorConfig(history_days=0.05)) as sim:
        sim.control.add_client("no-perms", "no-perms-secret", permissions=())
        env = {
            **_base_env(tmp_path, api=sim.base_url, bootstrap=kafka_bootstrap),
            "GENESYS_CONNECTOR__KAFKA__TOPIC": topic,
        }
        bad = _cli("run", env=env)
        assert bad.returncode == 1
        assert "demo-client" in bad.stderr
        assert "credentials" in bad.stderr.lower()
        assert SECRET not in bad.stderr + bad.stdout
        env_perm = {
            **env,
            "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "no-perms",
            "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "no-perms-secret",
        }
        denied = _cli("run", env=env_perm)
        assert denied.returncode == 1
        assert "analytics:conversationDetail:view" in denied.stderr
        assert "no-perms-secret" not in denied.stderr + denied.stdout


@pytest.mark.kafka
def test_missing_topic_is_a_clear_error(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        **_base_env(tmp_path, bootstrap=kafka_bootstrap),
        "GENESYS_CONNECTOR__KAFKA__TOPIC": "does-not-exist",
    }
    result = _cli("run", env=env)
    assert result.returncode == 1
    assert "does-not-exist" in result.stderr
    assert "does not exist" in result.stderr


@pytest.mark.kafka
def test_demo_runs_and_reconciles_clean() -> None:
    """`make demo` runs `genesys-connector demo`; a short run must end with a clean reconciliation."""
    result = subprocess.run(
        [sys.executable, "-m", "connector", "demo", "--duration", "25", "--history-hours", "4"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RECONCILIATION CLEAN" in result.stdout
    assert "missing                                   0" in result.stdout
