"""Every Prometheus metric the connector exposes, built on an injected registry.

Names follow Prometheus conventions: the `genesys_connector_` prefix, base units, `_total` on counters,
`_seconds` on durations and timestamps. Labels are a small fixed set; a conversation id is never a label.
`METRIC_NAMES` is the public list (the Helm chart's alert rules are checked against it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_PREFIX = "genesys_connector_"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RETRY_AFTER_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)


class ConnectorMetrics:
    """Owns the connector's metrics. Build one per process (or per test) with its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        p = _PREFIX
        # --- API calls (connector.client is the only writer) ---
        self.api_requests = Counter(
            p + "api_requests",
            "Genesys API responses by endpoint and HTTP status code ('error' when no response arrived).",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_request_duration = Histogram(
            p + "api_request_duration_seconds",
            "Latency of Genesys API calls.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.api_throttled = Counter(p + "api_throttled", "429 responses received.", registry=r)
        self.api_retries = Counter(
            p + "api_retries", "Retries of Genesys API calls by reason.", ["reason"], registry=r
        )
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
        # --- pipeline progress ---
        self.conversations_fetched = Counter(
            p + "conversations_fetched",
            "Conversation records received from the API, by pass (duplicates within a window counted once).",
            ["pass"],
            registry=r,
        )
        self.conversations_published = Counter(
            p + "conversations_published",
            "Conversation snapshots acknowledged by Kafka, by pass.",
            ["pass"],
            registry=r,
        )
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
        self.pages_fetched = Counter(
            p + "pages_fetched", "Query pages received, by pass.", ["pass"], registry=r
        )
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
        self.last_error_timestamp_seconds = Gauge(
            p + "last_error_timestamp_seconds", "When the last error was logged (unix seconds).", registry=r
        )
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
