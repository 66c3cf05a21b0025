"""The demo's progress line is rewritten in place with `\\r`: it must fit an 80-column terminal."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from connector.metrics import ConnectorMetrics
from connector.testbed.demo import PROGRESS_WIDTH, _progress_line


def _metrics(scale: int) -> ConnectorMetrics:
    metrics = ConnectorMetrics(CollectorRegistry())
    metrics.windows_completed.labels(**{"pass": "0"}).inc(14 * scale)
    metrics.windows_completed.labels(**{"pass": "1"}).inc(28 * scale)
    metrics.conversations_published.labels(**{"pass": "0"}).inc(5478 * scale)
    metrics.conversations_delivered.labels("job").inc(5100 * scale)
    metrics.lag_seconds.set(5400)
    metrics.api_budget_utilization_ratio.set(0.95)
    metrics.api_requests.labels(endpoint="query", code="200").inc(812 * scale)
    metrics.api_retries.labels(reason="503").inc(12 * scale)
    return metrics


def test_progress_line_of_a_demo_run_fits_80_columns_whole() -> None:
    line = _progress_line(_metrics(1), elapsed=90)
    assert len(line) <= PROGRESS_WIDTH < 80
    shown_all = ("jobs 5100", "windows 14+28", "sent 5478", "lag 1.5h", "API 812 (12 retried)", "95%")
    for shown in shown_all:
        assert shown in line, line


def test_progress_line_of_a_long_run_never_wraps() -> None:
    assert len(_progress_line(_metrics(1000), elapsed=86_400)) <= PROGRESS_WIDTH
