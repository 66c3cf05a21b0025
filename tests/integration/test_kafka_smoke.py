"""The embedded broker is a real Kafka: produce, consume, partitions, headers; and its jar cache rules."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka_fixtures import consume_all

from connector.errors import BrokerError
from connector.testbed.broker import fetch


@pytest.mark.kafka
def test_produce_then_consume_round_trip(kafka_bootstrap: str, kafka_topic: str) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(30):
        producer.produce(
            kafka_topic, key=f"k{i % 7}", value=f"v{i}".encode(), headers=[("n", str(i).encode())]
        )
    assert producer.flush(30) == 0

    records = consume_all(kafka_bootstrap, kafka_topic, expected=30)

    assert len(records) == 30
    assert {r.value for r in records} == {f"v{i}".encode() for i in range(30)}
    assert all(r.headers["n"] == r.value.decode()[1:] for r in records)
    by_key: dict[str | None, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())  # one key -> one partition


@pytest.mark.kafka
def test_fixture_topic_has_three_partitions_and_auto_create_is_off(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[kafka_topic].partitions) == 3
    probe = Producer({"bootstrap.servers": kafka_bootstrap})
    probe.list_topics(topic="smoke.never-created", timeout=10)
    assert "smoke.never-created" not in admin.list_topics(timeout=10).topics


@pytest.mark.kafka
def test_consume_all_of_an_empty_topic_returns_nothing(kafka_bootstrap: str, kafka_topic: str) -> None:
    assert consume_all(kafka_bootstrap, kafka_topic, timeout_s=10) == []


def test_kafka_version_comes_from_the_pom() -> None:
    assert fetch.kafka_version() == "4.1.1"
    assert fetch.lib_dir(Path("/x")) == Path("/x/4.1.1/lib")


def test_missing_jars_give_a_make_kafka_hint(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="make kafka"):
        fetch.require_lib_dir(tmp_path)


def test_cache_is_incomplete_when_a_listed_jar_is_missing(tmp_path: Path) -> None:
    lib = fetch.lib_dir(tmp_path)
    lib.mkdir(parents=True)
    (lib / "a.jar").write_bytes(b"x")
    (lib / "b.jar").write_bytes(b"y")
    manifest = {"pom_sha256": fetch._pom_digest(fetch.POM_PATH), "jars": ["a.jar", "b.jar"]}
    (lib.parent / fetch.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert fetch.is_complete(lib)
    (lib / "b.jar").unlink()
    assert not fetch.is_complete(lib)


def test_cache_is_stale_when_the_pom_changed(tmp_path: Path) -> None:
    lib = fetch.lib_dir(tmp_path)
    lib.mkdir(parents=True)
    (lib / "a.jar").write_bytes(b"x")
    (lib.parent / fetch.MANIFEST_NAME).write_text(json.dumps({"pom_sha256": "old", "jars": ["a.jar"]}))
    assert not fetch.is_complete(lib)


def test_cache_root_follows_the_environment(tmp_path: Path) -> None:
    assert fetch.default_cache_root({fetch.CACHE_ENV: str(tmp_path)}) == tmp_path.resolve()
    assert fetch.default_cache_root({}).parts[-2:] == (".cache", "kafka")


def _start_runner(*args: str) -> tuple[subprocess.Popen[str], str, psutil.Process]:
    """`python -m connector.testbed.broker run` in a child process: (process, bootstrap, broker JVM).

    A runner that exits before announcing its broker is retried once (on a loaded 2-core machine the
    broker start can fail transiently); if it fails again the assertion shows its stderr, and nothing is
    left running either way.
    """
    failures: list[str] = []
    for _ in range(2):
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "connector.testbed.broker", "run", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()  # blocks until the broker is ready (or the runner died)
            if line.startswith("KAFKA_BOOTSTRAP=127.0.0.1:"):
                children = psutil.Process(proc.pid).children(recursive=True)
                (jvm,) = [c for c in children if "kafka.Kafka" in c.cmdline()]
                return proc, line.split("=", 1)[1], jvm
            proc.kill()
            proc.wait()
            proc.stdout.close()
            err.seek(0)
            failures.append(err.read()[-2000:])
    raise AssertionError(
        "the broker runner exited without announcing its broker:\n" + "\n---\n".join(failures)
    )


@pytest.mark.kafka
def test_runner_serves_clients_and_stops_its_broker_on_sigterm() -> None:
    proc, bootstrap, jvm = _start_runner("--topic", "runner.events:2")  # its own temp dir, removed on stop
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert len(admin.list_topics(timeout=10).topics["runner.events"].partitions) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        jvm.wait(timeout=10)  # raises if the broker JVM outlived the runner
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.kafka
def test_broker_jvm_dies_with_a_killed_parent(tmp_path: Path) -> None:
    proc, _, jvm = _start_runner("--work-dir", str(tmp_path))  # a killed runner cannot clean up its dir
    try:
        proc.kill()  # SIGKILL: no atexit, no stop(): only the parent-death signal is left
        proc.wait()
        jvm.wait(timeout=30)
    finally:
        if jvm.is_running():
            jvm.kill()
        if proc.stdout:
            proc.stdout.close()
