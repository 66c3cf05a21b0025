"""Every Prometheus metric the connector exposes, built on an injected registry.

Names follow Prometheus conventions: the `genesys_connector_` prefix, base units, `_total` on counters,
`_seconds` on durations and timestamps. Labels are a small fixed set; a conversation id is never a label.
`metric_names()` lists what the registry exposes (the Helm chart's alert rules are checked against it).

Every labelled series the connector can know in advance exists from the first scrape, at 0: its label
values are enumerated next to the metric and each combination is created at construction. Without that
a series appears only with its first event, so `increase()` misses that event and an alert such as
"no window completed" has nothing to evaluate for a pod that never completed one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

_PREFIX = "genesys_connector_"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RETRY_AFTER_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)

# --- label values initialised at 0 (a value not listed still gets its series on first use) ---
#: `endpoint`: every call the client makes (connector.genesys.client's *_ENDPOINT constants).
ENDPOINTS = (
    "details_query",
    "details_multiget",
    "oauth_token",
    "jobs_submit",
    "job_status",
    "job_results",
    "job_delete",
    "jobs_availability",
)
#: `code`: the HTTP statuses the client handles distinctly (connector.genesys.responses.classify_response),
#: and "error" when no response arrived.
RESPONSE_CODES = (
    "200",
    "202",
    "204",
    "400",
    "401",
    "403",
    "404",
    "408",
    "429",
    "500",
    "502",
    "503",
    "504",
    "error",
)
#: `reason` of a retry: `connector.genesys.responses.retry_reason()` of a retried error, and the client's 401
#: refresh-and-retry.
RETRY_REASONS = ("429", "5xx", "408", "timeout", "connection", "bad_body", "401")
#: `result` of an OAuth token request (connector.genesys.auth).
TOKEN_RESULTS = ("success", "rejected", "error")
#: `pass` of snapshots from following open conversations by id (connector.passes.FOLLOW_LABEL).
FOLLOW_LABEL = "open"
#: `source` of a conversation found late (connector.state.ledger.LATE_SOURCES): a settlement re-scan, the
#: follow-up by id, or the settling job; none of them is the first pass.
LATE_SOURCES = ("rescan", "follow_up", "job")
#: `how` a range was settled (connector.kafka.control.SETTLED_BY).
SETTLED_BY = ("job", "rescan")
#: `outcome` of one async job, submission to its end (connector.genesys.job_events.JobOutcome).
JOB_OUTCOMES = ("fulfilled", "failed", "cancelled", "expired", "timeout")
#: `path` a conversation snapshot was delivered by: the details query or an async job.
DELIVERY_PATHS = ("query", "job")
_JOB_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def window_passes(rescans: int) -> tuple[str, ...]:
    """`pass` values of window passes: "0" (first pass) and "1".."rescans" (settlement re-scans)."""
    return tuple(str(n) for n in range(rescans + 1))


def _initialise(metric: MetricWrapperBase, *value_sets: Sequence[str]) -> None:
    """Create the series of every combination of label values, so each is exported at 0 from the start."""
    for values in itertools.product(*value_sets):
        metric.labels(*values)


class ConnectorMetrics:
    """Owns the connector's metrics. Build one per process (or per test) with its own registry.

    `rescans` is the number of configured re-scan delays (config windows.rescan_delays): it decides
    which `pass` values exist, so their series can be created at 0 up front.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, rescans: int = 0) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = _PREFIX
        passes = window_passes(rescans)
        # --- API calls (connector.genesys.client is the only writer) ---
        self.api_requests = Counter(
            p + "api_requests",
            "Genesys API responses by endpoint and HTTP status code ('error' when no response arrived).",
            ["endpoint", "code"],
            registry=r,
        )
        _initialise(self.api_requests, ENDPOINTS, RESPONSE_CODES)
        self.api_request_duration = Histogram(
            p + "api_request_duration_seconds",
            "Latency of Genesys API calls.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        _initialise(self.api_request_duration, ENDPOINTS)
        self.api_throttled = Counter(p + "api_throttled", "429 responses received.", registry=r)
        self.api_retries = Counter(
            p + "api_retries", "Retries of Genesys API calls by reason.", ["reason"], registry=r
        )
        _initialise(self.api_retries, RETRY_REASONS)
        self.api_ratelimit_allowed = Gauge(
            p + "api_ratelimit_allowed",
            "Last inin-ratelimit-allowed header: requests allowed per window.",
            registry=r,
        )
        self.api_ratelimit_remaining = Gauge(
            p + "api_ratelimit_remaining",
            "Requests left in the server's current rate-limit window (allowed - count).",
            registry=r,
        )
        self.api_ratelimit_reset_seconds = Gauge(
            p + "api_ratelimit_reset_seconds",
            "Last inin-ratelimit-reset header: seconds until the window resets.",
            registry=r,
        )
        self.api_budget_requests_per_minute = Gauge(
            p + "api_budget_requests_per_minute",
            "Requests per minute the pacer currently allows itself.",
            registry=r,
        )
        self.api_budget_utilization_ratio = Gauge(
            p + "api_budget_utilization_ratio",
            "Requests sent in the last minute / the org's per-minute budget.",
            registry=r,
        )
        self.api_pacing_wait_seconds = Counter(
            p + "api_pacing_wait_seconds", "Time requests spent waiting for the pacer.", registry=r
        )
        self.api_retry_after_seconds = Histogram(
            p + "api_retry_after_seconds",
            "Retry-After values received on 429 responses.",
            buckets=_RETRY_AFTER_BUCKETS,
            registry=r,
        )
        self.api_inflight_requests = Gauge(
            p + "api_inflight_requests", "Genesys API requests currently in flight.", registry=r
        )
        self.paused = Gauge(
            p + "paused",
            "1 while the pipeline is paused by a long Retry-After (e.g. a daily limit).",
            registry=r,
        )
        self.oauth_token_expiry_timestamp_seconds = Gauge(
            p + "oauth_token_expiry_timestamp_seconds",
            "Expiry time of the current OAuth token (unix seconds).",
            registry=r,
        )
        self.oauth_token_requests = Counter(
            p + "oauth_token_requests", "OAuth token requests by result.", ["result"], registry=r
        )
        _initialise(self.oauth_token_requests, TOKEN_RESULTS)
        # --- pipeline progress ---
        self.conversations_fetched = Counter(
            p + "conversations_fetched",
            "Conversation records received from the API, by pass (duplicates within a window counted once).",
            ["pass"],
            registry=r,
        )
        _initialise(self.conversations_fetched, passes)
        self.conversations_published = Counter(
            p + "conversations_published",
            "Conversation snapshots acknowledged by Kafka, by pass.",
            ["pass"],
            registry=r,
        )
        _initialise(self.conversations_published, (*passes, FOLLOW_LABEL))
        self.conversations_unchanged = Counter(
            p + "conversations_unchanged",
            "Records not published because their content hash was already published.",
            registry=r,
        )
        self.windows_completed = Counter(
            p + "windows_completed",
            "Window passes completed (all pages fetched and acknowledged), by pass.",
            ["pass"],
            registry=r,
        )
        _initialise(self.windows_completed, passes)
        self.window_splits = Counter(
            p + "window_splits",
            "Windows split because they could exceed the 100,000-result paging cap.",
            registry=r,
        )
        self.query_requests = Counter(
            p + "query_requests",
            "Details-query requests made by window passes, by pass (the API cost of "
            "each pass; client-side retries excluded).",
            ["pass"],
            registry=r,
        )
        _initialise(self.query_requests, (*passes, FOLLOW_LABEL))
        self.tie_groups = Counter(
            p + "tie_groups",
            "Groups of conversations with the same conversationStart that straddled a page boundary and "
            "were re-read completely (connector.genesys.pagination).",
            registry=r,
        )
        self.tie_conversations_recovered = Counter(
            p + "tie_conversations_recovered",
            "Conversations of straddling tie groups that offset paging had skipped and the re-read found.",
            registry=r,
        )
        # --- completeness (connector.state.ledger, connector.kafka.control) ---
        self.conversations_found_late = Counter(
            p + "conversations_found_late",
            "Conversations the first pass of their window did not see, by the source that found them "
            "(rescan, follow_up, job): lag too short, unstable ordering or late indexing.",
            ["source"],
            registry=r,
        )
        _initialise(self.conversations_found_late, LATE_SOURCES)
        self.ranges_settled = Counter(
            p + "ranges_settled",
            "Ranges (hours of conversation start) declared final, by how they were settled.",
            ["how"],
            registry=r,
        )
        _initialise(self.ranges_settled, SETTLED_BY)
        self.ranges_mismatch = Counter(
            p + "ranges_mismatch",
            "Settled ranges whose reference (job or final re-scan) holds conversations Kafka did not "
            "acknowledge.",
            registry=r,
        )
        self.ranges_missing_conversations = Gauge(
            p + "ranges_missing_conversations",
            "Conversations missing from Kafka over the settled ranges still in the ledger (0 when complete).",
            registry=r,
        )
        self.pages_fetched = Counter(
            p + "pages_fetched", "Query pages received, by pass.", ["pass"], registry=r
        )
        _initialise(self.pages_fetched, passes)
        self.watermark_timestamp_seconds = Gauge(
            p + "watermark_timestamp_seconds",
            "End of the contiguous range whose first pass is complete (unix seconds).",
            registry=r,
        )
        self.lag_seconds = Gauge(p + "lag_seconds", "Now minus the watermark.", registry=r)
        self.checkpoint_timestamp_seconds = Gauge(
            p + "checkpoint_timestamp_seconds",
            "When the checkpoint was last written (unix seconds).",
            registry=r,
        )
        self.rescans_pending = Gauge(
            p + "rescans_pending", "Settlement re-scans scheduled and not yet done.", registry=r
        )
        self.open_conversations = Gauge(
            p + "open_conversations",
            "Conversations seen in progress and still followed until they end.",
            registry=r,
        )
        self.loop_max_stall_seconds = Gauge(
            p + "loop_max_stall_seconds",
            "Longest time the event loop was blocked since start (a blocking call on the loop), seconds.",
            registry=r,
        )
        self.loop_max_heartbeat_gap_seconds = Gauge(
            p + "loop_max_heartbeat_gap_seconds",
            "Longest gap between two main-loop iterations since start (its waits included), seconds.",
            registry=r,
        )
        self.last_error_timestamp_seconds = Gauge(
            p + "last_error_timestamp_seconds", "When the last error was logged (unix seconds).", registry=r
        )
        # --- async jobs (connector.genesys.jobs; delivered_by_path is counted where snapshots are acked) ---
        self.jobs_in_flight = Gauge(
            p + "jobs_in_flight",
            "Async details jobs submitted and not yet finished (results read and deleted, or given up).",
            registry=r,
        )
        self.job_duration = Histogram(
            p + "job_duration_seconds",
            "Time from a job's submission to its end state (FULFILLED, FAILED, CANCELLED, EXPIRED, "
            "or our timeout), by outcome.",
            ["outcome"],
            buckets=_JOB_DURATION_BUCKETS,
            registry=r,
        )
        _initialise(self.job_duration, JOB_OUTCOMES)
        self.data_lake_lag_seconds = Gauge(
            p + "data_lake_lag_seconds",
            "Now minus the data lake's dataAvailabilityDate (last read).",
            registry=r,
        )
        self.conversations_delivered = Counter(
            p + "conversations_delivered",
            "Conversation snapshots acknowledged by Kafka, by the API path that read them (query / job).",
            ["path"],
            registry=r,
        )
        _initialise(self.conversations_delivered, DELIVERY_PATHS)
        # --- Kafka ---
        self.kafka_delivery_errors = Counter(
            p + "kafka_delivery_errors",
            "Messages Kafka failed to acknowledge (they are replayed).",
            registry=r,
        )
        self.records_truncated = Counter(
            p + "records_truncated",
            "Conversations published truncated (kafka.oversized_records: truncate), by the size limit they "
            "exceeded: producer (kafka.message_max_bytes) or topic (the topic's max.message.bytes).",
            ["limit"],
            registry=r,
        )
        for limit in ("producer", "topic"):
            self.records_truncated.labels(limit)
        self.kafka_queue_messages = Gauge(
            p + "kafka_queue_messages",
            "Messages in the producer's local queue awaiting acknowledgement.",
            registry=r,
        )
        self.info = Info(p + "build", "Connector version.", registry=r)


def metric_names(metrics: ConnectorMetrics) -> set[str]:
    """Every sample name the registry can expose (e.g. `..._total`, `..._bucket`), for contract tests."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
    return names
