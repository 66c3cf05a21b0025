"""What the loop hands to async jobs now: backfill spans and settling jobs, from the last availability read.

`JobScheduler` holds the data lake's `dataAvailabilityDate` (read at start-up and every
`jobs.availability_check_interval`, in a task of the loop: a slow or failing read never stalls it) and
answers the loop's two questions with the pure planning of `connector.jobs_plan`:

- `backfill_spans(frontier, room)`: the next spans of `[frontier, dataAvailabilityDate)` to read by
  job (none when `jobs.backfill` is off, the availability is unknown, or the backlog is too short for a job);
  the loop hands first-pass windows to the query only once none is left;
- `settlements(unsettled, room)`: the settling jobs due now for the windows waiting for one.

`room` is how many more job passes may run: `jobs.max_concurrent` minus those running (the `JobRunner`
also caps our QUEUED/PENDING jobs; this keeps results being read within the same bound).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from connector.clock import Clock
from connector.config import JobsSettings
from connector.errors import RetriableError
from connector.jobs_plan import BackfillPlanner, plan_settlement
from connector.windows import Window

log = logging.getLogger(__name__)


class AvailabilitySource(Protocol):
    """Reads `dataAvailabilityDate` (`connector.genesys.jobs.JobRunner`, which also sets the lag gauge)."""

    async def read_availability(self) -> datetime: ...


class JobScheduler:
    """Backfill and settlement planning over the last known `dataAvailabilityDate`."""

    def __init__(
        self,
        settings: JobsSettings,
        source: AvailabilitySource,
        clock: Clock,
        *,
        end: datetime | None = None,
    ) -> None:
        self.settings = settings
        self._source = source
        self._clock = clock
        self._backfill = BackfillPlanner(settings, end=end)
        self.availability: datetime | None = None
        self._next_check = -math.inf  # monotonic

    # ------------------------------------------------------------------------------- availability
    def check_due(self) -> bool:
        """True when the availability should be read again."""
        return self._clock.monotonic() >= self._next_check

    def next_check_in_s(self) -> float:
        return max(0.0, self._next_check - self._clock.monotonic())

    async def refresh(self) -> datetime | None:
        """Read the availability; a retriable failure keeps the last value (the next check tries again).

        Fatal errors (credentials, permission) propagate: the loop stops on them as on a pass's.
        """
        self._next_check = self._clock.monotonic() + self.settings.availability_check_interval.total_seconds()
        try:
            availability = await self._source.read_availability()
        except RetriableError as exc:
            log.warning("could not read the data lake's availability; trying again later: %s", exc)
            return self.availability
        if self.availability is None or availability != self.availability:
            log.info("data lake available up to %s", availability.isoformat())
        # It only moves forward; a lower answer (another region's replica?) never undoes a plan.
        self.availability = (
            availability if self.availability is None else max(self.availability, availability)
        )
        return self.availability

    # ------------------------------------------------------------------------------- planning
    def backfill_spans(self, frontier: datetime, room: int) -> list[Window]:
        """The next (at most `room`) backfill spans from `frontier`, in order; [] when the query reads on."""
        if not self.settings.backfill or room <= 0:
            return []
        return list(self._backfill.plan(frontier, self.availability).spans[:room])

    def backfill_pending(self, frontier: datetime) -> bool:
        """True while `frontier` is behind what the data lake holds by more than a job's worth."""
        return self.settings.backfill and self._backfill.plan(frontier, self.availability).by_jobs

    def settlements(self, unsettled: Sequence[Window], room: int) -> list[tuple[Window, tuple[Window, ...]]]:
        """The settling jobs due now for `unsettled` windows (at most `room`), earliest first."""
        if not self.settings.settle or room <= 0 or not unsettled:
            return []
        plans = plan_settlement(unsettled, self.availability, self.settings)
        return [(s.span, s.windows) for s in plans[:room]]
