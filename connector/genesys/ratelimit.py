"""How fast we may call Genesys, and what to do when told to slow down.

Pure logic on an injected `Clock` (the client wires it around every HTTP call):

- `Pacer`: a token bucket that keeps this connector inside its share of the OAuth client's budget
  (`requests_per_minute`, refined by the `inin-ratelimit-allowed` header), with a small burst capacity so
  that no 60-second span ever holds more than the budget. It also never plans more requests than the
  server says are left in its current window (`inin-ratelimit-allowed - inin-ratelimit-count`, counting
  requests still in flight) before that window resets (`inin-ratelimit-reset`).
- The shared pause: a 429 pauses *every* caller, not just the request that got it, until `Retry-After`
  has elapsed. A `Retry-After` longer than `max_retry_after_s` (a daily limit) pauses the whole pipeline
  (`genesys_connector_paused` = 1, one WARNING saying until when) and it resumes by itself. Never a failure.

How long to wait after a failure (a 429's Retry-After included) is the one retry policy's business
(`connector.retry`); the pacer only holds every caller for that long.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Mapping
from datetime import timedelta

from connector.clock import Clock
from connector.config import GenesysSettings
from connector.metrics import ConnectorMetrics

log = logging.getLogger(__name__)

#: Seconds of budget the bucket may hold (the largest burst); small, so bursts stay inside the budget.
BURST_SECONDS = 2.0
#: Length of the server's rate-limit window when the `inin-ratelimit-reset` header does not say otherwise.
DEFAULT_WINDOW_S = 60.0
#: Token amounts (and waits) below this are rounding noise.
_EPSILON = 1e-6
#: Two observations whose reset instants are this close describe the same server window.
_SAME_WINDOW_S = 2.0


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


class Pacer:
    """Decides when the next request may be sent. One per OAuth client, shared by every request."""

    def __init__(
        self,
        *,
        requests_per_minute: float,
        budget_share: float,
        live_budget_share: float,
        max_retry_after_s: float,
        clock: Clock,
        metrics: ConnectorMetrics,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._configured_rpm = float(requests_per_minute)
        self._server_rpm: float | None = None
        self._catchup_share = budget_share
        self._live_share = live_budget_share
        self._share = budget_share
        self._max_retry_after_s = max_retry_after_s
        self._lock = asyncio.Lock()
        self._tokens = self._capacity()
        self._refilled_at = clock.monotonic()
        self._in_flight = 0
        self._window_s = DEFAULT_WINDOW_S
        self._remaining: float | None = None
        self._reset_at: float | None = None
        self._paused_until = 0.0
        self._long_pause = False
        self._sent: deque[float] = deque()
        self._publish_budget()

    @classmethod
    def from_config(cls, config: GenesysSettings, *, clock: Clock, metrics: ConnectorMetrics) -> Pacer:
        return cls(
            requests_per_minute=config.requests_per_minute,
            budget_share=config.budget_share,
            live_budget_share=config.live_budget_share,
            max_retry_after_s=config.max_retry_after_s,
            clock=clock,
            metrics=metrics,
        )

    # ------------------------------------------------------------------------------------- budget
    @property
    def budget_per_minute(self) -> float:
        """The OAuth client's whole budget: the server's `allowed` (per minute) once seen, else the config."""
        return self._server_rpm if self._server_rpm is not None else self._configured_rpm

    @property
    def requests_per_minute(self) -> float:
        """What this connector allows itself: budget x the current share."""
        return self.budget_per_minute * self._share

    def _capacity(self) -> float:
        """Burst size: a couple of seconds' worth, at least 1, at most half the per-minute allowance."""
        per_minute = self.requests_per_minute
        return float(max(1, min(math.floor(per_minute / 2), math.floor(per_minute / 60 * BURST_SECONDS))))

    def _rate_per_s(self) -> float:
        """Refill rate such that capacity + 60 s of refill never exceeds the per-minute allowance."""
        per_minute = self.requests_per_minute
        if per_minute < 2:  # at most one request per minute (or fewer): space them evenly
            return min(per_minute, 1.0) / 60
        return (per_minute - self._capacity()) / 60

    def set_catching_up(self, catching_up: bool) -> None:
        """Use `budget_share` while catching up, `live_budget_share` once caught up."""
        share = self._catchup_share if catching_up else self._live_share
        if share == self._share:
            return
        self._refill(self._clock.monotonic())  # tokens earned so far are earned at the old rate
        self._share = share
        self._rate_changed()

    def _rate_changed(self) -> None:
        self._tokens = min(self._tokens, self._capacity())
        self._publish_budget()

    def _publish_budget(self) -> None:
        self._metrics.api_budget_requests_per_minute.set(self.requests_per_minute)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate_per_s())
        self._refilled_at = now

    # ------------------------------------------------------------------------------------- acquire
    async def acquire(self) -> None:
        """Wait until a request may be sent, then count it as in flight (pair with `release`)."""
        started = self._clock.monotonic()
        async with self._lock:  # FIFO: callers are served in arrival order
            while True:
                wait = self._wait_needed(self._clock.monotonic())
                if wait <= 0:
                    break
                await self._clock.sleep(wait)
            self._grant(self._clock.monotonic())
        waited = self._clock.monotonic() - started
        if waited > 0:
            self._metrics.api_pacing_wait_seconds.inc(waited)

    def _wait_needed(self, now: float) -> float:
        """Seconds to wait before the next request may go (0 when it may go now)."""
        if now < self._paused_until:
            return self._paused_until - now
        if self._long_pause:
            self._long_pause = False
            self._metrics.paused.set(0)
            log.info("resuming Genesys API calls after the pause")
        if self._reset_at is not None and now >= self._reset_at:
            self._remaining, self._reset_at = None, None  # the server's window has reset
        server_exhausted = self._remaining is not None and self._remaining - self._in_flight <= 0
        if server_exhausted and self._reset_at is not None:
            return self._reset_at - now  # the server's window has no room left for another request
        self._refill(now)
        if self._tokens >= 1 - _EPSILON:  # float rounding: treat as a whole token
            return 0.0
        return max(_EPSILON, (1 - self._tokens) / self._rate_per_s())

    def _grant(self, now: float) -> None:
        self._tokens -= 1
        self._in_flight += 1
        self._sent.append(now)
        self._update_utilization(now)

    def _update_utilization(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - 60:
            self._sent.popleft()
        self._metrics.api_budget_utilization_ratio.set(len(self._sent) / self.budget_per_minute)

    def release(self, headers: Mapping[str, str] | None = None, *, api_limited: bool = True) -> None:
        """The request granted by `acquire` is finished; learn from its rate-limit headers if any.

        `api_limited=False` marks a request outside the API's rate limit (the login host's token request):
        it neither teaches the pacer nor uses up the server's remaining requests.
        """
        self._in_flight = max(0, self._in_flight - 1)
        if not api_limited:
            return
        if headers is not None and "inin-ratelimit-count" in headers:
            self.observe(headers)
        elif self._remaining is not None:
            self._remaining -= 1  # it probably counted, and no header told us otherwise

    # ------------------------------------------------------------------------------------- headers
    def observe(self, headers: Mapping[str, str]) -> None:
        """Adapt to `inin-ratelimit-allowed/count/reset` (allowed per window; reset = seconds left in it)."""
        allowed = _header_number(headers, "inin-ratelimit-allowed")
        count = _header_number(headers, "inin-ratelimit-count")
        reset = _header_number(headers, "inin-ratelimit-reset")
        now = self._clock.monotonic()
        if reset is not None:
            self._metrics.api_ratelimit_reset_seconds.set(reset)
            if reset > DEFAULT_WINDOW_S + 5:
                self._window_s = max(self._window_s, reset)  # the server's window is longer than a minute
        if allowed is None or allowed <= 0:
            return
        self._metrics.api_ratelimit_allowed.set(allowed)
        server_rpm = allowed * 60 / self._window_s
        if server_rpm != self._server_rpm:
            self._refill(now)
            self._server_rpm = server_rpm
            self._rate_changed()
        if count is None:
            return
        remaining = allowed - count
        reset_at = now + (reset if reset is not None else self._window_s)
        same_window = self._reset_at is not None and abs(reset_at - self._reset_at) < _SAME_WINDOW_S
        if same_window and self._remaining is not None:
            remaining = min(remaining, self._remaining)  # a late response carries an older, higher figure
        else:
            self._reset_at = reset_at
        self._remaining = remaining
        self._metrics.api_ratelimit_remaining.set(max(0.0, remaining))
        self._update_utilization(now)

    # ------------------------------------------------------------------------------------- pause
    def pause_for(self, seconds: float) -> None:
        """Hold every request for `seconds` (a 429's Retry-After). Extends, never shortens, a pause."""
        self.pause_until(self._clock.monotonic() + max(0.0, seconds))

    def pause_until(self, resume_at: float) -> None:
        """Hold every request until the monotonic instant `resume_at`.

        A pause longer than `max_retry_after_s` is a pipeline pause (a daily limit, say): the `paused` gauge
        goes to 1 and one WARNING says when calls resume; they resume by themselves.
        """
        now = self._clock.monotonic()
        if resume_at <= self._paused_until:
            return
        self._paused_until = resume_at
        seconds = resume_at - now
        if seconds > self._max_retry_after_s:
            self._long_pause = True
            self._metrics.paused.set(1)
            resume_wall = self._clock.now() + timedelta(seconds=seconds)
            log.warning(
                "Genesys asked us to wait %s (longer than max_retry_after_s=%gs, probably a daily limit): "
                "pausing every API call until %s; the connector resumes by itself",
                timedelta(seconds=round(seconds)),
                self._max_retry_after_s,
                resume_wall.isoformat(timespec="seconds").replace("+00:00", "Z"),
            )
