"""How a conversation record changes over time, the way Genesys data does (genesys-api.md §6).

After creation an OPEN conversation may `PROGRESS` (more of it becomes visible) and then `END`
(conversationEnd set, segments closed). Agent conversations then `SETTLE` (wrap-up segment, tAcw/tHandle)
after the ACW delay, and some later get an `EVALUATION`, a `SURVEY` or a `REPROCESS` correction. Each applied
mutation bumps the spec's version. Delays are configurable (seconds) so tests can compress time; the exact
real-world delays are FOLKLORE (§6), the order is VERIFIED by the record structure.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import IntEnum

from connector.testbed.simulator.model import (
    F_EVALUATION,
    F_SURVEY,
    F_WILL_EVALUATE,
    F_WILL_REPROCESS,
    F_WILL_SURVEY,
    REPROCESS_SHIFT,
    ConversationSpec,
    Stage,
)

_MIN_DURATION_MS = 1000


class MutationKind(IntEnum):
    """One kind of change to a conversation record."""

    PROGRESS = 0
    END = 1
    SETTLE = 2
    EVALUATION = 3
    SURVEY = 4
    REPROCESS = 5


MUTATION_NAMES: dict[str, MutationKind] = {k.name.lower(): k for k in MutationKind}


@dataclass(frozen=True)
class MutationDelays:
    """When mutations happen, relative to the conversation's end (seconds) and how often (probabilities)."""

    acw_delay_s: float = 30.0
    evaluation_delay_s: float = 3600.0
    survey_delay_s: float = 1800.0
    reprocess_delay_s: float = 172_800.0
    evaluation_probability: float = 0.10
    survey_probability: float = 0.15
    reprocess_probability: float = 0.02
    progress_updates: bool = True


def apply_mutation(spec: ConversationSpec, kind: MutationKind, now_ms: int) -> bool:
    """Apply one mutation if it still makes sense for the spec; True when the record changed."""
    if kind == MutationKind.PROGRESS:
        if spec.stage != Stage.OPEN or now_ms <= spec.cut_ms:
            return False
        spec.cut_ms = min(now_ms, spec.end_ms - 1)
    elif kind == MutationKind.END:
        if spec.stage != Stage.OPEN:
            return False
        spec.end_ms = max(spec.start_ms + _MIN_DURATION_MS, min(spec.end_ms, now_ms))
        spec.stage = Stage.ENDED if spec.scenario_info.has_agent else Stage.SETTLED
    elif kind == MutationKind.SETTLE:
        if spec.stage != Stage.ENDED:
            return False
        spec.stage = Stage.SETTLED
    elif kind == MutationKind.EVALUATION:
        if spec.stage == Stage.OPEN or spec.flags & F_EVALUATION or not spec.scenario_info.has_agent:
            return False
        spec.flags |= F_EVALUATION | F_WILL_EVALUATE
    elif kind == MutationKind.SURVEY:
        if spec.stage == Stage.OPEN or spec.flags & F_SURVEY or not spec.scenario_info.has_agent:
            return False
        spec.flags |= F_SURVEY | F_WILL_SURVEY
    else:
        if spec.stage == Stage.OPEN:
            return False
        spec.flags += 1 << REPROCESS_SHIFT
    spec.version += 1
    return True


def next_mutation(spec: ConversationSpec) -> MutationKind:
    """The natural next change for a spec (used when a test asks to mutate without saying how)."""
    if spec.stage == Stage.OPEN:
        return MutationKind.END
    if spec.stage == Stage.ENDED:
        return MutationKind.SETTLE
    if spec.scenario_info.has_agent and not spec.flags & F_EVALUATION:
        return MutationKind.EVALUATION
    if spec.scenario_info.has_agent and not spec.flags & F_SURVEY:
        return MutationKind.SURVEY
    return MutationKind.REPROCESS


def open_plan(spec: ConversationSpec, delays: MutationDelays) -> list[tuple[int, MutationKind]]:
    """Mutations of an OPEN conversation: a progress update halfway, then the end at the planned end."""
    plan: list[tuple[int, MutationKind]] = []
    if delays.progress_updates and spec.end_ms - spec.cut_ms > 2000:
        plan.append(((spec.cut_ms + spec.end_ms) // 2, MutationKind.PROGRESS))
    plan.append((spec.end_ms, MutationKind.END))
    return plan


def ended_plan(spec: ConversationSpec, delays: MutationDelays) -> list[tuple[int, MutationKind]]:
    """Mutations that follow the end of a conversation, due relative to its conversationEnd."""
    end = spec.end_ms
    plan: list[tuple[int, MutationKind]] = []
    if spec.stage == Stage.ENDED:
        plan.append((end + int(delays.acw_delay_s * 1000), MutationKind.SETTLE))
    if spec.flags & F_WILL_EVALUATE and not spec.flags & F_EVALUATION:
        plan.append((end + int(delays.evaluation_delay_s * 1000), MutationKind.EVALUATION))
    if spec.flags & F_WILL_SURVEY and not spec.flags & F_SURVEY:
        plan.append((end + int(delays.survey_delay_s * 1000), MutationKind.SURVEY))
    if spec.flags & F_WILL_REPROCESS and not spec.reprocess_count:
        plan.append((end + int(delays.reprocess_delay_s * 1000), MutationKind.REPROCESS))
    return plan


def catch_up(spec: ConversationSpec, delays: MutationDelays, now_ms: int) -> list[tuple[int, MutationKind]]:
    """Bring a freshly created spec to its state at `now_ms`; return the mutations still to come.

    Used for history: a conversation that ended yesterday arrives already ended, settled and maybe
    evaluated, with a version that counts those steps.
    """
    if spec.end_ms > now_ms:
        spec.cut_ms = max(spec.cut_ms, min(now_ms, spec.end_ms - 1))
        return open_plan(spec, delays)
    apply_mutation(spec, MutationKind.END, spec.end_ms)
    pending: list[tuple[int, MutationKind]] = []
    for due, kind in sorted(ended_plan(spec, delays)):
        if due <= now_ms:
            apply_mutation(spec, kind, due)
        else:
            pending.append((due, kind))
    return pending


class MutationSchedule:
    """Min-heap of (due_ms, sequence, conversation id, kind). Not thread-safe: callers hold the sim lock."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, int]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due_ms: int, cid: str, kind: MutationKind) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, cid, int(kind)))

    def pop_due(self, now_ms: int) -> list[tuple[int, str, MutationKind]]:
        """Remove and return every entry due at or before `now_ms`, in due order."""
        out: list[tuple[int, str, MutationKind]] = []
        while self._heap and self._heap[0][0] <= now_ms:
            due, _, cid, kind = heapq.heappop(self._heap)
            out.append((due, cid, MutationKind(kind)))
        return out
