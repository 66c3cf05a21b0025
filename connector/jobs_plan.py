"""Where async jobs read and where the details query does: pure planning over instants, no I/O.

The data lake (async jobs) holds every conversation that started before `dataAvailabilityDate`
(genesys-api.md §2.5); the details query serves the fresh tail after it. Two decisions follow:

- **Backfill** (`BackfillPlanner.plan`): from the frontier (the watermark, or the configured start) up
  to the availability date, read by jobs in spans of `jobs.span` whole UTC days (aligned, so restarts
  cut the same spans; the first span may start mid-day, the last ends at the availability date). The
  query path takes over at `BackfillPlan.handover`. A backlog shorter than `min_backlog` is left to the
  query (a job costs a submission, polls and a deletion: for an hour or two of a small org, a query page
  is cheaper). `next_spans` picks the spans to start now within `jobs.max_concurrent`.
- **Settlement** (`settlement_due`, `plan_settlement`): a window read by the query is read once more by a
  job once `dataAvailabilityDate >= window.end + jobs.settle_delay`: by then the data lake holds the
  window's conversations as they were `settle_delay` after it, and the job's fixed result set is the
  deterministic answer. Due windows that touch are merged into one job span, never across a `jobs.span`
  boundary.

Each conversation belongs to exactly one span: jobs use `startOfDayIntervalMatching` and the runner
keeps only records whose `conversationStart` lies in the span (docs/ARCHITECTURE.md, "Jobs and the
query").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.config import JobsSettings
from connector.windows import Window, align_down

#: Default smallest backlog worth a job (below it, the query path reads it).
MIN_BACKLOG = timedelta(hours=1)
_MS = timedelta(milliseconds=1)


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


@dataclass(frozen=True)
class BackfillPlan:
    """Job spans covering `[frontier, handover)` in order (empty: the query path reads from `frontier`)."""

    frontier: datetime
    spans: tuple[Window, ...]
    handover: datetime

    @property
    def by_jobs(self) -> bool:
        return bool(self.spans)


class BackfillPlanner:
    """Cuts the backlog the data lake already holds into job spans.

    `end` is `windows.end` (a bounded run stops there, jobs included).
    """

    def __init__(
        self, settings: JobsSettings, *, end: datetime | None = None, min_backlog: timedelta = MIN_BACKLOG
    ) -> None:
        self._settings = settings
        self._end = end
        self._min_backlog = min_backlog

    def plan(self, frontier: datetime, availability: datetime | None) -> BackfillPlan:
        """The spans from `frontier` (watermark, or the range start) to the availability date.

        No availability known, a data lake behind the frontier, or a backlog under `min_backlog`: no spans,
        and the query path reads from `frontier` (`handover == frontier`).
        """
        frontier = _ms(frontier)
        if availability is None:
            return BackfillPlan(frontier, (), frontier)
        handover = _ms(availability)
        if self._end is not None:
            handover = min(handover, _ms(self._end))
        if handover - frontier < max(self._min_backlog, _MS):
            return BackfillPlan(frontier, (), frontier)
        return BackfillPlan(frontier, tuple(self.spans(frontier, handover)), handover)

    def spans(self, start: datetime, end: datetime) -> list[Window]:
        """`[start, end)` cut at multiples of `jobs.span` since the epoch (UTC days)."""
        step = self._settings.span
        cuts: list[Window] = []
        at = start
        while at < end:
            boundary = min(align_down(at, step) + step, end)
            cuts.append(Window(at, boundary))
            at = boundary
        return cuts

    def next_spans(
        self, plan: BackfillPlan, busy: Collection[Window], done: Collection[Window] = ()
    ) -> list[Window]:
        """The earliest spans of `plan` neither running (`busy`) nor finished (`done`), as many as
        `jobs.max_concurrent - len(busy)` allows."""
        room = self._settings.max_concurrent - len(busy)
        if room <= 0:
            return []
        ready = [s for s in plan.spans if s not in busy and s not in done]
        return ready[:room]


# --------------------------------------------------------------------------------------------- settlement
def settle_threshold(window: Window, delay: timedelta) -> datetime:
    """The availability date from which `window` is due for its settling job."""
    return window.end + delay


def settlement_due(window: Window, availability: datetime | None, delay: timedelta) -> bool:
    """True once the data lake holds `window` plus `delay`: `availability >= window.end + delay`."""
    return availability is not None and availability >= settle_threshold(window, delay)


@dataclass(frozen=True)
class Settlement:
    """One settling job: `span` covers `windows` (touching, in order, within one `jobs.span` bucket)."""

    span: Window
    windows: tuple[Window, ...]


def plan_settlement(
    windows: Iterable[Window], availability: datetime | None, settings: JobsSettings
) -> list[Settlement]:
    """The settling jobs to run now for the query-read `windows` (duplicates and overlaps are merged).

    Only due windows are taken; touching due windows in the same `jobs.span` bucket (a UTC day by
    default) become one job, so one availability step costs one job, not one per window.
    """
    due = sorted(
        {w for w in windows if settlement_due(w, availability, settings.settle_delay)},
    )
    groups: list[list[Window]] = []
    for window in due:
        if groups:
            last = groups[-1]
            same_bucket = align_down(last[0].start, settings.span) == align_down(
                window.end - _MS, settings.span
            )
            if window.start <= last[-1].end and same_bucket:
                last.append(window)
                continue
        groups.append([window])
    return [Settlement(Window(group[0].start, max(w.end for w in group)), tuple(group)) for group in groups]


def next_settlement_at(windows: Iterable[Window], delay: timedelta) -> datetime | None:
    """The availability date the earliest of `windows` waits for (None: none waiting)."""
    return min((settle_threshold(w, delay) for w in windows), default=None)
