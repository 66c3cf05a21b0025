"""Steady live run at a 0.9 budget share, then an injected 429 storm.

The simulator has no history, only live traffic (new conversations every tick, ending after a short
while, with wrap-ups, surveys and evaluations arriving after the end). The connector starts a minute in the
past and keeps up with 5-second windows and two quick settlement re-scans, with `budget_share` and
`live_budget_share` both 0.9 of a rate limit chosen *below* what that traffic needs, so the pacer, not
the workload, decides the request rate: that is the situation in which a client can overrun its budget.

Measured from the simulator's response counters, sampled every 0.5 s:
- 429s served from the start of the connector until the storm (target: none);
- the steady request rate, as a share of the limit (should sit just under 0.9);
- then `profile.storm` is scripted on the query route (each a 429 with a short Retry-After); recovery is
  the time from the last of those 429s until the request rate over the next 5 s is back to 90 % of the
  steady rate (target: within one rate-limit window, 60 s). The run stops 10 s after recovery, or
  `storm_observe_s` after the storm if the rate never comes back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.context import Context, ScenarioError
from bench.harness import LogEvents, Simulator, run_connector, scrape, simulator
from bench.profiles import RATE_WINDOW_S
from bench.report import Row, Target

SAMPLE_S = 0.5
BUCKET_S = 5.0
FULL_SPEED = 0.9  # share of the steady rate that counts as "back to full speed"
STORM_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the connector process started
    requests: int  # query responses so far (every status)
    throttled: int  # 429 responses so far


@dataclass
class LiveMonitor:
    """Drives the phases from `run_connector`'s tick: warm-up, steady run, storm, observation."""

    sim: Simulator
    warmup_s: float
    steady_s: float
    storm: tuple[str, ...]
    observe_s: float
    samples: list[Sample] = field(default_factory=list)
    started_t: float | None = None
    steady_start: Sample | None = None
    steady_end: Sample | None = None
    storm_end: Sample | None = None
    connector_metrics: dict[str, float] = field(default_factory=dict)
    steady_metrics: dict[str, float] = field(default_factory=dict)
    _last_poll: float = -1.0

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        if elapsed - self._last_poll < SAMPLE_S:
            return False
        self._last_poll = elapsed
        query = self.sim.control.counters().get("query", {})
        sample = Sample(elapsed, sum(query.values()), int(query.get("429", 0)))
        self.samples.append(sample)
        if self.started_t is None:
            if events.started_at is not None:
                self.started_t = elapsed
            return False
        if self.steady_start is None:
            if elapsed >= self.started_t + self.warmup_s:
                self.steady_start = sample
            return False
        if self.steady_end is None:
            if elapsed >= self.steady_start.t + self.steady_s:
                self.steady_end = sample
                self.steady_metrics = scrape(events.metrics_url)
                self.sim.control.script_faults(list(self.storm), route="query")
            return False
        if self.storm_end is None:
            if sample.throttled >= self.steady_end.throttled + len(self.storm):
                self.storm_end = sample
            return elapsed > self.steady_end.t + STORM_TIMEOUT_S
        recovered = self.recovery_s()
        seen_enough = recovered is not None and elapsed >= self.storm_end.t + recovered + 2 * BUCKET_S
        if seen_enough or elapsed >= self.storm_end.t + self.observe_s:
            self.connector_metrics = scrape(events.metrics_url)
            return True
        return False

    # ------------------------------------------------------------------------------------ analysis
    def steady_rate(self) -> float:
        a, b = self.steady_start, self.steady_end
        if a is None or b is None or b.t <= a.t:
            return 0.0
        return (b.requests - a.requests) / (b.t - a.t)

    def rate_after(self, start: Sample) -> float | None:
        """Requests per second over the BUCKET_S after `start` (None if the run ended before)."""
        for s in self.samples:
            if s.t >= start.t + BUCKET_S:
                return (s.requests - start.requests) / (s.t - start.t)
        return None

    def recovery_s(self) -> float | None:
        """Seconds from the storm's last 429 until a 5-s span at >= 90 % of the steady rate begins."""
        if self.storm_end is None:
            return None
        goal = FULL_SPEED * self.steady_rate()
        for s in self.samples:
            if s.t < self.storm_end.t:
                continue
            rate = self.rate_after(s)
            if rate is None:
                return None
            if rate >= goal:
                return s.t - self.storm_end.t
        return None

    def buckets(self) -> list[dict[str, float]]:
        """Request rate per 5-s bucket around the storm (t relative to the storm's injection)."""
        if self.steady_end is None:
            return []
        origin = self.steady_end.t
        out = []
        marks = [s for s in self.samples if s.t >= origin - 30]
        i = 0
        while i < len(marks):
            a = marks[i]
            j = next((k for k in range(i + 1, len(marks)) if marks[k].t >= a.t + BUCKET_S), None)
            if j is None:
                break
            b = marks[j]
            out.append(
                {
                    "t": round(a.t - origin, 1),
                    "requests_per_s": round((b.requests - a.requests) / (b.t - a.t), 2),
                    "throttled": b.throttled - a.throttled,
                }
            )
            i = j
        return out


def live(ctx: Context) -> tuple[list[Row], dict[str, Any]]:
    """The steady live run and the 429 storm (see module docstring)."""
    p = ctx.profile
    ctx.say(
        f"live: {p.live_rate_per_minute:g} new conversations/min, limit {p.live_rate_limit}/min, "
        f"budget share 0.9, {p.live_steady_s:g} s steady, then {len(p.storm)} x {p.storm[0]}"
    )
    fields = {
        "seed": p.seed,
        "history_days": 0.0,
        "live_rate_per_minute": p.live_rate_per_minute,
        "live_duration_s": 10.0,
        "ingest_delay_s": 2.0,
        "acw_delay_s": 5.0,
        "survey_delay_s": 15.0,
        "evaluation_delay_s": 25.0,
        "rate_limit": p.live_rate_limit,
        "rate_window_s": RATE_WINDOW_S,
        "latency_ms": p.live_latency_ms,
        "log_level": "warning",
    }
    settings = {
        "WINDOWS__START": "-1m",
        "WINDOWS__LENGTH": "5s",
        "WINDOWS__LAG": "3s",
        "WINDOWS__POLL_INTERVAL": "1s",
        "WINDOWS__RESCAN_DELAYS": '["10s", "20s"]',
        "GENESYS__REQUESTS_PER_MINUTE": str(p.live_rate_limit),
        "GENESYS__BUDGET_SHARE": "0.9",
        "GENESYS__LIVE_BUDGET_SHARE": "0.9",
        "GENESYS__MAX_CONCURRENCY": str(p.max_concurrency),
        "GENESYS__PAGE_SIZE": str(p.page_size),
    }
    with simulator(fields, ctx.workdir) as sim:
        topic = ctx.new_topic("live")
        env = ctx.env_for(sim, topic, ctx.workdir / f"state-live-{int(time.time())}", settings)
        sim.control.reset_counters()
        monitor = LiveMonitor(sim, p.live_warmup_s, p.live_steady_s, p.storm, p.storm_observe_s)
        budget = p.live_warmup_s + p.live_steady_s + STORM_TIMEOUT_S + p.storm_observe_s + 60
        run = run_connector(env, ctx.workdir / "connector-live.log", timeout_s=budget, on_tick=monitor)
    if monitor.steady_end is None or monitor.steady_start is None:
        raise ScenarioError(f"the live run ended before its steady phase; log tail:\n{run.log_tail()}")
    return _rows(ctx, monitor, run.exit_code), _details(monitor, settings, run.exit_code)


def _rows(ctx: Context, m: LiveMonitor, exit_code: int) -> list[Row]:
    p = ctx.profile
    assert m.steady_end is not None
    limit_per_s = p.live_rate_limit / RATE_WINDOW_S
    steady = m.steady_rate()
    storm_429 = (m.samples[-1].throttled - m.steady_end.throttled) if m.samples else 0
    rows = [
        Row(
            "live",
            "429s before the storm",
            float(m.steady_end.throttled),
            "",
            Target("==", 0),
            note=f"{p.live_warmup_s:g} s warm-up + {p.live_steady_s:g} s steady at budget share 0.9",
        ),
        Row(
            "live",
            "steady request rate / limit",
            steady / limit_per_s,
            "",
            note="just under 0.9 means the pacer (not the traffic) set the pace",
        ),
    ]
    recovery = m.recovery_s()
    if m.storm_end is None:
        rows.append(Row("live", "429 storm", None, note="the scripted 429s were not all served in time"))
        return rows
    rows += [
        Row("live", "storm duration (first to last 429)", m.storm_end.t - m.steady_end.t, "s"),
        Row(
            "live",
            "back to full speed after the storm",
            recovery,
            "s",
            Target("<=", RATE_WINDOW_S),
            note=f"from the last scripted 429 to a 5-s span at >= {FULL_SPEED:.0%} of the steady rate "
            f"({steady:.2f} req/s)",
        ),
        Row(
            "live",
            "429s beyond the scripted ones",
            float(max(0, storm_429 - len(p.storm))),
            "",
            note="real rate-limit 429s after the pause (a burst would cause them)",
        ),
    ]
    if exit_code != 0:
        rows.append(Row("live", "connector exit code", float(exit_code), "", Target("==", 0)))
    return rows


def _details(m: LiveMonitor, settings: dict[str, str], exit_code: int) -> dict[str, Any]:
    return {
        "settings": settings,
        "exit_code": exit_code,
        "steady_requests_per_s": m.steady_rate(),
        "steady_start_t": None if m.steady_start is None else m.steady_start.t,
        "storm_injected_t": None if m.steady_end is None else m.steady_end.t,
        "storm_last_429_t": None if m.storm_end is None else m.storm_end.t,
        "recovery_s": m.recovery_s(),
        "connector_metrics_before_storm": m.steady_metrics,
        "connector_metrics_at_end": m.connector_metrics,
        "buckets_around_storm": m.buckets(),
        "final_counters": None if not m.samples else vars(m.samples[-1]),
    }
