"""The compact in-memory model of a simulated organisation and its conversations.

A conversation is stored as a small slotted `ConversationSpec` (id, start, end, scenario, queue, lifecycle
stage, version, flags: roughly 250 bytes with its id string). The full Genesys record (3-6 KB of JSON) is
rendered on demand from the spec by `connector.testbed.simulator.render`; it is a pure function of the spec's
fields and the organisation `Catalog`, so ground truth and API answers always agree.

Lifecycle (`Stage`): OPEN (no conversationEnd, last segment open) -> ENDED (conversationEnd set, segments
closed) -> SETTLED (wrap-up segment and tAcw/tHandle present). Evaluations, surveys and reprocessing
corrections are flags added later. Every change bumps `version`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# Salt values keep the independent random streams (catalog, history, live, per-record) apart.
CATALOG_SALT = 0x0C47A106
HISTORY_SALT = 0x415702E5
LIVE_SALT = 0x11FE0001


class Stage(IntEnum):
    """Where a conversation is in its life. Only ever moves forward."""

    OPEN = 0
    ENDED = 1
    SETTLED = 2


# Flag bits of ConversationSpec.flags.
F_EVALUATION = 1  # an evaluation is attached
F_SURVEY = 2  # a survey is attached
F_WILL_EVALUATE = 4  # decided at creation: an evaluation will arrive after the end
F_WILL_SURVEY = 8  # decided at creation: a survey will arrive after the end
F_WILL_REPROCESS = 16  # decided at creation: a reprocessing correction will arrive
F_LONG = 32  # lives in the store's "long or open" index (see store.py)
REPROCESS_SHIFT = 8  # flags >> REPROCESS_SHIFT = number of reprocessing corrections applied


@dataclass(frozen=True, slots=True)
class Scenario:
    """A conversation shape: who takes part, which media, how long it usually lasts."""

    name: str
    media_types: tuple[str, ...]  # session media types present; the first is the primary one
    direction: str  # originatingDirection
    directions: tuple[str, ...]  # session directions present
    purposes: tuple[str, ...]  # participant purposes, in order
    has_queue: bool
    has_agent: bool
    weight: float
    median_s: float
    sigma: float
    min_s: float
    max_s: float

    @property
    def media_type(self) -> str:
        """The primary media type."""
        return self.media_types[0]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "voice_inbound",
        ("voice",),
        "inbound",
        ("inbound",),
        ("customer", "ivr", "acd", "agent"),
        True,
        True,
        0.40,
        300,
        0.7,
        60,
        3600,
    ),
    Scenario(
        "voice_abandoned",
        ("voice",),
        "inbound",
        ("inbound",),
        ("customer", "ivr", "acd"),
        True,
        False,
        0.06,
        90,
        0.6,
        20,
        900,
    ),
    Scenario(
        "voice_self_service",
        ("voice",),
        "inbound",
        ("inbound",),
        ("customer", "ivr"),
        False,
        False,
        0.05,
        70,
        0.5,
        15,
        600,
    ),
    Scenario(
        "voice_transfer",
        ("voice",),
        "inbound",
        ("inbound",),
        ("customer", "ivr", "acd", "agent", "agent"),
        True,
        True,
        0.04,
        600,
        0.6,
        120,
        5400,
    ),
    Scenario(
        "voice_voicemail",
        ("voice",),
        "inbound",
        ("inbound",),
        ("customer", "ivr", "acd", "voicemail"),
        True,
        False,
        0.02,
        120,
        0.4,
        40,
        600,
    ),
    Scenario(
        "voice_outbound",
        ("voice",),
        "outbound",
        ("outbound",),
        ("agent", "external"),
        True,
        True,
        0.05,
        240,
        0.8,
        30,
        3600,
    ),
    Scenario(
        "callback",
        ("callback", "voice"),
        "inbound",
        ("inbound", "outbound"),
        ("customer", "acd", "agent"),
        True,
        True,
        0.05,
        420,
        0.6,
        90,
        3600,
    ),
    Scenario(
        "chat",
        ("chat",),
        "inbound",
        ("inbound",),
        ("customer", "acd", "agent"),
        True,
        True,
        0.12,
        600,
        0.7,
        60,
        7200,
    ),
    Scenario(
        "message",
        ("message",),
        "inbound",
        ("inbound",),
        ("customer", "botflow", "acd", "agent"),
        True,
        True,
        0.13,
        3600,
        1.1,
        120,
        172_800,
    ),
    Scenario(
        "email",
        ("email",),
        "inbound",
        ("inbound",),
        ("customer", "acd", "agent"),
        True,
        True,
        0.08,
        14_400,  # median 4 h; the lognormal tail gives a few e-mails that stay open for days
        1.0,
        600,
        432_000,
    ),
)

SCENARIO_BY_NAME: dict[str, int] = {s.name: i for i, s in enumerate(SCENARIOS)}
MEDIA_TYPES: tuple[str, ...] = ("voice", "callback", "chat", "message", "email")


def scenarios_for_media(media_type: str) -> list[int]:
    """Scenario indexes whose primary media type is `media_type` (ValueError if none)."""
    found = [i for i, s in enumerate(SCENARIOS) if s.media_type == media_type]
    if not found:
        raise ValueError(f"unknown media type '{media_type}'; use one of {', '.join(MEDIA_TYPES)}")
    return found


def uuid_from_bits(bits: int) -> str:
    """128 random bits -> a version-4 UUID string (deterministic for given bits)."""
    bits = (bits & ~(0xF << 76)) | (0x4 << 76)
    bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_uuid(rng: random.Random) -> str:
    """A UUID drawn from `rng` (so ids are reproducible from the simulator seed)."""
    return uuid_from_bits(rng.getrandbits(128))


class ConversationSpec:
    """Everything needed to render one conversation record; small on purpose (400k of them in memory).

    `end_ms` is the planned end while the conversation is OPEN and the real end afterwards.
    `cut_ms` is the instant an OPEN conversation's record shows (segments after it are not there yet).
    """

    __slots__ = ("cid", "cut_ms", "end_ms", "flags", "queue", "scenario", "stage", "start_ms", "version")

    def __init__(
        self,
        cid: str,
        start_ms: int,
        end_ms: int,
        scenario: int,
        queue: int,
        *,
        stage: int = Stage.OPEN,
        version: int = 1,
        cut_ms: int = 0,
        flags: int = 0,
    ) -> None:
        self.cid = cid
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.scenario = scenario
        self.queue = queue
        self.stage = stage
        self.version = version
        self.cut_ms = cut_ms
        self.flags = flags

    @property
    def scenario_info(self) -> Scenario:
        """The Scenario this conversation follows."""
        return SCENARIOS[self.scenario]

    @property
    def reprocess_count(self) -> int:
        """How many reprocessing corrections have been applied."""
        return self.flags >> REPROCESS_SHIFT

    def seed(self) -> int:
        """Per-conversation random seed, derived from the id (stable across processes)."""
        return int(self.cid.replace("-", ""), 16)

    def __repr__(self) -> str:
        return (
            f"ConversationSpec({self.cid}, start={self.start_ms}, end={self.end_ms}, "
            f"scenario={SCENARIOS[self.scenario].name}, stage={Stage(self.stage).name}, v{self.version})"
        )


@dataclass(frozen=True, slots=True)
class Queue:
    """A routing queue of the simulated org."""

    queue_id: str
    name: str
    division: int


@dataclass(frozen=True, slots=True)
class Agent:
    """A user who handles conversations."""

    user_id: str
    name: str
    team_id: str


@dataclass(frozen=True, slots=True)
class Flow:
    """An Architect flow (IVR or bot)."""

    flow_id: str
    name: str
    flow_type: str
    version: str


_QUEUE_NAMES = (
    "Billing",
    "Sales",
    "Support",
    "Claims",
    "Retention",
    "Technical",
    "Onboarding",
    "Collections",
    "Premium",
    "Returns",
    "Orders",
    "Escalations",
)
_FIRST = (
    "Dana",
    "Ravi",
    "Mia",
    "Tom",
    "Ana",
    "Lee",
    "Sam",
    "Ivy",
    "Omar",
    "Eva",
    "Kai",
    "Noor",
    "Ben",
    "Zoe",
)
_LAST = ("Agent", "Ng", "Silva", "Berg", "Khan", "Moreau", "Rossi", "Kim", "Novak", "Haas", "Diaz", "Okafor")


@dataclass(frozen=True)
class Catalog:
    """The simulated organisation: divisions, queues, agents, codes, flows (ids are UUIDs from the seed)."""

    divisions: tuple[str, ...]
    queues: tuple[Queue, ...]
    agents: tuple[Agent, ...]
    queue_agents: tuple[tuple[int, ...], ...]  # agent indexes serving each queue
    wrapup_codes: tuple[str, ...]
    ivr_flows: tuple[Flow, ...]
    bot_flows: tuple[Flow, ...]
    edges: tuple[str, ...]
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    evaluation_forms: tuple[tuple[str, str], ...]
    survey_forms: tuple[tuple[str, str], ...]
    evaluators: tuple[str, ...]

    @classmethod
    def build(cls, seed: int, *, n_divisions: int = 3, n_queues: int = 12, n_agents: int = 80) -> Catalog:
        """Deterministic organisation for `seed`."""
        rng = random.Random(seed ^ CATALOG_SALT)
        divisions = tuple(new_uuid(rng) for _ in range(n_divisions))
        queues = tuple(
            Queue(
                new_uuid(rng),
                _QUEUE_NAMES[i % len(_QUEUE_NAMES)] + ("" if i < 12 else f" {i}"),
                i % n_divisions,
            )
            for i in range(n_queues)
        )
        teams = tuple(new_uuid(rng) for _ in range(6))
        agents = tuple(
            Agent(
                new_uuid(rng),
                f"{_FIRST[i % len(_FIRST)]} {_LAST[(i * 5) % len(_LAST)]}",
                teams[i % len(teams)],
            )
            for i in range(n_agents)
        )
        queue_agents = tuple(
            tuple(a for a in range(n_agents) if a % n_queues == q or (a * 7 + 3) % n_queues == q)
            for q in range(n_queues)
        )
        ivr = tuple(
            Flow(new_uuid(rng), n, "INBOUNDCALL", f"{v}.0")
            for n, v in (("Main Menu", 12), ("After Hours", 3))
        )
        bots = tuple(
            Flow(new_uuid(rng), n, t, f"{v}.0")
            for n, t, v in (
                ("Web Messaging Bot", "INBOUNDSHORTMESSAGE", 7),
                ("Digital Assistant", "DIGITALBOT", 2),
            )
        )
        return cls(
            divisions=divisions,
            queues=queues,
            agents=agents,
            queue_agents=queue_agents,
            wrapup_codes=tuple(new_uuid(rng) for _ in range(10)),
            ivr_flows=ivr,
            bot_flows=bots,
            edges=tuple(new_uuid(rng) for _ in range(4)),
            skills=tuple(new_uuid(rng) for _ in range(8)),
            languages=tuple(new_uuid(rng) for _ in range(2)),
            evaluation_forms=tuple((new_uuid(rng), n) for n in ("Quality Form", "Compliance Form")),
            survey_forms=tuple((new_uuid(rng), n) for n in ("Post-Call NPS", "Digital CSAT")),
            evaluators=tuple(new_uuid(rng) for _ in range(6)),
        )

    def division_of(self, queue: int) -> str:
        """The division id a queue (and its conversations) belongs to."""
        return self.divisions[self.queues[queue].division]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for tests and the admin route (ids a test can filter on)."""
        return {
            "divisions": list(self.divisions),
            "queues": [
                {"id": q.queue_id, "name": q.name, "divisionId": self.divisions[q.division]}
                for q in self.queues
            ],
            "users": [{"id": a.user_id, "name": a.name} for a in self.agents],
            "wrapUpCodes": list(self.wrapup_codes),
            "mediaTypes": list(MEDIA_TYPES),
            "scenarios": [s.name for s in SCENARIOS],
        }
