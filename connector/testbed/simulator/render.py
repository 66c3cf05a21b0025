"""Render a `ConversationSpec` into a Genesys conversation detail record (genesys-api.md §5, §5.1).

The record is a pure function of the spec (id, start, end, scenario, queue, stage, cut, flags) and the
organisation `Catalog`: the same spec always renders byte-identical JSON, which is what lets the ground
truth and the API agree. A per-conversation `random.Random` seeded from the conversation id lays out a full
timeline (participants, sessions, segments, metrics with emitDate) over [conversationStart,
conversationEnd] (`timeline.Layout`, following the scenario's shape in `shapes`); the lifecycle stage then
decides what is visible here:

- OPEN: nothing after `cut_ms`; segments running at `cut_ms` have no segmentEnd; t-metrics not yet
  emitted are absent; no conversationEnd.
- ENDED: every segment closed, but no wrap-up segment and no tAcw/tHandle (they come after the end).
- SETTLED: everything. Evaluations, surveys and reprocessing corrections are added by flags.

Participant `attributes` are only rendered for async job results (the query returns "WithoutAttributes"):
the same participant-data map on every participant, stable per conversation; settling (agent disposition)
and a survey add a key, so job results taken at different stages differ.
"""

from __future__ import annotations

import random

from connector.testbed.simulator.isotime import format_ms
from connector.testbed.simulator.model import (
    F_EVALUATION,
    F_SURVEY,
    Catalog,
    ConversationSpec,
    Stage,
    uuid_from_bits,
)
from connector.testbed.simulator.shapes import build
from connector.testbed.simulator.timeline import Json, Layout, Session, acw_duration_ms

__all__ = ["acw_duration_ms", "last_segment_end_ms", "render_record"]

_ATTR_SALT = 0x0A77
_LATE_SALT = 0x1A7E


def last_segment_end_ms(spec: ConversationSpec) -> int | None:
    """The latest segmentEnd the rendered record shows (None while open): orderBy segmentEnd uses it."""
    if spec.stage == Stage.OPEN:
        return None
    if spec.stage == Stage.SETTLED and spec.scenario_info.has_agent:
        return spec.end_ms + acw_duration_ms(spec)
    return spec.end_ms


def _render_metrics(sess: Session, cut: int | None, settled: bool) -> list[Json]:
    out: list[Json] = []
    for name, value, emit, post in sess.metrics:
        if post and not settled:
            continue
        if cut is not None and emit > cut:
            continue
        out.append({"name": name, "value": value, "emitDate": format_ms(emit)})
    return out


def _render_segments(sess: Session, cut: int | None, settled: bool) -> list[Json]:
    out: list[Json] = []
    for seg in sess.segs:
        if seg.wrapup and not settled:
            continue
        if cut is not None and seg.start > cut:
            continue
        item: Json = {"segmentStart": format_ms(seg.start)}
        if cut is None or seg.end <= cut:
            item["segmentEnd"] = format_ms(seg.end)
            item.update(seg.data)
        else:
            item.update(seg.data)
            item.pop("disconnectType", None)
        out.append(item)
    return out


def _participants(layout: Layout, cut: int | None, settled: bool, attrs: dict[str, str] | None) -> list[Json]:
    out: list[Json] = []
    for part in layout.parts:
        sessions: list[Json] = []
        for sess in part.sessions:
            segs = _render_segments(sess, cut, settled)
            if not segs:
                continue
            data = dict(sess.data)
            if cut is None:
                data.update(sess.final)
            metrics = _render_metrics(sess, cut, settled)
            if metrics:
                data["metrics"] = metrics
            data["segments"] = segs
            sessions.append(data)
        if not sessions:
            continue
        pdata = dict(part.data)
        if attrs is not None:
            pdata["attributes"] = dict(attrs)
        pdata["sessions"] = sessions
        out.append(pdata)
    return out


def _attributes(spec: ConversationSpec) -> dict[str, str]:
    """Participant data: drawn from the conversation id (stable), plus keys that later stages set."""
    rng = random.Random(spec.seed() ^ _ATTR_SALT)
    attrs = {
        "ivr.Language": rng.choice(("en-US", "es-US", "fr-CA")),
        "ivr.Intent": rng.choice(("billing", "sales", "support", "cancel", "order")),
        "customer.Tier": rng.choice(("standard", "silver", "gold")),
        "customer.AccountId": f"ACC-{rng.randrange(100_000, 999_999)}",
        "crm.CaseNumber": f"{rng.randrange(10_000_000):08d}",
    }
    disposition = rng.choice(("resolved", "follow-up", "escalated", "no-action"))
    if spec.stage == Stage.SETTLED and spec.scenario_info.has_agent:
        attrs["agent.Disposition"] = disposition  # set by the agent script during wrap-up
    if spec.flags & F_SURVEY:
        attrs["survey.Offered"] = "true"
    return attrs


def _late_additions(spec: ConversationSpec, layout: Layout, doc: Json) -> None:
    """Evaluations, surveys and reprocessing corrections (only on ended conversations)."""
    rng = random.Random(spec.seed() ^ _LATE_SALT)
    cat, settle = layout.cat, spec.end_ms + layout.acw
    agent = layout.agents_used[-1] if layout.agents_used else None
    if spec.flags & F_EVALUATION and agent:
        form_id, form_name = cat.evaluation_forms[rng.randrange(len(cat.evaluation_forms))]
        # Whole numbers: AnalyticsEvaluation declares both scores as integers (SDK 269.0.0).
        score = rng.randrange(55, 101)
        doc["evaluations"] = [
            {
                "evaluationId": uuid_from_bits(rng.getrandbits(128)),
                "evaluatorId": cat.evaluators[rng.randrange(len(cat.evaluators))],
                "userId": agent,
                "queueId": layout.queue.queue_id,
                "formId": form_id,
                "formName": form_name,
                "contextId": uuid_from_bits(rng.getrandbits(128)),
                "eventTime": format_ms(settle + 1000 + rng.randrange(60_000)),
                "evaluationStatus": "Finished",
                "released": True,
                "rescored": False,
                "deleted": False,
                "oTotalScore": score,
                "oTotalCriticalScore": min(100, score + rng.randrange(0, 11)),
            }
        ]
    if spec.flags & F_SURVEY:
        form_id, form_name = cat.survey_forms[0 if layout.sc.media_type in ("voice", "callback") else 1]
        done = settle + 2000 + rng.randrange(60_000)
        doc["surveys"] = [
            {
                "surveyId": uuid_from_bits(rng.getrandbits(128)),
                "surveyFormId": form_id,
                "surveyFormName": form_name,
                "surveyFormContextId": uuid_from_bits(rng.getrandbits(128)),
                "eventTime": format_ms(done),
                "userId": agent,
                "queueId": layout.queue.queue_id,
                "surveyStatus": "Finished",
                "surveyType": "Web",
                "surveyPromoterScore": rng.randrange(0, 11),
                "surveyCompletedDate": format_ms(done),
                "oSurveyTotalScore": rng.randrange(40, 101),
            }
        ]
    if spec.reprocess_count:
        last_seg = doc["participants"][-1]["sessions"][-1]["segments"][-1]
        last_seg["properties"] = [
            {"property": "dataCorrection", "propertyType": "integer", "value": str(spec.reprocess_count)}
        ]


def _add_segments(doc: Json, count: int) -> None:
    """`count` more segments on the last session: copies of its last one, numbered (a long thread)."""
    sessions = [s for p in doc["participants"] for s in p["sessions"]]
    if not sessions or count <= 0:
        return
    segments = sessions[-1]["segments"]
    last = segments[-1]
    for i in range(count):
        part = {"property": "part", "propertyType": "integer", "value": str(i)}
        segments.append({**last, "segmentType": "interact", "properties": [part]})


def render_record(
    spec: ConversationSpec, catalog: Catalog, *, attributes: bool = False, extra_segments: int = 0
) -> Json:
    """The conversation detail record as Genesys returns it (a fresh dict; safe to mutate).

    `extra_segments` > 0 makes it very long (`SimulatorControl.inflate`)."""
    layout = Layout(spec, catalog)
    build(layout)
    is_open = spec.stage == Stage.OPEN
    cut = max(spec.cut_ms, spec.start_ms) if is_open else None
    settled = spec.stage == Stage.SETTLED
    sc = layout.sc
    doc: Json = {"conversationId": spec.cid, "conversationStart": format_ms(spec.start_ms)}
    if not is_open:
        doc["conversationEnd"] = format_ms(spec.end_ms)
    doc["originatingDirection"] = sc.direction
    doc["divisionIds"] = [catalog.division_of(spec.queue)]
    if sc.direction == "inbound":
        doc["customerParticipation"] = True
    if layout.self_served:
        doc["selfServed"] = True
    if not is_open and "voice" in sc.media_types:
        stats = [s.final["mediaEndpointStats"][0] for p in layout.parts for s in p.sessions if s.final]
        if stats:
            doc["mediaStatsMinConversationMos"] = min(x["minMos"] for x in stats)
            doc["mediaStatsMinConversationRFactor"] = min(x["minRFactor"] for x in stats)
    doc["participants"] = _participants(layout, cut, settled, _attributes(spec) if attributes else None)
    if not is_open:
        _late_additions(spec, layout, doc)
    _add_segments(doc, extra_segments)
    return doc
