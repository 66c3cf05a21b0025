"""Passes waiting to be started again: resumed from the checkpoint, stopped early, or failed and backing off.

The loop never skips a window: a pass that did not complete is parked here with the page to resume at
(the page after its last acknowledged one) and, after a failure, the monotonic time before which it must
not be retried. The back-off itself (how long to wait after n failures) is the loop's decision; this table
only remembers it. Not persisted: the checkpoint's `in_progress` already says which passes to resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from connector.state.progress import PassKey


@dataclass
class _Parked:
    page: int
    due: float = float("-inf")


class RetryTable:
    """Parked passes (page to resume at, earliest retry time) and the failure count of each pass."""

    def __init__(self) -> None:
        self._parked: dict[PassKey, _Parked] = {}
        self._failures: dict[PassKey, int] = {}

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, key: PassKey, page: int) -> None:
        """Resume `key` at `page` as soon as there is a free slot (no back-off)."""
        self._parked[key] = _Parked(page)

    def failed(self, key: PassKey, page: int, *, retry_at: float) -> None:
        """`key` failed: resume it at `page`, not before the monotonic time `retry_at`."""
        self._failures[key] = self.failures(key) + 1
        self._parked[key] = _Parked(page, retry_at)

    def failures(self, key: PassKey) -> int:
        """How many times in a row `key` failed (0 once it completed or stopped cleanly)."""
        return self._failures.get(key, 0)

    def succeeded(self, key: PassKey) -> None:
        """`key` completed or stopped without an error: its failure count starts over."""
        self._failures.pop(key, None)

    def ready(self, mono: float) -> Iterator[PassKey]:
        """Parked passes whose retry time has come, in the order they were parked."""
        return iter([key for key, parked in self._parked.items() if parked.due <= mono])

    def take(self, key: PassKey) -> int:
        """Unpark `key` to start it; returns the page to resume at."""
        return self._parked.pop(key).page

    def next_retry(self, mono: float) -> float | None:
        """The earliest retry time after `mono` among the parked passes (None when none is backing off).

        Passes already ready but waiting for a free slot are not counted: a finishing pass wakes the loop.
        """
        return min((p.due for p in self._parked.values() if p.due > mono), default=None)
