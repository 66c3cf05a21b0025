"""Attribute carry-over: job records carry participant attributes, which the query never returns.

A later query or multi-get snapshot of such a conversation gets the last job snapshot's attributes carried
over (by participantId, header `genesys.attributes: carried`) before it is hashed, so the latest message
per key never loses them (unless a later job shows Genesys removed them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from connector.state.changes import ChangeStore

if TYPE_CHECKING:
    from connector.passes import InFlightSnapshots


def carry_attributes(
    records: list[dict[str, Any]], changes: ChangeStore, in_flight: InFlightSnapshots
) -> tuple[list[dict[str, Any]], set[str]]:
    """Query/multi-get records with the participant attributes of the last job snapshot carried over.

    Only participants without `attributes` get them, matched by participantId; returns the records
    (copies where something was carried) and the ids of those conversations. A job snapshot still
    waiting for its ack counts as the last one (a follow-up may run while a job page is in flight).
    """
    stored = changes.attributes_many([r["conversationId"] for r in records])
    out: list[dict[str, Any]] = []
    carried: set[str] = set()
    for record in records:
        cid = record["conversationId"]
        raw = in_flight.attributes(cid) or stored.get(cid)  # a job snapshot not yet acked first
        merged = None if raw is None else with_attributes(record, orjson.loads(raw))
        if merged is None:
            out.append(record)
        else:
            out.append(merged)
            carried.add(record["conversationId"])
    return out, carried


def attributes_json(record: Mapping[str, Any]) -> bytes:
    """`{participantId: attributes}` of a job record as JSON (`{}`: Genesys returned none)."""
    found: dict[str, Any] = {}
    for participant in record.get("participants") or ():
        if isinstance(participant, dict):
            pid, attrs = participant.get("participantId"), participant.get("attributes")
            if isinstance(pid, str) and isinstance(attrs, dict):
                found[pid] = attrs
    return orjson.dumps(found, option=orjson.OPT_SORT_KEYS)


def with_attributes(record: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """`record` with `attributes[participantId]` set on each participant that has none (a copy), or None
    when nothing was carried (no participant matched, or every one already has attributes)."""
    participants = record.get("participants")
    if not attributes or not isinstance(participants, list):
        return None
    merged: list[Any] = []
    carried = False
    for participant in participants:
        pid = participant.get("participantId") if isinstance(participant, dict) else None
        if isinstance(pid, str) and pid in attributes and "attributes" not in participant:
            merged.append({**participant, "attributes": attributes[pid]})
            carried = True
        else:
            merged.append(participant)
    return {**record, "participants": merged} if carried else None
