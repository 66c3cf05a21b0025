"""The one retry/backoff policy: how long to wait before trying again, and when to stop trying.

Used by every place that waits and tries again:

- **requests** (`connector.genesys.client`, its retry loop): `RetryPolicy.for_requests` with
  `genesys.backoff_base_s`, `backoff_max_s`, `max_attempts`; a 429 waits what the server asked;
- **token refresh**: the token request goes through that same client loop (one choke point), so it backs
  off exactly like a data request;
- **startup checks** (`connector.service`: wait out a Genesys outage before any data moves):
  `RetryPolicy.for_requests(...).unbounded()`: same numbers, no attempt limit (exiting would only make
  Kubernetes restart the pod into the same outage);
- **pass retries** (`connector.app`: a failed window pass is retried later, never skipped):
  `RetryPolicy(base_s=retry_delay_s, max_s=retry_delay_max_s, max_attempts=None)`. The loop does not
  block on it: it asks `delay_s(n)` for the n-th failure and schedules the pass that far ahead.

The rule, everywhere: exponential backoff with **full jitter**, `uniform(0, min(max_s, base_s * 2^(n-1)))`
for the n-th failure (AWS' "Exponential Backoff And Jitter": callers that failed together do not retry
together), bounded by `max_attempts` failures when it is not None. A failure that says how long to wait
(`RateLimitedError.retry_after_s`, from `Retry-After` or `inin-ratelimit-reset`) waits that long instead,
3 s when it said nothing (what the Genesys SDKs do), at most `retry_after_ceiling_s` (a day: Genesys'
longest limits are daily, a larger figure is garbage); such a failure is flow control and does not use up
an attempt. A `Retry-After` past `genesys.max_retry_after_s` is still honoured: the pacer turns it into a
pipeline pause (`connector.genesys.ratelimit`) instead of a failure.

Why our own ~50 lines and not a library (all three were evaluated):

- tenacity: `AsyncRetrying(sleep=clock.sleep, ...)` would keep the injected clock, but its full-jitter wait
  (`wait_random_exponential`) draws from the module-global `random` (no injected RNG, so no reproducible
  tests without patching a global), and our request loop's rules do not fit its single attempt counter:
  429s must not count against `max_attempts` and wait in the pacer's *shared* pause (every caller), a 401
  gets one immediate refresh-and-retry outside the budget, and exhaustion must raise our
  `RetriesExhaustedError`. We would write custom wait, stop, retry and sleep strategies and keep tenacity
  only for a 15-line loop; and the non-blocking pass-retry table needs a plain "delay of failure n",
  which tenacity only computes from a live `RetryCallState`.
- stamina (built on tenacity): no injected sleep or clock (tests switch a process-global testing mode),
  and its jitter is additive (`base * 2^n + uniform(0, jitter)`), not full jitter.
- backoff: decorator-only, sleeps with `asyncio.sleep` directly (no injected clock), draws from the global
  `random`, and has had no release since 2022.

So the policy is pure arithmetic on an injected `random.Random`; each caller keeps its own loop, which is
where the caller-specific parts (the shared pause, logs, metrics, scheduling) belong.
"""

from __future__ import annotations

import random
from typing import Protocol

from connector.errors import RateLimitedError

#: Wait after a 429 that carries neither `Retry-After` nor `inin-ratelimit-reset` (Genesys SDKs use 3 s).
DEFAULT_RETRY_AFTER_S = 3.0
#: Longest server-requested wait honoured: Genesys' longest limits are daily.
RETRY_AFTER_CEILING_S = 86_400.0


class BackoffSettings(Protocol):
    """The `genesys` settings the request policy reads (`connector.config.GenesysSettings`)."""

    @property
    def backoff_base_s(self) -> float: ...
    @property
    def backoff_max_s(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...


class RetryPolicy:
    """Exponential backoff with full jitter, bounded, Retry-After aware (see module docstring)."""

    def __init__(
        self,
        *,
        base_s: float,
        max_s: float,
        max_attempts: int | None,
        rng: random.Random | None = None,
        retry_after_ceiling_s: float = RETRY_AFTER_CEILING_S,
    ) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError(f"backoff needs 0 < base_s <= max_s (got base_s={base_s}, max_s={max_s})")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None (got {max_attempts})")
        self.base_s = base_s
        self.max_s = max_s
        self.max_attempts = max_attempts
        self.retry_after_ceiling_s = retry_after_ceiling_s
        self._rng = rng if rng is not None else random.Random()

    @classmethod
    def for_requests(cls, config: BackoffSettings, *, rng: random.Random | None = None) -> RetryPolicy:
        """The Genesys request policy: `genesys.backoff_base_s`, `backoff_max_s`, `max_attempts`."""
        return cls(
            base_s=config.backoff_base_s,
            max_s=config.backoff_max_s,
            max_attempts=config.max_attempts,
            rng=rng,
        )

    def unbounded(self) -> RetryPolicy:
        """The same waits with no attempt limit (for loops that must outlast an outage)."""
        return RetryPolicy(
            base_s=self.base_s,
            max_s=self.max_s,
            max_attempts=None,
            rng=self._rng,
            retry_after_ceiling_s=self.retry_after_ceiling_s,
        )

    # ------------------------------------------------------------------------------- waits
    def ceiling_s(self, failure: int) -> float:
        """Upper bound of the wait after the `failure`-th failure (1-based): min(max, base * 2^(n-1))."""
        exponent = min(max(0, failure - 1), 64)  # 2^64 * base is past any max: no float overflow
        return min(self.max_s, self.base_s * 2.0**exponent)

    def backoff_s(self, failure: int) -> float:
        """Full jitter: uniform in [0, ceiling_s(failure)]."""
        return self._rng.uniform(0.0, self.ceiling_s(failure))

    def delay_s(self, failure: int, error: BaseException | None = None) -> float:
        """Seconds to wait after the `failure`-th failure; what the server asked for when it said."""
        retry_after = server_retry_after_s(error)
        if retry_after is not None:
            return min(retry_after, self.retry_after_ceiling_s)
        return self.backoff_s(failure)

    # ------------------------------------------------------------------------------- budget
    @staticmethod
    def consumes_attempt(error: BaseException) -> bool:
        """429s are flow control and do not use up the attempt budget; every other failure does."""
        return not isinstance(error, RateLimitedError)

    def gives_up(self, error: BaseException, failures: int) -> bool:
        """True once `failures` budget-consuming failures used up `max_attempts` (never for a 429)."""
        if self.max_attempts is None or not self.consumes_attempt(error):
            return False
        return failures >= self.max_attempts


def server_retry_after_s(error: BaseException | None) -> float | None:
    """How long the server asked us to wait (429: Retry-After, else 3 s); None if not a server wait."""
    if isinstance(error, RateLimitedError):
        return error.retry_after_s if error.retry_after_s is not None else DEFAULT_RETRY_AFTER_S
    return None
