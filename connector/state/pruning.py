"""When the change store is pruned: on a timer (minutes), in a worker thread, never on the event loop.

The change store only needs a conversation's hash while a later pass may still observe it: past the
longest re-scan delay (plus the largest window and a margin, `keep`) no pass will. Pruning more often than
every few minutes buys nothing; pruning on the event-loop thread would stall every pass for as long as
SQLite deletes (the store deletes in small chunks, so passes writing acks wait one chunk at most).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from connector.clock import Clock

log = logging.getLogger(__name__)


class PrunableStore(Protocol):
    """What pruning needs from the change store."""

    def prune(self, older_than: datetime) -> int: ...


class PruneTimer:
    """Prunes `store` of entries older than `keep`, at most once every `interval_s` (first: at once).

    `also` are pruned with it, in the same worker thread, with the same cutoff (the completeness ledger:
    `connector.completeness.LedgerPruning`).
    """

    def __init__(
        self,
        store: PrunableStore,
        *,
        keep: timedelta,
        interval_s: float,
        clock: Clock,
        also: Sequence[PrunableStore] = (),
    ) -> None:
        self._store = store
        self._also = list(also)
        self._keep = keep
        self._interval_s = interval_s
        self._clock = clock
        self._next = clock.monotonic()

    def due(self) -> bool:
        """True when the interval has passed since the last prune."""
        return self._clock.monotonic() >= self._next

    def next_in_s(self) -> float:
        """Seconds until the next prune is due (0 if due now)."""
        return max(0.0, self._next - self._clock.monotonic())

    async def prune(self) -> int:
        """Delete entries last written before `now - keep`, off the event loop; returns how many."""
        self._next = self._clock.monotonic() + self._interval_s
        cutoff = self._clock.now() - self._keep
        deleted = await asyncio.to_thread(self._prune_all, cutoff)
        if deleted:
            log.debug("change store pruned", extra={"deleted": deleted, "older_than": cutoff.isoformat()})
        return deleted

    def _prune_all(self, cutoff: datetime) -> int:
        for other in self._also:
            other.prune(cutoff)
        return self._store.prune(cutoff)
