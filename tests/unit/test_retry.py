"""The one retry policy: full jitter under an exponential ceiling, bounded, Retry-After aware."""

from __future__ import annotations

import random

import pytest

from connector.config import load_config
from connector.errors import RateLimitedError, RetriesExhaustedError, UpstreamUnavailableError
from connector.retry import DEFAULT_RETRY_AFTER_S, RETRY_AFTER_CEILING_S, RetryPolicy

UPSTREAM = UpstreamUnavailableError("boom", reason="5xx")


def policy(*, attempts: int | None = 6, seed: int = 1, base: float = 1.0, top: float = 60.0) -> RetryPolicy:
    return RetryPolicy(base_s=base, max_s=top, max_attempts=attempts, rng=random.Random(seed))


@pytest.mark.parametrize(
    ("failure", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (7, 60.0), (30, 60.0), (5000, 60.0)]
)
def test_the_ceiling_doubles_per_failure_up_to_the_maximum(failure: int, ceiling: float) -> None:
    assert policy().ceiling_s(failure) == ceiling


@pytest.mark.parametrize("failure", [1, 3, 7, 30])
def test_backoff_is_full_jitter_over_the_whole_range_below_the_ceiling(failure: int) -> None:
    retry = policy()
    ceiling = retry.ceiling_s(failure)
    delays = [retry.delay_s(failure, UPSTREAM) for _ in range(400)]
    assert all(0 <= d <= ceiling for d in delays)
    assert min(delays) < 0.05 * ceiling  # full jitter: close to zero happens...
    assert max(delays) > 0.95 * ceiling  # ...and so does close to the ceiling


def test_backoff_is_reproducible_with_the_injected_random() -> None:
    a = [policy(seed=7).delay_s(3) for _ in range(3)]
    b = [policy(seed=7).delay_s(3) for _ in range(3)]
    assert a == b
    assert a == [random.Random(7).uniform(0, 4.0)] * 3


def test_a_server_wait_is_honoured_and_capped() -> None:
    retry = policy()
    assert retry.delay_s(1, RateLimitedError("x", retry_after_s=42)) == 42  # longer than the backoff
    assert retry.delay_s(9, RateLimitedError("x", retry_after_s=0.5)) == 0.5  # shorter too: as asked
    assert retry.delay_s(1, RateLimitedError("x", retry_after_s=None)) == DEFAULT_RETRY_AFTER_S
    assert retry.delay_s(1, RateLimitedError("x", retry_after_s=4 * 3600)) == 4 * 3600  # a daily limit
    assert retry.delay_s(1, RateLimitedError("x", retry_after_s=1e12)) == RETRY_AFTER_CEILING_S
    capped = RetryPolicy(base_s=1, max_s=2, max_attempts=3, retry_after_ceiling_s=10)
    assert capped.delay_s(1, RateLimitedError("x", retry_after_s=11)) == 10


def test_attempts_are_bounded_but_429s_do_not_use_them_up() -> None:
    retry = policy(attempts=3)
    assert [retry.gives_up(UPSTREAM, n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    throttled = RateLimitedError("slow down", retry_after_s=5)
    assert not retry.consumes_attempt(throttled)
    assert retry.consumes_attempt(UPSTREAM)
    assert not retry.gives_up(throttled, 1000)


def test_an_unbounded_policy_keeps_the_waits_and_never_gives_up() -> None:
    bounded = policy(attempts=2, seed=3)
    endless = policy(attempts=2, seed=3).unbounded()
    assert endless.max_attempts is None
    assert not endless.gives_up(RetriesExhaustedError("x"), 10**6)
    assert [endless.delay_s(n) for n in (1, 4, 9)] == [bounded.delay_s(n) for n in (1, 4, 9)]


def test_request_policy_numbers_come_from_the_genesys_settings() -> None:
    settings = load_config(
        None,
        environ={
            "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "a",
            "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "b",
            "GENESYS_CONNECTOR__GENESYS__REGION": "us_east_1",
            "GENESYS_CONNECTOR__GENESYS__MAX_ATTEMPTS": "2",
            "GENESYS_CONNECTOR__GENESYS__BACKOFF_BASE_S": "0.5",
            "GENESYS_CONNECTOR__GENESYS__BACKOFF_MAX_S": "7",
        },
    )
    retry = RetryPolicy.for_requests(settings.genesys, rng=random.Random(0))
    assert (retry.base_s, retry.max_s, retry.max_attempts) == (0.5, 7.0, 2)
    assert retry.ceiling_s(10) == 7.0


@pytest.mark.parametrize(
    ("base", "top", "attempts"), [(0.0, 1.0, 1), (2.0, 1.0, 1), (1.0, 2.0, 0), (-1.0, 2.0, None)]
)
def test_nonsense_numbers_are_refused(base: float, top: float, attempts: int | None) -> None:
    with pytest.raises(ValueError, match=r"base_s|max_attempts"):
        RetryPolicy(base_s=base, max_s=top, max_attempts=attempts)
