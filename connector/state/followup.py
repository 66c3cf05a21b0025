"""Open conversations, followed by id from their first sighting until they end or the horizon passes.

The details query finds a conversation only through windows on the UTC day it *started*, and a window's
settlement re-scans run at fixed delays: a conversation still open when its window is read would have its
end published only by the next re-scan after it ended (hours later), or never for one that outlives the
last re-scan (an e-mail thread). So every conversation seen without `conversationEnd` is followed by id
(multi-get, 100 ids a request) every `interval`, starting one interval after its first sighting, until a
version with `conversationEnd` is published or the `horizon` (Genesys keeps details for 31 days) passes.

`OpenConversations` is the schedule: which ids are due now, oldest due first. The first sighting of each id
is kept in the checkpoint (`open_conversations`); when each is next due is not (after a restart every id
is due one interval after its first sighting, which for most means at once: one request per 100 ids).

Pure logic on the injected time: the app asks `due(now)`, the pass runner follows them and reports back
with `followed()` and `note_ended()`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta


class OpenConversations:
    """First sighting and next follow-up time of each conversation seen in progress."""

    def __init__(
        self,
        first_seen: Mapping[str, datetime] | None = None,
        *,
        interval: timedelta | None,
        horizon: timedelta,
    ) -> None:
        """`interval` None: track (for `status`) and prune, but never follow by id."""
        self._interval = interval
        self._horizon = horizon
        self.first_seen: dict[str, datetime] = {}
        self._next: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []  # (due, id); stale entries are skipped lazily
        for cid, seen in (first_seen or {}).items():
            self._track(cid, seen)

    def __len__(self) -> int:
        return len(self.first_seen)

    def _track(self, cid: str, seen: datetime) -> None:
        self.first_seen[cid] = seen
        if self._interval is not None:
            self._schedule(cid, seen + self._interval)

    def _schedule(self, cid: str, due: datetime) -> None:
        self._next[cid] = due
        heapq.heappush(self._heap, (due, cid))

    def note_open(self, ids: Iterable[str], now: datetime) -> None:
        """Conversations seen without conversationEnd at `now`; the first sighting of each is kept."""
        for cid in ids:
            if cid not in self.first_seen:
                self._track(cid, now)

    def note_ended(self, ids: Iterable[str]) -> None:
        """Forget conversations whose ended version was published (or that Genesys no longer returns)."""
        for cid in ids:
            self.first_seen.pop(cid, None)
            self._next.pop(cid, None)

    def due(self, now: datetime, *, limit: int) -> list[str]:
        """Up to `limit` ids due for a follow-up at `now`, longest-waiting first; past the horizon: dropped.

        The ids are not rescheduled until `followed()` is called (a failed follow-up leaves them due).
        """
        found: list[str] = []
        skipped: list[tuple[datetime, str]] = []
        while self._heap and len(found) < limit and self._heap[0][0] <= now:
            due, cid = heapq.heappop(self._heap)
            if self._next.get(cid) != due:
                continue  # ended, or rescheduled since this entry was pushed
            if self.first_seen[cid] < now - self._horizon:
                self.note_ended([cid])
                continue
            found.append(cid)
            skipped.append((due, cid))
        for entry in skipped:  # still due until followed
            heapq.heappush(self._heap, entry)
        return found

    def followed(self, ids: Iterable[str], now: datetime) -> None:
        """The given ids were read at `now`: the ones still open are next due one interval later."""
        if self._interval is None:
            return
        for cid in ids:
            if cid in self.first_seen:
                self._schedule(cid, now + self._interval)

    def next_due(self) -> datetime | None:
        """When the earliest follow-up is due (None when nothing is followed)."""
        while self._heap and self._next.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def prune(self, now: datetime) -> int:
        """Stop tracking conversations first seen before the horizon (bounded state); returns how many."""
        expired = [cid for cid, seen in self.first_seen.items() if seen < now - self._horizon]
        self.note_ended(expired)
        return len(expired)
