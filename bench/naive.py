"""The baseline the connector is compared with: the loop most people write first.

One request at a time: get a token, then for each window `pageNumber` 1, 2, 3... until a page has no
conversations, and on a 429 sleep `Retry-After` and try the same page again. No pacing, no concurrency,
no Kafka (it only fetches, which favours it: the connector also publishes and waits for acks).
It runs for a fixed wall-clock time; its rate is steady (one round trip per page), so that sample is fair.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx

from bench.harness import iso

QUERY_PATH = "/api/v2/analytics/conversations/details/query"


@dataclass(frozen=True)
class NaiveResult:
    """Conversations fetched, requests sent (429s included) and the time it took."""

    conversations: int
    requests: int
    throttled: int
    elapsed_s: float
    finished: bool  # True if every window was read before the time limit

    @property
    def conversations_per_s(self) -> float:
        return self.conversations / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _token(http: httpx.Client, client_id: str, client_secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    response = http.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def run_naive(
    base_url: str,
    windows: Iterable[tuple[datetime, datetime]],
    *,
    page_size: int,
    duration_s: float,
    client_id: str = "demo-client",
    client_secret: str = "demo-secret",
) -> NaiveResult:
    """Page through `windows` one request at a time for at most `duration_s` seconds."""
    seen: set[str] = set()
    requests = throttled = 0
    finished = True
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        headers = {"Authorization": f"Bearer {_token(http, client_id, client_secret)}"}
        began = time.monotonic()
        deadline = began + duration_s
        for start, end in windows:
            page = 1
            while True:
                if time.monotonic() >= deadline:
                    finished = False
                    break
                body = {
                    "interval": f"{iso(start)}/{iso(end)}",
                    "order": "asc",
                    "orderBy": "conversationStart",
                    "paging": {"pageSize": page_size, "pageNumber": page},
                }
                response = http.post(QUERY_PATH, json=body, headers=headers)
                requests += 1
                if response.status_code == 429:
                    throttled += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                response.raise_for_status()
                conversations = response.json().get("conversations") or []
                if not conversations:
                    break
                seen.update(c["conversationId"] for c in conversations)
                page += 1
            if not finished:
                break
        elapsed = time.monotonic() - began
    return NaiveResult(len(seen), requests, throttled, elapsed, finished)
