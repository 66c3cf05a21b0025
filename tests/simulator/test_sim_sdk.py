"""Conformance with the official Genesys Python SDK (PureCloudPlatformClientV2, a dev-only dependency).

The SDK drives a real simulator over HTTP: client-credentials login, query paging up to the empty page,
multi-get by ids, an async job followed by its cursor, and two errors. Every response must deserialize into
the SDK's models, and the raw JSON must use no key, enum value or JSON type the SDK models do not declare
(see sdk_conformance for why the SDK's own lenient deserializer is not enough).

Pointing the SDK at the simulator: `ApiClient(host=base_url)` sets the API base URL; the login URL is
`get_conf_url("login", host) + "/oauth/token"`, which only rewrites "//api." to "//login.", so for
http://127.0.0.1:PORT it is the simulator's own /oauth/token (API and login share one address).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import PureCloudPlatformClientV2 as sdk
import pytest
from PureCloudPlatformClientV2 import models
from PureCloudPlatformClientV2.rest import ApiException
from sdk_conformance import Findings, check, sentinels
from simulator_support import CLIENT, TODAY, SimFactory, interval

from connector.testbed.simulator import SimulatorHandle

NOW = datetime.now(UTC)
# The last day up to now: recent conversations are still open or ended-but-not-settled, older ones are
# settled, with evaluations, surveys and reprocessing corrections (probabilities raised so all shapes occur).
RICH_HISTORY: dict[str, Any] = {
    "history_start": NOW - timedelta(days=1),
    "history_end": None,
    "volume_per_hour": 20,
    "evaluation_probability": 0.5,
    "survey_probability": 0.5,
    "reprocess_probability": 0.3,
    "reprocess_delay_s": 600,
}
QUERY_INTERVAL = interval(TODAY - timedelta(days=1), TODAY + timedelta(days=1))
PAGE_SIZE = 100
MULTIGET_IDS = 100


class SdkSession:
    """The official SDK logged in to one simulator; collects every raw response body it received."""

    def __init__(self, handle: SimulatorHandle) -> None:
        self.client = sdk.ApiClient(host=handle.base_url)
        self.api = sdk.AnalyticsApi(self.client)
        self.findings = Findings()
        self.sentinels: set[str] = set()

    def login(self) -> None:
        assert self.client.get_conf_url("login", self.client.host) == self.client.host
        self.client.get_client_credentials_token(*CLIENT)
        assert self.client.access_token

    def conform(self, response: Any, sdk_type: str) -> dict[str, Any]:
        """The raw body of the last response, checked against `sdk_type` and the deserialized `response`."""
        assert type(response).__name__ == sdk_type
        raw: dict[str, Any] = orjson.loads(self.client.last_response.data)
        check(raw, sdk_type, self.findings)
        self.sentinels |= sentinels(response)
        return raw


def assert_records_deserialized(response: Any, raw: dict[str, Any], record_type: str) -> None:
    """Every raw record became an SDK model of the expected type carrying the same conversation id."""
    records = response.conversations or []
    assert [type(r).__name__ for r in records] == [record_type] * len(raw.get("conversations", []))
    assert [r.conversation_id for r in records] == [c["conversationId"] for c in raw.get("conversations", [])]


def query_all(session: SdkSession) -> list[dict[str, Any]]:
    """PostAnalyticsConversationsDetailsQuery, page by page until a page has no conversations."""
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        body = models.ConversationQuery()
        body.interval = QUERY_INTERVAL
        body.order = "asc"
        body.order_by = "conversationStart"
        body.paging = models.PagingSpec()
        body.paging.page_size = PAGE_SIZE
        body.paging.page_number = page
        response = session.api.post_analytics_conversations_details_query(body)
        raw = session.conform(response, "AnalyticsConversationQueryResponse")
        assert_records_deserialized(response, raw, "AnalyticsConversationWithoutAttributes")
        if not response.conversations:
            assert response.total_hits == len(records)
            return records
        records.extend(raw["conversations"])
        page += 1


def multi_get(session: SdkSession, ids: list[str]) -> list[dict[str, Any]]:
    """GET /api/v2/analytics/conversations/details?id=a,b,c via get_analytics_conversations_details."""
    response = session.api.get_analytics_conversations_details(id=ids)
    raw = session.conform(response, "AnalyticsConversationWithoutAttributesMultiGetResponse")
    assert_records_deserialized(response, raw, "AnalyticsConversationWithoutAttributes")
    records: list[dict[str, Any]] = raw["conversations"]
    return records


def job_state(session: SdkSession, job_id: str) -> str:
    status = session.api.get_analytics_conversations_details_job(job_id)
    session.conform(status, "AsyncQueryStatus")
    state: str = status.state
    return state


def job_all(session: SdkSession, handle: SimulatorHandle) -> tuple[list[dict[str, Any]], int]:
    """Post a job, move it to FULFILLED with the simulator clock, follow the cursor; (records, pages)."""
    body = models.AsyncConversationQuery()
    body.interval = QUERY_INTERVAL
    created = session.api.post_analytics_conversations_details_jobs(body)
    session.conform(created, "AsyncQueryResponse")
    assert job_state(session, created.job_id) == "QUEUED"
    handle.control.advance_clock(1)
    assert job_state(session, created.job_id) == "PENDING"
    handle.control.advance_clock(1)
    assert job_state(session, created.job_id) == "FULFILLED"
    records: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"page_size": PAGE_SIZE}
        if cursor is not None:
            kwargs["cursor"] = cursor
        response = session.api.get_analytics_conversations_details_job_results(created.job_id, **kwargs)
        raw = session.conform(response, "AnalyticsConversationAsyncQueryResponse")
        assert_records_deserialized(response, raw, "AnalyticsConversation")
        records.extend(raw.get("conversations", []))
        pages += 1
        cursor = response.cursor
        if cursor is None:
            return records, pages


def error_bodies(session: SdkSession) -> list[int]:
    """A 400 (page size over the maximum) and a 404 (unknown job): their bodies must be SDK ErrorBody JSON."""
    statuses: list[int] = []
    too_big = models.ConversationQuery()
    too_big.interval = QUERY_INTERVAL
    too_big.paging = models.PagingSpec()
    too_big.paging.page_size = 10_000
    calls = (
        lambda: session.api.post_analytics_conversations_details_query(too_big),
        lambda: session.api.get_analytics_conversations_details_job("no-such-job"),
    )
    for call in calls:
        with pytest.raises(ApiException) as caught:
            call()
        check(orjson.loads(caught.value.body), "ErrorBody", session.findings)
        statuses.append(caught.value.status)
    return statuses


def assert_shapes_covered(query: list[dict[str, Any]], job: list[dict[str, Any]]) -> None:
    """The run saw every kind of record the simulator renders, so an empty finding set means something."""
    segments = [
        seg
        for record in query
        for part in record["participants"]
        for sess in part["sessions"]
        for seg in sess["segments"]
    ]
    assert any("conversationEnd" not in r for r in query), "no open conversation"
    assert any("evaluations" in r for r in query), "no evaluation"
    assert any("surveys" in r for r in query), "no survey"
    assert any("properties" in s for s in segments), "no reprocessing correction"
    assert any(s["segmentType"] == "wrapup" for s in segments), "no settled conversation"
    assert any("attributes" in p for r in job for p in r["participants"]), "no job record with attributes"


@pytest.mark.timeout(600)
def test_official_sdk_reads_every_simulator_response(make_sim: SimFactory) -> None:
    handle, _ = make_sim(**RICH_HISTORY)
    session = SdkSession(handle)
    session.login()

    queried = query_all(session)
    ids = [r["conversationId"] for r in queried[:MULTIGET_IDS]]
    fetched = multi_get(session, ids)
    jobbed, pages = job_all(session, handle)
    errors = error_bodies(session)

    assert len(queried) > PAGE_SIZE
    assert [r["conversationId"] for r in fetched] == ids
    assert pages > 1
    assert jobbed
    assert errors == [400, 404]
    assert_shapes_covered(queried, jobbed)
    unknown = session.findings.report()
    assert session.findings.empty(), f"simulator JSON the SDK models do not know:\n{unknown}"
    assert not session.sentinels, f"the SDK stored {sorted(session.sentinels)} as 'outdated_sdk_version'"


def test_checker_reports_unknown_keys_enum_values_and_types() -> None:
    """The checker itself can fail: a decimal score, a made-up key and a wrongly cased enum are all caught."""
    findings = Findings()
    record = {
        "conversationId": "c1",
        "originatingDirection": "Inbound",
        "madeUpKey": 1,
        "evaluations": [{"evaluationId": "e1", "oTotalScore": 87.5}],
        "participants": [{"purpose": "customer", "sessions": [{"mediaType": "hologram"}]}],
    }
    check({"conversations": [record]}, "AnalyticsConversationQueryResponse", findings)
    assert findings.unknown_keys == {"AnalyticsConversationWithoutAttributes.madeUpKey"}
    assert findings.unknown_enum_values == {
        "AnalyticsConversationWithoutAttributes.originatingDirection = 'Inbound' (differs only in case)",
        "AnalyticsSession.mediaType = 'hologram'",
    }
    assert findings.type_mismatches == {"AnalyticsEvaluation.oTotalScore: float where the SDK expects int"}
    deserialized = sdk.ApiClient().deserialize(
        _FakeResponse(orjson.dumps({"conversations": [record]})), "AnalyticsConversationQueryResponse"
    )
    assert sentinels(deserialized) == {"AnalyticsSession.mediaType"}


class _FakeResponse:
    """Just enough of the SDK's RESTResponse for ApiClient.deserialize (unit check of `sentinels`)."""

    def __init__(self, data: bytes) -> None:
        self.data = data.decode()

    def getheader(self, name: str) -> str | None:
        return "application/json" if name.lower() == "content-type" else None
