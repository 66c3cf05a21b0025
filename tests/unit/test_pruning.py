"""PruneTimer: the change store is pruned on a timer, of entries older than `keep`, in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.clock import FakeClock
from connector.completeness import LedgerPruning
from connector.state.ledger import Ledger
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


def test_the_ledger_is_pruned_with_the_change_store_in_the_same_worker_thread(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    ledger = Ledger(tmp_path)
    settled_hour = T0 - timedelta(days=5)
    ledger.record_seen("past-horizon", T0 - timedelta(days=40), "first_pass", at=T0)
    ledger.record_seen("settled", settled_hour, "first_pass", at=T0)
    ledger.mark_settled(settled_hour, settled_by="rescan", expected=1, delivered=1, at=T0)
    ledger.mark_reported(settled_hour, at=T0)
    ledger.record_seen("unsettled", T0 - timedelta(days=6), "first_pass", at=T0)
    ledger.record_seen("recent", T0 - timedelta(hours=1), "first_pass", at=T0)
    store = RecordingStore()
    timer = PruneTimer(
        store,
        keep=KEEP,
        interval_s=600.0,
        clock=clock,
        also=[LedgerPruning(ledger, horizon=timedelta(days=31), clock=clock)],
    )
    asyncio.run(timer.prune())
    kept = ledger.conversations(T0 - timedelta(days=60), T0 + timedelta(hours=1))
    # past the horizon: gone; settled and reported before now - keep: gone; an unsettled hour stays
    assert sorted(kept) == ["recent", "unsettled"]
    assert store.calls == [(T0 - KEEP, False)]
    ledger.close()
