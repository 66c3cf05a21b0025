"""Conversation storage and the time index that makes interval queries cheap.

Specs live in a dict by id and in two start-time-sorted runs (genesys-api.md §1.3 stores conversations in
daily indexes keyed by conversation start; one sorted run answers "started on these days" with bisect):

- the *short* run holds ended conversations no longer than `short_max_ms`: an interval [s, e) can only
  overlap those that started in [s - short_max_ms, e), so a query scans a narrow slice;
- the *long* run holds everything else (open conversations, long e-mails and messages); it is small.

A spec's end never changes once it has ended, so a spec never has to move between runs. `generation` counts
changes; query results are cached per generation. Not thread-safe: the Simulation lock guards it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from connector.testbed.simulator.isotime import HOUR_MS, floor_day
from connector.testbed.simulator.model import F_LONG, ConversationSpec, Stage

SHORT_MAX_MS = 2 * HOUR_MS


class _SortedRun:
    """Specs sorted by start time (parallel lists: starts for bisect, specs for the objects)."""

    __slots__ = ("specs", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.specs: list[ConversationSpec] = []

    def add(self, spec: ConversationSpec) -> None:
        if not self.starts or spec.start_ms >= self.starts[-1]:
            self.starts.append(spec.start_ms)
            self.specs.append(spec)
            return
        i = bisect.bisect_right(self.starts, spec.start_ms)
        self.starts.insert(i, spec.start_ms)
        self.specs.insert(i, spec)

    def between(self, lo_ms: int | None, hi_ms: int) -> list[ConversationSpec]:
        """Specs with lo_ms <= start < hi_ms (lo None = from the beginning)."""
        i = 0 if lo_ms is None else bisect.bisect_left(self.starts, lo_ms)
        j = bisect.bisect_left(self.starts, hi_ms)
        return self.specs[i:j]


class ConversationStore:
    """All conversations, by id and by start time."""

    def __init__(self, *, short_max_ms: int = SHORT_MAX_MS) -> None:
        self.short_max_ms = short_max_ms
        self._by_id: dict[str, ConversationSpec] = {}
        self._short = _SortedRun()
        self._long = _SortedRun()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ConversationSpec]:
        return iter(self._by_id.values())

    def get(self, cid: str) -> ConversationSpec | None:
        """The spec with this conversation id, if any."""
        return self._by_id.get(cid)

    def add(self, spec: ConversationSpec) -> None:
        """Insert a new conversation (any start time: late inserts shift offset pages, as on Genesys)."""
        if spec.cid in self._by_id:
            raise ValueError(f"conversation {spec.cid} already exists")
        self._by_id[spec.cid] = spec
        if spec.stage != Stage.OPEN and spec.end_ms - spec.start_ms <= self.short_max_ms:
            self._short.add(spec)
        else:
            spec.flags |= F_LONG
            self._long.add(spec)
        self.generation += 1

    def add_all(self, specs: Iterable[ConversationSpec]) -> None:
        """Bulk insert (fast path for history sorted by start)."""
        for spec in specs:
            self.add(spec)

    def touch(self) -> None:
        """Record that some spec changed (invalidates cached query results)."""
        self.generation += 1

    def overlapping(self, start_ms: int, end_ms: int, *, start_day_matching: bool) -> list[ConversationSpec]:
        """Conversations whose lifetime overlaps [start_ms, end_ms), in start order.

        With `start_day_matching` only those that started on a UTC day the interval touches count (the
        details query; jobs with startOfDayIntervalMatching). Lifetime = [conversationStart,
        conversationEnd), open-ended while the conversation has no end.
        """
        lo = floor_day(start_ms) if start_day_matching else None
        short_lo = start_ms - self.short_max_ms
        if lo is not None:
            short_lo = max(short_lo, lo)
        found = [s for s in self._short.between(short_lo, end_ms) if _overlaps(s, start_ms)]
        found.extend(s for s in self._long.between(lo, end_ms) if _overlaps(s, start_ms))
        found.sort(key=_start_key)
        return found

    def started_between(self, start_ms: int, end_ms: int) -> list[ConversationSpec]:
        """Conversations with start_ms <= conversationStart < end_ms, in start order (ground truth)."""
        found = self._short.between(start_ms, end_ms) + self._long.between(start_ms, end_ms)
        found.sort(key=_start_key)
        return found


def _overlaps(spec: ConversationSpec, start_ms: int) -> bool:
    """Lifetime overlap with an interval starting at start_ms (start < end_ms is the bisect bound)."""
    if spec.stage == Stage.OPEN or spec.start_ms >= start_ms:
        return True
    return spec.end_ms > start_ms


def _start_key(spec: ConversationSpec) -> tuple[int, str]:
    return spec.start_ms, spec.cid
