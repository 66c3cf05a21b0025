"""The embedded broker's cluster id never starts with '-' (the storage tool would take it for an option)."""

from __future__ import annotations

import base64
import uuid

import pytest

from connector.testbed.broker import launcher


def test_a_cluster_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dash_first = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=1)
    draws = iter([dash_first, plain])
    monkeypatch.setattr(launcher.uuid, "uuid4", lambda: next(draws))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    cluster_id = launcher.random_cluster_id()
    assert not cluster_id.startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


def test_cluster_ids_are_kafka_shaped() -> None:
    for _ in range(500):
        cluster_id = launcher.random_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
