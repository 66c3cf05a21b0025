"""`verify`'s reference: which conversations Genesys has for a range (see `connector.verify`).

The range the data lake holds is answered by async jobs (`JobReference`, settled), the tail by the
details query read twice and united (`QueryReference`, provisional); `collect_reference` plans and unites.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from connector.clock import format_instant
from connector.config import FilterSettings
from connector.errors import ConnectorError
from connector.genesys.fetcher import RequestTally, WindowFetcher
from connector.genesys.job_events import JobPage
from connector.genesys.jobs import JobRunner, build_job_body
from connector.windows import Window

#: Reads of the query reference, united (see the module docstring).
QUERY_REFERENCE_READS = 2
#: Longest window one reference query covers (the API takes 31 days; a day keeps pages few and each
#: window on one daily index, genesys-api.md §1.3).
REFERENCE_CHUNK = timedelta(days=1)


@dataclass
class ReferenceSet:
    """Conversations Genesys has (id -> conversationStart) and which parts of the range are provisional."""

    starts: dict[str, datetime] = field(default_factory=dict)
    provisional: list[Window] = field(default_factory=list)
    sources: list[tuple[Window, str]] = field(default_factory=list)

    def is_provisional(self, period: Window) -> bool:
        return any(w.start < period.end and period.start < w.end for w in self.provisional)


class Reference(Protocol):
    """One way to ask Genesys which conversations started in a window."""

    name: str
    provisional: bool

    async def conversations(self, window: Window) -> dict[str, datetime]: ...


ProgressFn = Callable[[str], None]


class QueryReference:
    """The details query, tie-safe, read `reads` times and united; provisional (see module docstring)."""

    name = "query"
    provisional = True

    def __init__(
        self, fetcher: WindowFetcher, *, reads: int = QUERY_REFERENCE_READS, progress: ProgressFn
    ) -> None:
        self._fetcher = fetcher
        self._reads = max(1, reads)
        self._progress = progress
        self._tally = RequestTally()
        self.second_read_added = 0

    @property
    def requests(self) -> int:
        """Query requests made so far (tie re-reads included)."""
        return self._tally.count

    async def conversations(self, window: Window) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for read in range(self._reads):
            before = len(found)
            chunk = window.start
            while chunk < window.end:
                part = Window(chunk, min(window.end, _next_day(chunk)))
                async for page in self._fetcher.fetch(part, 0, tally=self._tally):
                    for conversation in page.conversations:
                        start = _start(conversation)
                        cid = conversation.get("conversationId")
                        if start is not None and isinstance(cid, str) and window.start <= start < window.end:
                            found[cid] = start
                    self._progress(
                        f"Genesys read {read + 1}/{self._reads}: up to {format_instant(part.start)}, "
                        f"{len(found)} conversations, {self.requests} requests"
                    )
                chunk = part.end
            if read > 0:
                self.second_read_added += len(found) - before
        return found


class JobReference:
    """Async jobs over whole UTC days (as the backfill reads them); the data lake's fixed result set, so
    not provisional. Only asked about windows before `dataAvailabilityDate` (`plan_reference`)."""

    name = "job"
    provisional = False

    def __init__(self, runner: JobRunner, filters: FilterSettings, *, progress: ProgressFn) -> None:
        self._runner = runner
        self._filters = filters
        self._progress = progress
        self.jobs = 0
        self.pages = 0

    async def conversations(self, window: Window) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        day = _next_day(window.start) - REFERENCE_CHUNK
        while day < window.end:
            span = Window(day, day + REFERENCE_CHUNK)
            self.jobs += 1
            async for event in self._runner.run(span, build_job_body(span, self._filters)):
                if not isinstance(event, JobPage):
                    continue
                self.pages += 1
                for conversation in event.conversations:
                    start = _start(conversation)
                    cid = conversation.get("conversationId")
                    if start is not None and isinstance(cid, str) and window.start <= start < window.end:
                        found[cid] = start
                self._progress(f"Genesys job for {span.start:%Y-%m-%d}: {len(found)} conversations")
            day = span.end
        return found


async def read_data_availability(runner: JobRunner) -> tuple[datetime | None, str | None]:
    """`dataAvailabilityDate`, or None and why (the OAuth client may lack the jobs permission)."""
    try:
        return await runner.read_availability(), None
    except ConnectorError as exc:
        return None, f"the data lake's availability could not be read ({exc}): query reference only"


def _next_day(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + REFERENCE_CHUNK


def _start(conversation: Mapping[str, object]) -> datetime | None:
    text = conversation.get("conversationStart")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def plan_reference(
    start: datetime, end: datetime, data_availability: datetime | None
) -> list[tuple[Window, str]]:
    """Which part of `[start, end)` a settled reference (job) can answer and which the tail (query) must.

    The data lake holds conversations that started before `dataAvailabilityDate` (genesys-api.md §2.5):
    `[start, min(end, dataAvailabilityDate))` is "settled", the rest "tail".
    """
    if data_availability is None or data_availability <= start:
        return [(Window(start, end), "tail")]
    if data_availability >= end:
        return [(Window(start, end), "settled")]
    return [(Window(start, data_availability), "settled"), (Window(data_availability, end), "tail")]


async def collect_reference(
    start: datetime,
    end: datetime,
    *,
    tail: Reference,
    settled: Reference | None = None,
    data_availability: datetime | None = None,
) -> ReferenceSet:
    """The reference for `[start, end)`.

    Wave-2 seam: pass `settled` (a jobs-backed `Reference`, provisional=False) and the current
    `dataAvailabilityDate`; the range the data lake holds is then answered by it and only the tail by the
    provisional query. Without `settled`, the whole range is the tail.
    """
    result = ReferenceSet()
    for window, part in plan_reference(start, end, data_availability if settled is not None else None):
        source = settled if part == "settled" and settled is not None else tail
        result.starts.update(await source.conversations(window))
        result.sources.append((window, source.name))
        if source.provisional:
            result.provisional.append(window)
    return result
