"""The full timeline of one simulated conversation: participants, sessions, segments and metrics.

`Layout` draws everything from a per-conversation `random.Random` seeded from the conversation id, over
[conversationStart, conversationEnd], whatever the lifecycle stage: `render` later decides what of it is
visible. The building blocks here (an ACD leg, an agent leg, voice media stats) are shared by the scenario
shapes in `shapes`; the order of random draws is part of the output (the same spec renders the same bytes).
"""

from __future__ import annotations

import random
from typing import Any

from connector.testbed.simulator.isotime import format_ms
from connector.testbed.simulator.model import Catalog, ConversationSpec, Scenario, uuid_from_bits

Json = dict[str, Any]


class Segment:
    """One segment: [start, end) in epoch ms and its fields; wrap-up segments come after the end."""

    __slots__ = ("data", "end", "start", "wrapup")

    def __init__(self, start: int, end: int, data: Json, *, wrapup: bool = False) -> None:
        self.start = start
        self.end = end
        self.data = data
        self.wrapup = wrapup


class Session:
    """One session of a participant: its fields, segments and metrics (name, value, emitDate)."""

    __slots__ = ("data", "final", "metrics", "segs")

    def __init__(self, data: Json) -> None:
        self.data = data
        self.segs: list[Segment] = []
        self.metrics: list[tuple[str, int, int, bool]] = []  # name, value, emit_ms, post-end (wrap-up)
        self.final: Json = {}  # fields known only once the conversation ended (media stats)

    def seg(self, start: int, end: int, seg_type: str, **extra: Any) -> Segment:
        seg = Segment(start, end, {"segmentType": seg_type, **extra}, wrapup=seg_type == "wrapup")
        self.segs.append(seg)
        return seg

    def metric(self, name: str, value: int, emit_ms: int, *, post: bool = False) -> None:
        self.metrics.append((name, max(0, value), emit_ms, post))


class Participant:
    """One participant and its sessions."""

    __slots__ = ("data", "sessions")

    def __init__(self, data: Json) -> None:
        self.data = data
        self.sessions: list[Session] = []

    def session(self, rng: random.Random, media_type: str, direction: str, **extra: Any) -> Session:
        sess = Session({"sessionId": new_uuid(rng), "mediaType": media_type, "direction": direction, **extra})
        self.sessions.append(sess)
        return sess


def new_uuid(rng: random.Random) -> str:
    return uuid_from_bits(rng.getrandbits(128))


def phone_number(rng: random.Random) -> str:
    return f"tel:+1{rng.randrange(201, 989)}555{rng.randrange(1000, 10000)}"


def acw_duration_ms(spec: ConversationSpec) -> int:
    """After-call work of the (last) agent, derived from the id so sorting can use it without rendering."""
    seed = spec.seed()
    if spec.scenario_info.media_type == "email":
        return 60_000 + seed % 540_000
    return 8_000 + seed % 112_000


class Layout:
    """Builds the full timeline of one conversation. One instance per render; not shared."""

    def __init__(self, spec: ConversationSpec, catalog: Catalog) -> None:
        self.spec = spec
        self.cat = catalog
        self.sc: Scenario = spec.scenario_info
        self.rng = random.Random(spec.seed())
        self.start = spec.start_ms
        self.end = max(spec.end_ms, spec.start_ms + 1000)
        self.queue = catalog.queues[spec.queue]
        self.parts: list[Participant] = []
        self.acw = acw_duration_ms(spec)
        self.agents_used: list[str] = []
        self.self_served = False  # the IVR served the caller (set by the shape; `selfServed` in the record)

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

    def participant(self, purpose: str, name: str, **extra: Any) -> Participant:
        data = {"participantId": new_uuid(self.rng), "participantName": name, "purpose": purpose, **extra}
        part = Participant(data)
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
    ) -> Session:
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

    def voice_endpoint(self, sess: Session) -> None:
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
