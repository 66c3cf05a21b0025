"""Render a `ConversationSpec` into a Genesys conversation detail record (genesys-api.md §5, §5.1).

The record is a pure function of the spec (id, start, end, scenario, queue, stage, cut, flags) and the
organisation `Catalog`: the same spec always renders byte-identical JSON, which is what lets the ground
truth and the API agree. A per-conversation `random.Random` seeded from the conversation id lays out a full
timeline (participants, sessions, segments, metrics with emitDate) over [conversationStart,
conversationEnd]; the lifecycle stage then decides what is visible:

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
from typing import Any

from connector.testbed.simulator.isotime import format_ms
from connector.testbed.simulator.model import (
    F_EVALUATION,
    F_SURVEY,
    Catalog,
    ConversationSpec,
    Scenario,
    Stage,
    uuid_from_bits,
)

_ATTR_SALT = 0x0A77
_LATE_SALT = 0x1A7E

Json = dict[str, Any]


class _Seg:
    __slots__ = ("data", "end", "start", "wrapup")

    def __init__(self, start: int, end: int, data: Json, *, wrapup: bool = False) -> None:
        self.start = start
        self.end = end
        self.data = data
        self.wrapup = wrapup


class _Sess:
    __slots__ = ("data", "final", "metrics", "segs")

    def __init__(self, data: Json) -> None:
        self.data = data
        self.segs: list[_Seg] = []
        self.metrics: list[tuple[str, int, int, bool]] = []  # name, value, emit_ms, post-end (wrap-up)
        self.final: Json = {}  # fields known only once the conversation ended (media stats)

    def seg(self, start: int, end: int, seg_type: str, **extra: Any) -> _Seg:
        seg = _Seg(start, end, {"segmentType": seg_type, **extra}, wrapup=seg_type == "wrapup")
        self.segs.append(seg)
        return seg

    def metric(self, name: str, value: int, emit_ms: int, *, post: bool = False) -> None:
        self.metrics.append((name, max(0, value), emit_ms, post))


class _Part:
    __slots__ = ("data", "sessions")

    def __init__(self, data: Json) -> None:
        self.data = data
        self.sessions: list[_Sess] = []

    def session(self, rng: random.Random, media_type: str, direction: str, **extra: Any) -> _Sess:
        sess = _Sess({"sessionId": _uuid(rng), "mediaType": media_type, "direction": direction, **extra})
        self.sessions.append(sess)
        return sess


def _uuid(rng: random.Random) -> str:
    return uuid_from_bits(rng.getrandbits(128))


def _phone(rng: random.Random) -> str:
    return f"tel:+1{rng.randrange(201, 989)}555{rng.randrange(1000, 10000)}"


def acw_duration_ms(spec: ConversationSpec) -> int:
    """After-call work of the (last) agent, derived from the id so sorting can use it without rendering."""
    seed = spec.seed()
    if spec.scenario_info.media_type == "email":
        return 60_000 + seed % 540_000
    return 8_000 + seed % 112_000


def last_segment_end_ms(spec: ConversationSpec) -> int | None:
    """The latest segmentEnd the rendered record shows (None while open): orderBy segmentEnd uses it."""
    if spec.stage == Stage.OPEN:
        return None
    if spec.stage == Stage.SETTLED and spec.scenario_info.has_agent:
        return spec.end_ms + acw_duration_ms(spec)
    return spec.end_ms


class _Layout:
    """Builds the full timeline of one conversation. One instance per render; not shared."""

    def __init__(self, spec: ConversationSpec, catalog: Catalog) -> None:
        self.spec = spec
        self.cat = catalog
        self.sc: Scenario = spec.scenario_info
        self.rng = random.Random(spec.seed())
        self.start = spec.start_ms
        self.end = max(spec.end_ms, spec.start_ms + 1000)
        self.queue = catalog.queues[spec.queue]
        self.parts: list[_Part] = []
        self.acw = acw_duration_ms(spec)
        self.agents_used: list[str] = []

    # --- helpers -------------------------------------------------------------------------------
    def frac(self, lo: float, hi: float) -> int:
        """A duration that is a random fraction of the conversation length."""
        return int((self.end - self.start) * self.rng.uniform(lo, hi))

    def bounded(self, mean_ms: float, cap_ms: int, floor_ms: int = 500) -> int:
        return int(max(floor_ms, min(cap_ms, self.rng.expovariate(1.0 / mean_ms) + floor_ms)))

    def pick_agent(self) -> tuple[str, str, str]:
        pool = self.cat.queue_agents[self.spec.queue] or tuple(range(len(self.cat.agents)))
        agent = self.cat.agents[pool[self.rng.randrange(len(pool))]]
        self.agents_used.append(agent.user_id)
        return agent.user_id, agent.name, agent.team_id

    def participant(self, purpose: str, name: str, **extra: Any) -> _Part:
        data = {"participantId": _uuid(self.rng), "participantName": name, "purpose": purpose, **extra}
        part = _Part(data)
        self.parts.append(part)
        return part

    # --- building blocks -------------------------------------------------------------------------
    def acd(self, media: str, q0: int, q1: int, peer: str, *, abandoned: bool = False) -> None:
        part = self.participant("acd", self.queue.name)
        sess = part.session(
            self.rng,
            media,
            "inbound",
            peerId=peer,
            requestedRoutings=["Standard"],
            usedRouting="Standard",
            flowInType="ivr" if media == "voice" else "inbound",
        )
        skill = self.cat.skills[self.rng.randrange(len(self.cat.skills))]
        sess.seg(
            q0,
            q1,
            "interact",
            queueId=self.queue.queue_id,
            requestedRoutingSkillIds=[skill],
            requestedLanguageId=self.cat.languages[0],
            disconnectType="peer" if abandoned else "transfer",
        )
        sess.metric("nOffered", 1, q0)
        sess.metric("tAbandon" if abandoned else "tAcd", q1 - q0, q1)

    def agent(
        self,
        media: str,
        q0: int,
        q1: int,
        end: int,
        peer: str,
        *,
        disconnect: str = "peer",
        direction: str = "inbound",
    ) -> _Sess:
        user_id, name, team = self.pick_agent()
        part = self.participant("agent", name, userId=user_id, teamId=team)
        sess = part.session(self.rng, media, direction, peerId=peer, usedRouting="Standard", recording=True)
        alert = min(self.bounded(5_000, 15_000, 1_500), max(1, q1 - q0))
        qid = self.queue.queue_id
        sess.seg(q1 - alert, q1, "alert", queueId=qid)
        held = 0
        if media in ("voice", "callback") and self.rng.random() < 0.35 and end - q1 > 60_000:
            h0 = q1 + int((end - q1) * self.rng.uniform(0.2, 0.6))
            h1 = h0 + min(self.bounded(25_000, 120_000, 5_000), (end - h0) // 2)
            sess.seg(q1, h0, "interact", queueId=qid)
            sess.seg(h0, h1, "hold", queueId=qid)
            sess.seg(h1, end, "interact", queueId=qid, disconnectType=disconnect)
            held = h1 - h0
        else:
            sess.seg(q1, end, "interact", queueId=qid, disconnectType=disconnect)
        # An agent who leaves early (transfer) finishes wrap-up no later than the last agent does.
        acw = (
            self.acw
            if end == self.end
            else min(8_000 + self.rng.randrange(60_000), self.end - end + self.acw)
        )
        code = self.cat.wrapup_codes[self.rng.randrange(len(self.cat.wrapup_codes))]
        wrap: Json = {"queueId": qid, "wrapUpCode": code}
        if self.rng.random() < 0.4:
            wrap["wrapUpNote"] = self.rng.choice(
                ("Refund issued", "Callback promised", "Resolved", "Escalated")
            )
        sess.seg(end, end + acw, "wrapup", **wrap)
        talk = end - q1 - held
        sess.metric("tAlert", alert, q1)
        sess.metric("tAnswered", q1 - q0, q1)
        sess.metric("tTalk", talk, end)
        sess.metric("tTalkComplete", talk, end)
        if held:
            sess.metric("tHeld", held, end)
            sess.metric("tHeldComplete", held, end)
        sess.metric("tAcw", acw, end + acw, post=True)
        sess.metric("tHandle", talk + held + acw, end + acw, post=True)
        return sess

    def voice_endpoint(self, sess: _Sess) -> None:
        rng = self.rng
        mos = round(rng.uniform(3.6, 4.5), 2)
        sess.final["mediaEndpointStats"] = [
            {
                "codecs": [rng.choice(("opus", "audio/PCMU", "audio/G722"))],
                "minMos": mos,
                "minRFactor": round(mos * 20.3, 2),
                "maxLatencyMs": rng.randrange(20, 180),
                "receivedPackets": (self.end - self.start) // 20,
                "discardedPackets": rng.randrange(0, 40),
                "eventTime": format_ms(self.end),
            }
        ]

    # --- scenarios -------------------------------------------------------------------------------
    def build(self) -> None:
        name = self.sc.name
        if name.startswith("voice_") and name != "voice_outbound":
            self.voice_inbound()
        elif name == "voice_outbound":
            self.voice_outbound()
        elif name == "callback":
            self.callback()
        else:
            self.digital()

    def voice_inbound(self) -> None:
        rng, s, e = self.rng, self.start, self.end
        ani, dnis = _phone(rng), f"tel:+1800555{self.spec.queue:04d}"
        edge = self.cat.edges[rng.randrange(len(self.cat.edges))]
        cust = self.participant(
            "customer", rng.choice(("Mobile Caller", "Wireless Caller", "Boston MA", "Austin TX"))
        )
        csess = cust.session(
            rng,
            "voice",
            "inbound",
            provider="Edge",
            ani=ani,
            dnis=dnis,
            sessionDnis=dnis,
            edgeId=edge,
            protocolCallId=f"{rng.getrandbits(64):016x}@10.{rng.randrange(256)}.{rng.randrange(256)}.5",
            remoteNameDisplayable=cust.data["participantName"],
            recording=self.sc.has_agent,
        )
        sys_end = s + min(self.bounded(300, 2_000, 100), (e - s) // 10)
        csess.seg(s, sys_end, "system")
        csess.seg(sys_end, e, "interact", disconnectType="endpoint")
        csess.metric("nConnected", 1, sys_end)
        csess.metric("tConnected", e - sys_end, e)
        self.voice_endpoint(csess)
        peer = csess.data["sessionId"]
        flow = self.cat.ivr_flows[0]
        i0 = sys_end + 50
        self_service = self.sc.name == "voice_self_service"
        i1 = e if self_service else i0 + min(self.bounded(25_000, 90_000, 8_000), self.frac(0.05, 0.3))
        ivr = self.participant("ivr", flow.name)
        isess = ivr.session(rng, "voice", "inbound", peerId=peer, ani=ani, dnis=dnis)
        flow_data: Json = {
            "flowId": flow.flow_id,
            "flowName": flow.name,
            "flowType": flow.flow_type,
            "flowVersion": flow.version,
            "entryType": "dnis",
            "entryReason": dnis,
            "exitReason": "DISCONNECT" if self_service else "TRANSFER",
            "startingLanguage": "en-us",
            "endingLanguage": "en-us",
        }
        if not self_service:
            flow_data.update(
                transferType="ACD",
                transferTargetName=self.queue.name,
                transferTargetAddress=self.queue.queue_id,
            )
        isess.data["flow"] = flow_data
        isess.seg(i0, i1, "ivr", disconnectType="peer" if self_service else "transfer")
        isess.metric("nFlow", 1, i0)
        isess.metric("tIvr", i1 - i0, i1)
        isess.metric("tFlow", i1 - i0 - 30, i1)
        if self_service:
            return
        q0 = i1 + 60
        abandoned = self.sc.name == "voice_abandoned"
        voicemail = self.sc.name == "voice_voicemail"
        q1 = e if abandoned else q0 + min(self.bounded(35_000, 300_000, 2_000), self.frac(0.05, 0.3))
        self.acd("voice", q0, q1, peer, abandoned=abandoned)
        if abandoned:
            return
        if voicemail:
            vm = self.participant("voicemail", "Voicemail")
            vsess = vm.session(rng, "voice", "inbound", peerId=peer)
            vsess.seg(q1, e, "voicemail", queueId=self.queue.queue_id, disconnectType="endpoint")
            return
        if self.sc.name == "voice_transfer":
            t = q1 + self.frac(0.2, 0.4)
            self.agent("voice", q0, q1, t, peer, disconnect="transfer").metrics.append(
                ("nTransferred", 1, t, False)
            )
            self.agent("voice", q1, t, e, peer)
        else:
            self.agent("voice", q0, q1, e, peer)
        self.parts[-1].sessions[0].data["edgeId"] = edge

    def voice_outbound(self) -> None:
        rng, s, e = self.rng, self.start, self.end
        number = _phone(rng)
        user_id, name, team = self.pick_agent()
        agent = self.participant("agent", name, userId=user_id, teamId=team)
        sess = agent.session(
            rng,
            "voice",
            "outbound",
            ani=f"tel:+1800555{self.spec.queue:04d}",
            dnis=number,
            edgeId=self.cat.edges[rng.randrange(len(self.cat.edges))],
            protocolCallId=f"{rng.getrandbits(64):016x}@10.1.{rng.randrange(256)}.9",
            recording=True,
        )
        qid = self.queue.queue_id
        d1 = s + min(self.bounded(1_500, 5_000, 300), (e - s) // 10)
        answer = d1 + min(self.bounded(12_000, 45_000, 2_000), (e - s) // 4)
        sess.seg(s, d1, "dialing", queueId=qid)
        sess.seg(d1, answer, "contacting", queueId=qid)
        sess.seg(answer, e, "interact", queueId=qid, disconnectType="client")
        code = self.cat.wrapup_codes[rng.randrange(len(self.cat.wrapup_codes))]
        sess.seg(e, e + self.acw, "wrapup", queueId=qid, wrapUpCode=code)
        sess.metric("nOutbound", 1, s)
        sess.metric("tDialing", d1 - s, d1)
        sess.metric("tContacting", answer - d1, answer)
        sess.metric("nOutboundConnected", 1, answer)
        sess.metric("tTalk", e - answer, e)
        sess.metric("tTalkComplete", e - answer, e)
        sess.metric("tAcw", self.acw, e + self.acw, post=True)
        sess.metric("tHandle", e - answer + self.acw, e + self.acw, post=True)
        self.voice_endpoint(sess)
        ext = self.participant("external", number)
        esess = ext.session(rng, "voice", "outbound", ani=number, dnis=number, peerId=sess.data["sessionId"])
        esess.seg(answer, e, "interact", disconnectType="endpoint")

    def callback(self) -> None:
        rng, s, e = self.rng, self.start, self.end
        number = _phone(rng)
        cust = self.participant("customer", "Web Callback")
        csess = cust.session(
            rng, "callback", "inbound", callbackNumbers=[number], callbackUserName="Web Visitor"
        )
        csess.seg(s, e, "interact", disconnectType="endpoint")
        csess.metric("nConnected", 1, s)
        peer = csess.data["sessionId"]
        q0 = s + 200
        q1 = q0 + min(self.bounded(90_000, 900_000, 5_000), self.frac(0.1, 0.4))
        self.acd("callback", q0, q1, peer)
        dial = q1 + min(self.bounded(8_000, 30_000, 1_000), (e - q1) // 5)
        self.agent("voice", q0, dial, e, peer, direction="outbound")
        agent = self.parts[-1]
        cb = agent.session(rng, "callback", "inbound", peerId=peer, callbackNumbers=[number])
        cb.seg(q1 - min(3_000, q1 - q0), q1, "alert", queueId=self.queue.queue_id)
        cb.seg(q1, dial, "callback", queueId=self.queue.queue_id, disconnectType="transfer")
        cb.metric("tAnswered", q1 - q0, q1)
        agent.sessions.reverse()  # the callback leg comes first, as in Genesys records

    def digital(self) -> None:
        rng, s, e = self.rng, self.start, self.end
        media = self.sc.media_type
        cust = self.participant("customer", rng.choice(("Web Visitor", "Alex", "Jordan", "Customer")))
        extra: Json = {}
        if media == "email":
            extra = {
                "addressFrom": f"customer{rng.randrange(10_000)}@example.com",
                "addressTo": "support@example.org",
            }
        elif media == "message":
            extra = {"messageType": rng.choice(("webmessaging", "sms", "whatsapp")), "addressTo": "support"}
        else:
            extra = {"roomId": f"{rng.getrandbits(64):016x}@conference.example.org"}
        csess = cust.session(rng, media, "inbound", **extra)
        seg_extra = (
            {"subject": rng.choice(("Order status", "Invoice question", "Account access"))}
            if media == "email"
            else {}
        )
        csess.seg(s, e, "interact", disconnectType="client", **seg_extra)
        csess.metric("nConnected", 1, s)
        peer = csess.data["sessionId"]
        q0 = s + 200
        if media == "message":
            bot = self.cat.bot_flows[0]
            b1 = q0 + min(self.bounded(40_000, 240_000, 5_000), self.frac(0.02, 0.15))
            bp = self.participant("botflow", bot.name)
            bsess = bp.session(rng, media, "inbound", peerId=peer)
            bsess.data["flow"] = {
                "flowId": bot.flow_id,
                "flowName": bot.name,
                "flowType": bot.flow_type,
                "flowVersion": bot.version,
                "entryType": "direct",
                "exitReason": "TRANSFER",
                "transferType": "ACD",
                "transferTargetName": self.queue.name,
                "transferTargetAddress": self.queue.queue_id,
            }
            bsess.seg(q0, b1, "interact", disconnectType="transfer")
            bsess.metric("nFlow", 1, q0)
            bsess.metric("tFlow", b1 - q0, b1)
            q0 = b1 + 100
        mean_wait = 3_600_000 if media == "email" else 60_000
        q1 = q0 + min(self.bounded(mean_wait, 86_400_000, 2_000), self.frac(0.05, 0.4))
        self.acd(media, q0, q1, peer)
        sess = self.agent(media, q0, q1, e, peer, disconnect="client")
        sess.data.update({k: v for k, v in extra.items() if k != "roomId"})


def _render_metrics(sess: _Sess, cut: int | None, settled: bool) -> list[Json]:
    out: list[Json] = []
    for name, value, emit, post in sess.metrics:
        if post and not settled:
            continue
        if cut is not None and emit > cut:
            continue
        out.append({"name": name, "value": value, "emitDate": format_ms(emit)})
    return out


def _render_segments(sess: _Sess, cut: int | None, settled: bool) -> list[Json]:
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


def _participants(
    layout: _Layout, cut: int | None, settled: bool, attrs: dict[str, str] | None
) -> list[Json]:
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


def _late_additions(spec: ConversationSpec, layout: _Layout, doc: Json) -> None:
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
    layout = _Layout(spec, catalog)
    layout.build()
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
    if sc.name == "voice_self_service":
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
