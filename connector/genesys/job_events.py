"""What a job run reports (`connector.genesys.jobs.JobRunner.run`): `JobSubmitted`, `JobRestarted`, `JobPage`
(the `JobEvent`s), where a saved job stands (`JobResume`) and how a job ended (`JobOutcome`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from connector.clock import format_instant, parse_instant
from connector.windows import Window


class JobOutcome(StrEnum):
    """How a job ended (the `outcome` label of `genesys_connector_job_duration_seconds`)."""

    FULFILLED = "fulfilled"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class JobResume:
    """Where a saved job stands: resume `job_id` at `cursor` (None: from its first page).

    `cursor` is the `next_cursor` of the last page whose messages Kafka acknowledged; `submitted_at` is
    the `JobSubmitted.submitted_at` of that job (a job older than `jobs.results_lifetime` is not tried).
    """

    job_id: str
    cursor: str | None
    submitted_at: datetime

    def to_dict(self) -> dict[str, str | None]:
        """Plain data for the checkpoint (the cursor is opaque, not a secret)."""
        return {
            "job_id": self.job_id,
            "cursor": self.cursor,
            "submitted_at": format_instant(self.submitted_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResume:
        """Inverse of `to_dict`."""
        cursor = data.get("cursor")
        return cls(
            str(data["job_id"]),
            None if cursor is None else str(cursor),
            parse_instant(str(data["submitted_at"])),
        )


@dataclass(frozen=True)
class JobSubmitted:
    """A job for `span` was created (`attempt` counts the jobs of this run of the span, from 1).

    The caller may save `JobResume(job_id, None, submitted_at)` at once: the id is not data.
    """

    span: Window
    job_id: str
    submitted_at: datetime
    attempt: int


@dataclass(frozen=True)
class JobRestarted:
    """`job_id` will not be read (further): the span is read again from a new job, from its first page.

    `outcome` says why (expired/failed/cancelled/timeout), `error_message` is Genesys' when FAILED,
    `pages_delivered` how many of its pages this run had already yielded (they come again).
    """

    span: Window
    job_id: str
    outcome: JobOutcome
    error_message: str | None
    pages_delivered: int


@dataclass(frozen=True)
class JobPage:
    """One page of a job's results.

    `conversations` started in `span` (records outside it are dropped and counted in `outside_span`).
    `next_cursor` is where to resume once this page is acknowledged; None: this was the last page.
    `page_number` counts the pages of this job from 1 (from the resume point when resumed).
    """

    span: Window
    job_id: str
    page_number: int
    conversations: list[dict[str, Any]]
    cursor: str | None
    next_cursor: str | None
    received_at: datetime
    data_availability_date: datetime | None
    outside_span: int = 0

    @property
    def last(self) -> bool:
        return self.next_cursor is None


JobEvent = JobSubmitted | JobRestarted | JobPage
