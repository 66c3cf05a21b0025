"""End to end: `genesys-connector verify --read-topic` against the simulator and the real broker.

A real `genesys-connector run` (subprocess) delivers a bounded range of the simulator's history, with
ties made common (`start_granularity_s`) and shuffled on every request (`unstable_tie_order`), into a
topic. `verify` (subprocess, real HTTP, real Kafka consumer) must then exit 0 on that topic - answered by
a job (the data lake has the range), and by the tie-safe query when the data lake is pinned before it -
and 1 on a second topic holding the same messages minus a few keys, naming exactly those as missing.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from e2e_fixtures import ConnectorRunner, connector_env, create_test_topic, iso_z

from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def verify(
    env: dict[str, str], start: datetime, end: datetime, *extra: str
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "connector", "verify", f"--from={iso_z(start)}", f"--to={iso_z(end)}", *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def copy_topic_without(bootstrap: str, source: str, target: str, left_out: set[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for message in read_topic(bootstrap, source):
        if message.key not in left_out:
            producer.produce(target, key=message.key.encode(), value=message.value)
    assert producer.flush(60) == 0


def test_verify_exits_0_on_a_complete_topic_and_1_naming_what_a_partial_one_lacks(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, tmp_path: Path
) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    start = end - timedelta(hours=2)
    config = SimulatorConfig(
        seed=31,
        history_start=start - timedelta(hours=1),
        history_end=end + timedelta(hours=1),
        volume_per_hour=300.0,
        diurnal=False,
        unstable_tie_order=True,
        start_granularity_s=60,
        rate_limit=100_000,
    )
    with start_simulator(config) as sim:
        truth = sim.control.ground_truth(start, end)
        topic = create_test_topic(kafka_bootstrap, "e2e-verify")
        env = connector_env(
            api_url=sim.base_url,
            bootstrap=kafka_bootstrap,
            topic=topic,
            state_dir=tmp_path / "state",
            extra={
                "GENESYS_CONNECTOR__GENESYS__PAGE_SIZE": "25",
                "GENESYS_CONNECTOR__WINDOWS__START": iso_z(start),
                "GENESYS_CONNECTOR__WINDOWS__END": iso_z(end),
                "GENESYS_CONNECTOR__WINDOWS__MAX_CATCHUP_LENGTH": "1h",
                "GENESYS_CONNECTOR__WINDOWS__RESCAN_DELAYS": "[]",
                "GENESYS_CONNECTOR__GENESYS__VERIFY_BUDGET_SHARE": "0.5",
            },
        )
        proc = connector_runner.start(env)
        assert proc.wait(180) == 0, proc.log_tail()
        assert reconcile(truth, read_topic(kafka_bootstrap, topic)).missing == []

        sim.control.reset_counters()
        complete = verify(env, start, end, "--read-topic", "--json")
        assert complete.returncode == 0, complete.stdout + complete.stderr
        report = orjson.loads(complete.stdout)
        assert report["missing"] == 0
        # the range ended three hours ago: the data lake (an hour behind) has it, a job answers
        assert report["provisional"] is False
        assert {part["source"] for part in report["reference"]} == {"job"}
        assert sum(p["in_genesys"] for p in report["periods"]) == len(truth)
        assert complete.stderr == ""  # progress only on a terminal
        verify_requests = sum(sim.control.counters().get("query", {}).values())

        # With the data lake behind the range, the tie-safe query (read twice) is the reference: provisional.
        sim.control.set_data_lake(pin=start)
        by_query = verify(env, start, end, "--read-topic", "--json")
        sim.control.set_data_lake(unpin=True)
        assert by_query.returncode == 0, by_query.stdout + by_query.stderr
        queried = orjson.loads(by_query.stdout)
        assert queried["provisional"] is True
        assert {part["source"] for part in queried["reference"]} == {"query"}
        assert sum(p["in_genesys"] for p in queried["periods"]) == len(truth)

        left_out = set(sorted(truth)[:5])
        partial = create_test_topic(kafka_bootstrap, "e2e-verify-partial")
        copy_topic_without(kafka_bootstrap, topic, partial, left_out)
        lacking = verify(
            {**env, "GENESYS_CONNECTOR__KAFKA__TOPIC": partial}, start, end, "--read-topic", "--hourly"
        )
        assert lacking.returncode == 1, lacking.stdout + lacking.stderr
        assert "MISSING: 5 conversation(s)" in lacking.stdout
        rows = [line for line in lacking.stdout.splitlines() if line[:4].isdigit()]
        assert len(rows) == 2  # one per hour of the range
        assert sum(int(line.split()[4]) for line in rows) == 5  # the "missing" column
        as_json = orjson.loads(
            verify(
                {**env, "GENESYS_CONNECTOR__KAFKA__TOPIC": partial}, start, end, "--read-topic", "--json"
            ).stdout
        )
        assert set(as_json["missing_ids"]) == left_out
    print(
        f"\n[e2e] verify: {len(truth)} conversations in 2 h; Genesys reference from a job, {verify_requests} "
        f"query requests; the partial topic lacks {sorted(left_out)}"
    )
    print(lacking.stdout)
