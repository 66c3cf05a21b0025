"""Labelled metrics exist from the first scrape: every known label value is exported at 0 up front.

A series that appears only with its first event hides that event from `increase()` and leaves alerts
such as "no window completed" nothing to evaluate; dashboard panels read "No data" instead of 0.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.metrics import MetricWrapperBase

from connector import passes
from connector.genesys import client
from connector.genesys.client import classify_response, classify_transport_error, retry_reason
from connector.genesys.jobs import JobOutcome
from connector.metrics import (
    DELIVERY_PATHS,
    ENDPOINTS,
    FOLLOW_LABEL,
    JOB_OUTCOMES,
    RESPONSE_CODES,
    RETRY_REASONS,
    TOKEN_RESULTS,
    ConnectorMetrics,
    window_passes,
)


def _series(metrics: ConnectorMetrics, name: str) -> dict[tuple[str, ...], float]:
    """label values -> value of the samples called `name` (e.g. `..._total`, `..._count`)."""
    return {
        tuple(sample.labels.values()): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def _labelled(metrics: ConnectorMetrics) -> dict[str, MetricWrapperBase]:
    return {
        attr: wrapper
        for attr, wrapper in vars(metrics).items()
        if isinstance(wrapper, MetricWrapperBase) and wrapper._labelnames  # no public accessor
    }


def test_every_labelled_metric_is_exported_at_zero_before_its_first_event(metrics: ConnectorMetrics) -> None:
    labelled = _labelled(metrics)
    assert len(labelled) >= 9
    for attr, wrapper in labelled.items():
        family = wrapper.describe()[0]
        sample = family.name + ("_count" if family.type == "histogram" else "_total")
        if family.type == "gauge":
            sample = family.name
        values = _series(metrics, sample)
        assert values, f"{attr}: no series on a fresh registry"
        assert set(values.values()) == {0.0}, f"{attr}: {values}"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            "genesys_connector_api_requests_total",
            {(e, c) for e in ENDPOINTS for c in RESPONSE_CODES},
        ),
        ("genesys_connector_api_request_duration_seconds_count", {(e,) for e in ENDPOINTS}),
        ("genesys_connector_api_retries_total", {(r,) for r in RETRY_REASONS}),
        ("genesys_connector_oauth_token_requests_total", {(r,) for r in TOKEN_RESULTS}),
        ("genesys_connector_windows_completed_total", {("0",), ("1",), ("2",)}),
        ("genesys_connector_pages_fetched_total", {("0",), ("1",), ("2",)}),
        ("genesys_connector_conversations_fetched_total", {("0",), ("1",), ("2",)}),
        ("genesys_connector_query_requests_total", {("0",), ("1",), ("2",), ("open",)}),
        ("genesys_connector_conversations_published_total", {("0",), ("1",), ("2",), ("open",)}),
        ("genesys_connector_job_duration_seconds_count", {(o,) for o in JOB_OUTCOMES}),
        ("genesys_connector_conversations_delivered_total", {("query",), ("job",)}),
    ],
)
def test_each_combination_of_known_label_values_is_a_series(
    sample: str, expected: set[tuple[str, ...]]
) -> None:
    values = _series(ConnectorMetrics(rescans=2), sample)
    assert set(values) == expected
    assert set(values.values()) == {0.0}


def test_pass_values_follow_the_configured_rescans() -> None:
    assert window_passes(0) == ("0",)
    assert window_passes(4) == ("0", "1", "2", "3", "4")
    default = _series(ConnectorMetrics(), "genesys_connector_windows_completed_total")
    assert set(default) == {("0",)}


def test_a_value_outside_the_enumeration_still_gets_its_series_on_first_use(
    metrics: ConnectorMetrics,
) -> None:
    metrics.api_requests.labels("details_query", "418").inc()
    assert _series(metrics, "genesys_connector_api_requests_total")[("details_query", "418")] == 1.0


# --- the enumerations agree with the code that writes the labels ---------------------------------------


def test_endpoint_and_pass_enumerations_match_their_writers() -> None:
    assert {
        client.QUERY_ENDPOINT,
        client.MULTIGET_ENDPOINT,
        client.TOKEN_ENDPOINT,
        client.JOBS_SUBMIT_ENDPOINT,
        client.JOB_STATUS_ENDPOINT,
        client.JOB_RESULTS_ENDPOINT,
        client.JOB_DELETE_ENDPOINT,
        client.JOBS_AVAILABILITY_ENDPOINT,
    } == set(ENDPOINTS)
    assert {o.value for o in JobOutcome} == set(JOB_OUTCOMES)
    assert set(DELIVERY_PATHS) == {"query", "job"}
    assert passes.FOLLOW_LABEL == FOLLOW_LABEL


def _response(status: int, body: bytes = b"{}") -> httpx.Response:
    return httpx.Response(status, content=body, request=httpx.Request("POST", "https://api.invalid/x"))


def _raised(status: int, body: bytes = b"{}") -> BaseException:
    try:
        classify_response(_response(status, body), endpoint="details_query")
    except Exception as exc:  # whichever error class the client picks
        return exc
    raise AssertionError(f"HTTP {status} did not raise")


def test_every_retry_reason_the_client_records_is_enumerated() -> None:
    request = httpx.Request("POST", "https://api.invalid/x")
    retriable = [_raised(status) for status in (408, 429, 500, 502, 503, 504)]
    retriable.append(_raised(200, b"{truncated"))
    retriable += [
        classify_transport_error(exc, endpoint="details_query")
        for exc in (
            httpx.ReadTimeout("slow", request=request),
            httpx.ConnectError("refused", request=request),
            httpx.DecodingError("bad gzip", request=request),
        )
    ]
    reasons = {retry_reason(exc) for exc in retriable} | {"401"}  # the client's refresh-and-retry
    assert reasons == set(RETRY_REASONS)
