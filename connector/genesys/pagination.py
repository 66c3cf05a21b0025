"""Page one interval of the details query to completion, whatever Genesys' paging does.

Rules (genesys-api.md §1.4, §7):

- Pages are requested by `pageNumber` 1, 2, 3... and the interval is finished at the first page with no
  `conversations` (absent or empty). Never earlier: `totalHits` is approximate and pages can be short
  because Genesys drops duplicates from them.
- Speed, bounded by evidence: later pages are prefetched concurrently (at most `concurrency` ahead of the
  consumer), but never more pages in flight than pages already seen to exist (`may_prefetch`): depth
  doubles with each round trip, so a `totalHits` far above the data costs at most about as many extra
  requests as the window has pages (not `concurrency` per window). `totalHits` only bounds the prefetch:
  past `ceil(totalHits / pageSize)` the count restarts from the pages found past it (a low or 0 estimate
  pages one at a time until the data shows more). Pages are always yielded in page order; the first empty
  page ends the run.
- Dedupe within the window by `conversationId`: new data shifts offsets while we page, so a record can come
  back on a later page. A repeat is dropped when its first copy had ended (`conversationEnd` present); if
  the first copy was still in progress, the later (fresher) copy is yielded too, so an ended version is not
  lost. Dropped repeats are counted on the page (`duplicates`).
- The 100,000-result cap (`pageNumber x pageSize <= 100000`) is met by splitting the window in halves and
  paging each half the same way (recursively; `window_splits` counts it), on evidence only: Genesys answers
  400 "Pagination may not exceed..." (or the next page would pass the cap), or the first page's `totalHits`
  exceeds 80 % of the cap *and* the page at that depth (`probe_page`, one extra request) holds
  conversations. `totalHits` alone never splits: it is approximate (genesys-api.md §1.2), and a wrong one
  used to split a 300-conversation window into 1-second windows (thousands of requests). Conversations
  already yielded are not yielded again (dedupe spans the whole requested window).
- When a window's `totalHits` and the conversations actually paged disagree by more than its documented
  slack (`estimate_disagrees`), a WARNING says so: paging went by the data.
- Resume: `start_page` > 1 continues an interrupted window at that page. If the window then turns out to
  need splitting, it is paged again from the start, in halves (duplicates are absorbed downstream).

Ties: a tie group (equal `conversationStart`) straddling a page boundary is read completely by a narrow
re-query of its instant (`connector.genesys.ties`, which says why and how).

`page_number` on yielded pages increases by one per page within a run and equals Genesys' `pageNumber`
as long as the window is not split, so it can be stored as a resume hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.clock import Clock
from connector.errors import ApiContractError
from connector.genesys.ties import TieReads
from connector.genesys.ties import straddling_instant as straddling_instant
from connector.metrics import ConnectorMetrics
from connector.windows import Window

log = logging.getLogger(__name__)

#: Most results Genesys lets one query page through.
PAGINATION_CAP = 100_000
#: Probe for a split when the first page reports more hits than this share of the cap; split when the
#: page at this depth holds conversations.
SPLIT_RATIO = 0.8
#: Windows shorter than this are never split (a window this dense cannot be paged completely anyway).
MIN_SPLIT_LENGTH = timedelta(seconds=1)


class PaginationCapReached(Exception):
    """Control flow, not an error: the window holds more results than one query may page through.

    Raised where that is learnt (the client's `classify_response` for Genesys' 400 "Pagination may not
    exceed 100000 results", or `PagedQuery` itself when the next page would pass the cap) and caught only
    by `PagedQuery`, which splits the window in halves. It is deliberately outside the `ConnectorError`
    tree: no retry or failure handler may treat it as a failure; if it ever escaped the pager, the loop
    would stop on it as a bug.
    """


QueryFunction = Callable[[Window, int], Awaitable[Mapping[str, Any]]]
"""Fetch page `page_number` of `window`; returns the query response (`conversations`, `totalHits`)."""


@dataclass(frozen=True)
class QueryPage:
    """One non-empty page of one (possibly split) window, already deduped against earlier pages."""

    query_window: Window
    query_page: int
    page_number: int
    conversations: list[dict[str, Any]]
    total_hits: int | None
    received_at: datetime
    duplicates: int


@dataclass
class _Response:
    page: int
    conversations: list[dict[str, Any]]
    total_hits: int | None
    received_at: datetime


@dataclass
class _Run:
    """State of one `pages()` run: dedupe memory and the next page ordinal."""

    next_number: int
    seen_ended: dict[str, bool] = field(default_factory=dict)
    tie_instants: set[datetime] = field(default_factory=set)


class PrefetchBudget:
    """How many pages may be fetched ahead of their consumer, shared by every pass of a connector.

    Each pass may prefetch up to `concurrency` pages; with several passes at once that multiplies, and
    parsed pages are the bulk of the worker's memory. A pass always keeps one page in flight (so it never
    starves); pages beyond that need a unit of this budget, returned once the page is consumed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.held = 0

    def try_take(self) -> bool:
        if self.held >= self.limit:
            return False
        self.held += 1
        return True

    def give_back(self) -> None:
        self.held = max(0, self.held - 1)


class PagedQuery(TieReads):
    """Pages windows through `query`; one instance can serve any number of windows and passes."""

    def __init__(
        self,
        query: QueryFunction,
        *,
        page_size: int,
        concurrency: int,
        clock: Clock,
        metrics: ConnectorMetrics,
        cap: int = PAGINATION_CAP,
        prefetch: PrefetchBudget | None = None,
        tie_query: QueryFunction | None = None,
    ) -> None:
        self._prefetch = prefetch
        self._tie_query = tie_query
        self._query = query
        self._page_size = page_size
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._metrics = metrics
        self._cap = cap

    async def pages(self, window: Window, *, start_page: int = 1) -> AsyncIterator[QueryPage]:
        """Every conversation of `window`, page by page, in page order (see module docstring)."""
        if start_page < 1:
            raise ValueError(f"start_page must be >= 1 (got {start_page})")
        run = _Run(next_number=start_page)
        async for page in self._page_window(window, start_page, run):
            yield page

    async def _page_window(self, window: Window, start_page: int, run: _Run) -> AsyncIterator[QueryPage]:
        try:
            first = await self._fetch(window, start_page)
        except PaginationCapReached as exc:
            async for page in self._split(window, run, reason=str(exc)):
                yield page
            return
        last_expected = math.ceil(first.total_hits / self._page_size) if first.total_hits else start_page
        if (
            first.total_hits is not None
            and first.total_hits > SPLIT_RATIO * self._cap
            and self._splittable(window)
        ):
            probe = self.probe_page()
            reason = await self._split_evidence(window, start_page, first, probe)
            if reason is not None:
                async for page in self._split(window, run, reason=reason):
                    yield page
                return
            last_expected = probe - 1  # the data ends before the (empty) probe page
        delivered = len(first.conversations)
        if first.conversations:
            completed = first
            if start_page > 1:  # resumed: the page before is unknown, so its boundary is re-read
                completed = await self._complete_ties(window, None, first, run)
            yield self._accept(window, completed, run)
            previous = first
            try:
                async for response in self._rest(window, start_page + 1, last_expected):
                    delivered += len(response.conversations)
                    completed = await self._complete_ties(window, previous, response, run)
                    yield self._accept(window, completed, run)
                    previous = response  # as Genesys sent it: its last record sits at the next boundary
            except PaginationCapReached as exc:
                async for page in self._split(window, run, reason=str(exc)):
                    yield page
                return
        if start_page == 1:
            self._check_estimate(window, first.total_hits, delivered)

    def probe_page(self) -> int:
        """The page whose data proves a window too close to the cap to page whole (80 % of the cap)."""
        return max(1, min(self._cap // self._page_size, math.ceil(SPLIT_RATIO * self._cap / self._page_size)))

    async def _split_evidence(
        self, window: Window, start_page: int, first: _Response, probe: int
    ) -> str | None:
        """Why `window` must be split although only `totalHits` said so far, or None if the data says no.

        One request: the probe page. A resumed run already at or past it is its own evidence.
        """
        if start_page >= probe:
            return (
                f"totalHits={first.total_hits}, page {start_page} holds conversations"
                if first.conversations
                else None
            )
        try:
            response = await self._fetch(window, probe)
        except PaginationCapReached as exc:
            return str(exc)
        if response.conversations:
            return f"totalHits={first.total_hits}, page {probe} holds conversations"
        return None

    def _check_estimate(self, window: Window, total_hits: int | None, delivered: int) -> None:
        if estimate_disagrees(total_hits, delivered, self._page_size):
            log.warning(
                "totalHits disagrees with the data: the first page of %s reported totalHits=%s but paging "
                "found %d conversations; totalHits is an estimate, paging went by the data",
                window.interval,
                total_hits,
                delivered,
            )

    async def _rest(self, window: Window, first_page: int, last_expected: int) -> AsyncIterator[_Response]:
        """Pages from `first_page` on, in order, until the first empty one.

        Up to `concurrency` pages are in flight, as far as `may_prefetch` allows; one always is.
        """
        pending: deque[tuple[asyncio.Task[_Response], bool]] = deque()
        page = first_page
        consumed = first_page - 1  # the caller consumed the run's first page
        try:
            while True:
                while len(pending) < self._concurrency and (
                    not pending
                    or may_prefetch(
                        page, consumed=consumed, run_start=first_page - 1, last_expected=last_expected
                    )
                ):
                    budgeted = bool(pending) and self._prefetch is not None
                    if budgeted and not self._prefetch.try_take():  # type: ignore[union-attr]
                        break  # other passes hold the shared prefetch budget: fetch when consumed
                    pending.append((asyncio.ensure_future(self._fetch(window, page)), budgeted))
                    page += 1
                task, budgeted = pending.popleft()
                try:
                    response = await task
                finally:
                    if budgeted and self._prefetch is not None:
                        self._prefetch.give_back()
                if not response.conversations:
                    return
                consumed = response.page
                yield response
        finally:
            for task, budgeted in pending:
                task.cancel()
                if budgeted and self._prefetch is not None:
                    self._prefetch.give_back()
            for task, _ in pending:
                with contextlib.suppress(BaseException):
                    await task

    async def _split(self, window: Window, run: _Run, *, reason: str) -> AsyncIterator[QueryPage]:
        if not self._splittable(window):
            raise ApiContractError(
                f"window {window.interval} holds more than {self._cap} conversations and is too short to "
                f"split further ({reason}); it cannot be paged completely",
                endpoint="details_query",
            )
        self._metrics.window_splits.inc()
        first, second = window.split()
        log.info("splitting window %s in halves (%s)", window.interval, reason)
        for half in (first, second):
            async for page in self._page_window(half, 1, run):
                yield page

    def _splittable(self, window: Window) -> bool:
        return window.duration >= 2 * MIN_SPLIT_LENGTH

    async def _fetch(self, window: Window, page: int) -> _Response:
        if page * self._page_size > self._cap:
            # Genesys would answer 400 "Pagination may not exceed 100000 results": save the request.
            raise PaginationCapReached(
                f"page {page} x {self._page_size} would pass the {self._cap}-result cap"
            )
        body = await self._query(window, page)
        conversations = body.get("conversations") or []
        total = body.get("totalHits")
        return _Response(
            page, list(conversations), total if isinstance(total, int) else None, self._clock.now()
        )

    async def _fetch_with(self, query: QueryFunction, window: Window, page: int) -> _Response:
        body = await query(window, page)
        conversations = body.get("conversations") or []
        return _Response(page, list(conversations), None, self._clock.now())

    def _accept(self, window: Window, response: _Response, run: _Run) -> QueryPage:
        """Dedupe a page against the run so far and number it."""
        kept: dict[str, dict[str, Any]] = {}
        duplicates = 0
        for conversation in response.conversations:
            cid = conversation.get("conversationId")
            if not isinstance(cid, str) or not cid:
                log.warning("dropping a conversation without conversationId on %s", window.interval)
                continue
            if run.seen_ended.get(cid) or cid in kept:
                duplicates += 1
                if cid not in kept:
                    continue  # its first copy had ended: nothing fresher to say
            run.seen_ended[cid] = "conversationEnd" in conversation
            kept[cid] = conversation  # a repeat within one page replaces the earlier copy, in place
        number = run.next_number
        run.next_number += 1
        return QueryPage(
            query_window=window,
            query_page=response.page,
            page_number=number,
            conversations=list(kept.values()),
            total_hits=response.total_hits,
            received_at=response.received_at,
            duplicates=duplicates,
        )


def may_prefetch(page: int, *, consumed: int, run_start: int, last_expected: int) -> bool:
    """Whether `page` may be requested while the pages between `consumed` and it are still in flight.

    The rule that bounds what a wrong `totalHits` costs: after this request, no more pages may be in flight
    (`page - consumed`) than pages already seen to exist - counted from `run_start` while `page` is within
    the estimate (`last_expected`), and from the estimate's last page past it. Depth so doubles per round
    trip while the data keeps coming, and the requests spent past the real end of a window are at most
    about the number of its pages, whatever `totalHits` said. (The caller always allows one request.)
    """
    ahead = page - consumed
    if page <= last_expected:
        return ahead <= consumed - run_start + 1
    return ahead <= max(1, consumed - last_expected)


def estimate_disagrees(total_hits: int | None, delivered: int, page_size: int) -> bool:
    """Whether `totalHits` and the conversations paged differ by more than an estimate may.

    `totalHits` counts duplicates that pages drop and moves while data arrives (genesys-api.md §1.2): a
    difference under one page, or under half the larger of the two, is normal. Beyond both, the estimate
    is wrong (e.g. 250000 for 300 conversations, or 0 with a full page).
    """
    if total_hits is None:
        return False
    gap = abs(total_hits - delivered)
    return gap >= page_size and gap > max(total_hits, delivered) / 2
