"""Secured listeners for the embedded Kafka broker: SASL_SSL (SCRAM) and SSL with client certificates.

Production clusters (MSK, Confluent Cloud, Strimzi) speak SASL_SSL, so the test suite runs the connector
against a broker that does too. `BrokerSecurity` describes what to add to the plaintext broker:

- a `SASL_SSL` listener authenticating SCRAM users, who are created when the storage is formatted
  (`kafka-storage format --add-scram`: KRaft keeps SCRAM credentials in the metadata log);
- an `SSL` listener with `ssl.client.auth=required` (mutual TLS: the client proves itself with a
  certificate signed by a CA in `trusted_certificates`).

All TLS material is PEM text configured inline (`ssl.keystore.type=PEM`), so no keytool or JKS is needed.
The PLAINTEXT listener stays: it carries inter-broker traffic and lets tests create and read topics
without credentials. This module only renders broker settings; making certificates is the caller's job
(the tests use the `cryptography` package, which the connector itself does not need).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from connector.errors import BrokerError

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_SSL_LISTENER = "SASL_SSL"
MTLS_LISTENER = "SSL"
# StorageTool parses `MECH=[name=...,password=...]`: keep values to characters that need no quoting.
_SCRAM_VALUE = re.compile(r"^[A-Za-z0-9._@+-]+$")


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential created at format time."""

    name: str
    password: str = field(repr=False)
    mechanism: str = "SCRAM-SHA-512"

    def format_argument(self) -> str:
        """The `--add-scram` argument of `kafka-storage format`."""
        if self.mechanism not in SCRAM_MECHANISMS:
            raise BrokerError(f"SCRAM user {self.name!r}: mechanism must be one of {SCRAM_MECHANISMS}")
        if not (_SCRAM_VALUE.match(self.name) and _SCRAM_VALUE.match(self.password)):
            raise BrokerError(
                f"SCRAM user {self.name!r}: name and password may only use letters, digits and ._@+-"
            )
        return f"{self.mechanism}=[name={self.name},password={self.password}]"


@dataclass(frozen=True)
class BrokerSecurity:
    """What the secured listeners use: the broker's certificate chain and key, the CA(s) it trusts for
    client certificates, and the SCRAM users. PEM text, not paths; the key must not be encrypted."""

    certificate_chain: str = field(repr=False)
    private_key: str = field(repr=False)
    trusted_certificates: str = field(repr=False)
    scram_users: tuple[ScramUser, ...] = ()

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """SASL mechanisms the SASL_SSL listener enables (those of the users; SCRAM-SHA-512 if none)."""
        found = sorted({user.mechanism for user in self.scram_users})
        return tuple(found) or ("SCRAM-SHA-512",)

    def format_arguments(self) -> list[str]:
        """Extra arguments for `kafka-storage format`: one `--add-scram` per user."""
        out: list[str] = []
        for user in self.scram_users:
            out += ["--add-scram", user.format_argument()]
        return out

    def properties(self) -> str:
        """Broker properties for both secured listeners (appended to server.properties)."""
        lines = [
            "# --- secured listeners (connector.testbed.broker.security) ---",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.certificate.chain={_escape(self.certificate_chain)}",
            f"ssl.keystore.key={_escape(self.private_key)}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.certificates={_escape(self.trusted_certificates)}",
            "ssl.client.auth=none",
            f"listener.name.{MTLS_LISTENER.lower()}.ssl.client.auth=required",
            f"sasl.enabled.mechanisms={','.join(self.mechanisms)}",
        ]
        prefix = f"listener.name.{SASL_SSL_LISTENER.lower()}"
        lines += [
            f"{prefix}.{mech.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            for mech in self.mechanisms
        ]
        return "\n".join(lines) + "\n"


def _escape(pem: str) -> str:
    """PEM text as one java.util.Properties value: newlines become `\\n` escapes."""
    return pem.strip().replace("\\", "\\\\").replace("\r", "").replace("\n", "\\n")
