"""`WindowFetcher`: one (window, pass) in, an ordered stream of pages of conversations out.

It builds the details query from the configured filters, pages it to completion (`PagedQuery`) and labels
each page with the pass it belongs to. It knows nothing of Kafka or checkpoints; the pass runner counts
pages and conversations in the metrics. `follow_open` re-reads conversations seen in progress by id:
the query only finds a conversation through windows on the UTC day it *started*, so a long-lived one
(an email open for days) must be followed by id until it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.clock import Clock
from connector.config import FilterSettings, Settings
from connector.genesys.client import GenesysClient
from connector.genesys.pagination import PagedQuery, PrefetchBudget
from connector.metrics import ConnectorMetrics
from connector.windows import Window


@dataclass(frozen=True)
class Page:
    """One non-empty page of one pass over `window`.

    `page_number` increases by one per page of the pass; while `query_window == window` (not split) it is
    Genesys' pageNumber, so `page_number + 1` is a valid `start_page` to resume at. `conversations` are
    deduped against earlier pages of this pass (see `connector.genesys.pagination`); `duplicates` counts the
    repeats dropped from this page.
    """

    window: Window
    pass_no: int
    page_number: int
    conversations: list[dict[str, Any]]
    received_at: datetime
    total_hits: int | None
    query_window: Window
    duplicates: int = 0


@dataclass
class RequestTally:
    """Query requests made for one pass so far: the fetcher counts, the caller reads (no call back)."""

    count: int = 0


class WindowFetcher:
    """Fetches window passes through the shared `GenesysClient`."""

    def __init__(
        self,
        client: GenesysClient,
        config: Settings,
        *,
        clock: Clock | None = None,
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock or client.clock
        self._metrics = metrics or client.metrics
        # Pages fetched ahead of their pass, across all passes: bounds the worker's memory.
        self._prefetch = PrefetchBudget(2 * config.genesys.max_concurrency)

    async def fetch(
        self,
        window: Window,
        pass_no: int,
        *,
        start_page: int = 1,
        tally: RequestTally | None = None,
    ) -> AsyncIterator[Page]:
        """Every conversation Genesys returns for `window`, page by page, in page order.

        `tally` counts the query requests of this pass (retries inside the client excluded), so the
        caller can account API cost per pass.
        """

        async def query(window: Window, page_number: int) -> Mapping[str, Any]:
            if tally is not None:
                tally.count += 1
            return await self._query(window, page_number)

        async def tie_query(window: Window, page_number: int) -> Mapping[str, Any]:
            if tally is not None:
                tally.count += 1
            return await self._query(window, page_number, order="desc")

        pager = PagedQuery(
            query,
            page_size=self._config.genesys.page_size,
            concurrency=self._config.genesys.max_concurrency,
            clock=self._clock,
            metrics=self._metrics,
            prefetch=self._prefetch,
            tie_query=tie_query,
        )
        async for page in pager.pages(window, start_page=start_page):
            yield Page(
                window=window,
                pass_no=pass_no,
                page_number=page.page_number,
                conversations=page.conversations,
                received_at=page.received_at,
                total_hits=page.total_hits,
                query_window=page.query_window,
                duplicates=page.duplicates,
            )

    async def follow_open(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Current versions of the given conversations (multi-get, 100 ids per request)."""
        if not ids:
            return []
        return await self._client.get_conversations(ids)

    def build_query(self, window: Window, page_number: int, *, order: str = "asc") -> dict[str, Any]:
        """The details query body for one page of `window`, with the configured filters.

        `order` is "desc" only for the narrow re-query of a tie group (connector.genesys.pagination).

        Divisions become a conversation filter (any of them); media types and queues each become a segment
        filter (any of the listed values), and Genesys requires all filters to match.
        """
        body: dict[str, Any] = {
            "interval": window.interval,
            "order": order,
            "orderBy": "conversationStart",
            "paging": {"pageSize": self._config.genesys.page_size, "pageNumber": page_number},
        }
        body.update(query_filters(self._config.windows.filters))
        return body

    async def _query(self, window: Window, page_number: int, *, order: str = "asc") -> Mapping[str, Any]:
        return await self._client.query_details(self.build_query(window, page_number, order=order))


def query_filters(filters: FilterSettings) -> dict[str, Any]:
    """`conversationFilters` / `segmentFilters` for the configured filters (query and job bodies alike).

    Divisions become a conversation filter (any of them); media types and queues each become a segment
    filter (any of the listed values), and Genesys requires all filters to match. Empty: no keys.
    """
    body: dict[str, Any] = {}
    if filters.division_ids:
        body["conversationFilters"] = [_any_of("divisionId", filters.division_ids)]
    segment_filters = []
    if filters.media_types:
        segment_filters.append(_any_of("mediaType", filters.media_types))
    if filters.queue_ids:
        segment_filters.append(_any_of("queueId", filters.queue_ids))
    if segment_filters:
        body["segmentFilters"] = segment_filters
    return body


def _any_of(dimension: str, values: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "or",
        "predicates": [
            {"type": "dimension", "dimension": dimension, "operator": "matches", "value": value}
            for value in values
        ],
    }
