"""The simulator's default clock: the wall clock plus an offset tests can move forward.

Everything time-based in the simulator (data, token expiry, rate-limit windows, job states, scheduled
mutations) reads `now()` from the injected clock, so `advance(seconds)` lets a test jump over an ACW delay, a
token lifetime or a job's expiry without sleeping. Any `connector.clock.Clock` can be injected instead;
`advance` then works only if that clock has one (FakeClock does).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta


class OffsetClock:
    """Wall clock + offset (seconds). Thread-safe."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self._offset_s = offset_s
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Current simulated time (tz-aware UTC)."""
        with self._lock:
            offset = self._offset_s
        return datetime.now(UTC) + timedelta(seconds=offset)

    def monotonic(self) -> float:
        """Monotonic seconds, shifted by the offset too."""
        with self._lock:
            return time.monotonic() + self._offset_s

    async def sleep(self, seconds: float) -> None:
        """Real sleep (the offset does not shorten waits)."""
        await asyncio.sleep(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (never backwards)."""
        if seconds < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._offset_s += seconds
