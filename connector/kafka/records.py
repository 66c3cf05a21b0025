"""The Kafka message format: what one conversation snapshot looks like on the topic.

This is the contract with downstream consumers (docs/ARCHITECTURE.md, "Kafka message format"):

- key: the `conversationId` (UTF-8);
- value: the conversation object as Genesys returned it - every field and value - as canonical JSON
  (UTF-8, keys sorted at every level, no whitespace; `encode_record`). JSON objects are unordered, so
  only the key order can differ from the API response; in exchange a consumer can check
  `blake2b(value, digest_size=16).hexdigest() == headers["genesys.content_hash"]`, and the connector
  serialises each record once for both the value and the hash;
- headers, all UTF-8 strings:
  `genesys.content_hash` - hex BLAKE2b-128 of the canonical JSON (`content_hash`),
  `genesys.ended` - `true` when `conversationEnd` is present, else `false`,
  `genesys.window` - `<start>/<end>` of the observing window (ISO-8601 Z, ms),
  `genesys.pass` - `0` first pass, `1..n` n-th settlement re-scan, `open` follow-up of an open conversation,
  `job` read through an async job (backfill or settlement),
  `genesys.attributes` - `carried` only on a query/multi-get snapshot whose participant attributes were
  carried over from the last job snapshot (the query never returns them),
  `genesys.observed_at` - when the page was received (ISO-8601 Z, ms), and
  `connector.version` (added by `connector.kafka.publisher.KafkaPublisher`, which owns the producer).

Nothing here does I/O. Typical use, one serialisation per record:

    value = encode_record(record)
    digest = value_hash(value)
    if last_published_hash(record["conversationId"]) != digest:
        msg = build_message(record, window=w, pass_label=0, observed_at=t, value=value, record_hash=digest)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from connector.clock import format_instant

HEADER_CONTENT_HASH = "genesys.content_hash"
HEADER_ENDED = "genesys.ended"
HEADER_WINDOW = "genesys.window"
HEADER_PASS = "genesys.pass"  # noqa: S105 - a header name, not a password
HEADER_OBSERVED_AT = "genesys.observed_at"
HEADER_ATTRIBUTES = "genesys.attributes"
HEADER_VERSION = "connector.version"


def encode_record(record: Mapping[str, Any]) -> bytes:
    """The Kafka value: the conversation as canonical JSON (all fields; keys sorted, no whitespace)."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def value_hash(value: bytes) -> str:
    """Hex BLAKE2b-128 of an `encode_record` value: the `genesys.content_hash` header."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def content_hash(record: Mapping[str, Any]) -> str:
    """Hex BLAKE2b-128 of the canonical JSON of `record`.

    Two snapshots of a conversation hash equal exactly when their content is equal, whatever the key order.
    """
    return value_hash(encode_record(record))


class WindowLike(Protocol):
    """What the message format needs of a window (connector.windows.Window fits): `[start, end)`."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


PassLabel = int | Literal["open", "job"]


@dataclass(frozen=True)
class OutboundMessage:
    """One Kafka message: key (conversationId), value (JSON bytes) and the `genesys.*` headers."""

    key: str
    value: bytes
    headers: Mapping[str, str]

    @property
    def content_hash(self) -> str:
        """The `genesys.content_hash` header (what the change store remembers once acked)."""
        return self.headers[HEADER_CONTENT_HASH]


def build_message(
    record: Mapping[str, Any],
    *,
    window: WindowLike,
    pass_label: PassLabel,
    observed_at: datetime,
    value: bytes | None = None,
    record_hash: str | None = None,
    attributes_carried: bool = False,
) -> OutboundMessage:
    """The message for one conversation snapshot.

    Pass `value` (from `encode_record`) and/or `record_hash` (from `value_hash`) when they were already
    computed for change detection; they must describe this same record.
    """
    conversation_id = record.get("conversationId")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ValueError("a conversation record without a string conversationId cannot be keyed")
    valid_int = isinstance(pass_label, int) and not isinstance(pass_label, bool) and pass_label >= 0
    if not (valid_int or pass_label in ("open", "job")):
        raise ValueError(f"pass_label must be an int >= 0, 'open' or 'job', not {pass_label!r}")
    if value is None:
        value = encode_record(record)
    headers = {
        HEADER_CONTENT_HASH: record_hash if record_hash is not None else value_hash(value),
        HEADER_ENDED: "true" if record.get("conversationEnd") is not None else "false",
        HEADER_WINDOW: f"{format_instant(window.start)}/{format_instant(window.end)}",
        HEADER_PASS: str(pass_label),
        HEADER_OBSERVED_AT: format_instant(observed_at),
    }
    if attributes_carried:
        headers[HEADER_ATTRIBUTES] = "carried"
    return OutboundMessage(key=conversation_id, value=value, headers=headers)
