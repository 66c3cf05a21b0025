"""OAuth client credentials, bearer tokens, permissions, rate limits, correlation ids (api notes §3-4)."""

from __future__ import annotations

from typing import Any

import httpx
from simulator_support import FULL_INTERVAL, QUERY, Api, SimFactory

from connector.testbed.simulator import RemoteSimulatorControl


def token_request(api: Api, auth: Any, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return api.http.post("/oauth/token", auth=auth, data=data or {"grant_type": "client_credentials"}, **kw)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]
    assert isinstance(body["details"], list)
    assert isinstance(body["errors"], list)
    if code is not None:
        assert body["code"] == code
    return body


def test_token_endpoint_issues_bearer_tokens(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    response = api.http.post(
        f"{handle.login_url}/oauth/token",
        auth=("demo-client", "demo-secret"),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert len(body["access_token"]) > 20
    assert response.headers["ININ-Correlation-Id"]


def test_token_lifetime_is_configurable(make_sim: SimFactory) -> None:
    _, api = make_sim(token_ttl_s=300)
    assert token_request(api, ("demo-client", "demo-secret")).json()["expires_in"] == 300


def test_bad_client_credentials_are_401(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert_error(token_request(api, ("demo-client", "wrong")), 401, "bad.credentials")
    assert_error(token_request(api, ("nobody", "demo-secret")), 401, "bad.credentials")
    assert_error(api.http.post("/oauth/token", data={"grant_type": "client_credentials"}), 401)


def test_wrong_grant_type_is_400(sim: tuple[Any, Api]) -> None:
    _, api = sim
    assert_error(token_request(api, ("demo-client", "demo-secret"), {"grant_type": "password"}), 400)
    as_json = api.http.post("/oauth/token", auth=("demo-client", "demo-secret"), json={"grant_type": "x"})
    assert_error(as_json, 400)


def test_missing_and_unknown_tokens_are_401(sim: tuple[Any, Api]) -> None:
    _, api = sim
    body = {"interval": FULL_INTERVAL}
    assert_error(api.http.post(QUERY, json=body), 401, "bad.credentials")
    assert_error(
        api.http.post(QUERY, json=body, headers={"Authorization": "Bearer nope"}), 401, "bad.credentials"
    )
    assert api.query(body).status_code == 200


def test_expired_tokens_are_401(make_sim: SimFactory) -> None:
    handle, api = make_sim(token_ttl_s=60)
    assert api.query({"interval": FULL_INTERVAL}).status_code == 200
    handle.control.advance_clock(61)
    err = assert_error(api.query({"interval": FULL_INTERVAL}), 401, "bad.credentials")
    assert "expired" in err["message"]
    api.token = api.new_token()
    assert api.query({"interval": FULL_INTERVAL}).status_code == 200


def test_the_401_code_is_configurable(make_sim: SimFactory) -> None:
    handle, api = make_sim(token_ttl_s=60, unauthorized_code="credentials.expired")
    handle.control.advance_clock(61)
    assert_error(api.query({"interval": FULL_INTERVAL}), 401, "credentials.expired")


def test_revoked_tokens_are_401(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    other = api.new_token()
    assert handle.control.revoke_tokens(token=api.token) == 1
    assert_error(api.query({"interval": FULL_INTERVAL}), 401)
    api_other = {"Authorization": f"Bearer {other}"}
    assert api.http.post(QUERY, json={"interval": FULL_INTERVAL}, headers=api_other).status_code == 200
    assert handle.control.revoke_tokens() >= 1
    assert_error(api.http.post(QUERY, json={"interval": FULL_INTERVAL}, headers=api_other), 401)


def test_issued_tokens_are_listed_for_leak_checks(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    other = api.new_token()
    handle.control.revoke_tokens(token=other)
    remote = RemoteSimulatorControl(handle.base_url)
    try:
        listed = remote.issued_tokens()
    finally:
        remote.close()
    assert listed == handle.control.issued_tokens()
    assert {api.token, other} <= set(listed)


def test_a_client_without_the_permission_gets_403(sim: tuple[Any, Api]) -> None:
    handle, _api = sim
    handle.control.add_client("reporting", "s3cret", permissions=("users:profile:view",))
    limited = Api(handle, ("reporting", "s3cret"))
    try:
        err = assert_error(limited.query({"interval": FULL_INTERVAL}), 403, "missing.permissions")
        assert "analytics:conversationDetail:view" in err["message"]
        job = limited.post("/api/v2/analytics/conversations/details/jobs", {"interval": FULL_INTERVAL})
        assert_error(job, 403, "missing.permissions")
    finally:
        limited.close()


def test_rate_limit_headers_on_every_api_response_and_429_after_the_limit(make_sim: SimFactory) -> None:
    handle, api = make_sim(rate_limit=5, rate_window_s=60)
    body = {"interval": FULL_INTERVAL}
    for n in range(1, 6):
        response = api.query(body)
        assert response.status_code == 200
        assert response.headers["inin-ratelimit-count"] == str(n)
        assert response.headers["inin-ratelimit-allowed"] == "5"
        assert 0 < int(response.headers["inin-ratelimit-reset"]) <= 60
    refused = api.query(body)
    err = assert_error(refused, 429, "too.many.requests")
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert err["message"] == f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"
    assert refused.headers["inin-ratelimit-allowed"] == "5"
    # another token has its own window; error responses carry the headers too
    other = {"Authorization": f"Bearer {api.new_token()}"}
    assert api.http.post(QUERY, json=body, headers=other).headers["inin-ratelimit-count"] == "1"
    assert "inin-ratelimit-allowed" in api.http.post(QUERY, json=body).headers
    handle.control.advance_clock(retry_after)
    assert api.query(body).status_code == 200


def test_rate_limit_can_change_at_runtime(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.set_rate_limit(1, 30)
    assert api.query({"interval": FULL_INTERVAL}).status_code == 200
    assert api.query({"interval": FULL_INTERVAL}).status_code == 429


def test_every_response_carries_a_correlation_id(sim: tuple[Any, Api]) -> None:
    _, api = sim
    responses = [
        token_request(api, ("demo-client", "demo-secret")),
        token_request(api, ("demo-client", "bad")),
        api.query({"interval": FULL_INTERVAL}),
        api.query({"interval": "bad"}),
        api.http.post(QUERY, json={}),
        api.get("/api/v2/analytics/nothing/here"),
        api.get("/api/v2/analytics/conversations/details/jobs/availability"),
        api.http.get("/_sim/health"),
    ]
    ids = [r.headers.get("ININ-Correlation-Id") for r in responses]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert responses[5].status_code == 404


def test_counters_count_responses_by_route_and_status(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    handle.control.reset_counters()
    api.query({"interval": FULL_INTERVAL})
    api.query({"interval": "bad"})
    api.http.post(QUERY, json={"interval": FULL_INTERVAL})
    assert handle.control.counters()["query"] == {"200": 1, "400": 1, "401": 1}
