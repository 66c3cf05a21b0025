"""The states of an analytics job (`AsyncQueryStatus.state`, genesys-api.md §2.3): a fact of the API.

In a module of its own so that the test bed's simulator can serve the same vocabulary the client reads
without importing the client; the simulator's conformance tests (tests/simulator/test_sim_sdk.py) still
check the states it serves against the official SDK and literal strings, so sharing the names does not
make the simulator agree with the client by construction.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """`AsyncQueryStatus.state` (genesys-api.md §2.3)."""

    QUEUED = "QUEUED"
    PENDING = "PENDING"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def running(self) -> bool:
        """Not finished yet: the job may still be fulfilled (and holds a concurrent-jobs slot)."""
        return self in (JobState.QUEUED, JobState.PENDING)
