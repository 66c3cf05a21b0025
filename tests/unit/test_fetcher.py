"""WindowFetcher: query bodies from filters, pages of a pass over HTTP (MockTransport), follow-up by id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from connector.clock import FakeClock
from connector.config import Settings, load_config
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import Page, WindowFetcher
from connector.metrics import ConnectorMetrics
from connector.windows import Window

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=15))


def settings(**env: str) -> Settings:
    base = {
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "client-abc",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "secret",
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": "https://api.example.test",
        "GENESYS_CONNECTOR__GENESYS__LOGIN_BASE_URL": "https://login.example.test",
        "GENESYS_CONNECTOR__GENESYS__PAGE_SIZE": "3",
    }
    return load_config(None, environ={**base, **{f"GENESYS_CONNECTOR__{k}": v for k, v in env.items()}})


class FakeApi:
    """A tiny details-query server: `rows` paged by the requested pageSize."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.bodies: list[dict[str, Any]] = []
        self.multiget: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86399})
        if request.method == "GET":
            ids = request.url.params["id"].split(",")
            self.multiget.append(ids)
            return httpx.Response(
                200, json={"conversations": [r for r in self.rows if r["conversationId"] in ids]}
            )
        body = orjson.loads(request.content)
        self.bodies.append(body)
        size, number = body["paging"]["pageSize"], body["paging"]["pageNumber"]
        chunk = self.rows[(number - 1) * size : number * size]
        payload: dict[str, Any] = {"totalHits": len(self.rows)}
        if chunk:
            payload["conversations"] = chunk
        return httpx.Response(200, json=payload)


def run(config: Settings, api: FakeApi, action: Any) -> Any:
    async def main() -> Any:
        clock = FakeClock(T0 + timedelta(hours=1))
        async with GenesysClient(
            config.genesys, clock=clock, metrics=ConnectorMetrics(), transport=httpx.MockTransport(api)
        ) as client:
            return await action(WindowFetcher(client, config))

    return asyncio.run(main())


def rows(n: int) -> list[dict[str, Any]]:
    return [{"conversationId": f"c{i}", "conversationEnd": "2026-05-01T10:20:00Z"} for i in range(n)]


def test_query_body_without_filters() -> None:
    config = settings()
    body = run(config, FakeApi([]), lambda f: asyncio.sleep(0, f.build_query(WINDOW, 2)))
    assert body == {
        "interval": "2026-05-01T10:00:00.000Z/2026-05-01T10:15:00.000Z",
        "order": "asc",
        "orderBy": "conversationStart",
        "paging": {"pageSize": 3, "pageNumber": 2},
    }


def test_filters_become_conversation_and_segment_filters() -> None:
    config = settings(
        WINDOWS__FILTERS__DIVISION_IDS="d1,d2",
        WINDOWS__FILTERS__MEDIA_TYPES="voice,email",
        WINDOWS__FILTERS__QUEUE_IDS="q1",
    )
    body = run(config, FakeApi([]), lambda f: asyncio.sleep(0, f.build_query(WINDOW, 1)))

    def any_of(dimension: str, *values: str) -> dict[str, Any]:
        predicates = [
            {"type": "dimension", "dimension": dimension, "operator": "matches", "value": v} for v in values
        ]
        return {"type": "or", "predicates": predicates}

    assert body["conversationFilters"] == [any_of("divisionId", "d1", "d2")]
    assert body["segmentFilters"] == [any_of("mediaType", "voice", "email"), any_of("queueId", "q1")]


def test_fetch_yields_labelled_pages_of_the_whole_window() -> None:
    api = FakeApi(rows(8))

    async def action(fetcher: WindowFetcher) -> list[Page]:
        return [page async for page in fetcher.fetch(WINDOW, 2)]

    pages = run(settings(), api, action)
    assert [p.page_number for p in pages] == [1, 2, 3]
    assert all(p.window == WINDOW and p.query_window == WINDOW and p.pass_no == 2 for p in pages)
    assert [c["conversationId"] for p in pages for c in p.conversations] == [f"c{i}" for i in range(8)]
    assert all(p.total_hits == 8 for p in pages)
    assert pages[0].received_at == T0 + timedelta(hours=1)
    assert sorted(b["paging"]["pageNumber"] for b in api.bodies) == [1, 2, 3, 4]
    assert {b["interval"] for b in api.bodies} == {WINDOW.interval}


def test_fetch_resumes_at_a_page() -> None:
    api = FakeApi(rows(8))

    async def action(fetcher: WindowFetcher) -> list[Page]:
        return [page async for page in fetcher.fetch(WINDOW, 0, start_page=3)]

    pages = run(settings(), api, action)
    assert [p.page_number for p in pages] == [3]
    assert [c["conversationId"] for c in pages[0].conversations] == ["c6", "c7"]


def test_follow_open_uses_the_multi_get() -> None:
    api = FakeApi(rows(5))
    found = run(settings(), api, lambda f: f.follow_open(["c1", "c3", "missing"]))
    assert [c["conversationId"] for c in found] == ["c1", "c3"]
    assert api.multiget == [["c1", "c3", "missing"]]
    assert run(settings(), api, lambda f: f.follow_open([])) == []
