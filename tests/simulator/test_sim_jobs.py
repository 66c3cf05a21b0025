"""Async details jobs: state machine, cursor paging, attributes, data-lake availability (api notes §2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from simulator_support import DAY0, FULL_INTERVAL, JOBS, Api, SimFactory, interval, parse

STATUS_KEYS = {"state", "errorMessage", "expirationDate", "submissionDate", "completionDate"}


def submit(api: Api, body: dict[str, Any]) -> str:
    response = api.post(JOBS, body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def status(api: Api, job_id: str) -> dict[str, Any]:
    response = api.get(f"{JOBS}/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) <= STATUS_KEYS
    return body


def walk(api: Api, job_id: str, page_size: int) -> tuple[list[dict[str, Any]], int]:
    """All result records following the cursor; returns (records, pages)."""
    records: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"pageSize": page_size}
        if cursor:
            params["cursor"] = cursor
        response = api.get(f"{JOBS}/{job_id}/results", **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "dataAvailabilityDate" in body
        records.extend(body.get("conversations", []))
        pages += 1
        cursor = body.get("cursor")
        if cursor is None:
            return records, pages


def test_job_goes_queued_pending_fulfilled(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    job_id = submit(api, {"interval": FULL_INTERVAL})
    first = status(api, job_id)
    assert first["state"] == "QUEUED"
    assert "completionDate" not in first
    handle.control.advance_clock(1)
    assert status(api, job_id)["state"] == "PENDING"
    early = api.get(f"{JOBS}/{job_id}/results")
    assert early.status_code == 400
    handle.control.advance_clock(1)
    done = status(api, job_id)
    assert done["state"] == "FULFILLED"
    assert parse(done["completionDate"]) < parse(done["expirationDate"])
    assert parse(done["submissionDate"]) <= parse(done["completionDate"])


def test_cursor_walk_returns_every_overlapping_conversation_once_with_attributes(
    sim: tuple[Any, Api],
) -> None:
    handle, api = sim
    start, end = DAY0 + timedelta(hours=6), DAY0 + timedelta(hours=30)
    job_id = submit(api, {"interval": interval(start, end)})
    handle.control.advance_clock(2)
    records, pages = walk(api, job_id, 37)
    assert pages > 2
    got = [r["conversationId"] for r in records]
    assert len(got) == len(set(got))
    # lifetime overlap, no start-day restriction (jobs default)
    expected = {
        row["conversationId"]
        for row in handle.control.truth(DAY0 - timedelta(days=6), end, records=False)
        if parse(row["conversationStart"]) < end
        and ("conversationEnd" not in row or parse(row["conversationEnd"]) > start)
    }
    assert set(got) == expected
    for record in records:
        assert all(isinstance(p["attributes"], dict) for p in record["participants"])
    assert any(p["attributes"] for r in records for p in r["participants"])


def test_start_of_day_interval_matching_behaves_like_the_query(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    window = interval(DAY0 + timedelta(days=1, hours=1), DAY0 + timedelta(days=1, hours=2))
    job_id = submit(api, {"interval": window, "startOfDayIntervalMatching": True})
    handle.control.advance_clock(2)
    records, _ = walk(api, job_id, 1000)
    from_query = api.all_pages({"interval": window})
    assert sorted(r["conversationId"] for r in records) == sorted(r["conversationId"] for r in from_query)


def test_results_are_a_snapshot_taken_at_fulfilment(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    window = interval(DAY0 + timedelta(hours=9), DAY0 + timedelta(hours=10))
    job_id = submit(api, {"interval": window})
    handle.control.advance_clock(2)
    before, _ = walk(api, job_id, 1000)
    handle.control.add_conversations(3, DAY0 + timedelta(hours=9, minutes=30), duration_s=60)
    for record in before[:2]:
        handle.control.mutate(record["conversationId"], "reprocess")
    after, _ = walk(api, job_id, 1000)
    assert after == before


def test_results_page_size_limits_and_bad_cursor(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    job_id = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(2)
    assert api.get(f"{JOBS}/{job_id}/results", pageSize=1000).status_code == 200
    assert api.get(f"{JOBS}/{job_id}/results", pageSize=1001).status_code == 400
    assert api.get(f"{JOBS}/{job_id}/results", cursor="garbage!").status_code == 400
    default = api.get(f"{JOBS}/{job_id}/results").json()
    assert len(default["conversations"]) == 100
    assert "cursor" in default


def test_limit_caps_the_results(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    job_id = submit(api, {"interval": FULL_INTERVAL, "limit": 7})
    handle.control.advance_clock(2)
    records, _ = walk(api, job_id, 5)
    assert len(records) == 7


def test_delete_cancels_a_job(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    job_id = submit(api, {"interval": FULL_INTERVAL})
    deleted = api.delete(f"{JOBS}/{job_id}")
    assert deleted.status_code == 204
    handle.control.advance_clock(5)
    assert status(api, job_id)["state"] == "CANCELLED"
    assert api.get(f"{JOBS}/{job_id}/results").status_code == 400
    assert api.get(f"{JOBS}/00000000-0000-4000-8000-000000000000").status_code == 404


def test_jobs_expire_after_their_expiration_date(make_sim: SimFactory) -> None:
    handle, api = make_sim(job_ttl_s=600)
    job_id = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(2)
    assert status(api, job_id)["state"] == "FULFILLED"
    handle.control.advance_clock(600)
    expired = status(api, job_id)
    assert expired["state"] == "EXPIRED"
    assert "expirationDate" in expired
    assert api.get(f"{JOBS}/{job_id}/results").status_code == 400


def test_a_job_can_fail_with_an_error_message(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.fail_next_jobs(1, "Query exceeded the maximum result size")
    failed = submit(api, {"interval": FULL_INTERVAL})
    fine = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(2)
    body = status(api, failed)
    assert body == {**body, "state": "FAILED", "errorMessage": "Query exceeded the maximum result size"}
    assert status(api, fine)["state"] == "FULFILLED"


def test_bad_job_bodies_are_400(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert api.post(JOBS, {}).status_code == 400
    assert api.post(JOBS, {"interval": FULL_INTERVAL, "startOfDayIntervalMatching": "yes"}).status_code == 400
    assert api.post(JOBS, {"interval": FULL_INTERVAL, "limit": 0}).status_code == 400


def test_availability_date_lags_and_excludes_recent_data(make_sim: SimFactory) -> None:
    handle, api = make_sim(data_lake_lag_s=3600)
    now = handle.control.now()
    # started 100, 70, 40 and 10 minutes ago; the lake only has data up to one hour ago
    added = handle.control.add_conversations(4, now - timedelta(minutes=100), spacing_s=1800, duration_s=60)
    availability = parse(api.get(f"{JOBS}/availability").json()["dataAvailabilityDate"])
    assert timedelta(minutes=59) < now - availability <= timedelta(hours=1, seconds=1)
    job_id = submit(api, {"interval": interval(now - timedelta(hours=2), now)})
    handle.control.advance_clock(2)
    records, _ = walk(api, job_id, 100)
    got = {r["conversationId"] for r in records}
    assert got & set(added) == set(added[:2])
    page = api.get(f"{JOBS}/{job_id}/results").json()
    assert all(parse(r["conversationStart"]) < parse(page["dataAvailabilityDate"]) for r in records)
