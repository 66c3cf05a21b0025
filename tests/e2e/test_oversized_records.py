"""End to end: one conversation larger than the topic's `max.message.bytes` (real broker + simulator).

- default policy (`kafka.oversized_records: fail`): the connector exits 1 with a message naming the topic's
  `max.message.bytes` (the limit that was hit, not the producer's);
- `truncate`: every conversation is delivered, the oversized one reduced and flagged by headers with its
  original size and hash, `genesys_connector_records_truncated_total{limit="topic"}` is 1, a settlement
  re-scan does not publish it again, and a later version that fits is published in full (both re-scans
  are made due shortly after the first pass: overdue ones would be collapsed away).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_fixtures import ConnectorRunner, Setting, connector_env, wait_for

from connector.kafka.records import content_hash, encode_record, value_hash
from connector.testbed.broker import create_topic
from connector.testbed.broker.launcher import free_ports
from connector.testbed.reconcile import TopicMessage, read_topic
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka

TOPIC_LIMIT = 20_480  # the topic's max.message.bytes; ordinary simulated conversations are 2-7 KB
INFLATED_SEGMENTS = 300  # makes one conversation ~90 KB


def _history() -> tuple[datetime, datetime]:
    """One past hour whose conversations are settled (evaluations and surveys already applied)."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    return end - timedelta(hours=1), end


def _delay_until(window_end: datetime, seconds_from_now: int) -> str:
    """A re-scan delay that makes a re-scan of the window ending at `window_end` due that far from now."""
    return f"{int((datetime.now(UTC) - window_end).total_seconds()) + seconds_from_now}s"


def _small_topic_env(
    bootstrap: str, prefix: str, sim_url: str, state: Path, settings: Mapping[str, Setting]
) -> tuple[str, dict[str, str]]:
    """A fresh topic that accepts record batches up to TOPIC_LIMIT, and a connector environment for it."""
    topic = f"{prefix}.{datetime.now(UTC).strftime('%H%M%S%f')}"
    create_topic(bootstrap, topic, 3, config={"max.message.bytes": str(TOPIC_LIMIT)})
    env = connector_env(
        api_url=sim_url,
        bootstrap=bootstrap,
        topic=topic,
        state_dir=state,
        settings={
            "windows.max_catchup_length": "1h",
            # the sizes the broker checks are the sizes of the values (no compression) ...
            "kafka.compression_type": "none",
            # ... and batches of ordinary conversations stay below the topic's limit
            "kafka.extra": '{"batch.size": 16000}',
            **settings,
        },
    )
    return topic, env


def _inflated_simulator() -> tuple[Any, datetime, datetime]:
    start, end = _history()
    config = SimulatorConfig(seed=21, history_start=start, history_end=end, volume_per_hour=120.0)
    return start_simulator(config), start, end


def _fatal_error(log_text: str) -> str:
    for line in log_text.splitlines():
        if line.startswith("{"):
            entry = orjson.loads(line)
            if entry.get("msg") == "connector stopped on a fatal error":
                return str(entry.get("error", ""))
    raise AssertionError(f"no fatal error logged:\n{log_text[-3000:]}")


def test_default_policy_exits_1_naming_the_topics_max_message_bytes(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, tmp_path: Path
) -> None:
    sim_cm, start, end = _inflated_simulator()
    with sim_cm as sim:
        big = next(iter(sim.control.ground_truth(start, end)))
        sim.control.inflate(big, INFLATED_SEGMENTS)
        assert len(encode_record(sim.control.record(big))) > 4 * TOPIC_LIMIT
        settings = {"windows.start": start, "windows.end": end, "windows.rescan_delays": "[]"}
        topic, env = _small_topic_env(
            kafka_bootstrap, "e2e-oversized-fail", sim.base_url, tmp_path / "state", settings
        )
        proc = connector_runner.start(env)
        assert proc.wait(120) == 1, proc.log_tail()
    error = _fatal_error(proc.log_path.read_text())
    assert big in error
    assert f"the limit hit is the max.message.bytes of topic '{topic}' = {TOPIC_LIMIT} bytes" in error
    assert "kafka.oversized_records: truncate" in error
    assert "limit hit is kafka.message_max_bytes" not in error


def _metric(base: str, name: str, labels: dict[str, str]) -> float:
    try:
        text = httpx.get(base + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1.0
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_truncate_policy_delivers_every_conversation_and_flags_the_oversized_one(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, tmp_path: Path
) -> None:
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    sim_cm, start, end = _inflated_simulator()
    with sim_cm as sim:
        truth = sim.control.ground_truth(start, end)
        big = next(iter(truth))
        sim.control.inflate(big, INFLATED_SEGMENTS)
        full = sim.control.record(big)
        assert len(encode_record(full)) > 4 * TOPIC_LIMIT
        settings = {
            "windows.start": start,
            "kafka.oversized_records": "truncate",
            # Re-scans of an hour that ended hours ago are due only if their delay is still ahead when the
            # first pass starts (an overdue one would be collapsed away): due 45 s and 75 s from now.
            "windows.rescan_delays": orjson.dumps([_delay_until(end, 45), _delay_until(end, 75)]).decode(),
            "metrics.port": str(port),
        }
        topic, env = _small_topic_env(
            kafka_bootstrap, "e2e-oversized-truncate", sim.base_url, tmp_path / "state", settings
        )
        proc = connector_runner.start(env)

        # first pass and the first re-scan: the oversized conversation is fetched twice, published once
        assert wait_for(
            lambda: (
                _metric(base, "genesys_connector_conversations_fetched_total", {"pass": "1"}) >= len(truth)
            ),
            120,
        ), proc.log_tail()
        assert _metric(base, "genesys_connector_records_truncated_total", {"limit": "topic"}) == 1.0
        assert _metric(base, "genesys_connector_records_truncated_total", {"limit": "producer"}) == 0.0
        first = _by_key(read_topic(kafka_bootstrap, topic))
        assert set(first) == set(truth)  # every conversation delivered
        assert len(first[big]) == 1  # the re-scan saw the same version: not published again
        cut = first[big][0]
        assert cut.headers["genesys.truncated"] == "true"
        assert cut.headers["genesys.original_bytes"] == str(len(encode_record(full)))
        assert cut.headers["genesys.original_hash"] == content_hash(full)
        assert cut.headers["genesys.content_hash"] == value_hash(cut.value)
        assert len(cut.value) < TOPIC_LIMIT
        reduced = orjson.loads(cut.value)
        assert reduced["conversationId"] == big
        assert [p["participantId"] for p in reduced["participants"]] == [
            p["participantId"] for p in full["participants"]
        ]
        for cid, messages in first.items():
            if cid != big:
                assert "genesys.truncated" not in messages[-1].headers
                assert messages[-1].value == encode_record(truth[cid])

        # a later version that fits (seen by the second re-scan) is published in full
        sim.control.inflate(big, 0)
        small = sim.control.record(big)
        assert wait_for(
            lambda: (
                _metric(base, "genesys_connector_conversations_fetched_total", {"pass": "2"}) >= len(truth)
            ),
            120,
        ), proc.log_tail()
        proc.terminate()
        assert proc.wait(60) == 0, proc.log_tail()
    latest = _by_key(read_topic(kafka_bootstrap, topic))[big]
    assert len(latest) == 2
    assert latest[-1].value == encode_record(small)
    assert "genesys.truncated" not in latest[-1].headers


def _by_key(messages: list[TopicMessage]) -> dict[str, list[TopicMessage]]:
    out: dict[str, list[TopicMessage]] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        out.setdefault(message.key, []).append(message)
    return out
