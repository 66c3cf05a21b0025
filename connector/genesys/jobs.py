"""`JobRunner`: one async details job run to completion, as an async stream of events (genesys-api.md §2).

A job reads one span of the data lake: submit -> poll its state with growing waits (QUEUED -> PENDING ->
FULFILLED) -> read its fixed result set page by page with the opaque cursor -> delete it. What can go
wrong is the job's own outcome, never a reason to skip the span:

- FAILED (Genesys' `errorMessage`), CANCELLED (someone deleted it), or QUEUED/PENDING past
  `jobs.job_timeout` (we delete it): the span is submitted again; after `jobs.max_failures` such ends in a
  row, `JobFailedError` (fatal: the checkpoint stays where it is, the caller may split the span instead).
- EXPIRED, or a 404 on the job or its results (expired mid-read, or unknown after a restart): the span is
  submitted again **from scratch**, since a cursor belongs to one job. Expiry is not a failure (it is not
  counted towards `max_failures`): the job did its work, we were too slow.
- 429 "maximum number of concurrent jobs" on submission (`JobCapacityError`, no job was created): wait
  `jobs.capacity_wait`, submit again, for as long as it takes (it is flow control, like a rate limit).

Every restart is told to the caller as a `JobRestarted` event before the new `JobSubmitted`, so it drops
what it kept of the old job (its cursor); pages already delivered are read again from the new job and
the change store suppresses those that did not change. Resuming: the caller passes the job id and the
cursor after its last acknowledged page (`JobResume`); an unexpired job continues there, anything else is
a `JobRestarted` and a new job.

Records of a page are filtered to `conversationStart` in the span (docs/ARCHITECTURE.md "Jobs and the
query": with whole-UTC-day spans and `startOfDayIntervalMatching` this is a guard, so each conversation is
delivered by exactly one span). At most `jobs.max_concurrent` of our jobs are QUEUED or PENDING at once
(a slot is held from submission until the job ends running), shared by every span the runner reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.clock import Clock, parse_instant
from connector.config import FilterSettings, JobsSettings
from connector.errors import (
    ApiContractError,
    JobCapacityError,
    JobFailedError,
    JobGoneError,
    RetriesExhaustedError,
)
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import query_filters
from connector.genesys.job_events import (
    JobEvent,
    JobOutcome,
    JobPage,
    JobRestarted,
    JobResume,
    JobSubmitted,
)
from connector.genesys.jobs_api import JobStatus
from connector.genesys.jobstate import JobState
from connector.metrics import ConnectorMetrics
from connector.windows import Window

log = logging.getLogger(__name__)

#: Growth of the wait between two status polls of a running job.
POLL_GROWTH = 1.5


_OUTCOME_OF_STATE = {
    JobState.FULFILLED: JobOutcome.FULFILLED,
    JobState.FAILED: JobOutcome.FAILED,
    JobState.CANCELLED: JobOutcome.CANCELLED,
    JobState.EXPIRED: JobOutcome.EXPIRED,
}


def build_job_body(span: Window, filters: FilterSettings) -> dict[str, Any]:
    """The `AsyncConversationQuery` for `span`: query-like matching, oldest first, the configured filters.

    `startOfDayIntervalMatching: true` returns the conversations that started on the UTC days the
    interval touches (and overlap it), like the details query; the default (lifetime overlap) would also
    return every conversation still active in the span that started days before (see ARCHITECTURE.md).
    """
    return {
        "interval": span.interval,
        "order": "asc",
        "orderBy": "conversationStart",
        "startOfDayIntervalMatching": True,
        **query_filters(filters),
    }


@dataclass
class _Job:
    job_id: str
    submitted_at: datetime
    cursor: str | None = None
    status: JobStatus | None = None  # the last status read, when known
    slot: bool = False  # holds one of the runner's `max_concurrent` slots


@dataclass(frozen=True)
class _Ended:
    """A job that will not be read: why, and Genesys' message."""

    outcome: JobOutcome
    error_message: str | None = None


# --------------------------------------------------------------------------------------------- runner
class JobRunner:
    """Runs details jobs through the shared `GenesysClient`; one runner per worker (it owns the job slots).

    `run(span, body)` is safe to call for several spans at once: they share `jobs.max_concurrent` slots.
    """

    def __init__(
        self,
        client: GenesysClient,
        settings: JobsSettings,
        *,
        clock: Clock | None = None,
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock or client.clock
        self._metrics = metrics or client.metrics
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._in_flight: set[str] = set()

    @property
    def in_flight(self) -> int:
        """Jobs submitted (or resumed) and not finished with."""
        return len(self._in_flight)

    async def read_availability(self) -> datetime:
        """The data lake's `dataAvailabilityDate`; also sets the data-lake lag gauge (now - it)."""
        availability = await self._client.data_availability()
        self.observe_availability(availability)
        return availability

    def observe_availability(self, availability: datetime) -> None:
        """Set the data-lake lag gauge from an availability date read from the endpoint."""
        lag = (self._clock.now() - availability).total_seconds()
        self._metrics.data_lake_lag_seconds.set(max(0.0, lag))

    async def run(
        self, span: Window, body: Mapping[str, Any], *, resume: JobResume | None = None
    ) -> AsyncIterator[JobEvent]:
        """Every record of `span`, page by page, from one job (or more, after restarts); see the module doc.

        Ends after the last page was yielded and the job deleted. Closing the stream early leaves the job
        alone (a restart may resume it). Raises `JobFailedError` after `jobs.max_failures` failed jobs in a
        row, and whatever fatal error the client raises (authentication, permission, bad request).
        """
        failures = 0
        attempt = 0
        job: _Job | None = None
        if resume is not None:
            job, ended = await self._resume(resume)
            if ended is not None:
                yield JobRestarted(span, resume.job_id, ended.outcome, ended.error_message, 0)
        try:
            while True:
                if job is None:
                    attempt += 1
                    job = await self._submit_when_allowed(body)  # returns holding a slot
                    self._track(job.job_id)
                    yield JobSubmitted(span, job.job_id, job.submitted_at, attempt)
                else:
                    self._track(job.job_id)
                ended = await self._until_done(job)
                delivered = 0
                if ended is None:
                    async for page in self._pages(span, job):
                        delivered += 1
                        yield page
                        job.cursor = page.next_cursor
                        if page.last:
                            await self._delete(job.job_id)
                            return
                    ended = _Ended(JobOutcome.EXPIRED, "results gone while reading them")
                self._untrack(job.job_id)
                log.warning(
                    "job %s for %s ended %s (%s): submitting the span again",
                    job.job_id,
                    span.interval,
                    ended.outcome.value,
                    ended.error_message or "no message",
                )
                yield JobRestarted(span, job.job_id, ended.outcome, ended.error_message, delivered)
                if ended.outcome != JobOutcome.EXPIRED:
                    failures += 1
                    if failures >= self._settings.max_failures:
                        raise JobFailedError(
                            f"the job for {span.interval} ended {ended.outcome.value} "
                            f"{failures} times in a row"
                            f" (last: {ended.error_message or 'no message'}); nothing was skipped",
                            interval=span.interval,
                            error_message=ended.error_message,
                            attempts=failures,
                        )
                    await self._clock.sleep(self._backoff(failures))
                job = None
        finally:
            if job is not None:
                self._release(job)
                self._untrack(job.job_id)

    # ------------------------------------------------------------------------------- steps
    async def _resume(self, resume: JobResume) -> tuple[_Job | None, _Ended | None]:
        """The saved job if it can still be read, else why not (told to the caller, then a new job)."""
        age = self._clock.now() - resume.submitted_at
        if age > self._settings.results_lifetime:
            return None, _Ended(JobOutcome.EXPIRED, "older than jobs.results_lifetime")
        try:
            status = await self._client.job_status(resume.job_id)
        except JobGoneError as exc:
            return None, _Ended(JobOutcome.EXPIRED, exc.message)
        if status.state.running or status.state == JobState.FULFILLED:
            return _Job(resume.job_id, resume.submitted_at, resume.cursor, status), None
        return None, _Ended(_OUTCOME_OF_STATE[status.state], status.error_message)

    async def _submit_when_allowed(self, body: Mapping[str, Any]) -> _Job:
        """Take a slot, then submit, waiting `capacity_wait` after each "too many concurrent jobs" (no job
        was created: other clients of the org may run jobs too). The job returned holds the slot."""
        await self._slots.acquire()
        try:
            job_id = await self._submit(body)
        except BaseException:
            self._slots.release()
            raise
        return _Job(job_id, self._clock.now(), slot=True)

    async def _submit(self, body: Mapping[str, Any]) -> str:
        waits = 0
        while True:
            try:
                job_id = await self._client.submit_job(body)
            except JobCapacityError as exc:
                waits += 1
                wait = self._settings.capacity_wait.total_seconds()
                log.info(
                    "job submission refused, too many jobs running (%d): waiting %.0fs: %s", waits, wait, exc
                )
                await self._clock.sleep(wait)
                continue
            log.debug("job %s submitted for %s", job_id, body.get("interval"))
            return job_id

    async def _until_done(self, job: _Job) -> _Ended | None:
        """Poll `job` until it is FULFILLED (None) or ended otherwise; holds a job slot while it runs."""
        status = job.status
        if status is not None and not status.state.running:
            return self._finish(job, status, observe=False)  # resumed: its duration was observed before
        if not job.slot:  # a resumed job still running
            await self._slots.acquire()
            job.slot = True
        try:
            delay = self._settings.poll_initial.total_seconds()
            while True:
                if status is None or status.state.running:
                    if self._clock.now() - job.submitted_at > self._settings.job_timeout:
                        await self._delete(job.job_id)
                        self._observe(job, JobOutcome.TIMEOUT)
                        return _Ended(JobOutcome.TIMEOUT, "still running after jobs.job_timeout")
                    await self._clock.sleep(delay)
                    delay = min(delay * POLL_GROWTH, self._settings.poll_max.total_seconds())
                    try:
                        status = await self._client.job_status(job.job_id)
                    except JobGoneError as exc:
                        self._observe(job, JobOutcome.EXPIRED)
                        return _Ended(JobOutcome.EXPIRED, exc.message)
                    continue
                return self._finish(job, status)
        finally:
            self._release(job)

    def _finish(self, job: _Job, status: JobStatus, *, observe: bool = True) -> _Ended | None:
        job.status = status
        outcome = _OUTCOME_OF_STATE[status.state]
        if observe:
            self._observe(job, outcome)
        if outcome == JobOutcome.FULFILLED:
            return None
        if outcome == JobOutcome.FAILED:
            log.warning("job %s FAILED: %s", job.job_id, status.error_message or "no message")
        return _Ended(outcome, status.error_message)

    async def _pages(self, span: Window, job: _Job) -> AsyncIterator[JobPage]:
        """The results from `job.cursor` on; ends early (without a last page) when they are gone."""
        cursor = job.cursor
        number = 0
        while True:
            try:
                page = await self._client.job_results(
                    job.job_id, cursor=cursor, page_size=self._settings.page_size
                )
            except JobGoneError:
                return
            except ApiContractError as exc:
                if exc.status != 400 or await self._still_readable(job.job_id):
                    raise
                return  # a real org may answer 400 for results of a job that is no longer FULFILLED
            number += 1
            kept, outside = in_span(page.conversations, span)
            yield JobPage(
                span=span,
                job_id=job.job_id,
                page_number=number,
                conversations=kept,
                cursor=cursor,
                next_cursor=page.cursor,
                received_at=self._clock.now(),
                data_availability_date=page.data_availability_date,
                outside_span=outside,
            )
            if page.cursor is None:
                return
            cursor = page.cursor

    async def _still_readable(self, job_id: str) -> bool:
        try:
            return (await self._client.job_status(job_id)).state == JobState.FULFILLED
        except JobGoneError:
            return False

    async def _delete(self, job_id: str) -> None:
        """Best effort: the results expire anyway, so a failed delete is logged, never raised."""
        try:
            await self._client.delete_job(job_id)
        except JobGoneError:
            pass
        except (RetriesExhaustedError, ApiContractError) as exc:
            log.warning("could not delete job %s (its results will expire): %s", job_id, exc)
        finally:
            self._untrack(job_id)

    # ------------------------------------------------------------------------------- bookkeeping
    def _backoff(self, failures: int) -> float:
        """The wait before resubmitting after `failures` failed jobs: poll_initial doubling to poll_max."""
        initial = self._settings.poll_initial.total_seconds()
        return float(min(initial * 2 ** (failures - 1), self._settings.poll_max.total_seconds()))

    def _observe(self, job: _Job, outcome: JobOutcome) -> None:
        seconds = max(0.0, (self._clock.now() - job.submitted_at).total_seconds())
        self._metrics.job_duration.labels(outcome.value).observe(seconds)

    def _release(self, job: _Job) -> None:
        if job.slot:
            job.slot = False
            self._slots.release()

    def _track(self, job_id: str) -> None:
        self._in_flight.add(job_id)
        self._metrics.jobs_in_flight.set(len(self._in_flight))

    def _untrack(self, job_id: str) -> None:
        self._in_flight.discard(job_id)
        self._metrics.jobs_in_flight.set(len(self._in_flight))


def in_span(conversations: list[dict[str, Any]], span: Window) -> tuple[list[dict[str, Any]], int]:
    """The records whose `conversationStart` lies in `span`, and how many others were dropped.

    A record without a readable `conversationStart` is kept: delivering it twice is better than losing it.
    """
    kept: list[dict[str, Any]] = []
    for record in conversations:
        start = record.get("conversationStart")
        if isinstance(start, str):
            try:
                instant = parse_instant(start)
            except ValueError:
                kept.append(record)
                continue
            if not span.start <= instant < span.end:
                continue
        kept.append(record)
    return kept, len(conversations) - len(kept)
