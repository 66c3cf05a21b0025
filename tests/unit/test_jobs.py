"""JobRunner and the jobs endpoints of GenesysClient, against an in-process fake (MockTransport + FakeClock).

Every path of a job: fulfilled and read by cursor, FAILED -> resubmitted, EXPIRED mid-read -> resubmitted from
the first page, 429 "too many concurrent jobs" -> wait and submit again, stuck -> timeout, resume at a cursor,
resume of an expired/old job -> resubmitted, and the status -> error mapping behind them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from job_events import job_events, job_stream, pages

from connector.clock import FakeClock, format_instant
from connector.config import GenesysSettings, JobsSettings
from connector.errors import (
    ApiContractError,
    JobCapacityError,
    JobFailedError,
    JobGoneError,
    RateLimitedError,
)
from connector.genesys.client import (
    JOB_STATUS_ENDPOINT,
    JOBS_SUBMIT_ENDPOINT,
    QUERY_ENDPOINT,
    GenesysClient,
    classify_response,
)
from connector.genesys.jobs import (
    JobEvent,
    JobOutcome,
    JobRestarted,
    JobResume,
    JobRunner,
    JobSubmitted,
    in_span,
)
from connector.genesys.jobstate import JobState
from connector.metrics import ConnectorMetrics
from connector.windows import Window

API = "https://api.example.test"
JOBS = "/api/v2/analytics/conversations/details/jobs"
T0 = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
SPAN = Window(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))


def record(n: int, start: datetime | None = None) -> dict[str, Any]:
    start = start or SPAN.start + timedelta(minutes=n)
    return {
        "conversationId": f"c{n}",
        "conversationStart": format_instant(start),
        "participants": [{"purpose": "customer", "attributes": {"customer.Tier": "gold"}}],
    }


@dataclass
class Plan:
    """What one submitted job does: successive status states (the last repeats), FAILED's message, results
    that vanish (404) after `gone_after_pages` pages, or a 400 on results (a real org's answer for a job that
    is no longer FULFILLED) while the status reads `state_on_400`."""

    states: list[str] = field(default_factory=lambda: ["QUEUED", "PENDING", "FULFILLED"])
    error_message: str | None = None
    gone_after_pages: int | None = None
    results_400_state: str | None = None


@dataclass
class FakeJob:
    job_id: str
    plan: Plan
    polls: int = 0
    pages: int = 0
    state: str = "QUEUED"


class FakeJobsApi:
    """Token + the five jobs endpoints. Each submission takes the next `Plan` (default: fulfilled)."""

    def __init__(self, records: list[dict[str, Any]], plans: list[Plan] | None = None) -> None:
        self.records = records
        self.plans = list(plans or [])
        self.jobs: dict[str, FakeJob] = {}
        self.cap_refusals = 0
        self.requests: list[httpx.Request] = []
        self.submitted: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.availability = "2026-05-10T11:00:00.000Z"
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(
                200, json={"access_token": "t", "token_type": "bearer", "expires_in": 86399}
            )
        self.requests.append(request)
        if path == JOBS and request.method == "POST":
            return self._submit(request)
        if path == JOBS + "/availability":
            return httpx.Response(200, json={"dataAvailabilityDate": self.availability})
        job_id, _, rest = path.removeprefix(JOBS + "/").partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "not.found", f"Job {job_id} was not found")
        if request.method == "DELETE":
            self.deleted.append(job_id)
            job.state = "CANCELLED"
            return httpx.Response(204)
        if rest == "results":
            return self._results(job, request)
        return self._status(job)

    def _submit(self, request: httpx.Request) -> httpx.Response:
        if self.cap_refusals:
            self.cap_refusals -= 1
            return _error(
                429, "too.many.requests.jobs", "The maximum number of concurrent jobs has been reached"
            )
        self.submitted.append(orjson.loads(request.content))
        job = FakeJob(f"job-{next(self._ids)}", self.plans.pop(0) if self.plans else Plan())
        self.jobs[job.job_id] = job
        return httpx.Response(202, json={"jobId": job.job_id})

    def _status(self, job: FakeJob) -> httpx.Response:
        if job.state != "CANCELLED":
            job.state = job.plan.states[min(job.polls, len(job.plan.states) - 1)]
            job.polls += 1
        body: dict[str, Any] = {"state": job.state, "submissionDate": "2026-05-10T12:00:00.000Z"}
        if job.state == "FAILED":
            body["errorMessage"] = job.plan.error_message
        return httpx.Response(200, json=body)

    def _results(self, job: FakeJob, request: httpx.Request) -> httpx.Response:
        if job.plan.results_400_state is not None:
            job.state = job.plan.results_400_state
            return _error(400, "bad.request", f"Job {job.job_id} is not FULFILLED")
        if job.state != "FULFILLED":
            return _error(400, "bad.request", "results are only available once FULFILLED")
        if job.plan.gone_after_pages is not None and job.pages >= job.plan.gone_after_pages:
            job.state = "EXPIRED"
            return _error(404, "not.found", f"The results of job {job.job_id} have expired")
        size = int(request.url.params["pageSize"])
        cursor = request.url.params.get("cursor")
        offset = 0 if cursor is None else int(cursor.rpartition(":")[2])
        job.pages += 1
        body: dict[str, Any] = {
            "conversations": self.records[offset : offset + size],
            "dataAvailabilityDate": self.availability,
        }
        if offset + size < len(self.records):
            body["cursor"] = f"{job.job_id}:{offset + size}"
        return httpx.Response(200, json=body)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method is None or r.method == method]


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"message": message, "code": code, "status": status, "contextId": "ctx"}
    )


def jobs_settings(**overrides: Any) -> JobsSettings:
    return JobsSettings.model_validate({"page_size": 2, **overrides})


def run(
    api: FakeJobsApi,
    action: Callable[[JobRunner], Awaitable[Any]],
    *,
    clock: FakeClock | None = None,
    metrics: ConnectorMetrics | None = None,
    **settings: Any,
) -> Any:
    async def main() -> Any:
        genesys = GenesysSettings.model_validate(
            {
                "api_base_url": API,
                "login_base_url": "https://login.example.test",
                "client_id": "c",
                "client_secret": "s",
            }
        )
        async with GenesysClient(
            genesys,
            clock=clock or FakeClock(T0),
            metrics=metrics or ConnectorMetrics(),
            transport=httpx.MockTransport(api),
        ) as client:
            return await action(JobRunner(client, jobs_settings(**settings)))

    return asyncio.run(main())


def collect(
    span: Window = SPAN, resume: JobResume | None = None
) -> Callable[[JobRunner], Awaitable[list[JobEvent]]]:
    async def action(runner: JobRunner) -> list[JobEvent]:
        events = await job_events(runner, span, resume=resume)
        assert runner.in_flight == 0
        return events

    return action


def delivered_ids(events: list[JobEvent]) -> list[str]:
    return [c["conversationId"] for p in pages(events) for c in p.conversations]


# --------------------------------------------------------------------------------------------- fulfilled
def test_a_fulfilled_job_is_read_page_by_page_by_cursor_then_deleted() -> None:
    api = FakeJobsApi([record(n) for n in range(5)])
    metrics = ConnectorMetrics()
    events = run(api, collect(), metrics=metrics)

    assert isinstance(events[0], JobSubmitted)
    assert events[0].attempt == 1
    got = pages(events)
    assert [p.page_number for p in got] == [1, 2, 3]
    assert [p.cursor for p in got] == [None, "job-1:2", "job-1:4"]
    assert [p.next_cursor for p in got] == ["job-1:2", "job-1:4", None]
    assert got[-1].last
    assert not got[0].last
    assert delivered_ids(events) == [f"c{n}" for n in range(5)]
    assert got[0].conversations[0]["participants"][0]["attributes"] == {"customer.Tier": "gold"}
    assert api.deleted == ["job-1"]
    body = api.submitted[0]
    assert body["interval"] == SPAN.interval
    assert body["startOfDayIntervalMatching"] is True
    result_requests = [r for r in api.requests if r.url.path.endswith("/results")]
    assert {r.url.params["pageSize"] for r in result_requests} == {"2"}
    assert (
        metrics.registry.get_sample_value(
            "genesys_connector_job_duration_seconds_count", {"outcome": "fulfilled"}
        )
        == 1
    )
    assert metrics.registry.get_sample_value("genesys_connector_jobs_in_flight") == 0


def test_status_polls_wait_longer_each_time_up_to_poll_max() -> None:
    api = FakeJobsApi([record(1)], [Plan(states=["QUEUED"] * 6 + ["FULFILLED"])])
    clock = FakeClock(T0)
    run(api, collect(), clock=clock, poll_initial="2s", poll_max="5s")
    assert clock.slept == [2.0, 3.0, 4.5, 5.0, 5.0, 5.0, 5.0]


# --------------------------------------------------------------------------------------------- failures
def test_a_failed_job_is_resubmitted_never_skipped() -> None:
    api = FakeJobsApi(
        [record(n) for n in range(3)], [Plan(states=["QUEUED", "FAILED"], error_message="timed out")]
    )
    events = run(api, collect())

    restarts = [e for e in events if isinstance(e, JobRestarted)]
    assert len(restarts) == 1
    assert restarts[0].job_id == "job-1"
    assert restarts[0].outcome == JobOutcome.FAILED
    assert restarts[0].error_message == "timed out"
    assert restarts[0].pages_delivered == 0
    submitted = [e for e in events if isinstance(e, JobSubmitted)]
    assert [(s.job_id, s.attempt) for s in submitted] == [("job-1", 1), ("job-2", 2)]
    assert delivered_ids(events) == ["c0", "c1", "c2"]
    assert api.deleted == ["job-2"]


def test_a_span_that_keeps_failing_stops_with_job_failed_error() -> None:
    failing = [Plan(states=["FAILED"], error_message="The query timed out") for _ in range(3)]
    api = FakeJobsApi([record(1)], failing)
    with pytest.raises(JobFailedError) as caught:
        run(api, collect(), max_failures=3)
    assert caught.value.interval == SPAN.interval
    assert caught.value.error_message == "The query timed out"
    assert caught.value.attempts == 3
    assert len(api.submitted) == 3


def test_results_expiring_mid_read_restart_the_span_from_its_first_page() -> None:
    api = FakeJobsApi([record(n) for n in range(5)], [Plan(gone_after_pages=1)])
    events = run(api, collect())

    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "JobSubmitted",
        "JobPage",
        "JobRestarted",
        "JobSubmitted",
        "JobPage",
        "JobPage",
        "JobPage",
    ]
    restart = next(e for e in events if isinstance(e, JobRestarted))
    assert restart.outcome == JobOutcome.EXPIRED
    assert restart.pages_delivered == 1
    second = [p for p in pages(events) if p.job_id == "job-2"]
    assert second[0].cursor is None  # from scratch: a cursor belongs to its job
    assert [c["conversationId"] for p in second for c in p.conversations] == [f"c{n}" for n in range(5)]


def test_a_400_on_results_of_a_job_no_longer_fulfilled_restarts_it() -> None:
    api = FakeJobsApi([record(1)], [Plan(results_400_state="CANCELLED")])
    events = run(api, collect())
    restart = next(e for e in events if isinstance(e, JobRestarted))
    assert restart.outcome == JobOutcome.EXPIRED
    assert delivered_ids(events) == ["c1"]


def test_a_job_stuck_running_past_the_timeout_is_deleted_and_resubmitted() -> None:
    api = FakeJobsApi([record(1)], [Plan(states=["PENDING"])])
    events = run(api, collect(), job_timeout="1m", poll_initial="10s", poll_max="10s")
    restart = next(e for e in events if isinstance(e, JobRestarted))
    assert restart.outcome == JobOutcome.TIMEOUT
    assert api.deleted == ["job-1", "job-2"]
    assert delivered_ids(events) == ["c1"]


def test_too_many_concurrent_jobs_waits_and_submits_again() -> None:
    api = FakeJobsApi([record(1)])
    api.cap_refusals = 2
    clock = FakeClock(T0)
    metrics = ConnectorMetrics()
    events = run(api, collect(), clock=clock, metrics=metrics, capacity_wait="45s")

    assert clock.slept[:2] == [45.0, 45.0]
    assert len(api.paths("POST")) == 3
    assert len(api.submitted) == 1
    assert delivered_ids(events) == ["c1"]
    # not the request rate limit: no client retry, no shared pause
    assert metrics.registry.get_sample_value("genesys_connector_api_retries_total", {"reason": "429"}) == 0


def test_our_own_jobs_never_exceed_max_concurrent() -> None:
    spans = [Window(SPAN.start + timedelta(days=d), SPAN.end + timedelta(days=d)) for d in range(4)]
    api = FakeJobsApi(
        [record(1)], [Plan(states=["QUEUED", "PENDING", "PENDING", "FULFILLED"]) for _ in spans]
    )
    running: list[int] = []

    async def action(runner: JobRunner) -> None:
        async def one(span: Window) -> None:
            async for _ in job_stream(runner, span):
                running.append(sum(1 for j in api.jobs.values() if j.state in ("QUEUED", "PENDING")))

        await asyncio.gather(*(one(s) for s in spans))

    run(api, action, max_concurrent=2)
    assert len(api.submitted) == 4
    assert max(running) <= 2


def test_closing_the_stream_mid_job_frees_its_slot_and_leaves_the_job_for_a_resume() -> None:
    api = FakeJobsApi([record(n) for n in range(5)])

    async def action(runner: JobRunner) -> list[JobEvent]:
        events = job_stream(runner, SPAN)
        first = [await events.__anext__()]  # JobSubmitted: the job holds its slot until it ends running
        await events.aclose()  # type: ignore[attr-defined]
        assert runner.in_flight == 0
        other = Window(SPAN.end, SPAN.end + timedelta(days=1))

        async def second() -> list[JobEvent]:
            return [e async for e in job_stream(runner, other)]

        return first + await asyncio.wait_for(second(), timeout=30)  # a slot never freed would hang

    events = run(api, action, max_concurrent=1)  # the second span needs the first one's slot
    assert isinstance(events[0], JobSubmitted)
    assert events[0].job_id == "job-1"
    assert "job-1" not in api.deleted
    assert api.deleted == ["job-2"]


# --------------------------------------------------------------------------------------------- resume
def test_resume_continues_an_unexpired_job_at_its_cursor() -> None:
    api = FakeJobsApi([record(n) for n in range(5)])
    api.jobs["job-old"] = FakeJob("job-old", Plan(states=["FULFILLED"]))
    resume = JobResume("job-old", "job-old:2", T0 - timedelta(minutes=10))
    events = run(api, collect(resume=resume))

    assert not [e for e in events if isinstance(e, (JobSubmitted, JobRestarted))]
    assert [p.cursor for p in pages(events)] == ["job-old:2", "job-old:4"]
    assert delivered_ids(events) == ["c2", "c3", "c4"]
    assert api.deleted == ["job-old"]
    assert not api.submitted


def test_resume_of_a_job_still_running_waits_for_it() -> None:
    api = FakeJobsApi([record(1)])
    api.jobs["job-old"] = FakeJob("job-old", Plan(states=["PENDING", "FULFILLED"]))
    events = run(api, collect(resume=JobResume("job-old", None, T0)))
    assert delivered_ids(events) == ["c1"]
    assert not api.submitted


def test_resume_of_an_expired_job_says_so_and_resubmits() -> None:
    api = FakeJobsApi([record(n) for n in range(3)])  # job-gone is unknown: 404
    events = run(api, collect(resume=JobResume("job-gone", "job-gone:2", T0 - timedelta(minutes=5))))

    assert isinstance(events[0], JobRestarted)
    assert events[0].job_id == "job-gone"
    assert events[0].outcome == JobOutcome.EXPIRED
    assert isinstance(events[1], JobSubmitted)
    assert events[1].attempt == 1
    assert delivered_ids(events) == ["c0", "c1", "c2"]


def test_resume_of_a_job_older_than_results_lifetime_resubmits_without_asking() -> None:
    api = FakeJobsApi([record(1)])
    api.jobs["job-old"] = FakeJob("job-old", Plan(states=["FULFILLED"]))
    events = run(
        api, collect(resume=JobResume("job-old", None, T0 - timedelta(hours=7))), results_lifetime="6h"
    )
    assert isinstance(events[0], JobRestarted)
    assert events[0].outcome == JobOutcome.EXPIRED
    assert f"{JOBS}/job-old" not in api.paths()
    assert delivered_ids(events) == ["c1"]


def test_resume_of_a_failed_job_resubmits() -> None:
    api = FakeJobsApi([record(1)])
    api.jobs["job-old"] = FakeJob("job-old", Plan(states=["FAILED"], error_message="boom"))
    events = run(api, collect(resume=JobResume("job-old", None, T0)))
    assert isinstance(events[0], JobRestarted)
    assert events[0].outcome == JobOutcome.FAILED
    assert events[0].error_message == "boom"
    assert delivered_ids(events) == ["c1"]


def test_a_resume_point_round_trips_through_plain_data() -> None:
    for resume in (JobResume("j", "c:2", T0), JobResume("j", None, T0 + timedelta(milliseconds=5))):
        data = orjson.loads(orjson.dumps(resume.to_dict()))
        assert JobResume.from_dict(data) == resume


# --------------------------------------------------------------------------------------------- span filter
def test_records_are_kept_only_in_the_span_they_started_in() -> None:
    inside = record(1)
    before = record(2, SPAN.start - timedelta(minutes=1))
    at_end = record(3, SPAN.end)
    undated = {"conversationId": "c4"}
    kept, dropped = in_span([inside, before, at_end, undated], SPAN)
    assert [c["conversationId"] for c in kept] == ["c1", "c4"]
    assert dropped == 2

    api = FakeJobsApi([inside, before, at_end])
    events = run(api, collect())
    assert delivered_ids(events) == ["c1"]
    assert sum(p.outside_span for p in pages(events)) == 2


# --------------------------------------------------------------------------------------------- client
def test_availability_is_parsed_and_sets_the_data_lake_lag() -> None:
    api = FakeJobsApi([])
    metrics = ConnectorMetrics()
    when = run(api, lambda runner: runner.read_availability(), metrics=metrics)
    assert when == datetime(2026, 5, 10, 11, 0, tzinfo=UTC)
    assert metrics.registry.get_sample_value("genesys_connector_data_lake_lag_seconds") == 3600


def test_delete_accepts_an_empty_204_and_ignores_a_gone_job() -> None:
    api = FakeJobsApi([])
    api.jobs["j"] = FakeJob("j", Plan())

    async def action(runner: JobRunner) -> None:
        client = runner._client
        await client.delete_job("j")
        with pytest.raises(JobGoneError):
            await client.delete_job("missing")

    run(api, action)
    assert api.deleted == ["j"]


def test_job_status_parses_every_field() -> None:
    api = FakeJobsApi([])
    api.jobs["j"] = FakeJob("j", Plan(states=["FAILED"], error_message="bad"))

    async def action(runner: JobRunner) -> Any:
        return await runner._client.job_status("j")

    status = run(api, action)
    assert status.state == JobState.FAILED
    assert status.error_message == "bad"
    assert status.submission_date == T0


def response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


def test_the_concurrent_jobs_429_is_not_the_rate_limit() -> None:
    cap = response(429, {"message": "The maximum number of concurrent jobs has been reached", "code": "x"})
    with pytest.raises(JobCapacityError):
        classify_response(cap, endpoint=JOBS_SUBMIT_ENDPOINT)
    limited = response(
        429, {"message": "Rate limit exceeded", "code": "too.many.requests"}, {"Retry-After": "3"}
    )
    with pytest.raises(RateLimitedError):
        classify_response(limited, endpoint=JOBS_SUBMIT_ENDPOINT)
    with pytest.raises(RateLimitedError):  # the same words elsewhere are the rate limit
        classify_response(cap, endpoint=QUERY_ENDPOINT)


def test_a_404_means_gone_only_on_a_job() -> None:
    missing = response(404, {"message": "not found", "code": "not.found"})
    with pytest.raises(JobGoneError):
        classify_response(missing, endpoint=JOB_STATUS_ENDPOINT)
    with pytest.raises(ApiContractError):
        classify_response(missing, endpoint=QUERY_ENDPOINT)


def test_malformed_job_answers_are_contract_errors() -> None:
    api = FakeJobsApi([])

    def bad(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return api(request)
        if request.method == "POST":
            return httpx.Response(202, json={"id": "no-jobId"})
        return httpx.Response(200, json={"state": "DONE"})

    async def submit(runner: JobRunner) -> Any:
        return await runner._client.submit_job({"interval": SPAN.interval})

    async def status(runner: JobRunner) -> Any:
        return await runner._client.job_status("j")

    for action in (submit, status):
        with pytest.raises(ApiContractError):
            run(bad, action)  # type: ignore[arg-type]
