"""RetryTable: parked passes, their resume page, back-off deadline and failure count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.state.progress import PassKey
from connector.state.retry_table import RetryTable
from connector.windows import Window

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
A = PassKey(Window(T0, T0 + timedelta(minutes=5)), 0)
B = PassKey(Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)), 1)


def test_parked_passes_are_ready_at_once_in_parking_order_and_taken_with_their_page() -> None:
    t = RetryTable()
    t.park(B, 3)
    t.park(A, 1)
    assert list(t.ready(0.0)) == [B, A]
    assert t.take(B) == 3
    assert list(t.ready(0.0)) == [A]
    assert t.next_retry(0.0) is None, "nothing is backing off"


def test_a_failed_pass_waits_for_its_retry_time_and_counts_failures_until_it_succeeds() -> None:
    t = RetryTable()
    t.failed(A, 2, retry_at=10.0)
    assert list(t.ready(9.9)) == []
    assert t.next_retry(9.9) == 10.0
    assert list(t.ready(10.0)) == [A]
    assert t.next_retry(10.0) is None, "ready, only waiting for a slot"
    assert t.take(A) == 2
    t.failed(A, 4, retry_at=20.0)
    assert t.failures(A) == 2
    t.succeeded(A)
    assert t.failures(A) == 0
