"""Real-Kafka fixtures (no mocks): one embedded broker per test session, a fresh topic per test.

- `kafka_bootstrap` (session): `host:port` of the broker. Uses `$KAFKA_BOOTSTRAP_SERVERS` when set,
  otherwise starts `connector.testbed.broker.EmbeddedKafka` from the jar cache; missing jars FAIL the tests
  with a message saying to run `make kafka` (they are never skipped).
- `kafka_topic` (function): a new, uniquely named topic with 3 partitions.
- `secure_kafka` (session): a second broker, started only by the tests that ask for it, that also listens
  with SASL_SSL (SCRAM-SHA-512) and with mutual TLS; see `SecureKafka`. Always embedded: an external
  cluster's credentials and CA are not known to the suite.
- `consume_all(bootstrap, topic, ...)`: read a topic from the beginning into `ConsumedMessage`s.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from tls_material import CertificateAuthority

from connector.errors import BrokerError
from connector.testbed.broker import EmbeddedKafka, create_topic
from connector.testbed.broker.security import BrokerSecurity, ScramUser

KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
TOPIC_PARTITIONS = 3


class ConsumedMessage(NamedTuple):
    """One record read back: key decoded as UTF-8, raw value, headers decoded as UTF-8."""

    key: str | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the session's real Kafka broker."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        yield external
        return
    broker = EmbeddedKafka(work_dir=tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start the embedded Kafka broker (run `make kafka` to fetch its jars): {exc}")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@dataclass(frozen=True)
class SecureKafka:
    """The secured test broker: its three listeners, a SCRAM user, and PEM files for clients.

    `bootstrap_servers` is PLAINTEXT (create and read topics there); `sasl_ssl_bootstrap_servers` needs
    the SCRAM user and trusts `ca_location`; `mtls_bootstrap_servers` needs a client certificate signed
    by that CA (`client_certificate_location` / `client_key_location`). `untrusted_ca_location` is a
    CA that did not sign the broker's certificate.
    """

    bootstrap_servers: str
    sasl_ssl_bootstrap_servers: str
    mtls_bootstrap_servers: str
    username: str
    password: str = field(repr=False)
    ca_location: Path
    untrusted_ca_location: Path
    client_certificate_location: Path
    client_key_location: Path


SCRAM_USERNAME = "connector"


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A broker with SASL_SSL and mutual-TLS listeners (see SecureKafka), for the session."""
    pem_dir = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority("genesys-connector test CA")
    broker_pem = ca.issue("localhost", hosts=("localhost", "127.0.0.1"))
    client_cert, client_key = ca.issue("genesys-connector test client").write(pem_dir, "client")
    (pem_dir / "ca.crt").write_text(ca.certificate_pem, encoding="ascii")
    (pem_dir / "untrusted-ca.crt").write_text(CertificateAuthority("unrelated CA").certificate_pem)
    password = f"pw-{uuid.uuid4().hex}"
    security = BrokerSecurity(
        certificate_chain=broker_pem.certificate,
        private_key=broker_pem.private_key,
        trusted_certificates=ca.certificate_pem,
        scram_users=(ScramUser(SCRAM_USERNAME, password, "SCRAM-SHA-512"),),
    )
    broker = EmbeddedKafka(work_dir=tmp_path_factory.mktemp("kafka-secure"), security=security)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start the secured embedded Kafka broker (run `make kafka` for its jars): {exc}")
    try:
        yield SecureKafka(
            bootstrap_servers=broker.bootstrap_servers,
            sasl_ssl_bootstrap_servers=broker.sasl_ssl_bootstrap_servers,
            mtls_bootstrap_servers=broker.mtls_bootstrap_servers,
            username=SCRAM_USERNAME,
            password=password,
            ca_location=pem_dir / "ca.crt",
            untrusted_ca_location=pem_dir / "untrusted-ca.crt",
            client_certificate_location=client_cert,
            client_key_location=client_key,
        )
    finally:
        broker.stop()


@pytest.fixture
def kafka_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A fresh topic with 3 partitions, named after the test."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:80].strip("-.")
    name = f"test.{base}.{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, name, TOPIC_PARTITIONS)
    return name


def consume_all(
    bootstrap: str, topic: str, *, expected: int | None = None, timeout_s: float = 30.0
) -> list[ConsumedMessage]:
    """Every record of `topic`, partition by partition in offset order.

    Reads from the beginning up to the high watermarks seen once `expected` records have arrived (or at
    once when `expected` is None), so records beyond `expected` (duplicates) are returned too. Gives up
    after `timeout_s` and returns what it has: callers assert on the result.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        return _read(consumer, topic, expected, time.monotonic() + timeout_s)
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, expected: int | None, deadline: float) -> list[ConsumedMessage]:
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    next_offset = dict.fromkeys(partitions, 0)
    out: list[ConsumedMessage] = []
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            if (expected is None or len(out) >= expected) and _at_end(consumer, topic, next_offset):
                break
            continue
        if msg.error() is not None:
            raise KafkaException(msg.error())
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])}
        key = msg.key()
        out.append(
            ConsumedMessage(
                key=key.decode("utf-8") if isinstance(key, bytes) else key,
                value=msg.value() or b"",
                headers=headers,
                partition=msg.partition(),
                offset=msg.offset(),
            )
        )
        next_offset[msg.partition()] = msg.offset() + 1
    out.sort(key=lambda m: (m.partition, m.offset))
    return out


def _at_end(consumer: Consumer, topic: str, next_offset: dict[int, int]) -> bool:
    for partition, offset in next_offset.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if max(offset, low) < high:
            return False
    return True
