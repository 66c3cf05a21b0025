"""The main loop: schedule window passes, wait, collect what finished. It does no I/O of its own.

`Connector.run()` is the whole life of a worker:

1. resume the passes the checkpoint says were in flight (from the page after the last acked one);
2. repeatedly start due settlement re-scans and new first-pass windows, up to `max_parallel_passes`
   at once (several while catching up, fewer once caught up), follow open conversations by id as they
   come due (`connector.state.followup`), and collect what finished;
3. a pass that fails with a retriable error (throttling beyond the retry budget, 5xx bursts, a Kafka
   delivery failure) is parked in the `RetryTable` and retried later from its last acked page: a window
   is never skipped;
4. write the checkpoint (acked progress only) at most every `checkpoint_interval_s`, in a worker thread
   (the write fsyncs); prune the change store on its own timer (`PruneTimer`), in a worker thread too;
5. on SIGTERM/SIGINT stop asking for pages, let in-flight pages finish or cancel them after a grace
   period, flush the producer, write the checkpoint and return.

With async jobs on (`JobScheduler`, docs/ARCHITECTURE.md "Jobs and the query"), the backlog the data
lake holds is handed out as job spans before any first-pass window (the query takes over at the
handover), and windows waiting for their settling job get one once the data lake has passed them; both
are passes like the others (`PassKey.job`), within `jobs.max_concurrent`. The availability is read at
start-up and then every `jobs.availability_check_interval`, in a task.

What to schedule lives with the state: `Progress` (passes in flight, re-scan schedule and the rule that
only the last due pass runs), `OpenConversations` (follow-up schedule), `RetryTable`, `PruneTimer`. Every
part the loop drives is typed as a Protocol (`connector.loop_parts`), so tests can hand it fakes; its
settings and the policies derived from them are in `connector.loop_settings`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.clock import Clock
from connector.errors import FatalError, RetriableError
from connector.jobs_schedule import JobScheduler
from connector.loop_parts import Beating, BudgetMode, ControlReporting, Flushing, PassRunning
from connector.loop_settings import LoopSettings, catching_up, pass_retry_policy
from connector.metrics import ConnectorMetrics
from connector.state.checkpoint import CheckpointStore
from connector.state.progress import PassKey, Progress
from connector.state.pruning import PruneTimer
from connector.state.retry_table import RetryTable
from connector.windows import WindowPlanner

log = logging.getLogger(__name__)


@dataclass
class _State:
    tasks: dict[asyncio.Task[bool], PassKey] = field(default_factory=dict)
    retries: RetryTable = field(default_factory=RetryTable)
    last_save: float = float("-inf")
    dirty: bool = True
    last_error: tuple[datetime, str] | None = None
    fatal: BaseException | None = None
    follow_task: asyncio.Task[int] | None = None
    follow_ids: list[str] = field(default_factory=list)
    availability_task: asyncio.Task[object] | None = None


class Connector:
    """One worker for one Genesys org. `connector.service.run_connector` builds it from the config."""

    def __init__(
        self,
        *,
        clock: Clock,
        metrics: ConnectorMetrics,
        planner: WindowPlanner,
        progress: Progress,
        runner: PassRunning,
        publisher: Flushing,
        checkpoints: CheckpointStore,
        pruning: PruneTimer,
        pacer: BudgetMode,
        heartbeat: Beating,
        settings: LoopSettings,
        max_catchup_length: timedelta,
        jobs: JobScheduler | None = None,
        control: ControlReporting | None = None,
    ) -> None:
        self._control = control
        self._clock = clock
        self._metrics = metrics
        self._planner = planner
        self._progress = progress
        self._runner = runner
        self._publisher = publisher
        self._checkpoints = checkpoints
        self._pruning = pruning
        self._pacer = pacer
        self._heartbeat = heartbeat
        self._settings = settings
        self._max_catchup = max_catchup_length
        self._jobs = jobs
        self._stop = asyncio.Event()
        self._state = _State()

    # ------------------------------------------------------------------------------- lifecycle
    def request_stop(self) -> None:
        """Ask the loop to stop (signal handlers call this; idempotent)."""
        if not self._stop.is_set():
            log.info("stop requested: finishing in-flight pages, then flushing and checkpointing")
        self._stop.set()

    async def run(self) -> None:
        """Run until stopped, finished (bounded run) or a fatal error (raised after a final checkpoint)."""
        st = self._state
        for key, page in self._progress.resumable():
            st.retries.park(key, page)
        try:
            if self._jobs is not None:  # before the first plan: the backlog may go to jobs
                await self._jobs.refresh()
            while not self._stop.is_set():
                self._heartbeat.beat()
                self._schedule()
                if st.fatal is not None:
                    break
                if self._finished():
                    log.info("bounded run complete: every window and re-scan up to windows.end is done")
                    break
                await self._wait_for_progress()
                self._collect()
                await self._housekeeping()
        finally:
            await self._shutdown()
        if st.fatal is not None:
            raise st.fatal

    # ------------------------------------------------------------------------------- scheduling
    def _schedule(self) -> None:
        """Start resumed passes, failed passes whose retry is due, due re-scans and new windows."""
        st = self._state
        now = self._clock.now()
        mono = self._clock.monotonic()
        # Behind is judged by what is *done* (the watermark), not by what was handed out: the last
        # catch-up windows still deserve the full catch-up budget while they are being read; overdue
        # re-scans are catch-up work too.
        catch_up = catching_up(
            first_pass_behind=self._planner.is_behind(self._progress.watermark),
            oldest_due=self._progress.oldest_due_rescan(now),
            now=now,
            overdue_after=self._settings.overdue_after,
        )
        self._pacer.set_catching_up(catch_up)
        limit = self._settings.max_parallel_passes if catch_up else self._settings.live_parallel_passes
        self._schedule_follow_up(now)
        for key in st.retries.ready(mono):
            if len(st.tasks) >= limit:
                return
            self._start(key, st.retries.take(key))
        free = limit - len(st.tasks)
        for key in self._progress.take_due_rescans(now, max_length=self._max_catchup, limit=free):
            self._start(key, 1)
        if self._jobs is not None and self._schedule_jobs(self._jobs, now, limit):
            return  # the backlog is read by jobs: no first-pass window before the handover
        while len(st.tasks) < limit:
            window = self._planner.next_window(self._progress.planned_until)
            if window is None:
                break
            self._start(self._progress.begin_first_pass(window, now), 1)

    def _schedule_jobs(self, jobs: JobScheduler, now: datetime, limit: int) -> bool:
        """Start due settling jobs and the next backfill spans; True while backfill spans remain."""
        st = self._state
        room = min(
            jobs.settings.max_concurrent - sum(1 for k in st.tasks.values() if k.job), limit - len(st.tasks)
        )
        for key in self._progress.take_settlements(jobs.settlements(self._progress.unsettled, room), now):
            self._start(key, 1)
            room -= 1
        frontier = self._progress.planned_until or self._planner.initial_start()
        for span in jobs.backfill_spans(frontier, room):
            self._start(self._progress.begin_job_span(span, now), 1)
        return jobs.backfill_pending(self._progress.planned_until or frontier)

    def _schedule_follow_up(self, now: datetime) -> None:
        """Follow the open conversations due now by id (one follow-up task at a time)."""
        st = self._state
        if st.follow_task is not None:
            return
        ids = self._progress.open.due(now, limit=self._settings.follow_batch)
        if ids:
            st.follow_ids = ids
            st.follow_task = asyncio.create_task(self._runner.follow_open(ids), name="follow-open")

    def _start(self, key: PassKey, page: int) -> None:
        task = asyncio.create_task(
            self._runner.run(key, start_page=page, should_stop=self._stop.is_set),
            name=f"pass-{key.pass_no}-{key.window.interval}",
        )
        self._state.tasks[task] = key
        self._state.dirty = True
        log.debug("pass started", extra={"window": key.window.interval, "pass": key.pass_no, "page": page})

    async def _wait_for_progress(self) -> None:
        """Sleep until a pass finishes, a stop is requested or it is time to look for new work."""
        st = self._state
        waiters: set[asyncio.Future[object]] = set(st.tasks)  # type: ignore[arg-type]
        if st.follow_task is not None:
            waiters.add(st.follow_task)  # type: ignore[arg-type]
        if st.availability_task is not None:
            waiters.add(st.availability_task)
        stop_wait = asyncio.ensure_future(self._stop.wait())
        # The timer sleeps on the injected clock, so tests with a fake clock never wait in real time.
        timer = asyncio.ensure_future(self._clock.sleep(self._next_wakeup_s()))
        waiters.add(stop_wait)  # type: ignore[arg-type]
        waiters.add(timer)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            timer.cancel()

    def _next_wakeup_s(self) -> float:
        """How long the loop may sleep: until the next retry, re-scan or window, capped for housekeeping."""
        st, now = self._state, self._clock.now()
        candidates = [self._settings.checkpoint_interval_s if st.dirty else 5.0, self._pruning.next_in_s()]
        if self._control is not None:
            candidates.append(self._control.next_in_s())
        mono = self._clock.monotonic()
        retry = st.retries.next_retry(mono)
        if retry is not None:
            candidates.append(retry - mono)
        dues = [self._progress.next_rescan_due()]
        if st.follow_task is None:  # while one runs, its end wakes the loop
            dues.append(self._progress.open.next_due())
        candidates += [(due - now).total_seconds() for due in dues if due is not None]
        nxt = self._planner.next_window_ready_in(self._progress.planned_until)
        if nxt is not None:
            candidates.append(nxt.total_seconds())
        if self._jobs is not None and st.availability_task is None:
            candidates.append(self._jobs.next_check_in_s())
        return max(0.05, min(candidates))

    def _collect(self) -> None:
        """Handle finished passes: success, retry later, or fatal."""
        st = self._state
        self._collect_follow_up()
        self._collect_availability()
        for task in [t for t in st.tasks if t.done()]:
            key = st.tasks.pop(task)
            st.dirty = True
            if task.cancelled():
                st.retries.park(key, self._progress.in_progress.get(key, 1))
                continue
            exc = task.exception()
            if exc is None:
                st.retries.succeeded(key)
                if not task.result():  # stopped early: resume from the acked page next time
                    st.retries.park(key, self._progress.in_progress.get(key, 1))
                continue
            self._on_pass_error(key, exc)

    def _collect_follow_up(self) -> None:
        st = self._state
        task = st.follow_task
        if task is None or not task.done():
            return
        st.follow_task = None
        st.dirty = True
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if _is_retried_later(exc):
            # The same ids come due again one follow interval later: that is the back-off.
            self._progress.open.followed(st.follow_ids, self._clock.now())
            log.warning("following open conversations failed; trying again later", extra={"error": str(exc)})
            return
        log.error("fatal error while following open conversations: stopping", extra={"error": str(exc)})
        st.fatal = exc
        self._stop.set()

    def _collect_availability(self) -> None:
        """A finished availability read: its value is in the scheduler; a fatal error stops the loop."""
        st = self._state
        task = st.availability_task
        if task is None or not task.done():
            return
        st.availability_task = None
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("fatal error while reading the data lake's availability: stopping", exc_info=exc)
            st.fatal = exc
            self._stop.set()

    def _on_pass_error(self, key: PassKey, exc: BaseException) -> None:
        st = self._state
        st.last_error = (self._clock.now(), str(exc))
        self._metrics.last_error_timestamp_seconds.set(self._clock.now().timestamp())
        if _is_retried_later(exc):
            failures = st.retries.failures(key) + 1
            delay = pass_retry_policy(self._settings).delay_s(failures, exc)
            page = self._progress.in_progress.get(key, 1)
            st.retries.failed(key, page, retry_at=self._clock.monotonic() + delay)
            log.warning(
                "window pass failed; it will be retried (never skipped)",
                extra={
                    "window": key.window.interval,
                    "pass": key.pass_no,
                    "retry_in_s": round(delay, 1),
                    "attempt": failures,
                    "error": str(exc),
                    "correlation_id": getattr(exc, "correlation_id", None),
                },
            )
            return
        if isinstance(exc, FatalError):
            log.error("fatal error: stopping", extra={"error": str(exc), "window": key.window.interval})
        else:
            log.error("unexpected error in a window pass: stopping", exc_info=exc)
        st.fatal = exc
        self._stop.set()

    def _finished(self) -> bool:
        """A bounded run (windows.end) is done when every first pass and re-scan is complete."""
        if not self._settings.exit_when_done or self._state.tasks or self._progress.in_progress:
            return False
        return self._planner.is_finished(self._progress.planned_until) and not self._progress.rescans

    # ------------------------------------------------------------------------------- bookkeeping
    async def _housekeeping(self) -> None:
        """Gauges; the checkpoint when due; the change store's prune on its timer (both in a thread)."""
        st = self._state
        self._update_gauges()
        if st.dirty and self._clock.monotonic() - st.last_save >= self._settings.checkpoint_interval_s:
            await self._save_checkpoint()
        if self._pruning.due():
            self._progress.open.prune(self._clock.now())
            await self._pruning.prune()
        if self._jobs is not None and st.availability_task is None and self._jobs.check_due():
            st.availability_task = asyncio.create_task(self._jobs.refresh(), name="availability")
        await self._report_control()

    async def _report_control(self, *, beat: bool = False) -> None:
        """Settled hours to the control topic (after their messages' acks), the heartbeat when due."""
        if self._control is None:
            return
        try:
            await self._control.report(beat=beat)
        except RetriableError as exc:  # reported again at the next turn: nothing was marked
            log.warning("control topic not reachable; trying again", extra={"error": str(exc)})

    async def _save_checkpoint(self) -> None:
        """Write what is acked now; the write (fsync, rename, fsync) runs in a worker thread.

        The snapshot is taken on the loop thread, so it is one consistent acked state; passes that
        complete while it is written are in the next one.
        """
        st = self._state
        snapshot = self._progress.snapshot(last_error=st.last_error)
        st.last_save = self._clock.monotonic()
        st.dirty = bool(st.tasks)
        saved = await asyncio.to_thread(self._checkpoints.save, snapshot)
        if saved.updated_at is not None:
            self._metrics.checkpoint_timestamp_seconds.set(saved.updated_at.timestamp())

    def _update_gauges(self) -> None:
        watermark = self._progress.watermark
        if watermark is not None:
            self._metrics.watermark_timestamp_seconds.set(watermark.timestamp())
            self._metrics.lag_seconds.set(max(0.0, (self._clock.now() - watermark).total_seconds()))
        self._metrics.rescans_pending.set(len(self._progress.rescans))
        self._metrics.open_conversations.set(len(self._progress.open))

    async def _shutdown(self) -> None:
        """Stop asking for pages, wait for in-flight pages (bounded), flush, checkpoint."""
        st = self._state
        self._stop.set()
        running: set[asyncio.Task[object]] = set(st.tasks)
        if st.follow_task is not None:
            running.add(st.follow_task)
        if st.availability_task is not None:
            st.availability_task.cancel()
            running.add(st.availability_task)
        if running:
            _done, pending = await asyncio.wait(running, timeout=self._settings.shutdown_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cancelled %d pass(es) still waiting after the grace period", len(pending))
                await asyncio.wait(pending, timeout=5.0)
        self._collect()
        try:  # a bounded run's last settled hours are reported before it exits
            await self._report_control(beat=True)
        except FatalError as exc:
            log.error("could not report to the control topic", extra={"error": str(exc)})
        remaining = await asyncio.to_thread(self._publisher.flush, self._settings.flush_timeout_s)
        if remaining:
            log.warning(
                "%d message(s) still unacknowledged at shutdown; their pages will be re-fetched", remaining
            )
        try:
            await self._save_checkpoint()
        except FatalError as exc:  # e.g. disk full: the previous checkpoint is intact; report, exit non-zero
            log.error("could not write the final checkpoint", extra={"error": str(exc)})
            if st.fatal is None:
                st.fatal = exc
        self._update_gauges()
        log.info(
            "stopped",
            extra={
                "watermark": _iso(self._progress.watermark),
                "rescans_pending": len(self._progress.rescans),
            },
        )


def _is_retried_later(exc: BaseException) -> bool:
    """Failures the loop retries later instead of stopping: the `RetriableError` branch of the tree
    (including a request that ran out of attempts: a window is never skipped)."""
    return isinstance(exc, RetriableError)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
