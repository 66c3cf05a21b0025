"""Helpers for the simulator conformance tests: an authenticated httpx client and a small default config.

The default history is two whole UTC days that ended days ago (so everything in it has ended and settled),
no live traffic, exact totalHits and no ghost duplicates, unless a test overrides it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connector.clock import format_instant as iso
from connector.testbed.simulator import SimulatorConfig, SimulatorHandle

QUERY = "/api/v2/analytics/conversations/details/query"
JOBS = "/api/v2/analytics/conversations/details/jobs"
CLIENT = ("demo-client", "demo-secret")

# History = [DAY0, DAY0 + 2 days): whole UTC days, in the past, so everything in it has ended and settled.
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY0 = TODAY - timedelta(days=4)


def interval(start: datetime, end: datetime) -> str:
    """Genesys interval text."""
    return f"{iso(start)}/{iso(end)}"


def parse(text: str) -> datetime:
    """Genesys instant text -> datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Api:
    """A bearer-authenticated client of one simulator."""

    def __init__(self, handle: SimulatorHandle, credentials: tuple[str, str] = CLIENT) -> None:
        self.handle = handle
        self.http = httpx.Client(base_url=handle.base_url, timeout=30)
        self.credentials = credentials
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post(
            "/oauth/token", auth=self.credentials, data={"grant_type": "client_credentials"}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def query(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(QUERY, json=body, headers=self.headers)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.headers)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers=self.headers)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.headers)

    def all_pages(self, body: dict[str, Any], page_size: int = 100) -> list[dict[str, Any]]:
        """Every record of a query, page by page until a page has no conversations."""
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.query({**body, "paging": {"pageSize": page_size, "pageNumber": page}})
            assert response.status_code == 200, response.text
            batch = response.json().get("conversations")
            if not batch:
                return records
            records.extend(batch)
            page += 1

    def close(self) -> None:
        self.http.close()


def base_config(**overrides: Any) -> SimulatorConfig:
    """A small, exact, quiet simulator (overridable)."""
    values: dict[str, Any] = {
        "seed": 11,
        "history_start": DAY0,
        "history_end": DAY0 + timedelta(days=2),
        "volume_per_hour": 20,
        "total_hits_jitter": 0.0,
        "duplicate_probability": 0.0,
        "rate_limit": 100_000,
        "live_rate_per_minute": 0,
        "job_queued_s": 1,
        "job_pending_s": 1,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


SimFactory = Callable[..., tuple[SimulatorHandle, Api]]
FULL_INTERVAL = interval(DAY0, DAY0 + timedelta(days=2))
