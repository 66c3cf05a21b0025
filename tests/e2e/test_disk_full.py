"""A full state volume must not multiply duplicates (issue 8, item 3).

On a full checkpoint volume every restart used to resume its in-flight passes, fetch and publish their
pages, and only then fail to record them: three restarts turned 737 conversations into 1,237 messages,
and later restarts called the full disk a corrupt change store ("move the file aside", which republishes
everything). Here the checkpoint directory is a small real tmpfs: after some progress the volume is
filled under the running worker, which must stop fast with the disk-full message; then every restart
must stop with the same message before asking Genesys for anything or producing a single message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_fixtures import ConnectorRunner, ConnectorSetup, config_instant, wait_for
from tmpfs_fixtures import fill_volume

from connector.state.checkpoint import read_only_load
from connector.testbed.reconcile import read_topic
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka

RESTARTS = 4
RESERVE = 1024 * 1024  # checkpoint.min_free_bytes of every run
LEFT = 96 * 1024  # room for SQLite to open and start a write (so the old code did), less than RESERVE


def test_a_full_volume_stops_the_worker_and_every_restart_before_producing_anything(
    kafka_bootstrap: str,
    connector_runner: ConnectorRunner,
    small_tmpfs: Callable[[int], Path],
    connector_setup: ConnectorSetup,
) -> None:
    state = small_tmpfs(16 * 1024 * 1024)
    start = config_instant(datetime.now(UTC) - timedelta(hours=6))
    config = SimulatorConfig(seed=5, history_start=start, volume_per_hour=300, latency_ms=30)
    with start_simulator(config) as sim:
        topic, env = connector_setup(
            sim.base_url,
            "e2e-disk-full",
            {
                "windows.start": start,
                "windows.max_catchup_length": "20m",
                "checkpoint.min_free_bytes": str(RESERVE),
            },
            state=state,
        )
        first = connector_runner.start(env)
        assert wait_for(lambda: _mid_backfill(state), 60), first.log_tail()
        filler = fill_volume(state, leave_bytes=0)  # the volume fills up under the running worker
        assert first.wait(60) == 1, first.log_tail()
        _assert_disk_full_message(first.log_path.read_text(), state)
        resumable = read_only_load(state)
        assert resumable is not None
        assert resumable.in_progress, "the restarts must have passes to resume (the old code re-fetched them)"

        os.truncate(filler, filler.stat().st_size - LEFT)
        published = len(read_topic(kafka_bootstrap, topic))
        assert published > 0
        served = sim.control.counters()
        for attempt in range(RESTARTS):
            proc = connector_runner.start(env)
            assert proc.wait(120) == 1, proc.log_tail()
            count = len(read_topic(kafka_bootstrap, topic))
            assert count == published, f"restart {attempt + 1} on a full volume produced {count - published}"
            _assert_disk_full_message(proc.log_path.read_text(), state)
        assert sim.control.counters() == served, "the restarts stopped before asking Genesys for anything"
    assert read_only_load(state) == resumable, "the checkpoint is left exactly as the last good run wrote it"


def _assert_disk_full_message(log: str, state: Path) -> None:
    assert "state directory full: " in log, log[-3000:]
    assert f"bytes free at {state} (" in log
    assert "free space or grow the volume" in log
    assert "corrupt" not in log, log[-3000:]
    assert "move the file aside" not in log


def _mid_backfill(state: Path) -> bool:
    """The first run has acked some windows and has passes in flight (so a restart has pages to resume)."""
    saved = read_only_load(state)
    return saved is not None and saved.watermark is not None and bool(saved.in_progress)
