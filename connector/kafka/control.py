"""Messages of the optional control topic (`kafka.control_topic`): range-final events, watermark heartbeats.

Why: a stream processor aggregating conversations per hour or day cannot tell from the data topic alone
when an hour is complete - late indexing, re-scans and the settling job keep adding to it for hours or
days. The control topic says so explicitly. The nearest precedent is Debezium's transaction metadata
topic: an END event per transaction carries its `event_count`, so a consumer knows when it has seen all of
it. Ours is the same idea for time ranges of conversation start (docs/completeness.md shows consumers).

Two message types, both canonical JSON (UTF-8, keys sorted) with a `type` and a `schema_version`:

- **range_final** - key = the range start (`2026-05-01T09:00:00.000Z`), one per settled range (an hour
  of conversation start), produced only after every message of the range was acknowledged by Kafka.
  Value: `range` {start, end}, `topic` (the data topic), `expected` (conversations the reference holds),
  `delivered` (distinct conversations of the range acknowledged in the data topic), `missing`
  (expected - delivered, >= 0), `complete` (missing == 0), `settled_by` ("job": an async job's result
  after `dataAvailabilityDate` passed the range; "rescan": the last settlement re-scan),
  `data_availability_date` (the data lake's watermark at settlement, or null), `found_late` (by source),
  `topic_offsets` (optional: per data partition, the offset after the range's last acknowledged message),
  `settled_at`,
  `connector_version`. A range settled again (a correction) produces a new event with the same key, so a
  compacted control topic keeps the latest verdict.
- **watermark** - key = `watermark` (one key: compaction keeps the last), produced periodically: `watermark`
  (the first pass is complete up to here: conversations that started before it have been published at
  least once), `settled_through` (every range before it is final, null if none yet), `emitted_at`,
  `topic`, `connector_version`. It lets a consumer tell "nothing final yet" from "the connector is down".

Header `connector.control_type` repeats the type, so consumers can filter without parsing the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from connector.clock import format_instant

SCHEMA_VERSION = 1
RANGE_FINAL = "range_final"
WATERMARK = "watermark"
WATERMARK_KEY = "watermark"
HEADER_CONTROL_TYPE = "connector.control_type"
SETTLED_BY = ("job", "rescan")
SettledBy = Literal["job", "rescan"]


@dataclass(frozen=True)
class ControlMessage:
    """One message for the control topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class RangeFinal:
    """A range of conversation start declared final (see the module docstring for each field)."""

    start: datetime
    end: datetime
    topic: str
    expected: int
    delivered: int
    settled_by: SettledBy
    settled_at: datetime
    connector_version: str
    data_availability_date: datetime | None = None
    found_late: Mapping[str, int] = field(default_factory=dict)
    topic_offsets: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        if self.settled_by not in SETTLED_BY:
            raise ValueError(f"settled_by must be one of {SETTLED_BY} (got {self.settled_by!r})")
        if self.start >= self.end:
            raise ValueError("a range must start before it ends")
        if self.expected < 0 or self.delivered < 0:
            raise ValueError("counts cannot be negative")

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.delivered)

    @property
    def complete(self) -> bool:
        return self.missing == 0


@dataclass(frozen=True)
class Watermark:
    """The periodic heartbeat."""

    watermark: datetime | None
    settled_through: datetime | None
    emitted_at: datetime
    topic: str
    connector_version: str


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def _encode(data: Mapping[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def range_final_message(event: RangeFinal) -> ControlMessage:
    """The control-topic message of a settled range (key = its start)."""
    value = {
        "type": RANGE_FINAL,
        "schema_version": SCHEMA_VERSION,
        "range": {"start": format_instant(event.start), "end": format_instant(event.end)},
        "topic": event.topic,
        "expected": event.expected,
        "delivered": event.delivered,
        "missing": event.missing,
        "complete": event.complete,
        "settled_by": event.settled_by,
        "data_availability_date": _instant(event.data_availability_date),
        "found_late": dict(event.found_late),
        "topic_offsets": None
        if event.topic_offsets is None
        else {str(p): o for p, o in sorted(event.topic_offsets.items())},
        "settled_at": format_instant(event.settled_at),
        "connector_version": event.connector_version,
    }
    return ControlMessage(
        format_instant(event.start).encode(), _encode(value), [(HEADER_CONTROL_TYPE, RANGE_FINAL.encode())]
    )


def watermark_message(beat: Watermark) -> ControlMessage:
    """The periodic watermark heartbeat (key `watermark`)."""
    value = {
        "type": WATERMARK,
        "schema_version": SCHEMA_VERSION,
        "watermark": _instant(beat.watermark),
        "settled_through": _instant(beat.settled_through),
        "emitted_at": format_instant(beat.emitted_at),
        "topic": beat.topic,
        "connector_version": beat.connector_version,
    }
    return ControlMessage(WATERMARK_KEY.encode(), _encode(value), [(HEADER_CONTROL_TYPE, WATERMARK.encode())])


def parse_control(value: bytes) -> RangeFinal | Watermark:
    """Inverse of the two builders (for consumers written in Python, and tests). Raises ValueError."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a control message: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError("not a control message of schema version 1")
    if data.get("type") == WATERMARK:
        return Watermark(
            watermark=_parse(data["watermark"]),
            settled_through=_parse(data["settled_through"]),
            emitted_at=_required(data["emitted_at"]),
            topic=str(data["topic"]),
            connector_version=str(data["connector_version"]),
        )
    if data.get("type") == RANGE_FINAL:
        offsets = data.get("topic_offsets")
        return RangeFinal(
            start=_required(data["range"]["start"]),
            end=_required(data["range"]["end"]),
            topic=str(data["topic"]),
            expected=int(data["expected"]),
            delivered=int(data["delivered"]),
            settled_by=data["settled_by"],
            settled_at=_required(data["settled_at"]),
            connector_version=str(data["connector_version"]),
            data_availability_date=_parse(data.get("data_availability_date")),
            found_late={str(k): int(v) for k, v in (data.get("found_late") or {}).items()},
            topic_offsets=None if offsets is None else {int(p): int(o) for p, o in offsets.items()},
        )
    raise ValueError(f"unknown control message type {data.get('type')!r}")


def _parse(text: object) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


def _required(text: object) -> datetime:
    parsed = _parse(text)
    if parsed is None:
        raise ValueError("a required instant is missing")
    return parsed
