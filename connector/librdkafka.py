"""The one path from the `kafka` config section to librdkafka settings, and its check without connecting.

`producer_settings` is what `run` gives the producer; `check_producer_settings` is what `check-config` and
`load_config` run, so a setting `run` would reject is rejected before anything connects. Secret values are
masked by `connector.secrets`' one rule (`redacted`). This module sits beside `config`, below both the
Genesys and the Kafka side, the way quix-streams keeps one `as_librdkafka_dict` on its config.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from connector.errors import ConfigError
from connector.secrets import Redactor, is_secret_name, mask_settings

SettingValue = str | int | float | bool
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENFORCED_SETTINGS: Mapping[str, SettingValue] = {"enable.idempotence": True, "acks": "all"}
PUBLISHER_SETTINGS = ("error_cb", "logger", "on_delivery", "stats_cb", "throttle_cb", "oauth_cb")


class SecretLike(Protocol):
    """pydantic.SecretStr or anything else that hides its value until asked."""

    def get_secret_value(self) -> str: ...


class KafkaSettingsLike(Protocol):
    """The `kafka` config section as `producer_settings` reads it (connector.config's model fits)."""

    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str | None: ...
    @property
    def sasl_username(self) -> str | None: ...
    @property
    def sasl_password(self) -> SecretLike | None: ...
    @property
    def ssl_ca_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_certificate_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_key_location(self) -> str | os.PathLike[str] | None: ...
    @property
    def ssl_key_password(self) -> SecretLike | None: ...
    @property
    def compression_type(self) -> str: ...
    @property
    def linger_ms(self) -> int: ...
    @property
    def queue_max_messages(self) -> int: ...
    @property
    def queue_max_kbytes(self) -> int: ...
    @property
    def delivery_timeout_ms(self) -> int: ...
    @property
    def message_max_bytes(self) -> int: ...
    @property
    def extra(self) -> Mapping[str, SettingValue]: ...


def _sasl_settings(cfg: KafkaSettingsLike, protocol: str) -> dict[str, SettingValue]:
    mechanism = (cfg.sasl_mechanism or "").upper()
    username = cfg.sasl_username or ""
    password = cfg.sasl_password.get_secret_value() if cfg.sasl_password is not None else ""
    problems = []
    if mechanism not in SASL_MECHANISMS:
        problems.append(f"kafka.sasl_mechanism: must be one of {SASL_MECHANISMS} with {protocol}")
    if not username:
        problems.append(f"kafka.sasl_username: required with {protocol}")
    if not password:
        problems.append(f"kafka.sasl_password: required with {protocol}")
    if problems:
        raise ConfigError(problems)
    return {"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password}


def _security_settings(cfg: KafkaSettingsLike) -> dict[str, SettingValue]:
    protocol = cfg.security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            [f"kafka.security_protocol: {cfg.security_protocol!r} is not one of {SECURITY_PROTOCOLS}"]
        )
    out: dict[str, SettingValue] = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        out.update(_sasl_settings(cfg, protocol))
    for key, location in (
        ("ssl.ca.location", cfg.ssl_ca_location),
        ("ssl.certificate.location", cfg.ssl_certificate_location),
        ("ssl.key.location", cfg.ssl_key_location),
    ):
        if location is not None:
            out[key] = os.fspath(location)
    if cfg.ssl_key_password is not None:
        out["ssl.key.password"] = cfg.ssl_key_password.get_secret_value()
    return out


def producer_settings(cfg: KafkaSettingsLike) -> dict[str, SettingValue]:
    """librdkafka settings for the `kafka` config section: reliable (idempotent, acks=all) by construction.

    `extra` is applied last, except that it cannot turn off idempotence or acks=all (ConfigError).
    Topics are never auto-created by the producer: a missing topic is a configuration error.
    """
    settings: dict[str, SettingValue] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": cfg.client_id,
        **_security_settings(cfg),
        "compression.type": cfg.compression_type,
        "linger.ms": cfg.linger_ms,
        "queue.buffering.max.messages": cfg.queue_max_messages,
        "queue.buffering.max.kbytes": cfg.queue_max_kbytes,
        "delivery.timeout.ms": cfg.delivery_timeout_ms,
        "message.max.bytes": cfg.message_max_bytes,
        "partitioner": "murmur2_random",  # Java-client compatible key -> partition mapping
        "allow.auto.create.topics": False,
        **ENFORCED_SETTINGS,
    }
    problems = [
        f"kafka.extra.{key}: cannot override {key}={ENFORCED_SETTINGS[key]!r} (delivery guarantee)"
        for key, value in cfg.extra.items()
        if key in ENFORCED_SETTINGS and str(value).lower() not in (str(ENFORCED_SETTINGS[key]).lower(), "-1")
    ]
    problems += [
        f"kafka.extra.{key}: set by the connector itself, cannot be configured"
        for key in cfg.extra
        if key in PUBLISHER_SETTINGS
    ]
    if problems:
        raise ConfigError(problems)
    settings.update(cfg.extra)
    return settings


#: librdkafka properties of `extra` a consumer of the same cluster also needs (connection and security).
_CONSUMER_EXTRA_PREFIXES = ("sasl.", "ssl.", "security.", "socket.", "broker.", "client.dns.")


def consumer_settings(cfg: KafkaSettingsLike, *, group_id: str) -> dict[str, SettingValue]:
    """librdkafka settings for a read-only consumer of the same cluster (`verify --read-topic`).

    Same connection and security as the producer; from `extra` only the connection/security properties
    (the producer-only ones would only draw warnings). Offsets are never committed.
    """
    settings: dict[str, SettingValue] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": f"{cfg.client_id}-verify",
        **_security_settings(cfg),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
    }
    settings.update({k: v for k, v in cfg.extra.items() if k.startswith(_CONSUMER_EXTRA_PREFIXES)})
    return settings


def check_producer_settings(cfg: KafkaSettingsLike) -> None:
    """Everything `producer_settings` and librdkafka would reject at `run`, found without connecting.

    librdkafka validates every property (unknown names, bad values) when a producer is created. The probe
    has no `bootstrap.servers` (it would start connecting) and no file locations (it checks the settings,
    not the machine: a CA file mounted only in the pod must not fail a check elsewhere), and is closed at
    once. Raises ConfigError with one line per problem; secret values never appear in it.
    """
    settings = producer_settings(cfg)
    probe = {
        key: value
        for key, value in settings.items()
        if key != "bootstrap.servers" and key not in _FILE_SETTINGS
    }
    try:
        producer = Producer({**probe, "logger": _SILENT})
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError([f"kafka: {describe_rejection(exc, settings)}"]) from None
    producer.close()


#: librdkafka properties naming files it opens when a producer is created.
_FILE_SETTINGS = frozenset(
    {
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.crl.location",
        "ssl.keystore.location",
        "ssl.engine.location",
    }
)
_SILENT = logging.getLogger(__name__ + ".probe")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def describe_rejection(exc: Exception, settings: Mapping[str, SettingValue]) -> str:
    """librdkafka's reason for refusing `settings`, with any secret value masked."""
    text = describe_kafka_exception(exc) if isinstance(exc, KafkaException) else str(exc)
    return f"the producer settings were rejected: {settings_redactor(settings).redact(text).strip()}"


def settings_redactor(settings: Mapping[str, SettingValue]) -> Redactor:
    """A `Redactor` that masks the credentials of `settings` (secret-named properties) in any text."""
    return Redactor(str(value) for key, value in settings.items() if is_secret_name(key) and str(value))


def redacted(settings: Mapping[str, object]) -> dict[str, object]:
    """A copy of producer settings safe to log: credential values replaced by `***`."""
    return mask_settings(settings)


def describe_kafka_exception(exc: KafkaException) -> str:
    """`CODE: text` of the KafkaError inside a KafkaException."""
    err = exc.args[0] if exc.args else None
    return f"{err.name()}: {err.str()}" if isinstance(err, KafkaError) else str(exc)
