"""Fixtures shared by the unit tests: a fresh metrics registry and a fake clock per test, and for the
command tests an environment without connector settings and a listening port that sees any connection.

The fakes themselves (fetcher, publisher, metric reader, `eventually`) are in tests/unit/fakes.py and are
imported by the tests that use them. A test module that needs a clock at another instant overrides the
`clock` fixture.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

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


@pytest.fixture
def no_connector_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the files a test writes configure the connector (no GENESYS_CONNECTOR__ variable leaks in)."""
    for name in list(os.environ):
        if name.upper().startswith("GENESYS_CONNECTOR__"):
            monkeypatch.delenv(name)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that would see any connection attempt (Kafka or Genesys) while a command runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()
