"""The async jobs endpoints' answers, parsed (genesys-api.md §2): `JobStatus`, `JobResultsPage`.

`GenesysClient` calls the endpoints (`submit_job`, `job_status`, `job_results`, `delete_job`,
`data_availability`) through its one choke point and parses their bodies with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.clock import parse_instant
from connector.errors import (
    ApiContractError,
)
from connector.genesys.endpoints import JOB_RESULTS_ENDPOINT, JOB_STATUS_ENDPOINT
from connector.genesys.jobstate import JobState


@dataclass(frozen=True)
class JobStatus:
    """A job's status; dates are None when Genesys left them out."""

    state: JobState
    error_message: str | None = None
    expiration_date: datetime | None = None
    submission_date: datetime | None = None
    completion_date: datetime | None = None

    @classmethod
    def from_body(cls, body: Any) -> JobStatus:
        if not isinstance(body, dict):
            raise ApiContractError("the job status is not a JSON object", endpoint=JOB_STATUS_ENDPOINT)
        try:
            state = JobState(str(body.get("state")))
        except ValueError:
            raise ApiContractError(
                f"unknown job state {body.get('state')!r}", endpoint=JOB_STATUS_ENDPOINT
            ) from None
        message = body.get("errorMessage")
        return cls(
            state=state,
            error_message=str(message) if message is not None else None,
            expiration_date=instant_or_none(body.get("expirationDate")),
            submission_date=instant_or_none(body.get("submissionDate")),
            completion_date=instant_or_none(body.get("completionDate")),
        )


@dataclass(frozen=True)
class JobResultsPage:
    """One page of a job's results: records (with participant attributes), the cursor to the next page
    (None on the last page) and the data lake's availability date when the job ran."""

    conversations: list[dict[str, Any]]
    cursor: str | None
    data_availability_date: datetime | None

    @classmethod
    def from_body(cls, body: Any) -> JobResultsPage:
        if not isinstance(body, dict):
            raise ApiContractError("the job results are not a JSON object", endpoint=JOB_RESULTS_ENDPOINT)
        conversations = body.get("conversations") or []
        if not isinstance(conversations, list) or not all(isinstance(c, dict) for c in conversations):
            raise ApiContractError("'conversations' is not a list of objects", endpoint=JOB_RESULTS_ENDPOINT)
        cursor = body.get("cursor")
        if cursor is not None and (not isinstance(cursor, str) or not cursor):
            raise ApiContractError(f"'cursor' is not a string ({cursor!r})", endpoint=JOB_RESULTS_ENDPOINT)
        return cls(conversations, cursor, instant_or_none(body.get("dataAvailabilityDate")))


def instant_or_none(value: Any) -> datetime | None:
    """An ISO-8601 instant from a response, or None when absent or not one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None
