"""End to end through async jobs: `genesys-connector run` (a real subprocess) -> simulator -> real broker.

Days of history older than the simulator's data-lake lag are read by jobs (backfill), the fresh tail by
the details query, and every window is finally read once more by a settling job. Measured against the
simulator's ground truth *as jobs show it* (with participant attributes):

- every conversation reaches Kafka, the history through jobs;
- the latest message of every conversation whose window has settled equals the simulator's final record,
  attributes included (later query/multi-get snapshots carry the job's attributes over);
- no identical snapshot twice beyond what SIGKILLs can leave unrecorded (pages in flight);
- a job FAILED and jobs EXPIRED mid-run, and SIGKILLs while jobs are being read, lose nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_fixtures import ConnectorProcess, ConnectorRunner, ConnectorSetup, config_instant, wait_for

from connector.kafka.records import HEADER_PASS
from connector.state.checkpoint import CheckpointState, read_only_load
from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka

JOB_PAGE = 25  # small result pages: a span takes many requests, so a kill lands mid-job
HISTORY_DAYS = 3


def _job_results(control: Any) -> int:
    """Job result pages the simulator has served (any status)."""
    return sum(
        sum(by_status.values()) for route, by_status in control.counters().items() if route == "job_results"
    )


def _state(path: Path) -> CheckpointState | None:
    try:
        return read_only_load(path)
    except Exception:  # a checkpoint being replaced at this instant: read it again on the next poll
        return None


def _settled_before(path: Path, moment: datetime) -> bool:
    """The checkpoint says every window before `moment` was read and settled by its job (acked)."""
    state = _state(path)
    if state is None or state.watermark is None or state.watermark < moment:
        return False
    if any(u.window_start < moment for u in state.unsettled):
        return False
    return not any(p.job and p.window_start < moment for p in state.in_progress)


def _kill_mid_job(sim: Any, proc: ConnectorProcess, served_before: int, pages: int) -> int:
    """SIGKILL once `pages` more job result pages were served (the connector is reading a job)."""
    assert wait_for(lambda: _job_results(sim.control) >= served_before + pages, 90, 0.02), proc.log_tail()
    proc.kill()
    return _job_results(sim.control)


def _explain(keys: list[str], truth: dict[str, Any], messages: list[Any]) -> str:
    """Per key: the headers of each message and the top-level fields where the latest differs."""
    out = []
    for key in keys:
        mine = [m for m in messages if m.key == key]
        latest = orjson.loads(mine[-1].value)
        fields = sorted(f for f in set(latest) | set(truth[key]) if latest.get(f) != truth[key].get(f))
        out.append(f"{key}: differs in {fields}; messages {[m.headers for m in mine]}")
    return "; ".join(out)


def test_backfill_by_jobs_then_query_tail_settled_by_jobs_with_attributes_through_failures_and_kills(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, tmp_path: Path, connector_setup: ConnectorSetup
) -> None:
    h_start = config_instant(datetime.now(UTC) - timedelta(days=HISTORY_DAYS))
    config = SimulatorConfig(
        seed=21,
        history_start=h_start,
        volume_per_hour=25.0,
        live_rate_per_minute=40.0,
        live_duration_s=3.0,
        acw_delay_s=1.0,
        survey_delay_s=2.0,
        evaluation_delay_s=3.0,
        reprocess_delay_s=1.0,
        latency_ms=5.0,
        rate_limit=3000,
        data_lake_lag_s=15.0,
        data_lake_step_s=5.0,
        job_queued_s=0.3,
        job_pending_s=0.5,
    )
    with start_simulator(config) as sim:
        state = tmp_path / "state"
        topic, env = connector_setup(
            sim.base_url,
            "e2e-jobs",
            {
                "windows.start": h_start,
                "windows.length": "5s",
                "windows.max_catchup_length": "1h",
                "windows.lag": "3s",
                "windows.poll_interval": "1s",
                "windows.rescan_delays": '["4s"]',
                "windows.follow_interval": "2s",
                "jobs.backfill": "true",
                "jobs.settle": "true",
                "jobs.page_size": str(JOB_PAGE),
                "jobs.max_concurrent": "2",
                "jobs.poll_initial": "0.2s",
                "jobs.poll_max": "1s",
                "jobs.capacity_wait": "1s",
                "jobs.availability_check_interval": "1s",
                "jobs.settle_delay": "5s",
            },
        )
        started = time.monotonic()
        # Kill 1: while the first backfill jobs are being read.
        proc = connector_runner.start(env)
        served = _kill_mid_job(sim, proc, 0, 8)
        # The next job submitted FAILS (Genesys' errorMessage); the span is submitted again.
        sim.control.fail_next_jobs(1)
        proc = connector_runner.start(env)
        # Every job expires while being read: results answer 404, the spans are submitted again.
        assert wait_for(lambda: _job_results(sim.control) >= served + 6, 90, 0.02), proc.log_tail()
        expired = sim.control.expire_jobs()
        # Kill 2: mid-job again, after the expiry.
        served = _kill_mid_job(sim, proc, _job_results(sim.control), 6)
        proc = connector_runner.start(env)

        # The live tail runs (arrivals, wrap-ups, surveys, evaluations, corrections), then stops; every
        # window before the stop must then be read by the query and settled by a job.
        assert wait_for(lambda: (_state(state) or CheckpointState()).watermark is not None, 60), (
            proc.log_tail()
        )
        assert wait_for(
            lambda: _settled_before(state, config_instant(datetime.now(UTC) - timedelta(seconds=30))),
            120,
            0.5,
        ), proc.log_tail()
        sim.control.pause_live()
        stopped = config_instant(datetime.now(UTC) + timedelta(milliseconds=1))
        assert wait_for(lambda: _settled_before(state, stopped), 120, 0.5), proc.log_tail()
        proc.terminate()
        assert proc.wait(60) == 0, proc.log_tail()
        elapsed = time.monotonic() - started

        truth = sim.control.ground_truth(h_start, stopped, attributes=True)
        handover_view = sim.control.ground_truth(h_start, stopped)
        messages = read_topic(kafka_bootstrap, topic)
        counters = sim.control.counters()

    logs = "\n".join(p.log_path.read_text(errors="replace") for p in connector_runner.started)
    result = reconcile(truth, messages)
    first_path: dict[str, str] = {}
    for m in messages:
        first_path.setdefault(m.key, m.headers.get(HEADER_PASS, ""))
    by_job = sum(1 for k in truth if first_path.get(k) == "job")
    requests = {route: sum(by.values()) for route, by in counters.items()}
    final = read_only_load(state)
    print(
        f"\n[e2e jobs] {len(truth)} conversations, {len(messages)} messages "
        f"({result.versions_per_key:.2f} per key), {by_job} first delivered by a job; "
        f"identical duplicates {result.identical_duplicates}; {expired} job(s) expired on purpose; "
        f"{elapsed:.0f} s; requests {requests}; stats {final.stats if final else {}}"
    )
    assert result.missing == [], f"{len(result.missing)} missing, e.g. {result.missing[:5]}"
    assert result.stale_latest == [], (
        f"{len(result.stale_latest)} settled conversations whose latest message is not the simulator's final "
        f"record with attributes: {_explain(result.stale_latest[:3], truth, messages)}"
    )
    # Two SIGKILLs: at most the pages in flight at each (two jobs' pages, a follow-up batch) come again.
    assert result.identical_duplicates <= 2 * (2 * JOB_PAGE + 100)
    assert by_job >= len(truth) // 2, "the history (days older than the data lake lag) must come from jobs"
    assert len(handover_view) == len(truth)
    assert " ended failed " in logs, "the injected FAILED job must have been seen and resubmitted"
    assert " ended expired " in logs, "the expired jobs must have been seen and resubmitted"
    assert expired >= 1
