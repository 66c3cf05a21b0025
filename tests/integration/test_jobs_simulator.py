"""JobRunner + GenesysClient against the real simulator over real HTTP: every record, with attributes.

The simulator and the connector share one FakeClock, so job state timings (QUEUED 1 s, PENDING 2 s), status
poll waits and the capacity waits move virtual time instantly. The history ended and settled days before
"now" and lies well before the data lake's availability date, so a job's frozen result set equals the
simulator's ground truth (plus participant attributes, which only jobs return). Injected trouble:
`fail_next_jobs`, `fail_job` (a job dying mid-way), `expire_jobs` (results gone mid-read) and a
concurrent-jobs cap lower than the connector's own (`set_job_settings(max_concurrent=1)`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from job_events import job_events, job_stream, pages
from simulated_genesys import DAY0, NOW, quiet_simulator, run_with_client, settings_for

from connector.clock import FakeClock
from connector.config import Settings
from connector.genesys.jobs import (
    JobEvent,
    JobOutcome,
    JobPage,
    JobRestarted,
    JobResume,
    JobRunner,
    JobSubmitted,
)
from connector.metrics import ConnectorMetrics
from connector.testbed.simulator import SimulatorHandle
from connector.windows import Window

DAY = Window(DAY0, DAY0 + timedelta(days=1))
THIRDS = [Window(DAY0 + timedelta(hours=8 * i), DAY0 + timedelta(hours=8 * (i + 1))) for i in range(3)]


def simulator(clock: FakeClock) -> contextlib.AbstractContextManager[SimulatorHandle]:
    return quiet_simulator(clock, seed=11, history_end=DAY.end, volume_per_hour=60)


def settings(handle: SimulatorHandle, **jobs: str) -> Settings:
    return settings_for(handle, "JOBS", **{"page_size": "400", **jobs})


def run(
    config: Settings,
    clock: FakeClock,
    action: Callable[[JobRunner], Awaitable[Any]],
    *,
    metrics: ConnectorMetrics | None = None,
) -> Any:
    return run_with_client(
        config, clock, lambda client: action(JobRunner(client, config.jobs)), metrics=metrics
    )


def final_records(events: list[JobEvent]) -> dict[str, dict[str, Any]]:
    """What the stream delivered, as of its last job (a restart starts the span over)."""
    last_job = [e.job_id for e in events if isinstance(e, JobPage)][-1]
    return {c["conversationId"]: c for p in pages(events) if p.job_id == last_job for c in p.conversations}


def without_attributes(record: dict[str, Any]) -> dict[str, Any]:
    participants = [{k: v for k, v in p.items() if k != "attributes"} for p in record["participants"]]
    return {**record, "participants": participants}


def assert_matches_truth(found: dict[str, dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    assert set(found) == set(truth)
    for cid, record in found.items():
        assert without_attributes(record) == truth[cid], cid
        assert all(p.get("attributes") for p in record["participants"]), cid


# --------------------------------------------------------------------------------------------- tests
def test_a_job_delivers_every_record_of_its_span_with_attributes() -> None:
    clock = FakeClock(NOW)
    metrics = ConnectorMetrics()
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)
        events = run(settings(sim), clock, lambda r: job_events(r, DAY), metrics=metrics)
        served = sim.control.counters()
    assert len(truth) > 1000  # several pages of 400
    got = pages(events)
    assert len(got) == -(-len(truth) // 400)
    assert sum(len(p.conversations) for p in got) == len(truth)  # nothing twice
    assert_matches_truth(final_records(events), truth)
    assert served["jobs_create"] == {"202": 1}
    assert served["job_delete"] == {"204": 1}
    assert metrics.registry.get_sample_value("genesys_connector_jobs_in_flight") == 0
    fulfilled = {"outcome": "fulfilled"}
    assert metrics.registry.get_sample_value("genesys_connector_job_duration_seconds_count", fulfilled) == 1


def test_failed_jobs_are_resubmitted_until_one_is_fulfilled() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)
        sim.control.fail_next_jobs(2, "The query timed out")
        events = run(settings(sim), clock, lambda r: job_events(r, DAY))
    restarts = [e for e in events if isinstance(e, JobRestarted)]
    assert [(r.outcome, r.error_message) for r in restarts] == [
        (JobOutcome.FAILED, "The query timed out")
    ] * 2
    assert [e.attempt for e in events if isinstance(e, JobSubmitted)] == [1, 2, 3]
    assert_matches_truth(final_records(events), truth)


def test_a_job_dying_mid_way_is_resubmitted() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)
        first: list[str] = []

        def kill_first(event: JobEvent) -> None:
            if isinstance(event, JobSubmitted) and not first:
                first.append(event.job_id)
                sim.control.fail_job(event.job_id, "Node lost")

        events = run(settings(sim), clock, lambda r: job_events(r, DAY, on_event=kill_first))
    restart = next(e for e in events if isinstance(e, JobRestarted))
    assert (restart.job_id, restart.outcome, restart.error_message) == (
        first[0],
        JobOutcome.FAILED,
        "Node lost",
    )
    assert_matches_truth(final_records(events), truth)


def test_results_expiring_mid_read_are_read_again_from_a_new_job() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)

        def expire_after_first_page(event: JobEvent) -> None:
            first_job = sim.control.counters()["jobs_create"].get("202") == 1
            if isinstance(event, JobPage) and event.page_number == 1 and first_job:
                assert sim.control.expire_jobs(event.job_id) == 1

        events = run(settings(sim), clock, lambda r: job_events(r, DAY, on_event=expire_after_first_page))
        served = sim.control.counters()
    restart = next(e for e in events if isinstance(e, JobRestarted))
    assert restart.outcome == JobOutcome.EXPIRED
    assert restart.pages_delivered == 1
    assert served["job_results"].get("404") == 1
    assert_matches_truth(final_records(events), truth)


def test_a_lower_org_cap_on_concurrent_jobs_makes_spans_wait_not_fail() -> None:
    clock = FakeClock(NOW)
    metrics = ConnectorMetrics()
    with simulator(clock) as sim:
        # a job stays QUEUED for 10 virtual minutes: the other two spans' first submissions are refused
        # however the three requests interleave
        sim.control.set_job_settings(max_concurrent=1, queued_s=600)
        truths = [sim.control.ground_truth(s.start, s.end) for s in THIRDS]

        async def three_at_once(runner: JobRunner) -> list[list[JobEvent]]:
            return list(await asyncio.gather(*(job_events(runner, span) for span in THIRDS)))

        results = run(
            settings(sim, max_concurrent="3", capacity_wait="60s"), clock, three_at_once, metrics=metrics
        )
        served = sim.control.counters()
    assert served["jobs_create"].get("429", 0) >= 2  # the org's cap was hit ...
    assert served["jobs_create"]["202"] == 3  # ... and each span still got exactly one job
    for events, truth in zip(results, truths, strict=True):
        assert not [e for e in events if isinstance(e, JobRestarted)]
        assert_matches_truth(final_records(events), truth)
    # flow control, not a rate limit: no client retry, no shared pause
    assert metrics.registry.get_sample_value("genesys_connector_api_retries_total", {"reason": "429"}) == 0


def test_a_restart_resumes_an_unexpired_job_at_its_last_acknowledged_cursor() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)
        config = settings(sim)

        async def first_page_then_crash(runner: JobRunner) -> tuple[JobSubmitted, JobPage]:
            submitted: JobSubmitted | None = None
            events = job_stream(runner, DAY)
            async for event in events:
                if isinstance(event, JobSubmitted):
                    submitted = event
                elif isinstance(event, JobPage):
                    assert submitted is not None
                    await events.aclose()  # type: ignore[attr-defined]
                    return submitted, event
            raise AssertionError("no page")

        submitted, acked = run(config, clock, first_page_then_crash)
        resume = JobResume(submitted.job_id, acked.next_cursor, submitted.submitted_at)

        async def resumed(runner: JobRunner) -> list[JobEvent]:
            return [e async for e in job_stream(runner, DAY, resume=resume)]

        events = run(config, clock, resumed)
        served = sim.control.counters()
    assert not [e for e in events if isinstance(e, (JobSubmitted, JobRestarted))]
    assert served["jobs_create"] == {"202": 1}
    found = {c["conversationId"]: c for c in acked.conversations}
    found.update(final_records(events))
    assert_matches_truth(found, truth)
    assert len(acked.conversations) + sum(len(p.conversations) for p in pages(events)) == len(truth)


def test_a_restart_after_the_job_expired_is_told_and_resubmits() -> None:
    clock = FakeClock(NOW)
    with simulator(clock) as sim:
        truth = sim.control.ground_truth(DAY.start, DAY.end)
        config = settings(sim)

        async def submit_only(runner: JobRunner) -> JobSubmitted:
            events = job_stream(runner, DAY)
            event = await events.__anext__()
            await events.aclose()  # type: ignore[attr-defined]
            assert isinstance(event, JobSubmitted)
            return event

        submitted = run(config, clock, submit_only)
        clock.advance(10)
        assert sim.control.expire_jobs(submitted.job_id) == 1
        resume = JobResume(submitted.job_id, None, submitted.submitted_at)
        events = run(config, clock, lambda r: collect_resumed(r, resume))
    assert isinstance(events[0], JobRestarted)
    assert (events[0].job_id, events[0].outcome) == (submitted.job_id, JobOutcome.EXPIRED)
    assert isinstance(events[1], JobSubmitted)
    assert_matches_truth(final_records(events), truth)


async def collect_resumed(runner: JobRunner, resume: JobResume) -> list[JobEvent]:
    return [e async for e in job_stream(runner, DAY, resume=resume)]
