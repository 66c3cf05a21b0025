"""Indexing hazards of the details query (genesys-api.md §1.4 tie ordering, §7): ties that come back in a
different order on each request, starts rounded so ties are common, and conversations the query index gets
late while the data lake (jobs) has them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from simulator_support import DAY0, JOBS, TODAY, Api, SimFactory, interval, parse

from connector.clock import FakeClock
from connector.testbed.simulator import RemoteSimulatorControl

# A day after the history: the query (start-day matching) sees only the conversations a test adds there.
DAY2 = DAY0 + timedelta(days=2)
NOON = DAY2 + timedelta(hours=12)
WINDOW = interval(NOON - timedelta(minutes=5), NOON + timedelta(minutes=5))


def add_tie_group(handle: Any) -> tuple[list[str], list[str], list[str]]:
    """5 conversations, then 30 sharing one conversationStart, then 5: the tie group spans positions
    5..34, so it straddles the boundaries of 10-record pages at 10, 20 and 30."""
    control = handle.control
    head = control.add_conversations(5, NOON - timedelta(seconds=60), spacing_s=1, duration_s=30)
    ties = control.add_conversations(30, NOON, spacing_s=0, duration_s=30)
    tail = control.add_conversations(5, NOON + timedelta(seconds=60), spacing_s=1, duration_s=30)
    return head, ties, tail


def page_ids(api: Api, page: int, size: int = 10) -> list[str]:
    response = api.query({"interval": WINDOW, "paging": {"pageSize": size, "pageNumber": page}})
    assert response.status_code == 200, response.text
    return [r["conversationId"] for r in response.json().get("conversations", [])]


def naive_walk(api: Api) -> list[str]:
    """Offset paging through the window, as a client that trusts the order would do it."""
    found: list[str] = []
    page = 1
    while batch := page_ids(api, page):
        found.extend(batch)
        page += 1
    return found


def test_ties_come_back_in_a_different_order_per_request_so_naive_paging_misses_some(
    make_sim: SimFactory,
) -> None:
    handle, api = make_sim(unstable_tie_order=True)
    head, ties, tail = add_tie_group(handle)
    first_pages = [page_ids(api, 1) for _ in range(10)]
    assert all(p[:5] == head for p in first_pages)  # records without ties keep their place
    assert len({frozenset(p[5:]) for p in first_pages}) > 1  # the straddling tie members change
    assert all(set(p[5:]) <= set(ties) for p in first_pages)
    walks = [naive_walk(api) for _ in range(3)]
    for walk in walks:
        assert len(walk) == 40  # every page is full...
        assert walk[:5] == head
        assert walk[-5:] == tail
    assert any(len(set(walk)) < 40 for walk in walks)  # ...yet members of the tie group are skipped/repeated
    assert any(set(ties) - set(walk) for walk in walks)


def test_with_the_option_off_paging_is_stable(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    head, ties, tail = add_tie_group(handle)
    assert len({tuple(page_ids(api, 2)) for _ in range(5)}) == 1
    walk = naive_walk(api)
    assert walk == head + sorted(ties) + tail  # ties broken by conversationId, the same every time
    assert naive_walk(api) == walk


def test_start_granularity_rounds_generated_starts_so_ties_are_common(make_sim: SimFactory) -> None:
    handle, api = make_sim(start_granularity_s=60, volume_per_hour=200, unstable_tie_order=True)
    rows = handle.control.truth(DAY0, DAY2, records=False)
    starts = [parse(r["conversationStart"]) for r in rows]
    assert all(s.second == 0 and s.microsecond == 0 for s in starts)
    assert len(set(starts)) < len(starts) * 0.8  # many conversations share a start
    window = {"interval": interval(DAY0 + timedelta(hours=10), DAY0 + timedelta(hours=11))}
    handle.control.set_indexing(unstable_tie_order=False)
    stable = [r["conversationId"] for r in api.all_pages(window, page_size=10)]
    assert len(stable) == len(set(stable)) > 100
    handle.control.set_indexing(unstable_tie_order=True)
    unstable = [r["conversationId"] for r in api.all_pages(window, page_size=10)]
    assert len(unstable) == len(stable)
    assert set(unstable) < set(stable)  # ties across many page boundaries: some conversations missed
    handle.control.set_indexing(start_granularity_s=300)
    handle.control.set_live_rate(1200)
    deadline = time.monotonic() + 30
    before = len(rows)
    while handle.control.conversation_count() < before + 20:
        assert time.monotonic() < deadline, "live arrivals did not come"
        time.sleep(0.05)
    handle.control.pause_live()
    now = handle.control.now()
    live = handle.control.truth(now - timedelta(hours=1), now + timedelta(hours=1), records=False)
    assert live
    assert all(parse(r["conversationStart"]).minute % 5 == 0 for r in live)
    assert all(parse(r["conversationStart"]).second == 0 for r in live)


def query_ids(api: Api, window: str) -> set[str]:
    return {r["conversationId"] for r in api.all_pages({"interval": window})}


def test_late_indexed_conversations_reach_the_query_after_the_delay_while_jobs_see_them(
    make_sim: SimFactory,
) -> None:
    handle, api = make_sim(
        clock=FakeClock(TODAY + timedelta(hours=10)),  # frozen: the test steps to 1 s before the delay ends
        late_index_probability=0.3,
        late_index_delay_s=7200,
        data_lake_lag_s=0,
        data_lake_step_s=1,
    )
    now = handle.control.now()
    added = handle.control.add_conversations(40, now - timedelta(minutes=30), spacing_s=10, duration_s=60)
    start, end = now - timedelta(minutes=31), now
    window = interval(start, end)
    late = handle.control.late_indexed_ids(start, end)
    assert 0 < len(late) < 40
    assert set(late) <= set(added)
    assert query_ids(api, window) & set(added) == set(added) - set(late)
    multi = api.get("/api/v2/analytics/conversations/details", id=",".join(late[:5])).json()
    assert multi == {"conversations": []}
    assert api.get(f"/api/v2/analytics/conversations/{late[0]}/details").status_code == 404
    job_id = api.post(JOBS, {"interval": window}).json()["jobId"]
    handle.control.advance_clock(2)
    results = api.get(f"{JOBS}/{job_id}/results", pageSize=1000).json()["conversations"]
    assert set(added) <= {r["conversationId"] for r in results}  # the data lake has them all
    indexed_at = handle.control.late_indexed(start, end)
    first = min(indexed_at.values())
    handle.control.advance_clock((first - handle.control.now()).total_seconds() - 1)
    assert not set(late) & query_ids(api, window)
    handle.control.advance_clock(7200)
    assert set(added) <= query_ids(api, window)
    assert api.get(f"/api/v2/analytics/conversations/{late[0]}/details").status_code == 200
    assert handle.control.late_indexed_ids(start, end) == late  # ground truth keeps saying "late"


def test_remote_control_sets_the_indexing_hazards(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    head, ties, tail = add_tie_group(handle)
    remote = RemoteSimulatorControl(handle.base_url)
    try:
        remote.set_indexing(unstable_tie_order=True)
        assert len({frozenset(page_ids(api, 2)) for _ in range(10)}) > 1
        remote.set_indexing(unstable_tie_order=False, late_index_probability=1.0, late_index_delay_s=10**6)
        start, end = NOON - timedelta(minutes=5), NOON + timedelta(minutes=5)
        assert remote.late_indexed_ids(start, end) == head + sorted(ties) + tail
        assert set(remote.late_indexed(start, end).values()) != set()
        assert page_ids(api, 1) == []
        remote.set_indexing(late_index_probability=0.0)
        assert page_ids(api, 1) == head + sorted(ties)[:5]
    finally:
        remote.close()
