"""The connector: wires planner -> fetcher -> publisher -> checkpoint together and runs the loop.

`Connector.run()` is the whole life of a worker:

1. resume the passes the checkpoint says were in flight (from the page after the last acked one);
2. repeatedly start due settlement re-scans and new first-pass windows, up to `max_parallel_passes`
   at once (several while catching up, fewer once caught up), and collect the ones that finished;
3. a pass that fails with a retriable error (throttling beyond the retry budget, 5xx bursts, a Kafka
   delivery failure) is retried later from its last acked page: a window is never skipped;
4. write the checkpoint (acked progress only) at most every `checkpoint_interval_s` and after every
   completed pass; prune the change store past the longest re-scan delay;
5. on SIGTERM/SIGINT stop asking for pages, let in-flight pages finish or cancel them after a grace
   period, flush the producer, write the checkpoint and return.

This module does no I/O of its own: every side effect goes through the injected parts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.clock import Clock
from connector.errors import FatalError, RetriableError
from connector.genesys.ratelimit import Pacer
from connector.health import Heartbeat
from connector.kafka.publisher import KafkaPublisher
from connector.metrics import ConnectorMetrics
from connector.passes import PassRunner
from connector.retry import RetryPolicy
from connector.state.changes import ChangeStore
from connector.state.checkpoint import FileCheckpointStore
from connector.state.progress import PassKey, Progress
from connector.windows import WindowPlanner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """Knobs of the main loop (derived from config by the builder)."""

    max_parallel_passes: int = 4
    live_parallel_passes: int = 2
    checkpoint_interval_s: float = 1.0
    retry_delay_s: float = 5.0
    retry_delay_max_s: float = 300.0
    shutdown_grace_s: float = 20.0
    flush_timeout_s: float = 30.0
    prune_after: timedelta = timedelta(days=4)
    exit_when_done: bool = True
    follow_open_interval_s: float | None = None  # None: do not follow open conversations by id
    follow_open_after: timedelta = timedelta(days=4)
    follow_open_max_age: timedelta = timedelta(days=31)
    follow_open_batch: int = 500
    # A re-scan still waiting or running this long after it was due is catch-up work (see `catching_up`).
    overdue_after: timedelta = timedelta(minutes=5)


@dataclass
class _Retry:
    due: float
    failures: int


@dataclass
class _State:
    tasks: dict[asyncio.Task[bool], PassKey] = field(default_factory=dict)
    retry: dict[PassKey, _Retry] = field(default_factory=dict)
    resume_page: dict[PassKey, int] = field(default_factory=dict)
    last_save: float = float("-inf")
    dirty: bool = True
    last_error: tuple[datetime, str] | None = None
    fatal: BaseException | None = None
    follow_task: asyncio.Task[int] | None = None
    next_follow: float = 0.0


class Connector:
    """One worker for one Genesys org. Build it with `connector.wiring.build_connector`."""

    def __init__(
        self,
        *,
        clock: Clock,
        metrics: ConnectorMetrics,
        planner: WindowPlanner,
        progress: Progress,
        runner: PassRunner,
        publisher: KafkaPublisher,
        checkpoints: FileCheckpointStore,
        changes: ChangeStore,
        pacer: Pacer,
        heartbeat: Heartbeat,
        settings: LoopSettings,
        max_catchup_length: timedelta,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._planner = planner
        self._progress = progress
        self._runner = runner
        self._publisher = publisher
        self._checkpoints = checkpoints
        self._changes = changes
        self._pacer = pacer
        self._heartbeat = heartbeat
        self._settings = settings
        self._max_catchup = max_catchup_length
        self._stop = asyncio.Event()
        self._state = _State()

    # ------------------------------------------------------------------------------- lifecycle
    def request_stop(self) -> None:
        """Ask the loop to stop (signal handlers call this; idempotent)."""
        if not self._stop.is_set():
            log.info("stop requested: finishing in-flight pages, then flushing and checkpointing")
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Run until stopped, finished (bounded run) or a fatal error (raised after a final checkpoint)."""
        st = self._state
        for key, page in self._progress.resumable():
            st.resume_page[key] = page
        try:
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
                self._housekeeping()
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
        running = set(st.tasks.values())
        for key in list(st.resume_page):
            if len(st.tasks) >= limit:
                return
            retry = st.retry.get(key)
            if key in running or (retry is not None and retry.due > mono):
                continue
            self._start(key, st.resume_page.pop(key))
        free = limit - len(st.tasks)
        for key in self._progress.take_due_rescans(now, max_length=self._max_catchup, limit=free):
            self._start(key, 1)
        while len(st.tasks) < limit:
            window = self._planner.next_window(self._progress.planned_until)
            if window is None:
                break
            self._start(self._progress.begin_first_pass(window), 1)
        self._schedule_follow_up(now, mono)

    def _schedule_follow_up(self, now: datetime, mono: float) -> None:
        """Follow conversations still open after their window's last re-scan (see PassRunner.follow_open)."""
        st, interval = self._state, self._settings.follow_open_interval_s
        if interval is None or st.follow_task is not None or mono < st.next_follow:
            return
        st.next_follow = mono + interval
        self._progress.prune_open(now - self._settings.follow_open_max_age)
        ids = self._progress.open_since_before(now - self._settings.follow_open_after)
        if ids:
            batch = ids[: self._settings.follow_open_batch]
            st.follow_task = asyncio.create_task(self._runner.follow_open(batch), name="follow-open")

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
        candidates = [self._settings.checkpoint_interval_s if self._state.dirty else 5.0]
        mono = self._clock.monotonic()
        candidates += [max(0.05, r.due - mono) for r in self._state.retry.values()]
        due = self._progress.next_rescan_due()
        if due is not None:
            candidates.append(max(0.05, (due - self._clock.now()).total_seconds()))
        nxt = self._planner.next_window_ready_in(self._progress.planned_until)
        if nxt is not None:
            candidates.append(max(0.05, nxt.total_seconds()))
        return min(candidates)

    def _collect(self) -> None:
        """Handle finished passes: success, retry later, or fatal."""
        st = self._state
        self._collect_follow_up()
        for task in [t for t in st.tasks if t.done()]:
            key = st.tasks.pop(task)
            st.dirty = True
            if task.cancelled():
                st.resume_page[key] = self._progress.in_progress.get(key, 1)
                continue
            exc = task.exception()
            if exc is None:
                st.retry.pop(key, None)
                if not task.result():  # stopped early: resume from the acked page next time
                    st.resume_page[key] = self._progress.in_progress.get(key, 1)
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
            log.warning("following open conversations failed; trying again later", extra={"error": str(exc)})
            return
        log.error("fatal error while following open conversations: stopping", extra={"error": str(exc)})
        st.fatal = exc
        self._stop.set()

    def _on_pass_error(self, key: PassKey, exc: BaseException) -> None:
        st = self._state
        st.last_error = (self._clock.now(), str(exc))
        self._metrics.last_error_timestamp_seconds.set(self._clock.now().timestamp())
        if _is_retried_later(exc):
            failures = st.retry[key].failures + 1 if key in st.retry else 1
            delay = pass_retry_policy(self._settings).delay_s(failures, exc)
            st.retry[key] = _Retry(self._clock.monotonic() + delay, failures)
            st.resume_page[key] = self._progress.in_progress.get(key, 1)
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
    def _housekeeping(self) -> None:
        st = self._state
        mono = self._clock.monotonic()
        self._update_gauges()
        if st.dirty and mono - st.last_save >= self._settings.checkpoint_interval_s:
            self._save_checkpoint()
            self._changes.prune(self._clock.now() - self._settings.prune_after)
            self._progress.prune_open(self._clock.now() - self._settings.follow_open_max_age)

    def _save_checkpoint(self) -> None:
        st = self._state
        saved = self._checkpoints.save(self._progress.snapshot(last_error=st.last_error))
        st.last_save = self._clock.monotonic()
        st.dirty = bool(st.tasks)
        if saved.updated_at is not None:
            self._metrics.checkpoint_timestamp_seconds.set(saved.updated_at.timestamp())

    def _update_gauges(self) -> None:
        watermark = self._progress.watermark
        if watermark is not None:
            self._metrics.watermark_timestamp_seconds.set(watermark.timestamp())
            self._metrics.lag_seconds.set(max(0.0, (self._clock.now() - watermark).total_seconds()))
        self._metrics.rescans_pending.set(len(self._progress.rescans))
        self._metrics.open_conversations.set(len(self._progress.open_conversations))

    async def _shutdown(self) -> None:
        """Stop asking for pages, wait for in-flight pages (bounded), flush, checkpoint."""
        st = self._state
        self._stop.set()
        running: set[asyncio.Task[object]] = set(st.tasks)
        if st.follow_task is not None:
            running.add(st.follow_task)
        if running:
            _done, pending = await asyncio.wait(running, timeout=self._settings.shutdown_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cancelled %d pass(es) still waiting after the grace period", len(pending))
                await asyncio.wait(pending, timeout=5.0)
        self._collect()
        remaining = await asyncio.to_thread(self._publisher.flush, self._settings.flush_timeout_s)
        if remaining:
            log.warning(
                "%d message(s) still unacknowledged at shutdown; their pages will be re-fetched", remaining
            )
        try:
            self._save_checkpoint()
        except (
            FatalError
        ) as exc:  # e.g. disk full: the previous checkpoint is intact; report and exit non-zero
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


def catching_up(
    *, first_pass_behind: bool, oldest_due: datetime | None, now: datetime, overdue_after: timedelta
) -> bool:
    """Whether the loop is catching up (full budget share, `max_parallel_passes`) or live (polite share).

    Work that is overdue is catch-up work: besides a first pass behind `now - lag`, a re-scan that has been
    due for longer than `overdue_after` (waiting for a slot, or still running) means the connector is not
    keeping up - e.g. a bounded run whose watermark reached `windows.end` with every window's re-scans
    still to do. Live polling starts each re-scan as it comes due and finishes it well within that time.
    """
    return first_pass_behind or (oldest_due is not None and now - oldest_due > overdue_after)


def pass_retry_policy(settings: LoopSettings) -> RetryPolicy:
    """The one retry policy with the loop's numbers, no attempt limit: a window is never skipped."""
    return RetryPolicy(base_s=settings.retry_delay_s, max_s=settings.retry_delay_max_s, max_attempts=None)


def _is_retried_later(exc: BaseException) -> bool:
    """Failures the loop retries later instead of stopping: the `RetriableError` branch of the tree
    (including a request that ran out of attempts: a window is never skipped)."""
    return isinstance(exc, RetriableError)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
