"""Tie groups: conversations with an equal `conversationStart` read completely (`PagedQuery` uses it).

Ties (genesys-api.md §1.4 "ordering", §7): records with an equal `conversationStart` may come back in a
different order on every request (a search index served by several replicas), so a tie group that straddles
a page boundary can lose members to offset paging (page n's shuffle and page n+1's shuffle overlap) with
nothing to show for it. It is detected exactly - the last record of page n and the first of page n+1 share
their start (whatever the shuffle, both boundary positions hold members of the group) - and the group is
then read completely by a narrow re-query of that instant: interval `[t, t+1ms)`, same filters, ordered
**descending** (`tie_query`). Why that design:

- The narrow interval matches the group plus the conversations that started earlier that day and were
  still running at `t` (a query matches on lifetime overlap), never anything that started later. Sorted
  descending, the group is therefore *first*: positions `[0, k)` hold exactly its `k` members in some
  order, so with `k <= pageSize` page 1 holds the whole group - one request per straddling group, however
  the replicas shuffle it. Ascending, the group would sit behind every long-running conversation of the
  day (hundreds in a busy org) and could straddle the narrow query's own page boundaries.
- Re-reading neighbouring pages of the window instead costs as much and is never complete: each re-read
  is another shuffle of the same positions.
- A group larger than a page (more than `pageSize` conversations starting in the same millisecond) is read
  page by page until a record outside it shows, then swept again (at most `MAX_TIE_SWEEPS` times) until
  the distinct members reach the group's size; a shortfall is a WARNING naming the instant.

Members are kept only if they overlap the window being paged (the narrow query also matches conversations
of the same instant that ended before it). A resumed run (`start_page` > 1) cannot see the page before its
first, so the first record's instant is re-read once. `tie_groups` and `tie_conversations_recovered` count
the groups re-read and the members that paging alone had skipped; the extra requests go through the same
query function (a pass's `query_requests` include them). Without a `tie_query` this is off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connector.clock import parse_instant
from connector.metrics import ConnectorMetrics
from connector.windows import Window

if TYPE_CHECKING:
    from connector.genesys.pagination import QueryFunction, _Response, _Run

log = logging.getLogger(__name__)

#: The narrow re-query of a tie group covers one millisecond, the precision of `conversationStart`.
TIE_INTERVAL = timedelta(milliseconds=1)
#: Most sweeps over a tie group larger than a page (each sweep is one request per page of the group).
MAX_TIE_SWEEPS = 6


class TieReads:
    """The tie-group re-read of `connector.genesys.pagination.PagedQuery` (which sets these attributes and
    implements `_fetch_with`). Without a `tie_query` it is off."""

    _tie_query: QueryFunction | None
    _metrics: ConnectorMetrics
    _page_size: int
    _cap: int

    async def _fetch_with(self, query: QueryFunction, window: Window, page: int) -> _Response:
        raise NotImplementedError

    async def _complete_ties(
        self, window: Window, previous: _Response | None, response: _Response, run: _Run
    ) -> _Response:
        """`response` plus the members of a tie group straddling its first boundary that paging skipped."""
        if self._tie_query is None:
            return response
        instant = (
            _first_start(response.conversations)
            if previous is None
            else straddling_instant(previous.conversations, response.conversations)
        )
        if instant is None or instant in run.tie_instants:
            return response
        run.tie_instants.add(instant)
        self._metrics.tie_groups.inc()
        members = await self._read_instant(instant)
        on_page = {c.get("conversationId") for c in response.conversations}
        extra = [
            c
            for c in members
            if c["conversationId"] not in run.seen_ended
            and c["conversationId"] not in on_page
            and _overlaps(c, window)
        ]
        if not extra:
            return response
        self._metrics.tie_conversations_recovered.inc(len(extra))
        log.info(
            "tie group at %s straddled a page boundary of %s: %d conversation(s) recovered by re-reading it",
            instant.isoformat(),
            window.interval,
            len(extra),
        )
        return replace(response, conversations=[*response.conversations, *extra])

    async def _read_instant(self, instant: datetime) -> list[dict[str, Any]]:
        """Every conversation that started at `instant` (to the millisecond): see the module docstring."""
        assert self._tie_query is not None
        narrow = Window(instant, instant + TIE_INTERVAL)
        members: dict[str, dict[str, Any]] = {}
        size, pages = 0, 0
        while True:  # first sweep: find how many pages the group covers and its size
            pages += 1
            response = await self._fetch_with(self._tie_query, narrow, pages)
            found, complete = _members(response, instant, self._page_size)
            size += len(found)
            members.update(found)
            if complete or pages * self._page_size >= self._cap:
                break
        sweeps, idle = 1, 0
        while len(members) < size and sweeps < MAX_TIE_SWEEPS and idle < 2:
            sweeps += 1
            before = len(members)
            for page in range(1, pages + 1):
                response = await self._fetch_with(self._tie_query, narrow, page)
                found, _ = _members(response, instant, self._page_size)
                members.update(found)
            idle = idle + 1 if len(members) == before else 0
        if len(members) < size:
            log.warning(
                "tie group at %s holds %d conversations over %d pages; %d read after %d sweeps",
                instant.isoformat(),
                size,
                pages,
                len(members),
                sweeps,
            )
        return list(members.values())


def _start_of(conversation: Mapping[str, Any]) -> datetime | None:
    text = conversation.get("conversationStart")
    if not isinstance(text, str):
        return None
    try:
        return parse_instant(text)
    except ValueError:
        return None


def _first_start(conversations: list[dict[str, Any]]) -> datetime | None:
    return _start_of(conversations[0]) if conversations else None


def straddling_instant(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> datetime | None:
    """The start shared by the last record of one page and the first of the next, if any.

    Exact whatever order the tie group came back in: both positions next to the boundary hold members.
    """
    if not before or not after:
        return None
    last, first = _start_of(before[-1]), _start_of(after[0])
    return last if last is not None and last == first else None


def _members(
    response: _Response, instant: datetime, page_size: int
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Members of the tie group at `instant` on a page of its descending narrow query, and whether the
    group ends on this page: a record outside it shows up, or the page is empty or under half full (the
    narrow query's data ended: Genesys' duplicate filtering shortens a page by a few records, not by half,
    so a short page is not taken as the end while the group could still fill the page)."""
    found: dict[str, dict[str, Any]] = {}
    complete = len(response.conversations) < max(1, page_size // 2)
    for conversation in response.conversations:
        cid = conversation.get("conversationId")
        if _start_of(conversation) == instant and isinstance(cid, str) and cid:
            found[cid] = conversation
        else:
            complete = True
    return found, complete


def _overlaps(conversation: Mapping[str, Any], window: Window) -> bool:
    """Whether the conversation's lifetime overlaps `window` (the query's matching rule)."""
    start = _start_of(conversation)
    if start is None or start >= window.end:
        return False
    end_text = conversation.get("conversationEnd")
    if not isinstance(end_text, str):
        return True
    try:
        return parse_instant(end_text) > window.start
    except ValueError:
        return True
