"""Fault injection over real HTTP: every fault kind, route scoping, and faults never change data."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from simulator_support import DAY0, FULL_INTERVAL, JOBS, Api, SimFactory

BODY = {"interval": FULL_INTERVAL, "paging": {"pageSize": 5, "pageNumber": 1}}


def test_a_503_burst_then_recovery(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["503", "503", "503"])
    for _ in range(3):
        response = api.query(BODY)
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "service.unavailable"
        assert body["contextId"] == response.headers["ININ-Correlation-Id"]
        assert "inin-ratelimit-count" in response.headers
    assert api.query(BODY).status_code == 200
    assert handle.control.counters()["query"]["503"] == 3


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("500", "internal.server.error"),
        ("502", "bad.gateway"),
        ("504", "gateway.timeout"),
        ("408", "request.timeout"),
    ],
)
def test_status_faults_have_error_bodies(sim: tuple[Any, Api], kind: str, code: str) -> None:
    handle, api = sim
    handle.control.script_faults([kind])
    response = api.query(BODY)
    assert response.status_code == int(kind)
    assert response.json()["code"] == code


def test_connection_reset_sends_no_response(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["reset"])
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        api.query(BODY)
    assert api.query(BODY).status_code == 200
    assert handle.control.counters()["query"]["reset"] == 1


def test_truncated_json_is_a_200_with_half_a_body(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    full = api.query(BODY).content
    handle.control.script_faults(["truncated"])
    response = api.query(BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert full.startswith(response.content)
    assert len(response.content) < len(full)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_html_502_page(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["html502"])
    response = api.query(BODY)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert response.headers["ININ-Correlation-Id"]


def test_slow_response_still_answers(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["slow:0.3"])
    began = time.monotonic()
    response = api.query(BODY)
    assert response.status_code == 200
    assert time.monotonic() - began >= 0.3


def test_long_retry_after_429(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["429:3600"])
    response = api.query(BODY)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3600"
    body = response.json()
    assert body["code"] == "too.many.requests"
    assert body["message"] == "Rate limit exceeded the maximum. Retry the request in [3600] seconds"


def test_revoke_fault_kills_the_token(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["revoke"])
    assert api.query(BODY).status_code == 401
    assert api.query(BODY).status_code == 401
    api.token = api.new_token()
    assert api.query(BODY).status_code == 200


def test_faults_can_target_one_route_and_the_token_route(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["503"], route="job_status")
    handle.control.script_faults(["502"], route="token")
    assert api.query(BODY).status_code == 200
    assert handle.control.pending_faults() == {"job_status": ["503"], "token": ["502"]}
    token = api.http.post(
        "/oauth/token", auth=("demo-client", "demo-secret"), data={"grant_type": "client_credentials"}
    )
    assert token.status_code == 502
    job_id = api.post(JOBS, {"interval": FULL_INTERVAL}).json()["jobId"]
    assert api.get(f"{JOBS}/{job_id}").status_code == 503
    assert api.get(f"{JOBS}/{job_id}").status_code == 200


def test_ok_entries_let_requests_through_in_a_script(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.script_faults(["ok", "503", "ok"])
    assert [api.query(BODY).status_code for _ in range(4)] == [200, 503, 200, 200]


def test_fault_probabilities(make_sim: SimFactory) -> None:
    handle, api = make_sim(faults={"503": 0.5})
    codes = [api.query(BODY).status_code for _ in range(40)]
    assert set(codes) == {200, 503}
    handle.control.clear_faults()
    assert {api.query(BODY).status_code for _ in range(5)} == {200}


def test_bad_fault_specs_are_rejected(sim: tuple[Any, Api]) -> None:
    handle, _ = sim
    with pytest.raises(ValueError, match="unknown fault"):
        handle.control.script_faults(["418"])
    with pytest.raises(ValueError, match="route"):
        handle.control.script_faults(["503"], route="nowhere")
    with pytest.raises(ValueError, match="sum"):
        handle.control.set_faults({"503": 0.7, "reset": 0.6})


def test_faults_never_change_data(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    before = handle.control.truth_versions(DAY0, DAY0 + timedelta(days=2))
    handle.control.script_faults(["truncated", "truncated", "reset", "503", "html502", "revoke"])
    job = api.post(JOBS, {"interval": FULL_INTERVAL})
    assert job.status_code == 200  # truncated: a cut 200 body; the job is not created
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(job.content)
    for _ in range(4):
        try:
            api.query(BODY)
        except httpx.TransportError:
            pass
    assert handle.control.truth_versions(DAY0, DAY0 + timedelta(days=2)) == before
