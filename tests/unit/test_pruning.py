"""PruneTimer: the change store is pruned on a timer, of entries older than `keep`, in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

from connector.clock import FakeClock
from connector.state.pruning import PruneTimer

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
KEEP = timedelta(days=4)


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[tuple[datetime, bool]] = []

    def prune(self, older_than: datetime) -> int:
        self.calls.append((older_than, threading.current_thread() is threading.main_thread()))
        return 7


def test_prunes_at_once_then_once_per_interval_off_the_event_loop_thread() -> None:
    clock = FakeClock(T0)
    store = RecordingStore()
    timer = PruneTimer(store, keep=KEEP, interval_s=600.0, clock=clock)

    assert timer.due()
    assert asyncio.run(timer.prune()) == 7
    assert store.calls == [(T0 - KEEP, False)], "cutoff now - keep, run in a worker thread"
    assert not timer.due()
    assert timer.next_in_s() == 600.0

    clock.advance(599.0)
    assert not timer.due()
    clock.advance(1.0)
    assert timer.due()
