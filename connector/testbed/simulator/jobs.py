"""Async conversation detail jobs (genesys-api.md §2).

State machine (VERIFIED states): QUEUED -> PENDING -> FULFILLED, or FAILED (with errorMessage), CANCELLED
(DELETE), EXPIRED (after expirationDate). Transitions are computed from the clock when a job is looked at,
so tests can move them by advancing the simulator clock; timings are configurable.

When a job is fulfilled its results are a snapshot: copies of the matching specs at that moment (a few
hundred bytes each, rendered on demand), so later changes to the conversations do not leak in. Results come
from the data lake: conversations that started at or after `dataAvailabilityDate` are missing (INFERRED
§2.5: "a job whose interval extends past dataAvailabilityDate silently returns incomplete data for the
tail"). The availability date advances in steps: floor((now - lag) / step) * step, unless a test pins it.
Records include participant attributes. Cursor paging: an opaque cursor, absent on the last page.

Limits (all INFERRED/FOLKLORE, §2.5 "not found in readable official sources", so configurable): at most
`max_concurrent` jobs QUEUED or PENDING at once (one more -> 429, no job created); results of an EXPIRED job
-> 404 (they are deleted; the status stays readable as EXPIRED). Not thread-safe: the Simulation lock
guards it.
"""

from __future__ import annotations

import base64
import binascii
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.genesys.jobstate import JobState
from connector.testbed.simulator.errors import NOT_FOUND, ApiProblem, bad_request
from connector.testbed.simulator.isotime import format_ms
from connector.testbed.simulator.model import ConversationSpec
from connector.testbed.simulator.query import JobQuery


@dataclass(frozen=True)
class JobTimings:
    """How long jobs take and live, and how results are paged."""

    queued_s: float = 1.0
    pending_s: float = 2.0
    ttl_s: float = 86_400.0  # results expire this long after completion
    default_page_size: int = 100
    max_page_size: int = 1000
    data_lake_lag_s: float = 3600.0
    data_lake_step_s: float = 1.0
    failure_probability: float = 0.0
    max_concurrent: int = 0  # QUEUED + PENDING jobs at once; 0 = unlimited


CONCURRENT_JOBS_MESSAGE = "The maximum number of concurrent jobs has been reached"
CONCURRENT_JOBS_CODE = "too.many.requests.jobs"  # INFERRED: the real code is unknown
DEFAULT_FAIL_MESSAGE = "Internal error while running the query"


@dataclass
class Job:
    """One submitted job."""

    job_id: str
    query: JobQuery
    submitted_ms: int
    queued_until_ms: int
    completes_ms: int
    fail_message: str | None = None
    cancelled: bool = False
    expires_ms: int | None = None
    availability_ms: int | None = None
    results: list[ConversationSpec] | None = None


# (query, availability_ms) -> copies of the matching specs that started before availability_ms
Snapshotter = Callable[[JobQuery, int], list[ConversationSpec]]


class JobService:
    """Creates jobs, advances their state from the clock, pages their results."""

    def __init__(
        self, timings: JobTimings, now_ms: Callable[[], int], snapshot: Snapshotter, rng: random.Random
    ) -> None:
        self.timings = timings
        self._now_ms = now_ms
        self._snapshot = snapshot
        self._rng = rng
        self._jobs: dict[str, Job] = {}
        self._fail_next: deque[str] = deque()
        self.pinned_availability_ms: int | None = None

    def availability_ms(self, now_ms: int | None = None) -> int:
        """The data lake's dataAvailabilityDate: the pinned date, else floor((now - lag) / step) * step."""
        if self.pinned_availability_ms is not None:
            return self.pinned_availability_ms
        now = self._now_ms() if now_ms is None else now_ms
        at = now - int(self.timings.data_lake_lag_s * 1000)
        step = max(1, int(self.timings.data_lake_step_s * 1000))
        return at - at % step

    def fail_next(self, count: int = 1, message: str = DEFAULT_FAIL_MESSAGE) -> None:
        """Make the next `count` submitted jobs end FAILED with `message`."""
        self._fail_next.extend([message] * count)

    def running(self) -> int:
        """How many jobs are QUEUED or PENDING now (what the concurrency cap counts)."""
        return sum(1 for job in self._jobs.values() if self.state(job).running)

    def submit(self, query: JobQuery) -> Job:
        """Register a job; it starts QUEUED. 429 (and no job) while `max_concurrent` jobs are running."""
        t = self.timings
        if t.max_concurrent and self.running() >= t.max_concurrent:
            raise ApiProblem(429, CONCURRENT_JOBS_MESSAGE, code=CONCURRENT_JOBS_CODE)
        now = self._now_ms()
        queued_until = now + int(t.queued_s * 1000)
        completes = queued_until + int(t.pending_s * 1000)
        fail = self._fail_next.popleft() if self._fail_next else None
        if fail is None and t.failure_probability > 0 and self._rng.random() < t.failure_probability:
            fail = DEFAULT_FAIL_MESSAGE
        job = Job(str(uuid.uuid4()), query, now, queued_until, completes, fail_message=fail)
        self._jobs[job.job_id] = job
        return job

    def fail_now(self, job_id: str, message: str = DEFAULT_FAIL_MESSAGE) -> None:
        """A QUEUED or PENDING job ends FAILED now (a job dying mid-way); ValueError if it is not running."""
        job = self._known(job_id)
        state = self.state(job)
        if not state.running:
            raise ValueError(f"job {job_id} is {state.value}; only a QUEUED or PENDING job can be failed")
        now = self._now_ms()
        job.fail_message = message
        job.queued_until_ms = min(job.queued_until_ms, now)
        job.completes_ms = now

    def expire(self, job_id: str | None = None) -> int:
        """Expire one job (by id) or every job now, whatever its expirationDate; returns how many expired.

        Cancelled and failed jobs are left alone; a job still running ends EXPIRED without results.
        """
        jobs = [self._known(job_id)] if job_id is not None else list(self._jobs.values())
        now = self._now_ms()
        count = 0
        for job in jobs:
            state = self.state(job)
            if state in (JobState.CANCELLED, JobState.FAILED, JobState.EXPIRED):
                continue
            job.queued_until_ms = min(job.queued_until_ms, now)
            job.completes_ms = min(job.completes_ms, now)
            job.expires_ms = now
            job.results = None
            count += 1
        return count

    def _known(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"job {job_id}")
        return job

    def get(self, job_id: str) -> Job:
        """The job, or a 404 ApiProblem."""
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiProblem(404, f"Job {job_id} was not found", code=NOT_FOUND)
        return job

    def state(self, job: Job) -> JobState:
        """Current state (takes the result snapshot the first time a job is seen fulfilled)."""
        now = self._now_ms()
        if job.cancelled:
            return JobState.CANCELLED
        if now < job.queued_until_ms:
            return JobState.QUEUED
        if now < job.completes_ms:
            return JobState.PENDING
        if job.fail_message is not None:
            return JobState.FAILED
        if job.expires_ms is None:
            job.expires_ms = job.completes_ms + int(self.timings.ttl_s * 1000)
            job.availability_ms = self.availability_ms(job.completes_ms)
            job.results = self._snapshot(job.query, job.availability_ms)
            if job.query.limit is not None:
                job.results = job.results[: job.query.limit]
        if now >= job.expires_ms:
            job.results = None
            return JobState.EXPIRED
        return JobState.FULFILLED

    def advance_all(self) -> None:
        """Move every job along (called by the live loop so snapshots happen close to completion)."""
        for job in self._jobs.values():
            self.state(job)

    def cancel(self, job_id: str) -> None:
        """DELETE: the job becomes CANCELLED and its results are dropped."""
        job = self.get(job_id)
        job.cancelled = True
        job.results = None

    def status_body(self, job: Job) -> dict[str, Any]:
        """AsyncQueryStatus JSON."""
        state = self.state(job)
        body: dict[str, Any] = {"state": state.value}
        if state == JobState.FAILED:
            body["errorMessage"] = job.fail_message
        if job.expires_ms is not None and state in (JobState.FULFILLED, JobState.EXPIRED):
            body["expirationDate"] = format_ms(job.expires_ms)
        body["submissionDate"] = format_ms(job.submitted_ms)
        if state in (JobState.FULFILLED, JobState.FAILED, JobState.EXPIRED):
            body["completionDate"] = format_ms(job.completes_ms)
        return body

    def results_page(
        self, job: Job, cursor: str | None, page_size: int | None
    ) -> tuple[list[ConversationSpec], str | None, int]:
        """(specs of this page, next cursor or None, availability_ms).

        404 once the job EXPIRED (its results are deleted: INFERRED, a real org may answer 400); 400 in any
        other state but FULFILLED. A cursor of an expired job fails the same way (the state is checked first).
        """
        state = self.state(job)
        if state == JobState.EXPIRED:
            raise ApiProblem(
                404,
                f"The results of job {job.job_id} have expired and are no longer available",
                code=NOT_FOUND,
            )
        if state != JobState.FULFILLED or job.results is None or job.availability_ms is None:
            raise bad_request(
                f"Job {job.job_id} is {state.value}; results are only available once it is FULFILLED"
            )
        size = self.timings.default_page_size if page_size is None else page_size
        if size < 1 or size > self.timings.max_page_size:
            raise bad_request(
                f"pageSize must be between 1 and {self.timings.max_page_size} (got {size})", field="pageSize"
            )
        offset = 0 if cursor is None else _decode_cursor(cursor, job.job_id)
        if offset > len(job.results):
            raise bad_request("cursor is not valid for this job", field="cursor")
        page = job.results[offset : offset + size]
        nxt = offset + size
        return (
            page,
            (_encode_cursor(job.job_id, nxt) if nxt < len(job.results) else None),
            job.availability_ms,
        )


def _encode_cursor(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{job_id}|{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, job_id: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        owner, _, offset = raw.partition("|")
        value = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("cursor is not valid for this job", field="cursor") from None
    if owner != job_id or value < 0:
        raise bad_request("cursor is not valid for this job", field="cursor")
    return value
