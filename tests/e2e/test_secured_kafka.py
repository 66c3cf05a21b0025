"""The connector against a secured Kafka broker (SASL_SSL with SCRAM-SHA-512, and mutual TLS).

Production clusters (MSK, Confluent Cloud, Strimzi) need these settings, so they are proven end to end:
`genesys-connector run` as a subprocess, configured by environment variables like an operator would,
against the `secure_kafka` broker. Right credentials deliver; a wrong password or an untrusted CA stops
the connector with exit 1 and a message naming the settings to check - as soon as librdkafka reports the
failure, not after the 30 s startup timeout that ends in "Kafka is unreachable" - and the password never
appears in the output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_fixtures import ConnectorRunner, Setting, config_instant, connector_env, create_test_topic
from kafka_fixtures import SecureKafka, consume_all

from connector.kafka.records import HEADER_VERSION
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka

# The startup check waits min(30 s, delivery timeout) before "Kafka is unreachable"; the connector runs
# with the default delivery timeout, so a failure reported well within this bound was not a timeout. The
# bound is on the check itself, timed by the connector's own log lines (from creating the producer to the
# fatal error), so a slow interpreter start on a loaded machine does not count against it.
FAIL_FAST_S = 20.0
_LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) ", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    """A connector run that ended on its own: exit code, combined output, wall time."""

    code: int
    output: str
    elapsed_s: float

    def _logged_at(self, text: str) -> float:
        """Seconds since midnight of the first text-format log line containing `text`."""
        line = next((line for line in self.output.splitlines() if text in line), None)
        match = _LOG_TIME.match(line or "")
        assert match, f"no log line with {text!r}:\n{self.output}"
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)

    @property
    def check_s(self) -> float:
        """How long the Kafka startup check took before the connector stopped on its error."""
        began = self._logged_at("Kafka producer for topic")
        return (self._logged_at("connector stopped on a fatal error") - began) % 86400


def _sasl_ssl(secure: SecureKafka, *, password: str, ca: Path) -> dict[str, Setting]:
    return {
        "kafka.bootstrap_servers": secure.sasl_ssl_bootstrap_servers,
        "kafka.security_protocol": "SASL_SSL",
        "kafka.sasl_mechanism": "SCRAM-SHA-512",
        "kafka.sasl_username": secure.username,
        "kafka.sasl_password": password,
        "kafka.ssl_ca_location": str(ca),
    }


def _mtls(secure: SecureKafka, *, client_certificate: bool = True) -> dict[str, Setting]:
    settings: dict[str, Setting] = {
        "kafka.bootstrap_servers": secure.mtls_bootstrap_servers,
        "kafka.security_protocol": "SSL",
        "kafka.ssl_ca_location": str(secure.ca_location),
    }
    if client_certificate:
        settings["kafka.ssl_certificate_location"] = str(secure.client_certificate_location)
        settings["kafka.ssl_key_location"] = str(secure.client_key_location)
    return settings


def _run_until_exit(secure: SecureKafka, tmp_path: Path, kafka: dict[str, Setting]) -> Outcome:
    """Run the connector against a real topic (so only the security settings can fail) until it exits.

    The Genesys URL is a closed port: the Kafka check comes first, so a run that got past it would fail
    on Genesys instead - with a different message, which the callers' assertions would catch.
    """
    topic = create_test_topic(secure.bootstrap_servers, "e2e-secured-fail")
    env = connector_env(
        api_url="http://127.0.0.1:9",
        bootstrap=secure.bootstrap_servers,
        topic=topic,
        state_dir=tmp_path / "state",
        settings={"logging.format": "text", **kafka},
    )
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "connector", "run"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    return Outcome(result.returncode, result.stdout + result.stderr, time.monotonic() - began)


def _delivers(
    secure: SecureKafka, tmp_path: Path, runner: ConnectorRunner, kafka: dict[str, Setting]
) -> None:
    """The connector, configured with `kafka`, publishes the simulator's conversations and stops
    cleanly on SIGTERM; the messages are read back over the broker's PLAINTEXT listener."""
    start = config_instant(datetime.now(UTC) - timedelta(hours=2))
    with start_simulator(SimulatorConfig(seed=5, history_start=start, volume_per_hour=120)) as sim:
        topic = create_test_topic(secure.bootstrap_servers, "e2e-secured")
        env = connector_env(
            api_url=sim.base_url,
            bootstrap=secure.bootstrap_servers,
            topic=topic,
            state_dir=tmp_path / "state",
            settings={"windows.start": start, "windows.max_catchup_length": "20m", **kafka},
        )
        proc = runner.start(env)
        messages = consume_all(secure.bootstrap_servers, topic, expected=5, timeout_s=90)
        assert len(messages) >= 5, proc.log_tail()
        assert all(m.key and HEADER_VERSION in m.headers for m in messages)
        proc.terminate()
        assert proc.wait(60) == 0, proc.log_tail()
    assert secure.password not in proc.log_path.read_text(errors="replace")


def _assert_failed_fast(outcome: Outcome, *expected: str) -> None:
    """Exit 1 with a KafkaConnectionError naming `expected`, well before the startup timeout."""
    assert outcome.code == 1, outcome.output
    assert "KafkaConnectionError" in outcome.output
    for text in expected:
        assert text in outcome.output
    assert "unreachable" not in outcome.output
    assert outcome.check_s < FAIL_FAST_S, f"check took {outcome.check_s:.1f} s:\n{outcome.output}"


def test_delivers_over_sasl_ssl_with_scram_credentials_and_ca(
    secure_kafka: SecureKafka, tmp_path: Path, connector_runner: ConnectorRunner
) -> None:
    env = _sasl_ssl(secure_kafka, password=secure_kafka.password, ca=secure_kafka.ca_location)
    _delivers(secure_kafka, tmp_path, connector_runner, env)


def test_wrong_sasl_password_is_an_authentication_error_within_seconds(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    wrong = "not-the-password-0d5e"
    env = _sasl_ssl(secure_kafka, password=wrong, ca=secure_kafka.ca_location)
    outcome = _run_until_exit(secure_kafka, tmp_path, env)
    _assert_failed_fast(
        outcome, "rejected the SASL credentials of user 'connector' (SCRAM-SHA-512)", "kafka.sasl_password"
    )
    assert wrong not in outcome.output
    assert secure_kafka.password not in outcome.output


def test_untrusted_ca_is_a_tls_error_within_seconds(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    env = _sasl_ssl(secure_kafka, password=secure_kafka.password, ca=secure_kafka.untrusted_ca_location)
    outcome = _run_until_exit(secure_kafka, tmp_path, env)
    _assert_failed_fast(
        outcome,
        "TLS handshake with Kafka at",
        "certificate is not trusted: check kafka.ssl_ca_location",
        "certificate verify failed",  # librdkafka's own words, for searching
    )
    assert secure_kafka.password not in outcome.output


def test_delivers_over_mutual_tls_with_a_client_certificate(
    secure_kafka: SecureKafka, tmp_path: Path, connector_runner: ConnectorRunner
) -> None:
    _delivers(secure_kafka, tmp_path, connector_runner, _mtls(secure_kafka))


def test_mutual_tls_without_a_client_certificate_is_a_tls_error_within_seconds(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    outcome = _run_until_exit(secure_kafka, tmp_path, _mtls(secure_kafka, client_certificate=False))
    _assert_failed_fast(outcome, "the broker sent a TLS alert", "kafka.ssl_certificate_location")
