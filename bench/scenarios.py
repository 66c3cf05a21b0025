"""The catch-up scenarios: throughput (and the naive baseline), CPU, memory, re-scan cost.

Each function runs one scenario end to end (its own simulator process, a fresh topic on the shared
broker, one connector process) and returns the rows of the table plus the raw numbers for the JSON.
Conversations are counted from the simulator (its history is exactly the backlog), requests from the
simulator's own response counters (route "query", every status; the token route is separate), and the
connector's delivery is checked against the topic's end offsets before any rate is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench.context import UNLIMITED, Context, ScenarioError
from bench.harness import (
    ConnectorRun,
    LogEvents,
    Simulator,
    Tick,
    scrape,
    simulator,
    topic_message_count,
)
from bench.naive import run_naive
from bench.profiles import RATE_WINDOW_S
from bench.report import Row, Target

MB = 1024 * 1024
CATCHUP_WINDOW = timedelta(days=1)  # windows.max_catchup_length default

Result = tuple[list[Row], dict[str, Any]]


def _delivered(ctx: Context, sim: Simulator, run: ConnectorRun, topic: str) -> tuple[int, int]:
    """(conversations in the backlog, messages in the topic); fails if fewer messages than conversations."""
    conversations = sim.control.conversation_count()
    messages = topic_message_count(ctx.kafka.bootstrap_servers, topic)
    if messages < conversations:
        raise ScenarioError(
            f"only {messages} messages for {conversations} conversations; log tail:\n{run.log_tail()}"
        )
    return conversations, messages


def _run_details(run: ConnectorRun) -> dict[str, Any]:
    return {
        "exit_code": run.exit_code,
        "process_wall_s": round(run.wall_s, 2),
        "loop_wall_s": run.loop_wall_s,
        "cpu_user_s": round(run.cpu_user_s, 3),
        "cpu_sys_s": round(run.cpu_sys_s, 3),
        "cpu_before_loop_s": run.cpu_at_loop_start_s,
        "peak_rss_mb": round(run.peak_rss_bytes / MB, 1),
        "peak_rss_polled_mb": round(run.peak_rss_polled_bytes / MB, 1),
        "rss_samples": run.rss_samples,
        "rss_timeline_mb": [(t, round(b / MB, 1)) for t, b in run.rss_timeline],
        "errors_logged": run.events.errors[:10],
    }


# ------------------------------------------------------------------------------------------ throughput
@dataclass
class ProgressSampler:
    """Every second: conversations the connector has published (its own metric) and requests served."""

    sim: Simulator
    every_s: float = 1.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, published, requests)

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        if events.metrics_url is None or (self.samples and elapsed - self.samples[-1][0] < self.every_s):
            return False
        published = scrape(events.metrics_url).get("genesys_connector_conversations_published_total")
        if published is not None:
            self.samples.append((elapsed, published, self.sim.query_requests()))
        return False

    def steady(self, total: int, low: float = 0.3, high: float = 0.9) -> tuple[float, float, float] | None:
        """(conversations/s, requests/s, seconds) between `low` and `high` of `total` published.

        A bounded run starts with a full token bucket (a burst of 2 s of budget, spent within the first
        ~10-25 % of these backlogs) and ends with a tail in which the last window's final pages are fetched
        one after another; a real catch-up of days has neither, so its sustained rate is the slope in
        between.
        """
        a = next((s for s in self.samples if s[1] >= low * total), None)
        b = next((s for s in self.samples if s[1] >= high * total), None)
        if a is None or b is None or b[0] <= a[0]:
            return None
        span = b[0] - a[0]
        return (b[1] - a[1]) / span, (b[2] - a[2]) / span, span


def _catchup(ctx: Context, scenario: str, extra: dict[str, str] | None) -> tuple[Result, float]:
    p = ctx.profile
    n = p.throughput_backlog
    ctx.say(
        f"{scenario}: {n:,} conversations, limit {p.rate_limit}/min, latency {p.latency_ms:g} ms, "
        f"max_concurrency {p.max_concurrency}{'' if not extra else ', ' + str(extra)}"
    )
    with simulator(ctx.simulator_fields(n), ctx.workdir) as sim:
        settings = ctx.first_pass_settings(n, rate_limit=p.rate_limit, extra=extra)
        timeout = 4 * n / p.physical_limit + 180
        sampler = ProgressSampler(sim)
        run, topic = ctx.run_bounded(scenario, sim, settings, timeout_s=timeout, on_tick=sampler)
        conversations, messages = _delivered(ctx, sim, run, topic)
        counters = sim.control.counters()
    loop_s = run.loop_wall_s or 0.0
    requests = sum(counters.get("query", {}).values())
    throttled = counters.get("query", {}).get("429", 0)
    overall = conversations / loop_s
    steady = sampler.steady(conversations)
    if steady is None:
        raise ScenarioError(f"too few progress samples to measure a steady rate ({len(sampler.samples)})")
    cps, request_rate, span = steady
    limit_per_s = p.rate_limit / RATE_WINDOW_S
    rps = limit_per_s
    rows = [
        Row(
            scenario,
            "catch-up throughput, steady",
            cps,
            "conv/s",
            note=f"slope of conversations published between 30 % and 90 % of the backlog ({span:.0f} s)",
        ),
        Row(
            scenario,
            "steady throughput / physical limit",
            cps / p.physical_limit,
            "",
            Target(">=", 0.95),
            note=f"physical limit = {p.rate_limit} x {p.page_size} / 60 = {p.physical_limit:g} conv/s; "
            f"max_concurrency {p.max_concurrency} ({rps:g} requests/s at {p.latency_ms:g} ms need at least "
            f"{rps * p.latency_ms / 1000 + 1:g} in flight)",
        ),
        Row(scenario, "API budget used, steady (req/s / limit)", request_rate / limit_per_s),
        Row(
            scenario,
            "whole run / physical limit",
            overall / p.physical_limit,
            "",
            note=f"{conversations:,} conversations / {loop_s:.1f} s of main loop ('connector started' to "
            "'bounded run complete', every page acked)",
        ),
        Row(
            scenario,
            "first-pass requests per 1,000 conversations",
            requests * 1000 / conversations,
            "",
            Target("<=", 10.5),
        ),
        Row(scenario, "429s received", float(throttled), ""),
    ]
    details = {
        "conversations": conversations,
        "messages": messages,
        "query_requests": requests,
        "counters": counters,
        "steady_conversations_per_s": cps,
        "steady_requests_per_s": request_rate,
        "steady_span_s": span,
        "overall_conversations_per_s": overall,
        "progress_samples": sampler.samples,
        "settings": settings,
        **_run_details(run),
    }
    return (rows, details), cps


def throughput(ctx: Context) -> Result:
    """Catch-up over a backlog at the profile's limit and latency, connector defaults otherwise."""
    result, cps = _catchup(ctx, "throughput", None)
    ctx.results["throughput_cps"] = cps
    return result


def naive(ctx: Context) -> Result:
    """The one-request-at-a-time loop against an identically configured fresh simulator.

    It reads the same windows as the connector run it is compared with (whole UTC days, the default
    max_catchup_length) for `naive_duration_s` on its own fresh simulator.
    """
    p = ctx.profile
    n = p.throughput_backlog
    start, end = ctx.backlog(n)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    variants = (("1 d", CATCHUP_WINDOW, "throughput_cps", "connector"),)
    for label, length, key, who in variants:
        ctx.say(f"naive: one request at a time for {p.naive_duration_s:g} s over {label} windows")
        windows = ctx.catchup_windows(start, end, length)
        with simulator(ctx.simulator_fields(n), ctx.workdir) as sim:
            result = run_naive(sim.base_url, windows, page_size=p.page_size, duration_s=p.naive_duration_s)
        rows.append(
            Row(
                "naive",
                f"naive loop throughput, {label} windows",
                result.conversations_per_s,
                "conv/s",
                note="one request at a time, pageNumber until empty per window, sleeps Retry-After on 429; "
                "fetches only (publishes nothing)",
            )
        )
        if key in ctx.results and result.conversations_per_s > 0:
            ratio = ctx.results[key] / result.conversations_per_s
            rows.append(Row("naive", f"{who} / naive ({label} windows)", ratio, "x", Target(">=", 4.0)))
        details[label] = {
            "conversations": result.conversations,
            "requests": result.requests,
            "throttled": result.throttled,
            "elapsed_s": result.elapsed_s,
            "finished": result.finished,
            "windows": len(windows),
        }
    return rows, details


# ------------------------------------------------------------------------------------------ loop stalls
STALL = "genesys_connector_loop_max_stall_seconds"
HEARTBEAT_GAP = "genesys_connector_loop_max_heartbeat_gap_seconds"


@dataclass
class LoopSampler:
    """Every second: the connector's loop gauges (the last scrape before it exits is what is reported).

    Both are maxima since start, so the last sample holds everything but the final second of the run.
    """

    every_s: float = 1.0
    last: dict[str, float] = field(default_factory=dict)
    _at: float = float("-inf")

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        if events.metrics_url is None or elapsed - self._at < self.every_s:
            return False
        self._at = elapsed
        found = scrape(events.metrics_url, (STALL, HEARTBEAT_GAP))
        if found:
            self.last = found
        return False

    def rows(self, scenario: str, store_size: int) -> list[Row]:
        return [
            Row(
                scenario,
                "loop stall: longest event-loop block",
                self.last.get(STALL),
                "s",
                note=f"{STALL} (a probe task waking every 50 ms, lateness = the loop was blocked) with "
                f"{store_size:,} conversations in the change store",
            ),
            Row(
                scenario,
                "longest gap between main-loop heartbeats",
                self.last.get(HEARTBEAT_GAP),
                "s",
                note=f"{HEARTBEAT_GAP}: includes the loop's deliberate waits (up to 1 s while passes run, "
                "5 s when idle)",
            ),
        ]


# ------------------------------------------------------------------------------------------ CPU, memory
def _unlimited_run(
    ctx: Context, scenario: str, n: int, *, command: list[str] | None = None, on_tick: Tick | None = None
) -> dict[str, Any]:
    """A first pass over `n` conversations with no latency and no practical limit."""
    # Ghost duplicates off: they cost the simulator O(hits) per page and hardly change the connector's work.
    fields = ctx.simulator_fields(n, rate_limit=UNLIMITED, latency_ms=0.0, duplicate_probability=0.0)
    with simulator(fields, ctx.workdir) as sim:
        settings = ctx.first_pass_settings(n, rate_limit=UNLIMITED)
        sim_cpu_before = sim.cpu_seconds()
        run, topic = ctx.run_bounded(
            scenario, sim, settings, timeout_s=n / 200 + 180, command=command, on_tick=on_tick
        )
        sim_cpu = sim.cpu_seconds() - sim_cpu_before
        conversations, messages = _delivered(ctx, sim, run, topic)
        requests = sim.query_requests()
    return {
        "run": run,
        "conversations": conversations,
        "messages": messages,
        "query_requests": requests,
        "simulator_cpu_s": round(sim_cpu, 2),
        "settings": settings,
    }


def cpu(ctx: Context) -> Result:
    """Conversations per CPU-second of the connector process, and the first peak-RSS point."""
    n = ctx.profile.cpu_backlog
    ctx.say(f"cpu: {n:,} conversations, no latency, no limit")
    m = _unlimited_run(ctx, "cpu", n)
    run: ConnectorRun = m.pop("run")
    conversations = m["conversations"]
    ctx.results["cpu_peak_rss"] = run.peak_rss_bytes
    ctx.results["cpu_backlog"] = conversations
    loop_cpu = run.loop_cpu_s
    rows = [
        Row(
            "cpu",
            "conversations per CPU-second",
            conversations / run.cpu_s,
            "conv/CPU-s",
            Target(">=", 20_000),
            note=f"user+sys of the whole connector process ({run.cpu_s:.1f} s, startup included; "
            f"simulator used {m['simulator_cpu_s']:.1f} s)",
        ),
        Row(
            "cpu",
            "same, main loop only",
            None if not loop_cpu else conversations / loop_cpu,
            "conv/CPU-s",
            note="CPU after the 'connector started' line (imports, Kafka and API checks excluded)",
        ),
        Row("cpu", "throughput without limit", conversations / (run.loop_wall_s or 1), "conv/s"),
        Row(
            "cpu",
            f"peak RSS, {conversations // 1000}k backlog",
            run.peak_rss_bytes / MB,
            "MB",
            Target("<=", 200),
        ),
    ]
    return rows, {**m, **_run_details(run)}


def rss(ctx: Context) -> Result:
    """Peak RSS over a backlog several times larger: memory must not grow with volume."""
    n = ctx.profile.rss_backlog
    ctx.say(f"rss: {n:,} conversations, no latency, no limit")
    loop = LoopSampler()
    m = _unlimited_run(ctx, "rss", n, on_tick=loop)
    run: ConnectorRun = m.pop("run")
    conversations = m["conversations"]
    rows = [
        Row(
            "rss",
            f"peak RSS, {conversations // 1000}k backlog",
            run.peak_rss_bytes / MB,
            "MB",
            Target("<=", 200),
        ),
    ]
    rows.append(
        Row(
            "rss",
            "RSS rise in the second half of the run",
            _second_half_rise(run) / MB,
            "MB",
            note="peak RSS minus the peak of the first half of the run: ~0 means memory has levelled off",
        )
    )
    small = ctx.results.get("cpu_peak_rss")
    if small:
        rows.append(
            Row(
                "rss",
                f"peak RSS {conversations // 1000}k / {ctx.results['cpu_backlog'] // 1000}k",
                run.peak_rss_bytes / small,
                "",
                Target("<=", 1.10),
                note="flat = within 10 %",
            )
        )
    rows.append(Row("rss", "conversations per CPU-second", conversations / run.cpu_s, "conv/CPU-s"))
    rows += loop.rows("rss", conversations)
    return rows, {**m, **_run_details(run), "loop_gauges": loop.last}


def _second_half_rise(run: ConnectorRun) -> int:
    timeline = run.rss_timeline
    if len(timeline) < 4:
        return 0
    middle = timeline[-1][0] / 2
    first = max(rss for t, rss in timeline if t <= middle)
    return max(0, max(rss for _, rss in timeline) - first)


# ------------------------------------------------------------------------------------------ re-scans
def rescans(ctx: Context) -> Result:
    """Requests per 1,000 conversations for a backlog older than the longest re-scan delay: the first pass
    alone (no re-scans configured), then the query-only settlement re-scans (15m, 2h, 26h, 74h: the
    defaults before settlement by jobs), every one of them already overdue."""
    p = ctx.profile
    n = p.rescan_backlog
    ctx.say(f"rescans: {n:,} conversations, first pass alone, then 15m, 2h, 26h, 74h all overdue at once")
    fields = ctx.simulator_fields(n, rate_limit=UNLIMITED, latency_ms=0.0, render_cache_size=n + 1000)
    with simulator(fields, ctx.workdir) as sim:
        first_settings = ctx.first_pass_settings(n, rate_limit=UNLIMITED)
        run_a, _topic_a = ctx.run_bounded("rescans-first", sim, first_settings, timeout_s=n / 100 + 180)
        first = sim.query_requests()
        settings = ctx.first_pass_settings(n, rate_limit=UNLIMITED)
        settings["WINDOWS__RESCAN_DELAYS"] = "15m,2h,26h,74h"  # settlement by the query alone
        run, topic = ctx.run_bounded("rescans", sim, settings, timeout_s=n / 100 + 180)
        conversations, messages = _delivered(ctx, sim, run, topic)
        requests = sim.query_requests()
    first_per_1000 = first * 1000 / conversations
    per_1000 = requests * 1000 / conversations
    ctx.results["first_pass_per_1000"] = first_per_1000
    rows = [
        Row("rescans", "first pass alone, requests per 1,000 conv", first_per_1000, ""),
        Row(
            "rescans",
            "every re-scan overdue, requests per 1,000 conv",
            per_1000,
            "",
            note="default rescan_delays (15m, 2h, 26h, 74h) over a backlog that ended days ago: every "
            "re-scan is due at once; only the last can add anything",
        ),
        Row(
            "rescans",
            "every re-scan overdue / first pass alone",
            per_1000 / first_per_1000,
            "x",
            Target("<=", 1.05),
            note="target: the first pass alone (a first pass after a re-scan's delay makes it unnecessary)",
        ),
        Row(
            "rescans",
            "messages per conversation",
            messages / conversations,
            "",
            note="unchanged records are not published again",
        ),
    ]
    return rows, {
        "conversations": conversations,
        "messages": messages,
        "query_requests_first_pass_alone": first,
        "query_requests": requests,
        "settings": settings,
        "first_pass_run": _run_details(run_a),
        **_run_details(run),
    }
