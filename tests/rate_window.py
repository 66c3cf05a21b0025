"""Counting events in a sliding minute, for tests that check a requests-per-minute budget was kept."""

from __future__ import annotations


def max_in_any_minute(times: list[float]) -> int:
    """Largest number of `times` (seconds) inside any half-open 60-second span."""
    times = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(times):
        while times[left] <= t - 60:
            left += 1
        best = max(best, right - left + 1)
    return best
