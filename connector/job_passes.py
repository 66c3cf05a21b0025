"""Job passes: a backfill span or a settling job read through an async job, page by page.

A job pass (`PassKey.job`, docs/ARCHITECTURE.md "Jobs and the query") goes through the same
select/publish/ack path as a query pass (`connector.passes.PassRunner`), with `genesys.pass: job`; after
each acked page `Progress` learns the job cursor to resume at (cursor checkpointing). A pass that settles
its span (its job read the span after the data lake passed it + `jobs.settle_delay`) tells the
`SettlementListener`. `JobPasses` is the part of `PassRunner` that does this; it is a mixin so the runner
stays the one place where passes select, publish and acknowledge.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from connector.completeness import Completeness, conversation_start
from connector.errors import FatalError
from connector.genesys.job_events import JobEvent, JobPage, JobRestarted, JobResume, JobSubmitted
from connector.jobs_plan import settlement_due
from connector.kafka.records import PassLabel, WindowLike
from connector.metrics import ConnectorMetrics
from connector.state.checkpoint import JobCursor
from connector.state.progress import JOB_LABEL, PassKey, Progress
from connector.windows import Window

if TYPE_CHECKING:
    from connector.passes import _Selected


class JobSource(Protocol):
    """What a job pass reads from (`connector.genesys.jobs.JobRunner`, or a fake in tests)."""

    def run(
        self, span: Window, body: Mapping[str, Any], *, resume: JobResume | None = None
    ) -> AsyncIterator[JobEvent]: ...


#: One conversation a settling job returned: (conversationId, conversationStart or None if unreadable).
SettledConversation = tuple[str, datetime | None]


class SettlementListener(Protocol):
    """Told when a span becomes *settled*: the job that settles it was read to its last page and every
    snapshot it changed is acknowledged by Kafka (the completeness ledger and range-final events hook in
    here).

    `conversations` is the job's whole result set for the span (every conversation that started in it, as
    the data lake held it at `data_availability_date`), published or unchanged. Called once per settled
    span from the loop thread; keep it quick (no I/O that blocks for long). A span whose job was resumed
    mid-way after a restart (so the set would be partial) is not reported: it waits for a settling job.
    """

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[SettledConversation],
        data_availability_date: datetime | None,
    ) -> None: ...


class NoSettlementListener:
    """The default: nobody listens."""

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[SettledConversation],
        data_availability_date: datetime | None,
    ) -> None:
        return None


class JobPasses:
    """The job-pass part of `connector.passes.PassRunner` (which sets these attributes and implements
    `_select`/`_deliver`)."""

    _jobs: JobSource | None
    _job_body: Callable[[Window], Mapping[str, Any]] | None
    _settle_delay: timedelta
    _settlement: SettlementListener
    _progress: Progress
    _metrics: ConnectorMetrics
    _completeness: Completeness | None

    def _select(
        self,
        records: Sequence[dict[str, Any]],
        observed_at: datetime,
        *,
        window_of: Callable[[dict[str, Any]], WindowLike],
        pass_label: PassLabel,
        carried: set[str] | frozenset[str] = frozenset(),
    ) -> tuple[list[_Selected], int]:
        raise NotImplementedError

    async def _deliver(
        self,
        selected: list[_Selected],
        observed_at: datetime,
        *,
        label: str,
        context: tuple[PassKey, int] | None,
    ) -> None:
        raise NotImplementedError

    async def _run_job(self, key: PassKey, should_stop: Callable[[], bool]) -> bool:
        """Read `key`'s span through a job, page by page, from its saved cursor; True when complete.

        A settling job that was saved re-reads its (unexpired) job from the first page, so the set it
        reports to the `SettlementListener` is whole; a backfill span continues at its cursor.
        """
        if self._jobs is None or self._job_body is None:
            raise FatalError(f"a job pass for {key.window.interval} but no job runner is configured")
        saved = self._progress.job_cursors.get(key)
        resume = None
        if saved is not None:
            cursor = None if key.settling else saved.cursor
            resume = JobResume(saved.job_id, cursor, saved.submitted_at)
        whole = resume is None or resume.cursor is None
        submitted_at = None if saved is None else saved.submitted_at
        seen: set[SettledConversation] = set()
        availability: datetime | None = None
        events = self._jobs.run(key.window, self._job_body(key.window), resume=resume)
        try:
            async for event in events:
                if isinstance(event, JobSubmitted):
                    submitted_at = event.submitted_at
                    self._progress.job_at(key, JobCursor(job_id=event.job_id, submitted_at=submitted_at))
                    self._progress.add_stat("jobs_submitted", 1)
                elif isinstance(event, JobRestarted):
                    self._progress.job_at(key, None)
                    self._progress.add_stat(f"jobs_restarted_{event.outcome.value}", 1)
                    seen.clear()
                    whole = True
                else:
                    await self._handle_job_page(key, event)
                    seen.update((c["conversationId"], conversation_start(c)) for c in event.conversations)
                    availability = event.data_availability_date or availability
                    if event.last or submitted_at is None:
                        continue
                    at = JobCursor(job_id=event.job_id, cursor=event.next_cursor, submitted_at=submitted_at)
                    self._progress.job_at(key, at)
                    if should_stop():
                        return False
        finally:  # stopping early leaves the job alone: a restart resumes it at the saved cursor
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        self._job_done(key, whole=whole, seen=seen, availability=availability)
        self._progress.complete(key)
        self._metrics.windows_completed.labels(key.label).inc()
        return True

    async def _handle_job_page(self, key: PassKey, page: JobPage) -> None:
        self._metrics.pages_fetched.labels(JOB_LABEL).inc()
        self._metrics.conversations_fetched.labels(JOB_LABEL).inc(len(page.conversations))
        self._progress.add_stat("fetched_jobs", len(page.conversations))
        if self._completeness is not None:
            self._completeness.seen(
                page.conversations,
                pass_label=JOB_LABEL,
                window=key.window,
                at=page.received_at,
                first_read=not key.settling,
            )
        selected, unchanged = self._select(
            page.conversations, page.received_at, window_of=lambda _record: key.window, pass_label=JOB_LABEL
        )
        if unchanged:
            self._metrics.conversations_unchanged.inc(unchanged)
        if selected:
            await self._deliver(selected, page.received_at, label=JOB_LABEL, context=(key, page.page_number))
        open_ids = [c["conversationId"] for c in page.conversations if "conversationEnd" not in c]
        self._progress.open.note_open(open_ids, page.received_at)
        self._progress.open.note_ended(s.cid for s in selected if s.ended)

    def _job_done(
        self, key: PassKey, *, whole: bool, seen: set[SettledConversation], availability: datetime | None
    ) -> None:
        """Tell the listener the span is settled, or leave it waiting for its settling job."""
        settled = key.settling or settlement_due(key.window, availability, self._settle_delay)
        if settled and whole:
            self._settlement.on_settled(key.window, frozenset(seen), availability)
        else:
            self._progress.await_settlement(key.window)
