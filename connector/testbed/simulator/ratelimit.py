"""Per-token fixed-window rate limiting with the `inin-ratelimit-*` headers (genesys-api.md §3.1-§3.2).

The limit key is `client.credentials.token.rate.per.minute` (FOLKLORE-cited default 300 per 60 s); both
numbers are configurable and can change while running. Headers (VERIFIED): `inin-ratelimit-count` (requests
counted in the current window), `inin-ratelimit-allowed` (the limit), `inin-ratelimit-reset` (seconds until
the window resets). A request over the limit is refused with 429 + `Retry-After` (integer seconds) and is
not counted. Not thread-safe: the Simulation lock guards it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one request against the limiter, with the header values to send."""

    allowed: bool
    count: int
    limit: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """The three `inin-ratelimit-*` headers."""
        return {
            "inin-ratelimit-count": str(self.count),
            "inin-ratelimit-allowed": str(self.limit),
            "inin-ratelimit-reset": str(self.reset_s),
        }


class FixedWindowLimiter:
    """One window per key (an access token); the window starts at the key's first request."""

    def __init__(self, limit: int, window_s: float, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._windows: dict[str, list[int]] = {}  # key -> [window_start_ms, count]
        self.limit = limit
        self.window_ms = int(window_s * 1000)

    def configure(self, limit: int, window_s: float) -> None:
        """Change the limit and window; current windows restart."""
        if limit < 1 or window_s <= 0:
            raise ValueError("rate limit must be >= 1 and the window > 0 seconds")
        self.limit = limit
        self.window_ms = int(window_s * 1000)
        self._windows.clear()

    def _window(self, key: str, now: int) -> list[int]:
        window = self._windows.get(key)
        if window is None or now >= window[0] + self.window_ms:
            window = [now, 0]
            self._windows[key] = window
        return window

    def hit(self, key: str) -> RateDecision:
        """Count one request for `key` if the window has room."""
        now = self._now_ms()
        window = self._window(key, now)
        reset_s = max(1, math.ceil((window[0] + self.window_ms - now) / 1000))
        if window[1] >= self.limit:
            return RateDecision(False, window[1], self.limit, reset_s)
        window[1] += 1
        return RateDecision(True, window[1], self.limit, reset_s)

    def peek(self, key: str | None) -> RateDecision:
        """Header values without counting (for responses refused before the limiter, e.g. 401)."""
        if key is None:
            return RateDecision(True, 0, self.limit, max(1, math.ceil(self.window_ms / 1000)))
        now = self._now_ms()
        window = self._window(key, now)
        reset_s = max(1, math.ceil((window[0] + self.window_ms - now) / 1000))
        return RateDecision(True, window[1], self.limit, reset_s)
