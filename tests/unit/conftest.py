"""Fixtures shared by the unit tests: a fresh metrics registry and a fake clock per test.

The fakes themselves (fetcher, publisher, metric reader, `eventually`) are in tests/unit/fakes.py and are
imported by the tests that use them. A test module that needs a clock at another instant overrides the
`clock` fixture.
"""

from __future__ import annotations

import pytest

from connector.clock import FakeClock
from connector.metrics import ConnectorMetrics


@pytest.fixture
def metrics() -> ConnectorMetrics:
    """A ConnectorMetrics on its own registry, so tests never see each other's counts."""
    return ConnectorMetrics()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told to (or when something sleeps on it); starts 2026-05-01T00:00Z."""
    return FakeClock()
