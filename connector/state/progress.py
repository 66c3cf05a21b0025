"""What is done and what is next: the in-memory truth behind the checkpoint.

`Progress` knows which window passes are in flight (and which page of each comes next), how far the
first pass has reached without gaps (the watermark), which settlement re-scans are due, and which
conversations were seen in progress (`open`, followed by id: `connector.state.followup`). It changes
only when the app tells it that pages were *acknowledged by Kafka*, so a `snapshot()` taken at any moment
is safe to write as the checkpoint.

Passes are identified by `PassKey(window, pass_no)`: pass 0 is the first pass of a window, pass n >= 1
the n-th settlement re-scan. First passes may complete out of order when several run at once; the
watermark only moves over a contiguous run of completed windows (`planned_until` remembers how far
windows were handed out, so a restart neither skips nor repeats a completed window).

Only the last due pass of a window can add anything: each pass reads the whole window again. So a pass
that started at or after a later pass's due time makes that later pass unnecessary (a first pass of a
backlog older than the longest delay schedules no re-scan at all), and when several passes of a window are
due at once (after downtime) only the highest due one runs. Passes are keyed by the pass that actually
ran; `started_at` (when it first asked for a page) is kept in the checkpoint for passes in flight.

Job passes (`PassKey.job`, read through an async job: docs/ARCHITECTURE.md "Jobs and the query") sit in
the same table: pass 0 is a backfill span (it counts for the watermark like a first-pass window), pass 1
a settling job. They resume at the job cursor after their last acknowledged page (`job_cursor`), never
schedule query re-scans, and `unsettled` holds the windows waiting for their settling job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from connector.state.checkpoint import (
    CheckpointState,
    JobCursor,
    LastError,
    PassProgress,
    RescanEntry,
    UnsettledWindow,
)
from connector.state.followup import OpenConversations
from connector.windows import Window


@dataclass(frozen=True, order=True)
class PassKey:
    """One pass over one window."""

    window: Window
    pass_no: int
    job: bool = False  # read through an async job: pass 0 = backfill span, pass 1 = settling job

    @property
    def label(self) -> str:
        """Metric/header label: "0" for the first pass, "1".."n" for re-scans, "job" for a job pass."""
        return JOB_LABEL if self.job else str(self.pass_no)

    @property
    def settling(self) -> bool:
        """True for a settling job (pass 1 of a job), False for a backfill span or a query pass."""
        return self.job and self.pass_no == SETTLING_PASS


#: `genesys.pass` header and metric label of snapshots read through an async job.
JOB_LABEL: Literal["job"] = "job"
#: `pass_no` of a settling job (`PassKey(window, SETTLING_PASS, job=True)`); a backfill span is pass 0.
SETTLING_PASS = 1


class Progress:
    """Tracks acked progress and the re-scan schedule; produces checkpoint states."""

    def __init__(
        self,
        state: CheckpointState | None,
        *,
        rescan_delays: Sequence[timedelta],
        version: str,
        fingerprint: str,
        follow_interval: timedelta | None = None,
        follow_horizon: timedelta = timedelta(days=31),
        settle: bool = False,
    ) -> None:
        state = state or CheckpointState()
        self._delays = list(rescan_delays)
        self._version = version
        self._fingerprint = fingerprint
        self._base = state
        self.planned_until: datetime | None = state.planned_until or state.watermark
        self._settle = settle
        self.in_progress: dict[PassKey, int] = {}
        self._started: dict[PassKey, datetime] = {}  # passes in flight whose start is known
        self.job_cursors: dict[PassKey, JobCursor] = {}  # job passes: the job, cursor after the last ack
        for p in state.in_progress:
            key = PassKey(Window(p.window_start, p.window_end), p.pass_no, p.job)
            self.in_progress[key] = p.next_page
            if p.started_at is not None:
                self._started[key] = p.started_at
            if p.job_cursor is not None:
                self.job_cursors[key] = p.job_cursor
        # Windows waiting for their settling job (kept only while settlement by jobs is on).
        self.unsettled: list[Window] = (
            sorted(Window(u.window_start, u.window_end) for u in state.unsettled) if settle else []
        )
        # Re-scans beyond the configured number of passes (the list was shortened or emptied since the
        # checkpoint was written) are dropped: the configuration says they are not wanted.
        self.rescans: list[RescanEntry] = sorted(
            (r for r in state.rescans if r.pass_no <= len(self._delays)),
            key=lambda r: (r.due_at, r.window_start),
        )
        self.open = OpenConversations(
            state.open_conversations, interval=follow_interval, horizon=follow_horizon
        )
        self.stats: dict[str, int] = dict(state.stats)

    # ----------------------------------------------------------------------------------- queries
    @property
    def watermark(self) -> datetime | None:
        """End of the contiguous range whose first pass is complete and acked."""
        firsts = [k.window.start for k in self.in_progress if k.pass_no == 0]
        if firsts:
            return min(firsts)
        return self.planned_until

    def resumable(self) -> list[tuple[PassKey, int]]:
        """Passes that were in flight when the checkpoint was written, with the page to resume at."""
        return sorted(self.in_progress.items(), key=lambda kv: (kv[0].pass_no, kv[0].window.start, kv[0].job))

    def next_rescan_due(self) -> datetime | None:
        """When the earliest scheduled re-scan is due (None if none is scheduled)."""
        return self.rescans[0].due_at if self.rescans else None

    def oldest_due_rescan(self, now: datetime) -> datetime | None:
        """Due time of the longest-waiting re-scan not yet complete: due and waiting, or in flight.

        An in-flight re-scan was due at its window's end plus its delay (a merged window: its last part).
        None when no re-scan is due. The app compares it with `now` to tell overdue work from live work.
        """
        dues = [r.due_at for r in self.rescans if r.due_at <= now]
        dues += [
            self._due(key.window, key.pass_no)
            for key in self.in_progress
            if not key.job and 1 <= key.pass_no <= len(self._delays)
        ]
        return min(dues, default=None)

    def _due(self, window: Window, pass_no: int) -> datetime:
        """When re-scan `pass_no` (1..n) of `window` is due under the configured delays."""
        return window.end + self._delays[pass_no - 1]

    def _last_due(self, window: Window, pass_no: int, at: datetime) -> int:
        """The highest pass >= `pass_no` of `window` due at `at`: reading then makes the lower ones moot."""
        while pass_no < len(self._delays) and self._due(window, pass_no + 1) <= at:
            pass_no += 1
        return pass_no

    def is_last_pass(self, key: PassKey) -> bool:
        """True when no pass of `key.window` follows this one: its read is the window's final (settling) read.

        The last configured re-scan, or an earlier pass that started after every later one was due (the
        rule of `complete`). False when no re-scans are configured: a first pass alone settles nothing.
        """
        if not self._delays:
            return False
        started = self._started.get(key)
        if started is None:
            return key.pass_no >= len(self._delays)
        return self._first_due_after(key.window, key.pass_no + 1, started) > len(self._delays)

    def pending_from(self) -> datetime | None:
        """The earliest instant some pass may still read: before it, every window's last pass is done.

        The least of the watermark, the starts of passes in flight and of scheduled re-scans (None before
        the first window was handed out).
        """
        starts = [k.window.start for k in self.in_progress] + [r.window_start for r in self.rescans]
        candidates = [*starts, *([self.watermark] if self.watermark is not None else [])]
        return min(candidates, default=None)

    # ----------------------------------------------------------------------------------- changes
    def begin_first_pass(self, window: Window, now: datetime) -> PassKey:
        """Hand out the next first-pass window (it must start where the previous one ended) at `now`."""
        key = PassKey(window, 0)
        self.in_progress[key] = 1
        self._started[key] = now
        self.planned_until = window.end
        return key

    def take_due_rescans(
        self, now: datetime, *, max_length: timedelta, limit: int | None = None
    ) -> list[PassKey]:
        """Remove the re-scans due at `now` and return them as passes, merging adjacent windows.

        Each due re-scan becomes the highest pass of its window due at `now` (passes 1 and 2 overdue after
        downtime: only pass 2 runs; it reads the same data, later). Contiguous windows due for the same
        pass number are fetched as one interval (up to `max_length`): one query instead of many means
        fewer requests and fewer boundary duplicates. At most `limit` merged passes are taken (the rest
        stay scheduled), so a backlog of due re-scans after downtime respects the parallelism limit.
        """
        due = [r for r in self.rescans if r.due_at <= now]
        if not due or (limit is not None and limit <= 0):
            return []
        runs = {r: self._last_due(Window(r.window_start, r.window_end), r.pass_no, now) for r in due}
        keys: list[PassKey] = []
        taken: set[RescanEntry] = set()
        for pass_no in sorted(set(runs.values())):
            entries = sorted((r for r in due if runs[r] == pass_no), key=lambda r: r.window_start)
            spans = [(r.window_start, r.window_end) for r in entries]
            for start, end in _merge(spans, max_length):
                if limit is not None and len(keys) >= limit:
                    break
                key = PassKey(Window(start, end), pass_no)
                self.in_progress[key] = 1
                self._started[key] = now
                keys.append(key)
                taken.update(r for r in entries if start <= r.window_start and r.window_end <= end)
        self.rescans = [r for r in self.rescans if r not in taken]
        return keys

    def page_acked(self, key: PassKey, page_number: int) -> None:
        """Every message of `page_number` (and of all pages before it) is acknowledged."""
        if key in self.in_progress:
            self.in_progress[key] = max(self.in_progress[key], page_number + 1)

    def complete(self, key: PassKey) -> None:
        """A pass fetched its last page and every message is acknowledged: schedule what follows.

        The next pass is the first one due after this pass started: the ones due before it read nothing
        this pass did not (a pass whose start is unknown, resumed from an old checkpoint, schedules the
        very next one).
        """
        self.in_progress.pop(key, None)
        started = self._started.pop(key, None)
        if key.job:
            self.job_cursors.pop(key, None)
            self.add_stat("job_settlements_completed" if key.settling else "job_spans_completed", 1)
            return
        if key.pass_no == 0:
            self.await_settlement(key.window)
        nxt = key.pass_no + 1
        if started is not None and nxt <= len(self._delays):
            nxt = self._first_due_after(key.window, nxt, started)
        if nxt <= len(self._delays):
            # A merged re-scan window stays merged for its next pass: fewer, larger queries.
            self.rescans.append(
                RescanEntry(
                    window_start=key.window.start,
                    window_end=key.window.end,
                    pass_no=nxt,
                    due_at=self._due(key.window, nxt),
                )
            )
            self.rescans.sort(key=lambda r: (r.due_at, r.window_start))
        if nxt > key.pass_no + 1:
            self.add_stat("rescans_unneeded", nxt - key.pass_no - 1)
        self.add_stat(f"passes_completed_{key.pass_no}", 1)

    # ----------------------------------------------------------------------------------- job passes
    def begin_job_span(self, span: Window, now: datetime) -> PassKey:
        """Hand out the next backfill span (read by a job); like `begin_first_pass`, it moves
        `planned_until` and holds the watermark until its last page is acknowledged."""
        key = PassKey(span, 0, job=True)
        self.in_progress[key] = 1
        self._started[key] = now
        self.planned_until = span.end
        return key

    def job_at(self, key: PassKey, cursor: JobCursor | None) -> None:
        """`key` now stands at `cursor` (a new job: cursor None; after an acked page: its next cursor;
        None after a restart: the next job starts from its first page)."""
        if key not in self.in_progress:
            return
        if cursor is None:
            self.job_cursors.pop(key, None)
        else:
            self.job_cursors[key] = cursor

    def await_settlement(self, window: Window) -> None:
        """`window` was read before the data lake held it settled: a settling job reads it again later."""
        if self._settle and window not in self.unsettled:
            self.unsettled.append(window)
            self.unsettled.sort()

    def take_settlements(
        self, spans: Sequence[tuple[Window, Sequence[Window]]], now: datetime
    ) -> list[PassKey]:
        """Start settling jobs: each `(span, windows)` (from `jobs_plan.plan_settlement`) becomes a job pass
        and its windows leave `unsettled` (they are back in the checkpoint as the pass, until it is acked)."""
        keys: list[PassKey] = []
        for span, windows in spans:
            key = PassKey(span, SETTLING_PASS, job=True)
            if key in self.in_progress:
                continue
            self.in_progress[key] = 1
            self._started[key] = now
            done = set(windows)
            self.unsettled = [w for w in self.unsettled if w not in done]
            keys.append(key)
        return keys

    def _first_due_after(self, window: Window, pass_no: int, started: datetime) -> int:
        """The first pass >= `pass_no` due after `started` (n + 1 when every pass was due by then)."""
        while pass_no <= len(self._delays) and self._due(window, pass_no) <= started:
            pass_no += 1
        return pass_no

    def add_stat(self, name: str, value: int) -> None:
        """Accumulate a counter shown by `status` (survives restarts through the checkpoint)."""
        self.stats[name] = self.stats.get(name, 0) + value

    def snapshot(self, *, last_error: tuple[datetime, str] | None = None) -> CheckpointState:
        """The checkpoint to write now: covers acknowledged work only."""
        update: dict[str, object] = {
            "watermark": self.watermark,
            "planned_until": self.planned_until,
            "in_progress": [
                PassProgress(
                    window_start=k.window.start,
                    window_end=k.window.end,
                    pass_no=k.pass_no,
                    next_page=p,
                    started_at=self._started.get(k),
                    job=k.job,
                    job_cursor=self.job_cursors.get(k),
                )
                for k, p in self.resumable()
            ],
            "rescans": list(self.rescans),
            "open_conversations": dict(self.open.first_seen),
            "unsettled": [UnsettledWindow(window_start=w.start, window_end=w.end) for w in self.unsettled],
            "connector_version": self._version,
            "config_fingerprint": self._fingerprint,
            "stats": dict(self.stats),
        }
        if last_error is not None:
            update["last_error"] = LastError(at=last_error[0], message=last_error[1])
        return self._base.model_copy(update=update)


def _merge(spans: list[tuple[datetime, datetime]], max_length: timedelta) -> list[tuple[datetime, datetime]]:
    """Merge touching/overlapping spans (sorted by start) into runs no longer than `max_length`."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] and max(end, merged[-1][1]) - merged[-1][0] <= max_length:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
