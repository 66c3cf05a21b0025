"""producer_settings: the `kafka` config section -> librdkafka settings; secrets never shown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from connector.errors import ConfigError
from connector.librdkafka import SettingValue, producer_settings, redacted


@dataclass(frozen=True)
class KafkaCfg:
    """Stands in for connector.config's kafka model (same field names and types)."""

    bootstrap_servers: str = "b1:9092,b2:9092"
    client_id: str = "genesys-connector"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    compression_type: str = "zstd"
    linger_ms: int = 50
    queue_max_messages: int = 100000
    queue_max_kbytes: int = 262144
    delivery_timeout_ms: int = 300000
    message_max_bytes: int = 4194304
    extra: Mapping[str, SettingValue] = field(default_factory=dict)


def test_defaults_map_to_a_reliable_producer() -> None:
    settings = producer_settings(KafkaCfg())
    assert settings == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "client.id": "genesys-connector",
        "security.protocol": "PLAINTEXT",
        "compression.type": "zstd",
        "linger.ms": 50,
        "queue.buffering.max.messages": 100000,
        "queue.buffering.max.kbytes": 262144,
        "delivery.timeout.ms": 300000,
        "message.max.bytes": 4194304,
        "partitioner": "murmur2_random",
        "allow.auto.create.topics": False,
        "enable.idempotence": True,
        "acks": "all",
    }


def test_sasl_ssl_scram_maps_credentials_and_tls() -> None:
    cfg = KafkaCfg(
        security_protocol="sasl_ssl",
        sasl_mechanism="scram-sha-512",
        sasl_username="svc-genesys",
        sasl_password=SecretStr("s3cr3t-pw"),
        ssl_ca_location=Path("/etc/kafka/ca.pem"),
    )
    settings = producer_settings(cfg)
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["sasl.username"] == "svc-genesys"
    assert settings["sasl.password"] == "s3cr3t-pw"
    assert settings["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert "ssl.key.location" not in settings


def test_mutual_tls_maps_certificate_key_and_key_password() -> None:
    cfg = KafkaCfg(
        security_protocol="SSL",
        ssl_ca_location=Path("/tls/ca.crt"),
        ssl_certificate_location="/tls/client.crt",
        ssl_key_location="/tls/client.key",
        ssl_key_password=SecretStr("key-pw"),
    )
    settings = producer_settings(cfg)
    assert settings["security.protocol"] == "SSL"
    assert (settings["ssl.certificate.location"], settings["ssl.key.location"]) == (
        "/tls/client.crt",
        "/tls/client.key",
    )
    assert settings["ssl.key.password"] == "key-pw"
    assert not any(key.startswith("sasl.") for key in settings)


def test_sasl_without_credentials_names_every_missing_field() -> None:
    with pytest.raises(ConfigError) as info:
        producer_settings(KafkaCfg(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI"))
    fields = " ".join(info.value.problems)
    assert "kafka.sasl_mechanism" in fields
    assert "kafka.sasl_username" in fields
    assert "kafka.sasl_password" in fields


def test_unknown_security_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.security_protocol"):
        producer_settings(KafkaCfg(security_protocol="TLS"))


def test_extra_overrides_tuning_but_not_the_delivery_guarantee() -> None:
    settings = producer_settings(KafkaCfg(extra={"batch.num.messages": 5000, "acks": "all"}))
    assert settings["batch.num.messages"] == 5000
    with pytest.raises(ConfigError, match=r"kafka\.extra\.enable\.idempotence"):
        producer_settings(KafkaCfg(extra={"enable.idempotence": False}))
    with pytest.raises(ConfigError, match=r"kafka\.extra\.acks"):
        producer_settings(KafkaCfg(extra={"acks": 1}))


def test_redacted_hides_every_credential() -> None:
    cfg = KafkaCfg(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=SecretStr("pw-1"),
        ssl_key_password=SecretStr("pw-2"),
        extra={"sasl.oauthbearer.client.secret": "pw-3", "ssl.key.pem": "pw-4"},
    )
    shown = repr(redacted(producer_settings(cfg)))
    for secret in ("pw-1", "pw-2", "pw-3", "pw-4"):
        assert secret not in shown
    assert "'sasl.username': 'u'" in shown


def test_librdkafka_accepts_the_mapped_settings() -> None:
    cfg = KafkaCfg(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password=SecretStr("pw"),
    )
    # Constructing the producer validates every setting (an unknown key or bad value raises KafkaException).
    producer = Producer(producer_settings(replace(cfg, bootstrap_servers="127.0.0.1:1")))
    assert producer.flush(0) >= 0  # usable; the count depends on librdkafka's own startup requests
