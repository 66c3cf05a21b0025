"""The main loop's settings and the policies derived from them (`connector.app.Connector` uses them):
`LoopSettings`, `catching_up` (full budget share or the polite one), `pass_retry_policy` (when a failed
pass is retried).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.retry import RetryPolicy


@dataclass(frozen=True)
class LoopSettings:
    """Knobs of the main loop (derived from config by `connector.service.loop_settings`)."""

    max_parallel_passes: int = 4
    live_parallel_passes: int = 2
    checkpoint_interval_s: float = 1.0
    retry_delay_s: float = 5.0
    retry_delay_max_s: float = 300.0
    shutdown_grace_s: float = 20.0
    flush_timeout_s: float = 30.0
    exit_when_done: bool = True
    # Open conversations followed by id per follow-up task (100 per request; requests are paced).
    follow_batch: int = 1000
    # A re-scan still waiting or running this long after it was due is catch-up work (see `catching_up`).
    overdue_after: timedelta = timedelta(minutes=5)


def catching_up(
    *, first_pass_behind: bool, oldest_due: datetime | None, now: datetime, overdue_after: timedelta
) -> bool:
    """Whether the loop is catching up (full budget share, `max_parallel_passes`) or live (polite share).

    Work that is overdue is catch-up work: besides a first pass behind `now - lag`, a re-scan that has been
    due for longer than `overdue_after` (waiting for a slot, or still running) means the connector is not
    keeping up - e.g. a bounded run whose watermark reached `windows.end` with every window's re-scans
    still to do. Live polling starts each re-scan as it comes due and finishes it well within that time.
    """
    return first_pass_behind or (oldest_due is not None and now - oldest_due > overdue_after)


def pass_retry_policy(settings: LoopSettings) -> RetryPolicy:
    """The one retry policy with the loop's numbers, no attempt limit: a window is never skipped."""
    return RetryPolicy(base_s=settings.retry_delay_s, max_s=settings.retry_delay_max_s, max_attempts=None)
