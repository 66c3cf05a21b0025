"""Conformance of POST /api/v2/analytics/conversations/details/query (genesys-api.md §1, §7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from simulator_support import DAY0, Api, SimFactory, base_config, interval, iso, parse

DAY1 = DAY0 + timedelta(days=1)
FULL = interval(DAY0, DAY0 + timedelta(days=2))
ENDED = {
    "type": "and",
    "predicates": [{"type": "dimension", "dimension": "conversationEnd", "operator": "exists"}],
}


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["conversationId"] for r in records]


def assert_error_body(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"message", "code", "status", "contextId", "details", "errors"} <= body.keys()
    assert body["status"] == status
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]
    return body


def test_default_page_size_is_25_when_paging_is_absent(sim: tuple[Any, Api]) -> None:
    _, api = sim
    body = api.query({"interval": FULL}).json()
    assert len(body["conversations"]) == 25
    assert body["totalHits"] > 25


def test_paging_past_the_end_omits_conversations_but_keeps_total_hits(sim: tuple[Any, Api]) -> None:
    _, api = sim
    total = api.query({"interval": FULL}).json()["totalHits"]
    last_page = -(-total // 100)
    last = api.query({"interval": FULL, "paging": {"pageSize": 100, "pageNumber": last_page}}).json()
    assert len(last["conversations"]) == total - 100 * (last_page - 1)
    past = api.query({"interval": FULL, "paging": {"pageSize": 100, "pageNumber": last_page + 1}})
    assert past.status_code == 200
    assert past.json() == {"totalHits": total}


def test_page_size_above_the_max_is_400(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert api.query({"interval": FULL, "paging": {"pageSize": 100, "pageNumber": 1}}).status_code == 200
    body = assert_error_body(api.query({"interval": FULL, "paging": {"pageSize": 101, "pageNumber": 1}}), 400)
    assert "100" in body["message"]


def test_paging_needs_both_fields_and_positive_numbers(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert_error_body(api.query({"interval": FULL, "paging": {"pageSize": 10}}), 400)
    assert_error_body(api.query({"interval": FULL, "paging": {"pageSize": 10, "pageNumber": 0}}), 400)


def test_pagination_cap_is_400_with_the_observed_message(sim: tuple[Any, Api]) -> None:
    _, api = sim
    ok = api.query({"interval": FULL, "paging": {"pageSize": 100, "pageNumber": 1000}})
    assert ok.status_code == 200
    body = assert_error_body(
        api.query({"interval": FULL, "paging": {"pageSize": 100, "pageNumber": 1001}}), 400
    )
    assert body["message"] == "Pagination may not exceed 100000 results"


def test_interval_over_31_days_is_400_with_the_observed_message(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert (
        api.query({"interval": interval(DAY0 - timedelta(days=29), DAY0 + timedelta(days=2))}).status_code
        == 200
    )
    response = api.query({"interval": interval(DAY0 - timedelta(days=30), DAY0 + timedelta(days=2))})
    body = assert_error_body(response, 400)
    assert (
        body["message"]
        == "You must specify a search interval as part of your query that does not exceed 31 days"
    )


def test_seven_day_cap_without_filters_is_a_toggle(make_sim: SimFactory) -> None:
    _, api = make_sim(seven_day_cap_without_filters=True)
    eight_days = interval(DAY0 - timedelta(days=6), DAY0 + timedelta(days=2))
    assert_error_body(api.query({"interval": eight_days}), 400)
    assert api.query({"interval": eight_days, "conversationFilters": [ENDED]}).status_code == 200


def test_bad_intervals_are_400_error_bodies(sim: tuple[Any, Api]) -> None:
    _, api = sim
    for body in (
        {},
        {"interval": "yesterday"},
        {"interval": f"{iso(DAY1)}/{iso(DAY0)}"},
        {"interval": "2026-05-01T00:00:00/2026-05-01T01:00:00"},
        {"interval": 12},
    ):
        err = assert_error_body(api.query(body), 400)
        assert "interval" in err["message"].lower()
    malformed = api.http.post(
        "/api/v2/analytics/conversations/details/query",
        content=b"{not json",
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert_error_body(malformed, 400)


def test_bad_order_and_order_by_are_400(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert_error_body(api.query({"interval": FULL, "order": "sideways"}), 400)
    assert_error_body(api.query({"interval": FULL, "orderBy": "participantName"}), 400)
    assert api.query({"interval": FULL, "order": "unordered"}).status_code == 200


def test_order_and_order_by(sim: tuple[Any, Api]) -> None:
    _, api = sim
    asc = api.all_pages({"interval": FULL})
    starts = [r["conversationStart"] for r in asc]
    assert starts == sorted(starts)
    desc = api.all_pages({"interval": FULL, "order": "desc"})
    assert [r["conversationStart"] for r in desc] == sorted(starts, reverse=True)
    by_end = api.all_pages({"interval": FULL, "orderBy": "conversationEnd", "conversationFilters": [ENDED]})
    ends = [r["conversationEnd"] for r in by_end]
    assert ends == sorted(ends)
    assert sorted(ids(by_end)) == sorted(r["conversationId"] for r in asc if "conversationEnd" in r)


def test_a_conversation_crossing_midnight_belongs_to_its_start_day(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    [cid] = handle.control.add_conversations(1, DAY1 - timedelta(minutes=2), duration_s=12 * 60)
    first_day = api.all_pages({"interval": interval(DAY1 - timedelta(hours=1), DAY1 + timedelta(hours=1))})
    assert cid in ids(first_day)
    # its lifetime overlaps this next-day interval, but it started on a day the interval does not touch
    next_day = api.all_pages({"interval": interval(DAY1, DAY1 + timedelta(hours=1))})
    assert cid not in ids(next_day)
    inside = api.all_pages({"interval": interval(DAY1 + timedelta(minutes=5), DAY1 + timedelta(minutes=6))})
    assert cid not in ids(inside)


def test_a_conversation_spanning_a_window_boundary_is_in_both_windows(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    ten = DAY0 + timedelta(hours=10)
    [cid] = handle.control.add_conversations(1, ten + timedelta(minutes=4), duration_s=180)
    assert cid in ids(api.all_pages({"interval": interval(ten, ten + timedelta(minutes=5))}))
    assert cid in ids(
        api.all_pages({"interval": interval(ten + timedelta(minutes=5), ten + timedelta(minutes=10))})
    )
    assert cid not in ids(
        api.all_pages({"interval": interval(ten + timedelta(minutes=8), ten + timedelta(minutes=10))})
    )


def test_matching_is_lifetime_overlap(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    noon = DAY0 + timedelta(hours=12)
    [early] = handle.control.add_conversations(1, noon - timedelta(hours=1), duration_s=600)
    [long_one] = handle.control.add_conversations(1, noon - timedelta(hours=3), duration_s=5 * 3600)
    found = ids(api.all_pages({"interval": interval(noon, noon + timedelta(minutes=5))}))
    assert early not in found  # ended before the interval, same day
    assert long_one in found  # started earlier the same day, still going during the interval
    for record in api.all_pages({"interval": interval(noon, noon + timedelta(minutes=5))}):
        assert parse(record["conversationStart"]) < noon + timedelta(minutes=5)
        assert "conversationEnd" not in record or parse(record["conversationEnd"]) > noon


def test_open_conversations_match_until_they_end(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    now = handle.control.now()
    [cid] = handle.control.add_conversations(1, now - timedelta(minutes=30), duration_s=3600)
    recent = interval(now - timedelta(minutes=5), now)
    [record] = [r for r in api.all_pages({"interval": recent}) if r["conversationId"] == cid]
    assert "conversationEnd" not in record
    assert any(
        "segmentEnd" not in s for p in record["participants"] for x in p["sessions"] for s in x["segments"]
    )


def test_conversation_end_exists_and_not_exists(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    now = handle.control.now()
    handle.control.add_conversations(5, now - timedelta(minutes=20), duration_s=3600)
    handle.control.add_conversations(5, now - timedelta(minutes=50), duration_s=60)
    recent = {"interval": interval(now - timedelta(hours=1), now)}
    every = ids(api.all_pages(recent))
    ended = api.all_pages({**recent, "conversationFilters": [ENDED]})
    not_ended_filter = {
        "type": "and",
        "predicates": [{"dimension": "conversationEnd", "operator": "notExists"}],
    }
    still_open = api.all_pages({**recent, "conversationFilters": [not_ended_filter]})
    assert all("conversationEnd" in r for r in ended)
    assert all("conversationEnd" not in r for r in still_open)
    assert len(still_open) >= 5
    assert sorted(ids(ended) + ids(still_open)) == sorted(every)


def test_media_type_division_and_queue_filters(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    everything = api.all_pages({"interval": FULL})
    catalog = handle.control.catalog()

    def expected(check: Any) -> list[str]:
        return sorted(r["conversationId"] for r in everything if check(r))

    def sessions(r: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for p in r["participants"] for s in p["sessions"]]

    media = {"type": "or", "predicates": [{"dimension": "mediaType", "value": "email"}]}
    got = api.all_pages({"interval": FULL, "segmentFilters": [media]})
    assert got
    assert sorted(ids(got)) == expected(lambda r: any(s["mediaType"] == "email" for s in sessions(r)))

    division = catalog["divisions"][1]
    div_filter = {"type": "and", "predicates": [{"dimension": "divisionId", "value": division}]}
    got = api.all_pages({"interval": FULL, "conversationFilters": [div_filter]})
    assert got
    assert sorted(ids(got)) == expected(lambda r: division in r["divisionIds"])

    queue = catalog["queues"][3]["id"]
    queue_filter = {"type": "and", "predicates": [{"dimension": "queueId", "value": queue}]}
    got = api.all_pages({"interval": FULL, "segmentFilters": [queue_filter]})
    assert got
    assert sorted(ids(got)) == expected(
        lambda r: any(seg.get("queueId") == queue for s in sessions(r) for seg in s["segments"])
    )


def test_or_filters_and_clauses_combine(sim: tuple[Any, Api]) -> None:
    _, api = sim

    def media(value: str) -> dict[str, Any]:
        return {"dimension": "mediaType", "value": value}

    chats = ids(
        api.all_pages({"interval": FULL, "segmentFilters": [{"type": "or", "predicates": [media("chat")]}]})
    )
    mails = ids(
        api.all_pages({"interval": FULL, "segmentFilters": [{"type": "or", "predicates": [media("email")]}]})
    )
    both = api.all_pages(
        {"interval": FULL, "segmentFilters": [{"type": "or", "predicates": [media("chat"), media("email")]}]}
    )
    assert sorted(ids(both)) == sorted(chats + mails)
    clause = {
        "type": "or",
        "clauses": [
            {"type": "and", "predicates": [media("chat"), {"dimension": "purpose", "value": "agent"}]}
        ],
    }
    assert sorted(ids(api.all_pages({"interval": FULL, "segmentFilters": [clause]}))) == sorted(chats)
    nothing = {"type": "and", "predicates": [media("chat"), media("email")]}
    assert api.all_pages({"interval": FULL, "segmentFilters": [nothing]}) == []


def test_unknown_filter_dimensions_and_operators_are_400(sim: tuple[Any, Api]) -> None:
    _, api = sim
    bad_dim = {"type": "and", "predicates": [{"dimension": "favouriteColour", "value": "blue"}]}
    err = assert_error_body(api.query({"interval": FULL, "segmentFilters": [bad_dim]}), 400)
    assert "favouriteColour" in err["message"]
    bad_op = {"type": "and", "predicates": [{"dimension": "mediaType", "operator": "like", "value": "voice"}]}
    assert_error_body(api.query({"interval": FULL, "segmentFilters": [bad_op]}), 400)
    bad_type = {"type": "xor", "predicates": [{"dimension": "mediaType", "value": "voice"}]}
    assert_error_body(api.query({"interval": FULL, "segmentFilters": [bad_type]}), 400)


def test_live_insert_shifts_offset_pages_and_repeats_a_record(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    window = {"interval": interval(DAY0 + timedelta(hours=10), DAY0 + timedelta(hours=12))}
    page1 = ids(api.query({**window, "paging": {"pageSize": 10, "pageNumber": 1}}).json()["conversations"])
    # a conversation that started earlier than every record on page 1 and is active in the window
    handle.control.add_conversations(1, DAY0, duration_s=11 * 3600)
    page2 = ids(api.query({**window, "paging": {"pageSize": 10, "pageNumber": 2}}).json()["conversations"])
    assert page2[0] == page1[-1]


def test_total_hits_is_approximate(make_sim: SimFactory) -> None:
    handle, api = make_sim(total_hits_jitter=0.1)
    true_count = len(handle.control.conversation_ids(DAY0, DAY0 + timedelta(days=2)))
    seen = {api.query({"interval": FULL}).json()["totalHits"] for _ in range(20)}
    assert len(seen) > 1
    assert all(abs(hits - true_count) <= 0.1 * true_count + 1 for hits in seen)


@pytest.mark.parametrize("fixed", [250_000, 0])
def test_fixed_total_hits_is_reported_on_every_page_and_the_data_is_unchanged(
    make_sim: SimFactory, fixed: int
) -> None:
    handle, api = make_sim(fixed_total_hits=fixed)
    truth = handle.control.conversation_ids(DAY0, DAY0 + timedelta(days=2))
    assert len(truth) > 100  # several pages of 50
    hits = set()
    for page in range(1, len(truth) // 50 + 3):  # up to and past the end
        body = api.query({"interval": FULL, "paging": {"pageSize": 50, "pageNumber": page}}).json()
        hits.add(body["totalHits"])
    assert hits == {fixed}
    assert sorted(ids(api.all_pages({"interval": FULL}))) == sorted(truth)


def test_fixed_total_hits_is_set_and_cleared_on_the_admin_route(make_sim: SimFactory) -> None:
    handle, api = make_sim()
    true_count = len(handle.control.conversation_ids(DAY0, DAY0 + timedelta(days=2)))
    assert api.post("/_sim/paging", {"fixed_total_hits": 0}).status_code == 200
    assert api.query({"interval": FULL}).json()["totalHits"] == 0
    assert api.post("/_sim/paging", {"total_hits_jitter": 0.0}).status_code == 200  # others: unchanged
    assert api.query({"interval": FULL}).json()["totalHits"] == 0
    assert api.post("/_sim/paging", {"fixed_total_hits": "off"}).status_code == 200
    assert api.query({"interval": FULL}).json()["totalHits"] == true_count
    bad = api.post("/_sim/paging", {"fixed_total_hits": -1})
    assert bad.status_code == 400
    assert "fixed_total_hits" in bad.json()["message"]


def test_fixed_total_hits_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="fixed_total_hits"):
        base_config(fixed_total_hits=-1)


def test_server_side_dedupe_gives_short_pages_but_loses_nothing(make_sim: SimFactory) -> None:
    handle, api = make_sim(duplicate_probability=0.2)
    truth = handle.control.conversation_ids(DAY0, DAY0 + timedelta(days=2))
    sizes, seen = [], []
    page = 1
    while (
        batch := api.query({"interval": FULL, "paging": {"pageSize": 50, "pageNumber": page}})
        .json()
        .get("conversations")
    ):
        sizes.append(len(batch))
        seen.extend(ids(batch))
        assert len(set(ids(batch))) == len(batch)
        page += 1
    assert min(sizes[:-1]) < 50
    assert sorted(set(seen)) == sorted(truth)
    assert len(seen) > len(set(seen)) or min(sizes[:-1]) < 50


def test_query_records_have_no_participant_attributes(sim: tuple[Any, Api]) -> None:
    _, api = sim
    for record in api.query({"interval": FULL}).json()["conversations"]:
        assert all("attributes" not in p for p in record["participants"])


def test_single_and_multi_get(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    known = handle.control.conversation_ids(DAY0, DAY0 + timedelta(hours=2))[:3]
    one = api.get(f"/api/v2/analytics/conversations/{known[0]}/details")
    assert one.status_code == 200
    assert one.json() == handle.control.record(known[0])
    missing = api.get("/api/v2/analytics/conversations/00000000-0000-4000-8000-000000000000/details")
    assert_error_body(missing, 404)
    many = api.get("/api/v2/analytics/conversations/details", id=",".join([*known, "nope"]))
    assert many.status_code == 200
    assert ids(many.json()["conversations"]) == known
    assert_error_body(api.get("/api/v2/analytics/conversations/details"), 400)
