"""Seeded, deterministic creation of conversation specs: the history at start-up and live arrivals.

The same seed, history range and clock give the same conversations (ids, times, scenarios, queues). History
volume follows a mild UTC diurnal profile so windows have uneven density, as a real contact centre does.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

from connector.testbed.simulator.isotime import HOUR_MS
from connector.testbed.simulator.lifecycle import MutationDelays, MutationKind, catch_up
from connector.testbed.simulator.model import (
    F_WILL_EVALUATE,
    F_WILL_REPROCESS,
    F_WILL_SURVEY,
    HISTORY_SALT,
    SCENARIOS,
    Catalog,
    ConversationSpec,
    uuid_from_bits,
)

# Relative traffic per UTC hour (peaks in the working day); the mean is normalised away.
DIURNAL_PROFILE: tuple[float, ...] = (
    0.25, 0.2, 0.2, 0.2, 0.25, 0.35, 0.6, 0.9, 1.3, 1.6, 1.7, 1.7,
    1.6, 1.6, 1.7, 1.6, 1.5, 1.3, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3,
)  # fmt: skip
_CUM_WEIGHTS = list(itertools.accumulate(s.weight for s in SCENARIOS))


@dataclass(frozen=True)
class SpecRequest:
    """Optional overrides when a test asks for specific conversations."""

    scenario: int | None = None
    queue: int | None = None
    duration_ms: int | None = None


class ConversationFactory:
    """Draws conversation specs from a random stream (history stream or live stream)."""

    def __init__(self, catalog: Catalog, delays: MutationDelays) -> None:
        self.catalog = catalog
        self.delays = delays

    def draw(self, rng: random.Random, start_ms: int, request: SpecRequest | None = None) -> ConversationSpec:
        """One new OPEN spec starting at `start_ms` with its planned end; lifecycle is applied by the caller.

        Always consumes the same number of random draws, so overrides do not shift later conversations.
        """
        cid = uuid_from_bits(rng.getrandbits(128))
        scenario = bisect.bisect_right(_CUM_WEIGHTS, rng.random() * _CUM_WEIGHTS[-1])
        scenario = min(scenario, len(SCENARIOS) - 1)
        queue = rng.randrange(len(self.catalog.queues))
        gauss = rng.gauss(0.0, 1.0)
        r_eval, r_survey, r_reproc = rng.random(), rng.random(), rng.random()
        if request is not None:
            scenario = request.scenario if request.scenario is not None else scenario
            queue = request.queue if request.queue is not None else queue
        sc = SCENARIOS[scenario]
        if request is not None and request.duration_ms is not None:
            duration_ms = max(1000, request.duration_ms)
        else:
            seconds = min(sc.max_s, max(sc.min_s, sc.median_s * math.exp(sc.sigma * gauss)))
            duration_ms = int(seconds * 1000)
        flags = 0
        d = self.delays
        if sc.has_agent and r_eval < d.evaluation_probability:
            flags |= F_WILL_EVALUATE
        if sc.has_agent and r_survey < d.survey_probability:
            flags |= F_WILL_SURVEY
        if r_reproc < d.reprocess_probability:
            flags |= F_WILL_REPROCESS
        return ConversationSpec(
            cid, start_ms, start_ms + duration_ms, scenario, queue, cut_ms=start_ms, flags=flags
        )


def history_starts(
    rng: random.Random, start_ms: int, end_ms: int, per_hour: float, *, diurnal: bool = True
) -> list[int]:
    """Sorted start times for [start_ms, end_ms): `per_hour` on average, shaped by the diurnal profile."""
    span = end_ms - start_ms
    count = round(span / HOUR_MS * per_hour)
    if count <= 0 or span <= 0:
        return []
    starts: list[int] = []
    rand = rng.random
    profile = DIURNAL_PROFILE if diurnal else (1.0,) * 24
    top = max(profile)
    while len(starts) < count:  # rejection sampling: accept t with probability profile[hour] / top
        t = start_ms + int(rand() * span)
        if rand() * top < profile[(t // HOUR_MS) % 24]:
            starts.append(t)
    starts.sort()
    return starts


def generate_history(
    factory: ConversationFactory,
    seed: int,
    start_ms: int,
    end_ms: int,
    per_hour: float,
    now_ms: int,
    *,
    diurnal: bool = True,
    granularity_ms: int = 0,
) -> tuple[list[ConversationSpec], list[tuple[int, str, MutationKind]]]:
    """All history conversations (sorted by start) and the mutations still pending for them at `now_ms`.

    `granularity_ms` > 0 rounds every start down to a multiple of it, so many conversations share a
    conversationStart (ties for the sort order; the random draws are unchanged).
    """
    rng = random.Random(seed ^ HISTORY_SALT)
    specs: list[ConversationSpec] = []
    pending: list[tuple[int, str, MutationKind]] = []
    draw, delays = factory.draw, factory.delays
    for start in history_starts(rng, start_ms, min(end_ms, now_ms), per_hour, diurnal=diurnal):
        if granularity_ms > 0:
            start -= start % granularity_ms
        spec = draw(rng, start)
        for due, kind in catch_up(spec, delays, now_ms):
            pending.append((due, spec.cid, kind))
        specs.append(spec)
    return specs, pending
