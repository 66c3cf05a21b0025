"""Paging one window to completion: the empty-page rule, dedupe, ordered concurrency, splits, resume."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.errors import ApiContractError, UpstreamUnavailableError
from connector.genesys.pagination import (
    PagedQuery,
    PaginationCapReached,
    QueryPage,
    estimate_disagrees,
    may_prefetch,
)
from connector.metrics import ConnectorMetrics
from connector.windows import Window

T0 = datetime(2026, 5, 1, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=1))


def conversation(i: int, *, seconds: float, ended: bool = True, version: int = 0) -> dict[str, Any]:
    start = T0 + timedelta(seconds=seconds)
    record: dict[str, Any] = {
        "conversationId": f"c{i:05d}",
        "conversationStart": start.isoformat(),
        "v": version,
    }
    if ended:
        record["conversationEnd"] = (start + timedelta(minutes=1)).isoformat()
    return record


class FakeQuery:
    """Serves `data` (sorted by start) for any window, `page_size` per page, with optional misbehaviour."""

    def __init__(
        self,
        data: list[dict[str, Any]],
        *,
        page_size: int = 10,
        total_hits: Callable[[Window, int], int | None] | None = None,
        omit_key_when_empty: bool = True,
        cap_error_at: int | None = None,
        fail_page: int | None = None,
    ) -> None:
        self.data = sorted(data, key=lambda c: c["conversationStart"])
        self.page_size = page_size
        self.total_hits = total_hits
        self.omit_key_when_empty = omit_key_when_empty
        self.cap_error_at = cap_error_at
        self.fail_page = fail_page
        self.calls: list[tuple[Window, int]] = []
        self.in_flight = 0
        self.peak = 0

    def matching(self, window: Window) -> list[dict[str, Any]]:
        return [
            c
            for c in self.data
            if window.start <= datetime.fromisoformat(c["conversationStart"]) < window.end
        ]

    async def __call__(self, window: Window, page: int) -> Mapping[str, Any]:
        self.calls.append((window, page))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.cap_error_at is not None and page >= self.cap_error_at:
                raise PaginationCapReached("Pagination may not exceed 100000 results")
            if page == self.fail_page:
                raise UpstreamUnavailableError("boom", reason="5xx")
            rows = self.matching(window)
            chunk = rows[(page - 1) * self.page_size : page * self.page_size]
            total = self.total_hits(window, len(rows)) if self.total_hits else len(rows)
            body: dict[str, Any] = {"totalHits": total}
            if chunk or not self.omit_key_when_empty:
                body["conversations"] = chunk
            return body
        finally:
            self.in_flight -= 1


def collect(
    query: Callable[[Window, int], Awaitable[Mapping[str, Any]]],
    window: Window = WINDOW,
    *,
    page_size: int = 10,
    concurrency: int = 4,
    cap: int = 100_000,
    start_page: int = 1,
    clock: FakeClock | None = None,
    metrics: ConnectorMetrics | None = None,
) -> list[QueryPage]:
    """Every page a PagedQuery over `query` (a FakeQuery or a test's own answer) yields for `window`."""
    pager = PagedQuery(
        query,
        page_size=page_size,
        concurrency=concurrency,
        clock=clock or FakeClock(),
        metrics=metrics or ConnectorMetrics(),
        cap=cap,
    )

    async def main() -> list[QueryPage]:
        return [page async for page in pager.pages(window, start_page=start_page)]

    return asyncio.run(main())


def ids(pages: list[QueryPage]) -> list[str]:
    return [c["conversationId"] for page in pages for c in page.conversations]


def dataset(n: int) -> list[dict[str, Any]]:
    return [conversation(i, seconds=i * 3600 / max(n, 1)) for i in range(n)]


# ---------------------------------------------------------------------------------------- the end of a window


def test_pages_until_an_empty_page_and_in_order() -> None:
    query = FakeQuery(dataset(35))
    pages = collect(query)
    assert [p.page_number for p in pages] == [1, 2, 3, 4]
    assert ids(pages) == [f"c{i:05d}" for i in range(35)]
    assert [len(p.conversations) for p in pages] == [10, 10, 10, 5]
    assert sorted(page for _, page in query.calls) == [1, 2, 3, 4, 5]  # page 5 was the empty one


def test_a_short_page_is_not_the_end(clock: FakeClock, metrics: ConnectorMetrics) -> None:
    data = dataset(30)
    query = FakeQuery(data, total_hits=lambda w, n: n)

    async def short_second_page(window: Window, page: int) -> Mapping[str, Any]:
        body = dict(await FakeQuery.__call__(query, window, page))
        if page == 2:
            body["conversations"] = body["conversations"][:3]  # Genesys filtered duplicates out of it
        return body

    pages = collect(short_second_page, page_size=10, concurrency=1, clock=clock, metrics=metrics)
    assert [len(p.conversations) for p in pages] == [10, 3, 10]
    assert len(ids(pages)) == 23


def test_a_low_total_hits_does_not_stop_paging() -> None:
    query = FakeQuery(dataset(57), total_hits=lambda w, n: 12)  # "about 12": really 57
    pages = collect(query)
    assert len(ids(pages)) == 57
    assert pages[0].total_hits == 12


def test_missing_total_hits_pages_to_the_end_with_no_more_in_flight_than_pages_found() -> None:
    query = FakeQuery(dataset(25), total_hits=lambda w, n: None)
    pages = collect(query)
    assert len(ids(pages)) == 25
    assert query.peak <= 2  # pages 1 and 2 found before 3 and 4 go out together
    assert len(query.calls) <= 2 * 4  # an exact totalHits costs 4 (3 pages + the empty one)


@pytest.mark.parametrize("omit", [True, False])
def test_the_empty_page_may_omit_the_key_or_be_an_empty_list(omit: bool) -> None:
    assert len(ids(collect(FakeQuery(dataset(12), omit_key_when_empty=omit)))) == 12


def test_an_empty_window() -> None:
    query = FakeQuery([])
    assert collect(query) == []
    assert query.calls == [(WINDOW, 1)]


# ---------------------------------------------------------------------------------------- dedupe


def test_repeats_of_ended_conversations_are_dropped_and_counted(
    clock: FakeClock, metrics: ConnectorMetrics
) -> None:
    data = dataset(20)

    async def shifting(window: Window, page: int) -> Mapping[str, Any]:
        rows = data[(page - 1) * 10 : page * 10]
        if page == 2:
            rows = [data[9], *rows[:-1]]  # a new record on page 1 pushed c00009 onto page 2...
        if page == 3:
            rows = [data[19]]  # ...and c00019 onto page 3
        return {"totalHits": 20, "conversations": rows} if rows else {"totalHits": 20}

    pages = collect(shifting, page_size=10, concurrency=2, clock=clock, metrics=metrics)
    assert ids(pages) == [f"c{i:05d}" for i in range(19)] + ["c00019"]
    assert [p.duplicates for p in pages] == [0, 1, 0]
    assert len(set(ids(pages))) == len(ids(pages))


def test_a_fresher_copy_of_an_open_conversation_is_kept(clock: FakeClock, metrics: ConnectorMetrics) -> None:
    open_first = conversation(1, seconds=10, ended=False)
    ended_later = conversation(1, seconds=10, ended=True, version=2)
    pages_data = {1: [open_first, conversation(2, seconds=20)], 2: [ended_later, conversation(2, seconds=20)]}

    async def query(window: Window, page: int) -> Mapping[str, Any]:
        return {"totalHits": 4, "conversations": pages_data.get(page, [])}

    pages = collect(query, page_size=2, concurrency=1, clock=clock, metrics=metrics)
    assert pages[0].conversations == [open_first, conversation(2, seconds=20)]
    assert pages[1].conversations == [ended_later]  # the open copy is superseded; c00002 had ended
    assert pages[1].duplicates == 1


def test_a_repeat_within_one_page_keeps_the_later_copy(clock: FakeClock, metrics: ConnectorMetrics) -> None:
    a_old, a_new = conversation(1, seconds=1, ended=False), conversation(1, seconds=1, version=3)

    async def query(window: Window, page: int) -> Mapping[str, Any]:
        return {"conversations": [a_old, conversation(2, seconds=2), a_new]} if page == 1 else {}

    (page,) = collect(query, page_size=10, concurrency=1, clock=clock, metrics=metrics)
    assert page.conversations == [a_new, conversation(2, seconds=2)]
    assert page.duplicates == 1


def test_records_without_an_id_are_dropped(clock: FakeClock, metrics: ConnectorMetrics) -> None:
    async def query(window: Window, page: int) -> Mapping[str, Any]:
        return (
            {"conversations": [{"conversationStart": "x"}, conversation(1, seconds=1)]} if page == 1 else {}
        )

    assert ids(collect(query, page_size=10, concurrency=1, clock=clock, metrics=metrics)) == ["c00001"]


# ---------------------------------------------------------------------------------------- concurrency


def test_pages_after_the_first_are_fetched_concurrently_but_yielded_in_order() -> None:
    query = FakeQuery(dataset(200))
    pages = collect(query, concurrency=4)
    assert query.peak == 4
    assert [p.page_number for p in pages] == list(range(1, 21))
    assert ids(pages) == [f"c{i:05d}" for i in range(200)]
    assert query.calls[0] == (WINDOW, 1)  # the first page alone, for totalHits


def test_concurrency_one_is_sequential() -> None:
    query = FakeQuery(dataset(50))
    collect(query, concurrency=1)
    assert query.peak == 1
    assert [page for _, page in query.calls] == [1, 2, 3, 4, 5, 6]


def test_a_failure_surfaces_in_page_order_after_the_pages_before_it(
    clock: FakeClock, metrics: ConnectorMetrics
) -> None:
    query = FakeQuery(dataset(100), fail_page=4)
    pager = PagedQuery(query, page_size=10, concurrency=4, clock=clock, metrics=metrics)
    received: list[int] = []

    async def main() -> None:
        async for page in pager.pages(WINDOW):
            received.append(page.page_number)

    with pytest.raises(UpstreamUnavailableError):
        asyncio.run(main())
    assert received == [1, 2, 3]


def test_an_early_empty_page_ends_the_run_and_cancels_the_prefetch() -> None:
    query = FakeQuery(dataset(25), total_hits=lambda w, n: 90)  # says 9 pages; only 3 exist
    pages = collect(query, concurrency=4)
    assert len(ids(pages)) == 25
    assert query.in_flight == 0


def test_consumer_stopping_early_cancels_outstanding_requests(
    clock: FakeClock, metrics: ConnectorMetrics
) -> None:
    query = FakeQuery(dataset(300))
    pager = PagedQuery(query, page_size=10, concurrency=4, clock=clock, metrics=metrics)

    async def main() -> None:
        gen = pager.pages(WINDOW)
        async for page in gen:
            if page.page_number == 3:
                break
        await gen.aclose()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert query.in_flight == 0
    assert len(query.calls) < 30


# ---------------------------------------------------------------------------------------- resume


def test_resume_from_a_page_number() -> None:
    query = FakeQuery(dataset(45))
    pages = collect(query, start_page=3)
    assert [p.page_number for p in pages] == [3, 4, 5]
    assert ids(pages) == [f"c{i:05d}" for i in range(20, 45)]
    assert query.calls[0] == (WINDOW, 3)


def test_start_page_must_be_positive() -> None:
    with pytest.raises(ValueError, match="start_page"):
        collect(FakeQuery([]), start_page=0)


# ---------------------------------------------------------------------------------------- the 100,000 cap


def test_split_in_halves_when_total_hits_approaches_the_cap(metrics: ConnectorMetrics) -> None:
    query = FakeQuery(dataset(130))
    pages = collect(query, cap=100, metrics=metrics)  # 130 > 0.8 x 100 -> split; each half has 65
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(130)]
    assert len(set(ids(pages))) == 130
    halves = {w for w, _ in query.calls if w != WINDOW}
    assert halves == set(WINDOW.split())
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 1
    assert [p.page_number for p in pages] == list(range(1, len(pages) + 1))
    assert all(p.query_window in halves for p in pages)


def test_splits_recurse_until_each_part_fits(metrics: ConnectorMetrics) -> None:
    query = FakeQuery(dataset(400))
    pages = collect(query, cap=100, metrics=metrics)
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(400)]
    assert all(p.query_window.duration <= timedelta(minutes=15) for p in pages)
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 1 + 2 + 4


def test_split_on_a_pagination_cap_error_without_losing_or_repeating(
    clock: FakeClock, metrics: ConnectorMetrics
) -> None:
    query = FakeQuery(dataset(60), total_hits=lambda w, n: 10 if w == WINDOW else n)

    async def capped(window: Window, page: int) -> Mapping[str, Any]:
        if window == WINDOW and page >= 4:
            raise PaginationCapReached("Pagination may not exceed 100000 results")
        return await query(window, page)

    pages = collect(capped, page_size=10, concurrency=2, clock=clock, metrics=metrics)
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(60)]
    assert len(ids(pages)) == 60  # the 30 already yielded are not yielded again
    assert pages[0].query_window == WINDOW
    assert pages[-1].query_window == WINDOW.split()[1]
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 1


def test_the_cap_is_also_enforced_locally_without_asking() -> None:
    query = FakeQuery(dataset(30), total_hits=lambda w, n: None)
    pages = collect(query, cap=20, page_size=10)  # page 3 would pass the cap: split instead
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(30)]
    assert (WINDOW, 3) not in query.calls


def test_a_window_too_dense_to_split_is_a_clear_error() -> None:
    tiny = Window(T0, T0 + timedelta(milliseconds=1500))
    data = [conversation(i, seconds=i / 1000) for i in range(50)]
    query = FakeQuery(data, total_hits=lambda w, n: None)
    with pytest.raises(ApiContractError, match="too short to split"):
        collect(query, tiny, cap=20, page_size=10)


# ---------------------------------------------------------------------------------------- a wrong totalHits


def exact_calls(n: int, page_size: int = 10) -> int:
    """Requests paging `n` conversations costs when totalHits is exact: every page plus the empty one."""
    return math.ceil(n / page_size) + 1


def test_a_total_hits_past_the_cap_does_not_split_a_small_window(metrics: ConnectorMetrics) -> None:
    """Every page claims 250,000 hits for 30 conversations: one probe proves it wrong, no split storm."""
    query = FakeQuery(dataset(30), total_hits=lambda w, n: 250_000)
    pages = collect(query, concurrency=8, metrics=metrics)
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(30)]
    assert {w for w, _ in query.calls} == {WINDOW}
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 0
    assert (WINDOW, 8000) in query.calls  # the probe: 80 % of the cap at 10 per page
    assert len(query.calls) <= 2 * exact_calls(30)


def test_a_resumed_run_already_past_the_probe_page_splits_on_its_own_data(metrics: ConnectorMetrics) -> None:
    query = FakeQuery(dataset(130))
    pages = collect(query, cap=100, start_page=9, metrics=metrics)  # page 9 (81..90) exists: > 80 % of cap
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 1
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(130)]


def test_a_pagination_cap_error_on_the_probe_splits(clock: FakeClock, metrics: ConnectorMetrics) -> None:
    query = FakeQuery(dataset(40), total_hits=lambda w, n: 250_000 if w == WINDOW else n)

    async def capped(window: Window, page: int) -> Mapping[str, Any]:
        if page > 5:  # this server's cap is lower than ours
            raise PaginationCapReached("Pagination may not exceed 50 results")
        return await query(window, page)

    pages = collect(capped, page_size=10, concurrency=4, clock=clock, metrics=metrics)
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(40)]
    assert metrics.registry.get_sample_value("genesys_connector_window_splits_total") == 1


@pytest.mark.parametrize("n", [0, 5, 10, 25, 95, 200])
@pytest.mark.parametrize("estimate", [250_000, 79_000, 0, None])
def test_a_wrong_total_hits_costs_at_most_twice_the_requests_of_an_exact_one(
    n: int, estimate: int | None
) -> None:
    query = FakeQuery(dataset(n), total_hits=lambda w, _: estimate)
    pages = collect(query, concurrency=8)
    assert sorted(ids(pages)) == [f"c{i:05d}" for i in range(n)]
    # +1: the probe that a totalHits near the cap costs (it is what proves the estimate wrong).
    assert len(query.calls) <= 2 * exact_calls(n) + 1, sorted(p for _, p in query.calls)


def test_an_exact_total_hits_costs_no_extra_request() -> None:
    for n in (5, 25, 95, 200):
        query = FakeQuery(dataset(n))
        collect(query, concurrency=8)
        assert len(query.calls) == exact_calls(n)


def test_in_flight_pages_never_exceed_pages_found() -> None:
    short = FakeQuery(dataset(30), total_hits=lambda w, n: 50_000)  # "5,000 pages"; 3 exist
    collect(short, concurrency=8)
    assert max(p for _, p in short.calls) <= 2 * 3 + 1  # not pages 2..9 at once
    long = FakeQuery(dataset(200), total_hits=lambda w, n: 50_000)
    collect(long, concurrency=8)
    assert long.peak == 8  # the depth still grows to the concurrency on a long window


def test_may_prefetch_allows_as_many_pages_in_flight_as_pages_found() -> None:
    # within the estimate: after pages 1..3 (run from 1), pages 4..6 may be in flight, not 7
    assert may_prefetch(6, consumed=3, run_start=1, last_expected=50)
    assert not may_prefetch(7, consumed=3, run_start=1, last_expected=50)
    # a resumed run counts from its own first page
    assert not may_prefetch(42, consumed=40, run_start=40, last_expected=50)
    # past the estimate: only as many as were found past it
    assert may_prefetch(6, consumed=5, run_start=1, last_expected=5)  # one request is always allowed
    assert not may_prefetch(7, consumed=5, run_start=1, last_expected=5)
    assert may_prefetch(9, consumed=7, run_start=1, last_expected=5)
    assert not may_prefetch(10, consumed=7, run_start=1, last_expected=5)


@pytest.mark.parametrize(
    ("total_hits", "delivered", "disagree"),
    [
        (None, 50, False),
        (0, 0, False),
        (102, 100, False),  # jitter and dropped duplicates
        (30, 25, False),
        (0, 5, False),  # less than a page apart
        (0, 100, True),  # totalHits 0 with a full page
        (250_000, 300, True),
        (50, 250, True),
        (250, 0, True),  # promised pages, got an empty first page
    ],
)
def test_estimate_disagrees(total_hits: int | None, delivered: int, disagree: bool) -> None:
    assert estimate_disagrees(total_hits, delivered, 100) is disagree


def test_a_wrong_total_hits_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="connector.genesys.pagination"):
        collect(FakeQuery(dataset(30), total_hits=lambda w, n: 250_000))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "totalHits=250000" in warnings[0].getMessage()
    assert "found 30 conversations" in warnings[0].getMessage()


def test_zero_total_hits_with_full_pages_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connector.genesys.pagination"):
        pages = collect(FakeQuery(dataset(30), total_hits=lambda w, n: 0))
    assert len(ids(pages)) == 30
    assert [r.getMessage() for r in caplog.records if "totalHits=0" in r.getMessage()]


def test_an_approximate_total_hits_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connector.genesys.pagination"):
        collect(FakeQuery(dataset(95), total_hits=lambda w, n: n + 3))
    assert caplog.records == []
