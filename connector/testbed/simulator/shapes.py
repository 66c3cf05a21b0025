"""Scenario shapes: who takes part in a conversation of each scenario, in which order, for how long.

`SHAPES` maps every scenario of `model.SCENARIOS` to the builder that lays it out on a `Layout`. The five
inbound voice scenarios share one builder and differ only in how the call ends (`Ending`); the digital
scenarios (chat, message, email) share another, which varies by media type. The random draws of each
builder are part of the output: reorder them and every seeded record changes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connector.testbed.simulator.timeline import Json, Layout, phone_number

Shape = Callable[[Layout], None]


class Ending(enum.Enum):
    """How an inbound voice call ends: with an agent (maybe after a transfer), or before one answers."""

    AGENT = "agent"
    TRANSFER = "transfer"  # a first agent transfers to a second
    ABANDONED = "abandoned"  # the caller hangs up while queued
    VOICEMAIL = "voicemail"  # the caller leaves a voicemail instead of waiting
    SELF_SERVICE = "self_service"  # the IVR serves the caller; no queue, no agent


@dataclass(frozen=True)
class VoiceInbound:
    """Inbound voice ending one way: customer and IVR, then queue and agent(s) unless it ends before."""

    ending: Ending

    def __call__(self, layout: Layout) -> None:
        _voice_inbound(layout, self.ending)


def build(layout: Layout) -> None:
    """Lay out the whole timeline of `layout`'s conversation, following its scenario's shape."""
    SHAPES[layout.sc.name](layout)


def _voice_inbound(layout: Layout, ending: Ending) -> None:
    rng, s, e = layout.rng, layout.start, layout.end
    ani, dnis = phone_number(rng), f"tel:+1800555{layout.spec.queue:04d}"
    edge = layout.cat.edges[rng.randrange(len(layout.cat.edges))]
    cust = layout.participant(
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
        recording=layout.sc.has_agent,
    )
    sys_end = s + min(layout.bounded(300, 2_000, 100), (e - s) // 10)
    csess.seg(s, sys_end, "system")
    csess.seg(sys_end, e, "interact", disconnectType="endpoint")
    csess.metric("nConnected", 1, sys_end)
    csess.metric("tConnected", e - sys_end, e)
    layout.voice_endpoint(csess)
    peer = csess.data["sessionId"]
    flow = layout.cat.ivr_flows[0]
    i0 = sys_end + 50
    self_service = ending is Ending.SELF_SERVICE
    layout.self_served = self_service
    i1 = e if self_service else i0 + min(layout.bounded(25_000, 90_000, 8_000), layout.frac(0.05, 0.3))
    ivr = layout.participant("ivr", flow.name)
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
            transferTargetName=layout.queue.name,
            transferTargetAddress=layout.queue.queue_id,
        )
    isess.data["flow"] = flow_data
    isess.seg(i0, i1, "ivr", disconnectType="peer" if self_service else "transfer")
    isess.metric("nFlow", 1, i0)
    isess.metric("tIvr", i1 - i0, i1)
    isess.metric("tFlow", i1 - i0 - 30, i1)
    if self_service:
        return
    q0 = i1 + 60
    abandoned = ending is Ending.ABANDONED
    voicemail = ending is Ending.VOICEMAIL
    q1 = e if abandoned else q0 + min(layout.bounded(35_000, 300_000, 2_000), layout.frac(0.05, 0.3))
    layout.acd("voice", q0, q1, peer, abandoned=abandoned)
    if abandoned:
        return
    if voicemail:
        vm = layout.participant("voicemail", "Voicemail")
        vsess = vm.session(rng, "voice", "inbound", peerId=peer)
        vsess.seg(q1, e, "voicemail", queueId=layout.queue.queue_id, disconnectType="endpoint")
        return
    if ending is Ending.TRANSFER:
        t = q1 + layout.frac(0.2, 0.4)
        layout.agent("voice", q0, q1, t, peer, disconnect="transfer").metrics.append(
            ("nTransferred", 1, t, False)
        )
        layout.agent("voice", q1, t, e, peer)
    else:
        layout.agent("voice", q0, q1, e, peer)
    layout.parts[-1].sessions[0].data["edgeId"] = edge


def voice_outbound(layout: Layout) -> None:
    rng, s, e = layout.rng, layout.start, layout.end
    number = phone_number(rng)
    user_id, name, team = layout.pick_agent()
    agent = layout.participant("agent", name, userId=user_id, teamId=team)
    sess = agent.session(
        rng,
        "voice",
        "outbound",
        ani=f"tel:+1800555{layout.spec.queue:04d}",
        dnis=number,
        edgeId=layout.cat.edges[rng.randrange(len(layout.cat.edges))],
        protocolCallId=f"{rng.getrandbits(64):016x}@10.1.{rng.randrange(256)}.9",
        recording=True,
    )
    qid = layout.queue.queue_id
    d1 = s + min(layout.bounded(1_500, 5_000, 300), (e - s) // 10)
    answer = d1 + min(layout.bounded(12_000, 45_000, 2_000), (e - s) // 4)
    sess.seg(s, d1, "dialing", queueId=qid)
    sess.seg(d1, answer, "contacting", queueId=qid)
    sess.seg(answer, e, "interact", queueId=qid, disconnectType="client")
    code = layout.cat.wrapup_codes[rng.randrange(len(layout.cat.wrapup_codes))]
    sess.seg(e, e + layout.acw, "wrapup", queueId=qid, wrapUpCode=code)
    sess.metric("nOutbound", 1, s)
    sess.metric("tDialing", d1 - s, d1)
    sess.metric("tContacting", answer - d1, answer)
    sess.metric("nOutboundConnected", 1, answer)
    sess.metric("tTalk", e - answer, e)
    sess.metric("tTalkComplete", e - answer, e)
    sess.metric("tAcw", layout.acw, e + layout.acw, post=True)
    sess.metric("tHandle", e - answer + layout.acw, e + layout.acw, post=True)
    layout.voice_endpoint(sess)
    ext = layout.participant("external", number)
    esess = ext.session(rng, "voice", "outbound", ani=number, dnis=number, peerId=sess.data["sessionId"])
    esess.seg(answer, e, "interact", disconnectType="endpoint")


def callback(layout: Layout) -> None:
    rng, s, e = layout.rng, layout.start, layout.end
    number = phone_number(rng)
    cust = layout.participant("customer", "Web Callback")
    csess = cust.session(rng, "callback", "inbound", callbackNumbers=[number], callbackUserName="Web Visitor")
    csess.seg(s, e, "interact", disconnectType="endpoint")
    csess.metric("nConnected", 1, s)
    peer = csess.data["sessionId"]
    q0 = s + 200
    q1 = q0 + min(layout.bounded(90_000, 900_000, 5_000), layout.frac(0.1, 0.4))
    layout.acd("callback", q0, q1, peer)
    dial = q1 + min(layout.bounded(8_000, 30_000, 1_000), (e - q1) // 5)
    layout.agent("voice", q0, dial, e, peer, direction="outbound")
    agent = layout.parts[-1]
    cb = agent.session(rng, "callback", "inbound", peerId=peer, callbackNumbers=[number])
    cb.seg(q1 - min(3_000, q1 - q0), q1, "alert", queueId=layout.queue.queue_id)
    cb.seg(q1, dial, "callback", queueId=layout.queue.queue_id, disconnectType="transfer")
    cb.metric("tAnswered", q1 - q0, q1)
    agent.sessions.reverse()  # the callback leg comes first, as in Genesys records


def digital(layout: Layout) -> None:
    rng, s, e = layout.rng, layout.start, layout.end
    media = layout.sc.media_type
    cust = layout.participant("customer", rng.choice(("Web Visitor", "Alex", "Jordan", "Customer")))
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
        bot = layout.cat.bot_flows[0]
        b1 = q0 + min(layout.bounded(40_000, 240_000, 5_000), layout.frac(0.02, 0.15))
        bp = layout.participant("botflow", bot.name)
        bsess = bp.session(rng, media, "inbound", peerId=peer)
        bsess.data["flow"] = {
            "flowId": bot.flow_id,
            "flowName": bot.name,
            "flowType": bot.flow_type,
            "flowVersion": bot.version,
            "entryType": "direct",
            "exitReason": "TRANSFER",
            "transferType": "ACD",
            "transferTargetName": layout.queue.name,
            "transferTargetAddress": layout.queue.queue_id,
        }
        bsess.seg(q0, b1, "interact", disconnectType="transfer")
        bsess.metric("nFlow", 1, q0)
        bsess.metric("tFlow", b1 - q0, b1)
        q0 = b1 + 100
    mean_wait = 3_600_000 if media == "email" else 60_000
    q1 = q0 + min(layout.bounded(mean_wait, 86_400_000, 2_000), layout.frac(0.05, 0.4))
    layout.acd(media, q0, q1, peer)
    sess = layout.agent(media, q0, q1, e, peer, disconnect="client")
    sess.data.update({k: v for k, v in extra.items() if k != "roomId"})


SHAPES: Mapping[str, Shape] = {
    "voice_inbound": VoiceInbound(Ending.AGENT),
    "voice_abandoned": VoiceInbound(Ending.ABANDONED),
    "voice_self_service": VoiceInbound(Ending.SELF_SERVICE),
    "voice_transfer": VoiceInbound(Ending.TRANSFER),
    "voice_voicemail": VoiceInbound(Ending.VOICEMAIL),
    "voice_outbound": voice_outbound,
    "callback": callback,
    "chat": digital,
    "message": digital,
    "email": digital,
}
