"""`Simulation`: the state of one simulated Genesys org and every operation on it.

The HTTP app, the admin routes and `SimulatorControl` all go through this object. One re-entrant lock
guards everything (the server's event loop thread and a test's thread both call in); operations are short.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from connector.clock import Clock
from connector.testbed.simulator.auth import AuthService
from connector.testbed.simulator.clock import OffsetClock
from connector.testbed.simulator.config import SimulatorConfig
from connector.testbed.simulator.faults import FaultInjector
from connector.testbed.simulator.generator import ConversationFactory, SpecRequest, generate_history
from connector.testbed.simulator.isotime import format_ms, to_ms
from connector.testbed.simulator.jobs import JobService, JobTimings
from connector.testbed.simulator.lifecycle import (
    MutationDelays,
    MutationKind,
    MutationSchedule,
    apply_mutation,
    catch_up,
    ended_plan,
    next_mutation,
)
from connector.testbed.simulator.model import LIVE_SALT, Catalog, ConversationSpec, Stage
from connector.testbed.simulator.query import (
    JobQuery,
    QueryEngine,
    QueryLimits,
    is_late_indexed,
    shuffle_ties,
)
from connector.testbed.simulator.ratelimit import FixedWindowLimiter
from connector.testbed.simulator.render import render_record
from connector.testbed.simulator.store import ConversationStore

log = logging.getLogger("connector.testbed.simulator")

_CONTROL_SALT = 0xC0371201
_FAULT_SALT = 0xFA0171
_HITS_SALT = 0x4175
_TIE_SALT = 0x71E5


@dataclass
class LiveSettings:
    """Live traffic knobs that can change while running."""

    rate_per_minute: float
    duration_s: float | None
    ingest_delay_s: float
    paused: bool = False
    start_granularity_s: float = 0.0  # live starts are rounded down to a multiple of this (0: ms)


def copy_spec(spec: ConversationSpec) -> ConversationSpec:
    """A frozen-in-time copy (job snapshots)."""
    return ConversationSpec(
        spec.cid,
        spec.start_ms,
        spec.end_ms,
        spec.scenario,
        spec.queue,
        stage=spec.stage,
        version=spec.version,
        cut_ms=spec.cut_ms,
        flags=spec.flags,
    )


class Simulation:
    """One simulated org: conversations, lifecycle schedule, auth, limits, faults, jobs, counters."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clock: Clock = config.clock if config.clock is not None else OffsetClock()
        self.lock = threading.RLock()
        self.catalog = Catalog.build(config.seed)
        self.delays = _delays(config)
        self.factory = ConversationFactory(self.catalog, self.delays)
        self.store = ConversationStore()
        self.schedule = MutationSchedule()
        self.limits = QueryLimits(
            default_page_size=config.default_page_size,
            max_page_size=config.max_page_size,
            pagination_cap=config.pagination_cap,
            max_interval_days=config.max_interval_days,
            seven_day_cap_without_filters=config.seven_day_cap_without_filters,
            job_max_interval_days=config.job_max_interval_days or None,
            strict_dimensions=config.strict_dimensions,
        )
        self._inflated: dict[str, int] = {}  # conversationId -> extra segments (tests of oversized records)
        self.engine = QueryEngine(self.store, self.catalog, self.render)
        self.auth = AuthService(
            [c.credentials() for c in config.clients],
            token_ttl_s=config.token_ttl_s,
            now_ms=self.now_ms,
            unauthorized_code=config.unauthorized_code,
        )
        self.limiter = FixedWindowLimiter(config.rate_limit, config.rate_window_s, self.now_ms)
        self.faults = FaultInjector(random.Random(config.seed ^ _FAULT_SALT))
        if config.faults:
            self.faults.set_probabilities(config.faults)
        self.jobs = JobService(_job_timings(config), self.now_ms, self._snapshot, random.Random(config.seed))
        self.live = LiveSettings(
            config.live_rate_per_minute,
            config.live_duration_s,
            config.ingest_delay_s,
            start_granularity_s=config.start_granularity_s,
        )
        self.unstable_tie_order = config.unstable_tie_order
        self.late_index_probability = config.late_index_probability
        self.late_index_delay_s = config.late_index_delay_s
        self.tie_rng = random.Random(config.seed ^ _TIE_SALT)
        self.latency_ms = config.latency_ms
        self.latency_jitter_ms = config.latency_jitter_ms
        self.total_hits_jitter = config.total_hits_jitter
        self.fixed_total_hits = config.fixed_total_hits
        self.duplicate_probability = config.duplicate_probability
        self.counters: dict[str, dict[str, int]] = {}
        self.hits_rng = random.Random(config.seed ^ _HITS_SALT)
        self.latency_rng = random.Random(config.seed ^ _HITS_SALT ^ 1)
        self._live_rng = random.Random(config.seed ^ LIVE_SALT)
        self._control_rng = random.Random(config.seed ^ _CONTROL_SALT)
        self._render_cache: OrderedDict[tuple[str, int, bool], bytes] = OrderedDict()
        self._live_carry = 0.0
        self._load_history()
        self._last_live_ms = self.now_ms()

    # --- time ---------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """Simulated now, epoch milliseconds."""
        return to_ms(self.clock.now())

    def advance_clock(self, seconds: float) -> None:
        """Move simulated time forward (needs a clock with `advance`, like the default OffsetClock)."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("the injected clock cannot be advanced (it has no advance() method)")
        with self.lock:
            advance(seconds)
            self.jobs.advance_all()  # jobs completed by the jump snapshot before anything else changes

    # --- data ---------------------------------------------------------------------------------------
    def _load_history(self) -> None:
        began = time.perf_counter()
        now = self.now_ms()
        start, end = self.config.history_range_ms(now)
        specs, pending = generate_history(
            self.factory,
            self.config.seed,
            start,
            end,
            self.config.volume_per_hour,
            now,
            diurnal=self.config.diurnal,
            granularity_ms=int(self.config.start_granularity_s * 1000),
        )
        with self.lock:
            self.store.add_all(specs)
            for due, cid, kind in pending:
                self.schedule.push(due, cid, kind)
        log.info("simulator history: %d conversations in %.2fs", len(specs), time.perf_counter() - began)

    def render(self, spec: ConversationSpec, attributes: bool = False) -> dict[str, Any]:
        """The record of a spec as a fresh dict."""
        extra = self._inflated.get(spec.cid, 0)
        return render_record(spec, self.catalog, attributes=attributes, extra_segments=extra)

    def record_bytes(self, spec: ConversationSpec, *, attributes: bool = False) -> bytes:
        """The record as JSON bytes, from a small LRU keyed by (id, version, attributes)."""
        key = (spec.cid, spec.version, attributes)
        cached = self._render_cache.get(key)
        if cached is not None:
            self._render_cache.move_to_end(key)
            return cached
        data = orjson.dumps(self.render(spec, attributes))
        if self.config.render_cache_size:
            self._render_cache[key] = data
            if len(self._render_cache) > self.config.render_cache_size:
                self._render_cache.popitem(last=False)
        return data

    def insert(self, spec: ConversationSpec, now_ms: int) -> None:
        """Bring a new spec up to `now_ms`, store it and schedule its future mutations."""
        with self.lock:
            for due, kind in catch_up(spec, self.delays, now_ms):
                self.schedule.push(due, spec.cid, kind)
            self.store.add(spec)

    def apply(self, spec: ConversationSpec, kind: MutationKind, now_ms: int) -> bool:
        """Apply one mutation and schedule what follows an END; True if the record changed."""
        with self.lock:
            was_open = spec.stage == Stage.OPEN
            if not apply_mutation(spec, kind, now_ms):
                return False
            if was_open and spec.stage != Stage.OPEN:
                for due, follow in ended_plan(spec, self.delays):
                    self.schedule.push(due, spec.cid, follow)
            self.store.touch()
            return True

    def run_due(self, now_ms: int | None = None) -> int:
        """Apply every scheduled mutation due by `now_ms` (default now); returns how many changed a record."""
        with self.lock:
            self.jobs.advance_all()  # results are frozen at completion: snapshot before these mutations
            now = self.now_ms() if now_ms is None else now_ms
            changed = 0
            for due, cid, kind in self.schedule.pop_due(now):
                spec = self.store.get(cid)
                if spec is not None and self.apply(spec, kind, max(due, spec.start_ms)):
                    changed += 1
            return changed

    def live_step(self) -> None:
        """One tick of the live generator: arrivals, due mutations, job progress."""
        with self.lock:
            now = self.now_ms()
            self.jobs.advance_all()  # snapshot jobs that completed before this tick's changes
            if not self.live.paused:
                self._arrivals(now)
                self.run_due(now)
            self._last_live_ms = now

    def _arrivals(self, now: int) -> None:
        elapsed = max(0, now - self._last_live_ms)
        expected = self.live.rate_per_minute * elapsed / 60_000 + self._live_carry
        count = int(expected)
        self._live_carry = expected - count
        rng = self._live_rng
        for i in range(count):
            # spread over the elapsed span; the start may lag the moment it is indexed (ingest delay)
            at = self._last_live_ms + (elapsed * (i + 1)) // count
            start = at - int(rng.random() * self.live.ingest_delay_s * 1000)
            granularity = int(self.live.start_granularity_s * 1000)
            if granularity > 0:
                start -= start % granularity
            duration = None if self.live.duration_s is None else int(self.live.duration_s * 1000)
            spec = self.factory.draw(rng, start, SpecRequest(duration_ms=duration))
            self.insert(spec, now)

    def set_live_paused(self, paused: bool) -> None:
        """Pause or resume live arrivals and scheduled mutations (no burst on resume)."""
        with self.lock:
            self.live.paused = paused
            self._last_live_ms = self.now_ms()
            self._live_carry = 0.0

    def add_conversations(
        self,
        count: int,
        start_ms: int,
        *,
        spacing_ms: int = 1000,
        request: SpecRequest | None = None,
    ) -> list[str]:
        """Insert `count` conversations from start_ms, spacing_ms apart (a test's deterministic data)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self.lock:
            self.jobs.advance_all()
            now = self.now_ms()
            ids = []
            for i in range(count):
                spec = self.factory.draw(self._control_rng, start_ms + i * spacing_ms, request)
                self.insert(spec, now)
                ids.append(spec.cid)
            return ids

    def inflate(self, cid: str, segments: int) -> int:
        """Give a conversation `segments` extra segments (a very long one); returns its new version."""
        with self.lock:
            spec = self.store.get(cid)
            if spec is None:
                raise KeyError(f"unknown conversation {cid}")
            self._inflated[cid] = segments
            spec.version += 1
            return spec.version

    def mutate(self, cid: str, kind: MutationKind | None = None) -> int:
        """Apply one mutation now (default: the natural next one); returns the new version."""
        with self.lock:
            spec = self.store.get(cid)
            if spec is None:
                raise KeyError(f"unknown conversation {cid}")
            self.jobs.advance_all()
            self.apply(spec, kind if kind is not None else next_mutation(spec), self.now_ms())
            return spec.version

    def truth(
        self,
        start_ms: int,
        end_ms: int,
        *,
        records: bool = True,
        ended_only: bool = False,
        attributes: bool = False,
    ) -> list[dict[str, Any]]:
        """Every conversation with conversationStart in [start_ms, end_ms): id, version, times, record.

        `attributes`: records as async job results show them (with participant attributes), the view a
        settled conversation's latest message must equal; the default is the query's view (without).

        Specs are copied under the lock and rendered outside it, so a large truth does not stall the API.
        """
        with self.lock:
            specs = [
                copy_spec(s)
                for s in self.store.started_between(start_ms, end_ms)
                if not (ended_only and s.stage == Stage.OPEN)
            ]
        out = []
        for spec in specs:
            item: dict[str, Any] = {
                "conversationId": spec.cid,
                "version": spec.version,
                "conversationStart": format_ms(spec.start_ms),
            }
            if spec.stage != Stage.OPEN:
                item["conversationEnd"] = format_ms(spec.end_ms)
            if records:
                item["record"] = self.render(spec, attributes)
            out.append(item)
        return out

    # --- the query index (what the details query and the get endpoints can see) ------------------------
    def indexed(self, spec: ConversationSpec, now_ms: int | None = None) -> bool:
        """Whether the live query index has this conversation yet (late-indexed ones only after the delay)."""
        if not is_late_indexed(spec, self.late_index_probability):
            return True
        now = self.now_ms() if now_ms is None else now_ms
        return now >= spec.start_ms + int(self.late_index_delay_s * 1000)

    def query_view(
        self, matched: list[ConversationSpec], order: str, order_by: str
    ) -> list[ConversationSpec]:
        """The matches as the query index serves them this request: late-indexed ones left out until
        their delay has passed, ties in a random order when `unstable_tie_order` is on."""
        with self.lock:
            if self.late_index_probability > 0:
                now = self.now_ms()
                matched = [s for s in matched if self.indexed(s, now)]
            if self.unstable_tie_order and order != "unordered":
                matched = shuffle_ties(matched, order_by, self.tie_rng)
            return matched

    def late_indexed(self, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
        """(conversationId, indexed-at ms) of the late-indexed conversations that started in [start, end)."""
        delay = int(self.late_index_delay_s * 1000)
        with self.lock:
            return [
                (s.cid, s.start_ms + delay)
                for s in self.store.started_between(start_ms, end_ms)
                if is_late_indexed(s, self.late_index_probability)
            ]

    def _snapshot(self, query: JobQuery, availability_ms: int) -> list[ConversationSpec]:
        with self.lock:
            return [copy_spec(s) for s in self.engine.matching(query) if s.start_ms < availability_ms]

    # --- bookkeeping ------------------------------------------------------------------------------
    def count(self, route: str, status: str) -> None:
        """Count one response (status code, or 'reset' for dropped connections)."""
        with self.lock:
            per_route = self.counters.setdefault(route, {})
            per_route[status] = per_route.get(status, 0) + 1

    def counters_snapshot(self) -> dict[str, dict[str, int]]:
        """Copy of the request counters: route -> status -> count."""
        with self.lock:
            return {route: dict(statuses) for route, statuses in self.counters.items()}

    def reset_counters(self) -> None:
        """Zero every counter."""
        with self.lock:
            self.counters.clear()

    def latency_s(self) -> float:
        """The artificial latency for one request (mean +/- uniform jitter), seconds."""
        with self.lock:
            if self.latency_ms <= 0 and self.latency_jitter_ms <= 0:
                return 0.0
            jitter = self.latency_rng.uniform(-self.latency_jitter_ms, self.latency_jitter_ms)
            return max(0.0, self.latency_ms + jitter) / 1000.0

    def set_delays(self, **changes: Any) -> None:
        """Change mutation delays/probabilities for mutations scheduled from now on."""
        with self.lock:
            values = {**self.delays.__dict__, **changes}
            self.delays = MutationDelays(**values)
            self.factory.delays = self.delays


def _delays(config: SimulatorConfig) -> MutationDelays:
    """The config's mutation settings: each MutationDelays field has a SimulatorConfig field of its name."""
    return MutationDelays(**{f.name: getattr(config, f.name) for f in dataclasses.fields(MutationDelays)})


def _job_timings(config: SimulatorConfig) -> JobTimings:
    return JobTimings(
        queued_s=config.job_queued_s,
        pending_s=config.job_pending_s,
        ttl_s=config.job_ttl_s,
        default_page_size=config.job_default_page_size,
        max_page_size=config.job_max_page_size,
        data_lake_lag_s=config.data_lake_lag_s,
        data_lake_step_s=config.data_lake_step_s,
        failure_probability=config.job_failure_probability,
        max_concurrent=config.max_concurrent_jobs,
    )
