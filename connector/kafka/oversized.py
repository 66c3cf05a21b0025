"""Conversations too large for Kafka: which limit was hit, and a reduced record that fits (opt-in).

Two limits can refuse a message, and they are fixed in different places:

- the producer's own `message.max.bytes` (`kafka.message_max_bytes`): librdkafka refuses the message in
  `produce()` itself, before anything is sent (limit `producer`);
- the topic's `max.message.bytes` (the broker's `message.max.bytes` when the topic does not override it):
  the broker rejects the record batch and the delivery report fails (limit `topic`).

librdkafka reports both with the same error code, `MSG_SIZE_TOO_LARGE` (10, text "Broker: Message size too
large" even for the local refusal), so only *where* the error arrives tells them apart.

`kafka.oversized_records: fail` (the default) stops the connector with a message naming the limit.
`truncate` publishes `reduce_record`'s reduction instead: the conversation-level fields and each participant's
identity are kept, and the largest nested parts are dropped until the value fits. The message is flagged by
headers (`genesys.truncated`, `genesys.original_bytes`, `genesys.original_hash`, `genesys.truncated_fields`)
so that nothing is dropped silently. Nothing here does I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from connector.kafka.records import HEADER_CONTENT_HASH, OutboundMessage, encode_record, value_hash

OversizedPolicy = Literal["fail", "truncate"]
#: Which limit refused a message: the producer's `message.max.bytes` or the topic's `max.message.bytes`.
SizeLimit = Literal["producer", "topic"]

HEADER_TRUNCATED = "genesys.truncated"
HEADER_ORIGINAL_BYTES = "genesys.original_bytes"
HEADER_ORIGINAL_HASH = "genesys.original_hash"
HEADER_TRUNCATED_FIELDS = "genesys.truncated_fields"

#: Fields of a participant that identify it; kept when everything else about it must go.
IDENTITY_FIELDS = (
    "participantId",
    "participantName",
    "purpose",
    "userId",
    "externalContactId",
    "externalOrganizationId",
)
#: Per-record overhead of the Kafka v2 record and batch framing, bytes (librdkafka reserves about this).
_FRAMING_BYTES = 128
#: Longest `genesys.truncated_fields` value (the list of dropped paths is cut there).
_MAX_FIELDS_HEADER = 256


def size_margin(limit_bytes: int) -> int:
    """Bytes kept free below a limit: framing, varints and headers estimates are not exact."""
    return max(1024, limit_bytes // 50)


def wire_size(message: OutboundMessage, extra_header_bytes: int = 0) -> int:
    """About what one message weighs against a size limit: key, value, headers, framing."""
    headers = sum(len(k) + len(v.encode("utf-8")) for k, v in message.headers.items()) + extra_header_bytes
    return len(message.key.encode("utf-8")) + len(message.value) + headers + _FRAMING_BYTES


@dataclass(frozen=True)
class Reduction:
    """A reduced record: its canonical JSON `value` and the generic paths of what was dropped."""

    value: bytes
    dropped: tuple[str, ...]


@dataclass
class _Part:
    """One droppable field: the object holding it, its key, a generic path, and its encoded size."""

    holder: dict[str, Any]
    key: str
    path: str
    size: int


def _droppable_parts(record: dict[str, Any]) -> list[_Part]:
    """Every list or object nested directly in the conversation, a participant or a session.

    `participants` and `sessions` themselves are not in the list: they are reduced by the later steps.
    """
    parts: list[_Part] = []

    def collect(holder: dict[str, Any], prefix: str, keep: str) -> None:
        for key, value in holder.items():
            if key != keep and isinstance(value, list | dict) and value:
                parts.append(_Part(holder, key, prefix + key, len(orjson.dumps(value)) + len(key) + 4))

    collect(record, "", "participants")
    for participant in _dicts(record.get("participants")):
        collect(participant, "participants[].", "sessions")
        for session in _dicts(participant.get("sessions")):
            collect(session, "participants[].sessions[].", "")
    return parts


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def reduce_record(record: Mapping[str, Any], max_value_bytes: int) -> Reduction | None:
    """The record made to fit in `max_value_bytes` of canonical JSON, or None if even its identity cannot.

    Steps, each only as far as needed: drop the largest nested lists/objects one by one (segments,
    metrics, mediaEndpointStats, evaluations...); then drop every participant's sessions; then keep only
    each participant's identity (`IDENTITY_FIELDS`). Conversation-level scalar fields are always kept.
    """
    work: dict[str, Any] = copy.deepcopy(dict(record))
    value = encode_record(work)
    if len(value) <= max_value_bytes:
        return Reduction(value, ())
    dropped: set[str] = set()
    size = len(value)
    for part in sorted(_droppable_parts(work), key=lambda p: p.size, reverse=True):
        if part.holder.pop(part.key, None) is None:
            continue  # the same object reached twice (shared in a dict built in code, not parsed JSON)
        dropped.add(part.path)
        size -= part.size
        if size <= max_value_bytes:
            value = encode_record(work)
            size = len(value)  # the estimate was off by separators only: re-check exactly
            if size <= max_value_bytes:
                return Reduction(value, tuple(sorted(dropped)))
    for step in (_drop_sessions, _identities_only):
        if step(work):
            dropped.add("participants[].sessions" if step is _drop_sessions else "participants[].*")
        value = encode_record(work)
        if len(value) <= max_value_bytes:
            return Reduction(value, tuple(sorted(dropped)))
    return None


def _drop_sessions(record: dict[str, Any]) -> bool:
    changed = False
    for participant in _dicts(record.get("participants")):
        changed = participant.pop("sessions", None) is not None or changed
    return changed


def _identities_only(record: dict[str, Any]) -> bool:
    participants = _dicts(record.get("participants"))
    reduced = [{k: p[k] for k in IDENTITY_FIELDS if k in p} for p in participants]
    record["participants"] = reduced
    return any(len(r) != len(p) for r, p in zip(reduced, participants, strict=True))


def truncated_message(message: OutboundMessage, limit_bytes: int) -> OutboundMessage | None:
    """`message` with its value reduced to fit under `limit_bytes` (with a margin), flagged in headers.

    The `genesys.content_hash` header describes the reduced value (consumers can still verify it); the
    hash and size of the full conversation are in `genesys.original_hash` / `genesys.original_bytes`.
    None when even the smallest reduction does not fit.
    """
    already = message.headers.get(HEADER_TRUNCATED) == "true"  # cut again, for a smaller limit
    headers = {
        **message.headers,
        HEADER_TRUNCATED: "true",
        HEADER_ORIGINAL_BYTES: str(len(message.value)),
        HEADER_ORIGINAL_HASH: message.headers.get(HEADER_CONTENT_HASH, value_hash(message.value)),
        HEADER_CONTENT_HASH: "0" * 32,
        HEADER_TRUNCATED_FIELDS: "",
    }
    if already:
        for name in (HEADER_ORIGINAL_BYTES, HEADER_ORIGINAL_HASH):
            headers[name] = message.headers[name]
    frame = wire_size(OutboundMessage(message.key, b"", headers), extra_header_bytes=_MAX_FIELDS_HEADER)
    reduction = reduce_record(orjson.loads(message.value), limit_bytes - size_margin(limit_bytes) - frame)
    if reduction is None:
        return None
    dropped = set(reduction.dropped)
    if already:
        dropped.update(f for f in message.headers.get(HEADER_TRUNCATED_FIELDS, "").split(",") if f)
    headers[HEADER_CONTENT_HASH] = value_hash(reduction.value)
    headers[HEADER_TRUNCATED_FIELDS] = ",".join(sorted(dropped))[:_MAX_FIELDS_HEADER]
    return OutboundMessage(key=message.key, value=reduction.value, headers=headers)


@dataclass
class SizeLimits:
    """The two limits a message can hit, as far as they are known, and what to do when one refuses it.

    `topic_bytes` is the topic's `max.message.bytes`, None until the startup check has read it (or when
    the client may not describe the topic). Pure: the publisher does the producing.
    """

    topic: str
    policy: OversizedPolicy
    producer_bytes: int
    topic_bytes: int | None = None

    def text(self, limit: SizeLimit) -> str:
        """The limit named as a reader would look for it (setting, and value when known)."""
        if limit == "producer":
            return f"kafka.message_max_bytes (librdkafka message.max.bytes = {self.producer_bytes} bytes)"
        known = f" = {self.topic_bytes} bytes" if self.topic_bytes is not None else ""
        return f"the max.message.bytes of topic {self.topic!r}{known}"

    def hint(self, message: OutboundMessage, limit: SizeLimit) -> str:
        """Which limit refused `message`, and what to do about it (for the fatal error's message)."""
        size = wire_size(message)
        original = message.headers.get(HEADER_ORIGINAL_BYTES)
        prefix = f"{original} bytes before truncation, {size} after; " if original else f"{size} bytes; "
        limit_text = self.text(limit)
        if limit == "topic" and self.topic_bytes is not None and size < self.topic_bytes:
            return f"{prefix}refused with its record batch, which exceeded {limit_text}: set " + (
                "kafka.message_max_bytes at most that"
            )
        if self.policy == "truncate":
            return f"{prefix}even its reduced form exceeds {limit_text}"
        return f"{prefix}the limit hit is {limit_text}: raise it, or set kafka.oversized_records: truncate"

    def replacement(self, message: OutboundMessage, limit: SizeLimit) -> OutboundMessage | None:
        """What to send instead: the message itself if it fits the limit on its own, else a reduced one.

        A broker rejects a whole record batch, so a message that fits may have been rejected along with
        an oversized neighbour: it is sent again unchanged. When the topic's limit is unknown (no right to
        describe the topic), each refusal halves the target size.
        """
        size = wire_size(message)
        limit_bytes = self.producer_bytes if limit == "producer" else self.topic_bytes
        if limit_bytes is None:
            return truncated_message(message, size // 2)
        if limit == "topic" and size <= limit_bytes - size_margin(limit_bytes):
            return message
        return truncated_message(message, limit_bytes)
