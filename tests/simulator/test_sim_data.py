"""Generated data: determinism, realistic shape and size, lifecycle mutations, live traffic, ground truth."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
from simulator_support import DAY0, FULL_INTERVAL, Api, SimFactory, base_config, parse

from connector.testbed.simulator import start_simulator
from connector.testbed.simulator.query import ConversationFacts, record_values

# Field names of the Genesys models (genesys-api.md §5): a rendered record may use nothing else.
CONVERSATION_FIELDS = {
    "conversationId",
    "conversationStart",
    "conversationEnd",
    "originatingDirection",
    "conversationInitiator",
    "divisionIds",
    "externalTag",
    "mediaStatsMinConversationMos",
    "mediaStatsMinConversationRFactor",
    "customerParticipation",
    "selfServed",
    "evaluations",
    "surveys",
    "resolutions",
    "participants",
}
PARTICIPANT_FIELDS = {
    "participantId",
    "participantName",
    "purpose",
    "userId",
    "teamId",
    "externalContactId",
    "externalOrganizationId",
    "flaggedReason",
    "screenRecording",
    "sessions",
    "attributes",
}
SESSION_FIELDS = {
    "sessionId",
    "mediaType",
    "direction",
    "ani",
    "dnis",
    "sessionDnis",
    "edgeId",
    "protocolCallId",
    "provider",
    "remote",
    "remoteNameDisplayable",
    "peerId",
    "recording",
    "requestedRoutings",
    "usedRouting",
    "selectedAgentId",
    "flowInType",
    "callbackNumbers",
    "callbackUserName",
    "addressFrom",
    "addressTo",
    "messageType",
    "roomId",
    "mediaEndpointStats",
    "flow",
    "metrics",
    "segments",
}
SEGMENT_FIELDS = {
    "segmentStart",
    "segmentEnd",
    "segmentType",
    "queueId",
    "disconnectType",
    "wrapUpCode",
    "wrapUpNote",
    "requestedRoutingSkillIds",
    "requestedLanguageId",
    "subject",
    "properties",
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
END = DAY0 + timedelta(days=2)


def sessions(record: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for participant in record["participants"]:
        for session in participant["sessions"]:
            yield participant, session


def ms(text: str) -> int:
    return int(parse(text).timestamp() * 1000)


def metric(session: dict[str, Any], name: str) -> int | None:
    values = [m["value"] for m in session.get("metrics", []) if m["name"] == name]
    return values[0] if values else None


def duration(session: dict[str, Any], *types: str) -> int:
    return sum(
        ms(s["segmentEnd"]) - ms(s["segmentStart"]) for s in session["segments"] if s["segmentType"] in types
    )


def test_same_seed_same_data_and_another_seed_other_data() -> None:
    with start_simulator(base_config(seed=5)) as one, start_simulator(base_config(seed=5)) as two:
        assert one.control.ground_truth(DAY0, END) == two.control.ground_truth(DAY0, END)
    with start_simulator(base_config(seed=6)) as other:
        assert not set(other.control.conversation_ids(DAY0, END)) & set(
            one.control.conversation_ids(DAY0, END)
        )


def test_records_are_realistic_in_size_and_variety(sim: tuple[Any, Api]) -> None:
    handle, _ = sim
    records = list(handle.control.ground_truth(DAY0, END).values())
    sizes = [len(orjson.dumps(r)) for r in records]
    assert 3000 <= statistics.median(sizes) <= 6000
    media = {s["mediaType"] for r in records for _, s in sessions(r)}
    assert {"voice", "callback", "chat", "message", "email"} <= media
    purposes = {p["purpose"] for r in records for p in r["participants"]}
    assert {"customer", "ivr", "acd", "agent", "external", "voicemail"} <= purposes
    ended = [r for r in records if "conversationEnd" in r]
    assert any(r["conversationStart"][:10] != r["conversationEnd"][:10] for r in ended)  # across midnight
    assert any(ms(r["conversationEnd"]) - ms(r["conversationStart"]) > 86_400_000 for r in ended)  # days-long
    assert any("evaluations" in r for r in records)
    assert any("surveys" in r for r in records)


def test_record_shape_ids_timestamps_and_consistent_metrics(sim: tuple[Any, Api]) -> None:
    handle, _ = sim
    records = list(handle.control.ground_truth(DAY0, DAY0 + timedelta(hours=12), ended_only=True).values())
    assert len(records) > 100
    for record in records:
        assert UUID.match(record["conversationId"])
        assert all(UUID.match(d) for d in record["divisionIds"])
        start, end = ms(record["conversationStart"]), ms(record["conversationEnd"])
        assert set(record) <= CONVERSATION_FIELDS
        for participant, session in sessions(record):
            assert set(participant) <= PARTICIPANT_FIELDS
            assert set(session) <= SESSION_FIELDS
            assert all(set(segment) <= SEGMENT_FIELDS for segment in session["segments"])
            assert UUID.match(participant["participantId"])
            assert UUID.match(session["sessionId"])
            segments = session["segments"]
            assert [s["segmentStart"] for s in segments] == sorted(s["segmentStart"] for s in segments)
            for segment in segments:
                assert INSTANT.match(segment["segmentStart"])
                assert start <= ms(segment["segmentStart"]) <= ms(segment["segmentEnd"])
                if segment["segmentType"] != "wrapup":
                    assert ms(segment["segmentEnd"]) <= end
            for item in session.get("metrics", []):
                assert INSTANT.match(item["emitDate"])
                assert isinstance(item["value"], int)
            if participant["purpose"] == "agent" and metric(session, "tHandle") is not None:
                talk, held, acw = (
                    metric(session, "tTalk"),
                    metric(session, "tHeld") or 0,
                    metric(session, "tAcw"),
                )
                assert talk == duration(session, "interact")
                assert held == duration(session, "hold")
                assert acw == duration(session, "wrapup")
                assert metric(session, "tHandle") == talk + held + acw
                wrapup = next(s for s in segments if s["segmentType"] == "wrapup")
                emitted = {m["name"]: m["emitDate"] for m in session["metrics"]}
                assert emitted["tAcw"] == wrapup["segmentEnd"]
                assert wrapup["wrapUpCode"] in handle.control.catalog()["wrapUpCodes"]


def test_history_up_to_now_has_conversations_in_progress(make_sim: SimFactory) -> None:
    handle, _api = make_sim(history_start=None, history_end=None, history_days=1, volume_per_hour=60)
    now = handle.control.now()
    open_ones = [r for r in handle.control.truth(now - timedelta(days=1), now) if "conversationEnd" not in r]
    assert open_ones
    for row in open_ones:
        record = row["record"]
        assert "conversationEnd" not in record
        segments = [seg for _, s in sessions(record) for seg in s["segments"]]
        assert any("segmentEnd" not in seg for seg in segments)
        assert all(seg["segmentType"] != "wrapup" for seg in segments)
        assert all(
            ms(seg["segmentStart"]) <= ms(row["conversationStart"]) + 10 * 86_400_000 for seg in segments
        )


def test_lifecycle_end_settle_evaluate_survey_reprocess(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    control = handle.control
    now = control.now()
    [cid] = control.add_conversations(
        1, now - timedelta(minutes=5), duration_s=3600, scenario="voice_inbound"
    )
    first = control.version(cid)
    assert "conversationEnd" not in control.record(cid)
    assert control.mutate(cid) == first + 1  # end
    ended = control.record(cid)
    assert parse(ended["conversationEnd"]) <= control.now()
    assert all("segmentEnd" in seg for _, s in sessions(ended) for seg in s["segments"])
    assert not any(seg["segmentType"] == "wrapup" for _, s in sessions(ended) for seg in s["segments"])
    control.mutate(cid)  # settle: wrap-up segment and tAcw/tHandle appear
    settled = control.record(cid)
    agent = [s for p, s in sessions(settled) if p["purpose"] == "agent"][-1]
    assert agent["segments"][-1]["segmentType"] == "wrapup"
    assert metric(agent, "tAcw") is not None
    assert control.mutate(cid) == first + 3
    assert "evaluations" in control.record(cid)
    control.mutate(cid, "survey")
    control.mutate(cid, "reprocess")
    final = control.record(cid)
    assert "surveys" in final
    assert control.version(cid) == first + 5
    # the query serves exactly the current record
    window = f"{(now - timedelta(minutes=6)).isoformat()}/{(now + timedelta(minutes=1)).isoformat()}"
    served = [r for r in api.all_pages({"interval": window}) if r["conversationId"] == cid]
    assert served == [final]


def test_scheduled_mutations_fall_due_with_the_clock(make_sim: SimFactory) -> None:
    handle, _ = make_sim(acw_delay_s=30, evaluation_probability=1.0, evaluation_delay_s=120)
    control = handle.control
    now = control.now()
    [cid] = control.add_conversations(1, now - timedelta(seconds=50), duration_s=60, scenario="chat")
    assert "conversationEnd" not in control.record(cid)
    control.advance_clock(11)
    assert control.tick() >= 1
    assert "conversationEnd" in control.record(cid)
    control.advance_clock(30)
    control.tick()
    assert any(
        seg["segmentType"] == "wrapup" for _, s in sessions(control.record(cid)) for seg in s["segments"]
    )
    control.advance_clock(120)
    control.tick()
    assert "evaluations" in control.record(cid)


def test_live_traffic_adds_and_finishes_conversations(make_sim: SimFactory) -> None:
    handle, _ = make_sim(live_rate_per_minute=1200, live_duration_s=1, acw_delay_s=1, ingest_delay_s=0)
    control = handle.control
    before = control.conversation_count()
    deadline = time.monotonic() + 20
    while control.conversation_count() < before + 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert control.conversation_count() >= before + 10
    control.pause_live()
    now = control.now()
    fresh = control.truth(now - timedelta(minutes=1), now + timedelta(seconds=1), records=False)
    assert len(fresh) >= 10
    control.advance_clock(5)
    control.tick()
    rows = control.truth(now - timedelta(minutes=1), now + timedelta(seconds=1))
    assert all("conversationEnd" in row["record"] for row in rows)
    assert all(row["version"] >= 2 for row in rows)


def test_ground_truth_equals_an_exhaustive_query(sim: tuple[Any, Api]) -> None:
    handle, api = sim
    served = {r["conversationId"]: r for r in api.all_pages({"interval": FULL_INTERVAL})}
    assert served == handle.control.ground_truth(DAY0, END)


def test_fast_filter_facts_agree_with_rendered_records(sim: tuple[Any, Api]) -> None:
    handle, _ = sim
    simulation = handle.simulation
    checks = [
        ("conversation", n)
        for n in (
            "conversationId",
            "conversationEnd",
            "conversationStart",
            "divisionId",
            "originatingDirection",
        )
    ]
    checks += [("segment", n) for n in ("mediaType", "purpose", "queueId", "direction")]
    for spec in list(simulation.store)[:400]:
        facts = ConversationFacts(spec, simulation.catalog, simulation.render)
        record = simulation.render(spec)
        for family, name in checks:
            assert set(facts(family, "dimension", name)) == set(
                record_values(record, family, "dimension", name)
            ), (
                spec,
                name,
            )
