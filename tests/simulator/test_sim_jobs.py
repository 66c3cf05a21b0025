"""Async details jobs: state machine, cursor paging, attributes, data-lake availability (api notes §2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from simulator_support import DAY0, FULL_INTERVAL, JOBS, TODAY, Api, SimFactory, interval, iso, parse

from connector.clock import FakeClock
from connector.testbed.simulator import RemoteSimulatorControl

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


def assert_error_body(response: Any, status_code: int, code: str) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body: dict[str, Any] = response.json()
    assert {"message", "code", "status", "contextId", "details", "errors"} <= body.keys()
    assert (body["status"], body["code"]) == (status_code, code)
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]
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
    cursor = api.get(f"{JOBS}/{job_id}/results", pageSize=10).json()["cursor"]
    handle.control.advance_clock(600)
    expired = status(api, job_id)
    assert expired["state"] == "EXPIRED"
    assert "expirationDate" in expired
    assert_error_body(api.get(f"{JOBS}/{job_id}/results"), 404, "not.found")
    assert_error_body(api.get(f"{JOBS}/{job_id}/results", cursor=cursor, pageSize=10), 404, "not.found")


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
    handle, api = make_sim(data_lake_lag_s=3600, data_lake_step_s=1)
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


# --- data lake availability in steps (item: availability advances in steps with a lag) ------------
STEP_NOW = TODAY.replace(hour=10, minute=7, second=30)  # a frozen clock, after the default history


def test_availability_advances_in_steps_and_bounds_what_jobs_see(make_sim: SimFactory) -> None:
    handle, api = make_sim(clock=FakeClock(STEP_NOW), data_lake_lag_s=600, data_lake_step_s=900)
    # now - lag = 09:57:30 -> floored to the 15-minute step: 09:45:00
    step = TODAY.replace(hour=9, minute=45)
    assert api.get(f"{JOBS}/availability").json() == {"dataAvailabilityDate": iso(step)}
    before, at = handle.control.add_conversations(2, step - timedelta(seconds=1), spacing_s=1, duration_s=30)
    window = {"interval": interval(step - timedelta(hours=1), step + timedelta(hours=1))}
    early = submit(api, window)
    handle.control.advance_clock(2)  # completes at now - lag = 09:57:32: still the 09:45 step
    page = api.get(f"{JOBS}/{early}/results", pageSize=1000).json()
    assert parse(page["dataAvailabilityDate"]) == step
    assert {before, at} & {r["conversationId"] for r in page["conversations"]} == {before}
    handle.control.advance_clock(147.999)  # now - lag = 09:59:59.999: the same step
    assert parse(api.get(f"{JOBS}/availability").json()["dataAvailabilityDate"]) == step
    handle.control.advance_clock(0.001)  # now - lag = 10:00:00.000: the next step
    next_step = step + timedelta(minutes=15)
    assert parse(api.get(f"{JOBS}/availability").json()["dataAvailabilityDate"]) == next_step
    later = handle.control.add_conversations(1, next_step, duration_s=30)[0]
    job_id = submit(api, window)
    handle.control.advance_clock(2)
    page = api.get(f"{JOBS}/{job_id}/results", pageSize=1000).json()
    assert parse(page["dataAvailabilityDate"]) == next_step
    got = {r["conversationId"] for r in page["conversations"]}
    assert {before, at} <= got
    assert later not in got  # started at dataAvailabilityDate: not in the lake yet


def test_a_pinned_availability_date_is_what_the_endpoint_and_jobs_use(make_sim: SimFactory) -> None:
    handle, api = make_sim(clock=FakeClock(STEP_NOW), data_lake_lag_s=0, data_lake_step_s=1)
    pin = TODAY.replace(hour=8)
    inside, outside = handle.control.add_conversations(
        2, pin - timedelta(seconds=1), spacing_s=2, duration_s=30
    )
    assert handle.control.set_data_lake(pin=pin) == pin
    assert api.get(f"{JOBS}/availability").json() == {"dataAvailabilityDate": iso(pin)}
    handle.control.advance_clock(3600)  # a pinned date does not move with the clock
    job_id = submit(api, {"interval": interval(pin - timedelta(hours=1), pin + timedelta(hours=1))})
    handle.control.advance_clock(2)
    page = api.get(f"{JOBS}/{job_id}/results", pageSize=1000).json()
    assert parse(page["dataAvailabilityDate"]) == pin
    got = {r["conversationId"] for r in page["conversations"]}
    assert inside in got
    assert outside not in got
    unpinned = handle.control.set_data_lake(unpin=True, step_s=60)
    assert unpinned == handle.control.now().replace(second=0, microsecond=0)
    assert handle.control.data_lake() == {
        "dataAvailabilityDate": iso(unpinned),
        "lag_s": 0,
        "step_s": 60,
        "pinned": False,
    }


# --- concurrent jobs cap --------------------------------------------------------------------------
def test_one_job_over_the_concurrency_cap_is_429_and_creates_nothing(make_sim: SimFactory) -> None:
    handle, api = make_sim(max_concurrent_jobs=2, job_queued_s=60, job_pending_s=60)
    first, second = submit(api, {"interval": FULL_INTERVAL}), submit(api, {"interval": FULL_INTERVAL})
    handle.control.fail_next_jobs(1, "Query exceeded the maximum result size")
    body = assert_error_body(api.post(JOBS, {"interval": FULL_INTERVAL}), 429, "too.many.requests.jobs")
    assert body["message"] == "The maximum number of concurrent jobs has been reached"
    assert handle.control.counters()["jobs_create"] == {"202": 2, "429": 1}
    handle.control.advance_clock(60)  # both PENDING: still running
    assert api.post(JOBS, {"interval": FULL_INTERVAL}).status_code == 429
    handle.control.advance_clock(60)  # both FULFILLED: slots free
    assert {status(api, first)["state"], status(api, second)["state"]} == {"FULFILLED"}
    third = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(120)
    assert status(api, third)["state"] == "FAILED"  # the rejected request did not use up the scripted failure


def test_the_default_cap_is_5_and_0_means_unlimited(make_sim: SimFactory) -> None:
    handle, api = make_sim(job_queued_s=60)
    for _ in range(5):
        submit(api, {"interval": FULL_INTERVAL})
    assert api.post(JOBS, {"interval": FULL_INTERVAL}).status_code == 429
    handle.control.set_job_settings(max_concurrent=0)
    for _ in range(10):
        submit(api, {"interval": FULL_INTERVAL})


# --- expiry ---------------------------------------------------------------------------------------
def test_expire_jobs_now_by_id_or_all(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    one, two, three = (submit(api, {"interval": FULL_INTERVAL}) for _ in range(3))
    handle.control.advance_clock(2)
    cursor = api.get(f"{JOBS}/{one}/results", pageSize=10).json()["cursor"]
    running = submit(api, {"interval": FULL_INTERVAL})
    assert handle.control.expire_jobs(one) == 1
    assert status(api, one)["state"] == "EXPIRED"
    assert_error_body(api.get(f"{JOBS}/{one}/results", cursor=cursor), 404, "not.found")
    assert status(api, two)["state"] == "FULFILLED"
    assert handle.control.expire_jobs() == 3  # two, three and the running one; `one` already expired
    for job_id in (two, three, running):
        body = status(api, job_id)
        assert body["state"] == "EXPIRED"
        assert parse(body["completionDate"]) <= parse(body["expirationDate"])
        assert_error_body(api.get(f"{JOBS}/{job_id}/results"), 404, "not.found")
    with pytest.raises(KeyError):
        handle.control.expire_jobs("00000000-0000-4000-8000-000000000000")


# --- failures -------------------------------------------------------------------------------------
def test_a_failed_job_is_queued_then_pending_then_failed(make_sim: SimFactory) -> None:
    handle, api = make_sim(job_queued_s=60, job_pending_s=60)
    handle.control.fail_next_jobs(1, "Query exceeded the maximum result size")
    job_id = submit(api, {"interval": FULL_INTERVAL})
    assert status(api, job_id)["state"] == "QUEUED"
    handle.control.advance_clock(60)
    assert status(api, job_id)["state"] == "PENDING"
    handle.control.advance_clock(60)
    body = status(api, job_id)
    assert (body["state"], body["errorMessage"]) == ("FAILED", "Query exceeded the maximum result size")
    assert_error_body(api.get(f"{JOBS}/{job_id}/results"), 400, "bad.request")


def test_a_running_job_can_be_failed_mid_way(make_sim: SimFactory) -> None:
    handle, api = make_sim(job_queued_s=60, job_pending_s=60)
    job_id = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(60)
    assert status(api, job_id)["state"] == "PENDING"
    handle.control.fail_job(job_id, "The query timed out")
    body = status(api, job_id)
    assert (body["state"], body["errorMessage"]) == ("FAILED", "The query timed out")
    assert parse(body["submissionDate"]) < parse(body["completionDate"]) <= handle.control.now()
    handle.control.advance_clock(120)
    assert status(api, job_id)["state"] == "FAILED"
    done = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(120)
    with pytest.raises(ValueError, match="FULFILLED"):
        handle.control.fail_job(done)
    with pytest.raises(KeyError):
        handle.control.fail_job("00000000-0000-4000-8000-000000000000")


def test_job_failure_probability_fails_a_share_of_jobs(make_sim: SimFactory) -> None:
    handle, api = make_sim(job_failure_probability=0.5, max_concurrent_jobs=0)
    jobs = [submit(api, {"interval": FULL_INTERVAL}) for _ in range(30)]
    handle.control.advance_clock(2)
    states = [status(api, job_id)["state"] for job_id in jobs]
    assert 5 <= states.count("FAILED") <= 25
    assert states.count("FAILED") + states.count("FULFILLED") == 30
    handle.control.set_job_settings(failure_probability=0.0)
    fine = [submit(api, {"interval": FULL_INTERVAL}) for _ in range(5)]
    handle.control.advance_clock(2)
    assert {status(api, job_id)["state"] for job_id in fine} == {"FULFILLED"}


# --- participant attributes -----------------------------------------------------------------------
ATTRIBUTE_KEYS = {
    "ivr.Language",
    "ivr.Intent",
    "customer.Tier",
    "customer.AccountId",
    "crm.CaseNumber",
    "agent.Disposition",
    "survey.Offered",
}


def test_every_participant_of_job_results_carries_the_same_stable_attributes(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    first = submit(api, {"interval": FULL_INTERVAL})
    second = submit(api, {"interval": FULL_INTERVAL})
    handle.control.advance_clock(2)
    records, _ = walk(api, first, 1000)
    again = {r["conversationId"]: r for r in walk(api, second, 1000)[0]}
    assert len(records) > 500
    purposes = set()
    for record in records:
        maps = [p["attributes"] for p in record["participants"]]
        purposes.update(p["purpose"] for p in record["participants"])
        assert maps[0]
        assert set(maps[0]) <= ATTRIBUTE_KEYS
        assert all(m == maps[0] for m in maps)
        assert all(isinstance(v, str) and 0 < len(v) <= 1024 for v in maps[0].values())
        assert [p["attributes"] for p in again[record["conversationId"]]["participants"]] == maps
    assert "external" in purposes  # outbound calls' external participants carry them too


def test_attributes_change_with_mutations_and_never_appear_outside_jobs(make_sim: SimFactory) -> None:
    handle, api = make_sim(data_lake_lag_s=0, data_lake_step_s=1, acw_delay_s=86_400, survey_probability=0)
    now = handle.control.now()
    cid = handle.control.add_conversations(
        1, now - timedelta(minutes=10), duration_s=60, scenario="voice_inbound"
    )[0]
    window = interval(now - timedelta(minutes=20), now)

    def attributes() -> dict[str, str]:
        job_id = submit(api, {"interval": window})
        handle.control.advance_clock(2)
        (record,) = [r for r in walk(api, job_id, 100)[0] if r["conversationId"] == cid]
        found: dict[str, str] = record["participants"][0]["attributes"]
        return found

    ended = attributes()
    assert "agent.Disposition" not in ended
    handle.control.mutate(cid, "settle")
    settled = attributes()
    assert settled.pop("agent.Disposition") in ("resolved", "follow-up", "escalated", "no-action")
    assert settled == ended
    handle.control.mutate(cid, "survey")
    assert attributes()["survey.Offered"] == "true"
    from_query = api.query({"interval": window}).json()["conversations"]
    multi = api.get("/api/v2/analytics/conversations/details", id=cid).json()["conversations"]
    single = api.get(f"/api/v2/analytics/conversations/{cid}/details").json()
    for record in [*from_query, *multi, single]:
        assert all("attributes" not in p for p in record["participants"])


# --- results frozen at completion -----------------------------------------------------------------
def test_results_read_by_cursor_after_fulfilment_ignore_later_changes(make_sim: SimFactory) -> None:
    handle, api = make_sim(data_lake_lag_s=0, data_lake_step_s=1)
    start, end = DAY0 + timedelta(hours=9), DAY0 + timedelta(hours=12)
    body = {"interval": interval(start, end)}
    reference = submit(api, body)
    job_id = submit(api, body)
    handle.control.advance_clock(2)
    expected, _ = walk(api, reference, 1000)
    first = api.get(f"{JOBS}/{job_id}/results", pageSize=10).json()
    changed = [r["conversationId"] for r in expected[10:20]]
    for cid in changed:
        handle.control.mutate(cid, "reprocess")
    added = handle.control.add_conversations(3, start + timedelta(minutes=30), duration_s=60)
    records = list(first["conversations"])
    cursor = first["cursor"]
    while cursor:
        page = api.get(f"{JOBS}/{job_id}/results", pageSize=10, cursor=cursor).json()
        records.extend(page["conversations"])
        cursor = page.get("cursor")
    assert records == expected
    fresh = submit(api, body)  # the changes are real: a new job sees them
    handle.control.advance_clock(2)
    now_records = {r["conversationId"]: r for r in walk(api, fresh, 1000)[0]}
    assert set(added) <= set(now_records)
    old = {r["conversationId"]: r for r in expected}
    assert all(now_records[cid] != old[cid] for cid in changed)


def test_a_job_completed_during_a_clock_jump_is_frozen_before_later_changes(make_sim: SimFactory) -> None:
    handle, api = make_sim(data_lake_lag_s=0, data_lake_step_s=1)
    start, end = DAY0 + timedelta(hours=9), DAY0 + timedelta(hours=12)
    job_id = submit(api, {"interval": interval(start, end)})
    handle.control.advance_clock(5)  # completes inside the jump; nobody has looked at it yet
    added = handle.control.add_conversations(3, start + timedelta(minutes=30), duration_s=60)
    records, _ = walk(api, job_id, 1000)
    assert not set(added) & {r["conversationId"] for r in records}


# --- interval cap ---------------------------------------------------------------------------------
def test_a_job_interval_over_31_days_is_400(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    start = DAY0 - timedelta(days=29)
    assert api.post(JOBS, {"interval": interval(start, start + timedelta(days=31))}).status_code == 202
    too_long = {"interval": interval(start, start + timedelta(days=31, milliseconds=1))}
    body = assert_error_body(api.post(JOBS, too_long), 400, "bad.request")
    assert body["message"] == (
        "You must specify a search interval as part of your query that does not exceed 31 days"
    )
    assert body["details"] == [{"errorCode": "bad.request", "fieldName": "interval"}]
    handle.control.set_job_settings(max_interval_days=0)
    assert api.post(JOBS, too_long).status_code == 202


# --- remote control -------------------------------------------------------------------------------
def test_remote_control_drives_the_job_and_data_lake_settings(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    remote = RemoteSimulatorControl(handle.base_url)
    try:
        pin = TODAY.replace(hour=6)
        assert remote.set_data_lake(pin=pin) == pin
        assert remote.data_lake()["pinned"] is True
        assert api.get(f"{JOBS}/availability").json() == {"dataAvailabilityDate": iso(pin)}
        remote.set_data_lake(unpin=True, lag_s=0, step_s=3600)
        assert remote.data_lake()["dataAvailabilityDate"].endswith(":00:00.000Z")
        remote.set_job_settings(max_concurrent=1, max_interval_days=1, queued_s=10, ttl_s=60)
        assert api.post(JOBS, {"interval": FULL_INTERVAL}).status_code == 400  # 2 days > 1 day
        job_id = submit(api, {"interval": interval(DAY0, DAY0 + timedelta(hours=1))})
        assert api.post(JOBS, {"interval": interval(DAY0, DAY0 + timedelta(hours=1))}).status_code == 429
        remote.fail_job(job_id, "boom")
        assert status(api, job_id) == {**status(api, job_id), "state": "FAILED", "errorMessage": "boom"}
        done = submit(api, {"interval": interval(DAY0, DAY0 + timedelta(hours=1))})
        remote.advance_clock(12)
        assert status(api, done)["state"] == "FULFILLED"
        assert remote.expire_jobs(done) == 1
        assert remote.expire_jobs() == 0
        with pytest.raises(KeyError):
            remote.fail_job("00000000-0000-4000-8000-000000000000")
        with pytest.raises(ValueError, match="failure_probability"):
            remote.set_job_settings(failure_probability=2)
        with pytest.raises(ValueError, match="step_s"):
            remote.set_data_lake(step_s=0)
    finally:
        remote.close()
