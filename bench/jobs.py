"""The jobs-path scenarios (issue 11): backfill through async jobs next to the details query.

- `jobs`: one simulator, one backlog older than the simulator's data-lake lag, a low API limit (so the
  budget is what binds, not CPU or latency). The query path runs first (jobs off) long enough to measure
  its steady rate, then the jobs path (backfill and settlement on, the defaults) reads the whole backlog.
  Requests are counted by route from the simulator's own counters (jobs_create, job_status, job_results,
  job_delete, availability, query, multi-get), so requests per 1,000 conversations and the throughput
  ratio come from the same data in the same run.
- `jobs_cpu`: the jobs path over a backlog of several days with no latency and no practical limit, several
  jobs at once and 1,000-record result pages: connector CPU per conversation (wait4 rusage, as `cpu`)
  and peak RSS.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.context import UNLIMITED, Context, ScenarioError
from bench.harness import ConnectorRun, LogEvents, connector_env, run_connector, scrape, simulator
from bench.profiling import profile_rows
from bench.report import Row, Target
from bench.scenarios import MB, _delivered, _run_details

#: Simulator routes that cost the API budget (the token route does not; genesys-api.md §3).
JOB_ROUTES = ("jobs_create", "job_status", "job_results", "job_delete", "availability")
QUERY_ROUTES = ("query", "conversation", "conversations")
PUBLISHED = "genesys_connector_conversations_published_total"
JOBS_ON = {"JOBS__BACKFILL": "true", "JOBS__SETTLE": "true"}

Result = tuple[list[Row], dict[str, Any]]


def requests_by_route(counters: dict[str, dict[str, int]]) -> dict[str, int]:
    """Responses served per budgeted route, every status (429s included: they cost budget too)."""
    return {route: sum(counters.get(route, {}).values()) for route in (*JOB_ROUTES, *QUERY_ROUTES)}


@dataclass
class QuerySlope:
    """Samples the connector's published counter and the simulator's query responses every second and asks
    the connector to stop once `measure_s` of main loop have passed (its rate is steady by then)."""

    sim: Any
    measure_s: float
    skip_s: float = 5.0  # the pacer's initial burst
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    _loop_at: float | None = None

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        if events.metrics_url is None:
            return False
        if self._loop_at is None:
            self._loop_at = elapsed
        if self.samples and elapsed - self.samples[-1][0] < 1.0:
            return False
        published = scrape(events.metrics_url, (PUBLISHED,)).get(PUBLISHED)
        if published is not None:
            requests = sum(self.sim.control.counters().get("query", {}).values())
            self.samples.append((elapsed, published, requests))
        return elapsed - self._loop_at >= self.measure_s

    def rate(self) -> tuple[float, float, float]:
        """(conversations/s, requests per 1,000 conversations, seconds) after the initial burst."""
        if self._loop_at is None or len(self.samples) < 3:
            raise ScenarioError(f"too few query-path samples ({len(self.samples)})")
        begin = next((s for s in self.samples if s[0] >= self._loop_at + self.skip_s), None)
        end = self.samples[-1]
        if begin is None or end[0] <= begin[0] or end[1] <= begin[1]:
            raise ScenarioError("the query path published nothing measurable")
        span = end[0] - begin[0]
        conversations = end[1] - begin[1]
        return conversations / span, (end[2] - begin[2]) * 1000 / conversations, span


def jobs(ctx: Context) -> Result:
    """Requests per 1,000 conversations and budget-bound throughput: jobs path next to the query path."""
    p = ctx.profile
    n = p.jobs_backlog
    limit = p.jobs_rate_limit
    ctx.say(
        f"jobs: {n:,} conversations older than the data-lake lag, limit {limit}/min, latency "
        f"{p.jobs_latency_ms:g} ms; query path for {p.jobs_query_measure_s:g} s, then the jobs path"
    )
    fields = ctx.simulator_fields(n, rate_limit=limit, latency_ms=p.jobs_latency_ms)
    with simulator(fields, ctx.workdir) as sim:
        # The query path: a steady rate over part of the backlog (all of it takes n / (limit x 100 / 60) s).
        query_settings = ctx.first_pass_settings(n, rate_limit=limit)
        slope = QuerySlope(sim, p.jobs_query_measure_s)
        topic = ctx.new_topic("jobs-query")
        env = connector_env(
            api_url=sim.base_url,
            bootstrap=ctx.kafka.bootstrap_servers,
            topic=topic,
            state_dir=ctx.workdir / "state-jobs-query",
            settings=query_settings,
        )
        sim.control.reset_counters()
        log = ctx.workdir / "connector-jobs-query.log"
        query_run = run_connector(env, log, timeout_s=p.jobs_query_measure_s + 120, on_tick=slope)
        if query_run.exit_code != 0:
            raise ScenarioError(f"query-path run exited {query_run.exit_code}:\n{query_run.log_tail()}")
        query_cps, query_per_1000, query_span = slope.rate()
        # The jobs path: the whole backlog (the data lake holds all of it).
        settings = ctx.first_pass_settings(n, rate_limit=limit, extra=JOBS_ON)
        run, jobs_topic = ctx.run_bounded("jobs", sim, settings, timeout_s=n / 50 + 180)
        conversations, messages = _delivered(ctx, sim, run, jobs_topic)
        by_route = requests_by_route(sim.control.counters())
    loop_s = run.loop_wall_s or 0.0
    total = sum(by_route.values())
    job_requests = sum(by_route[r] for r in JOB_ROUTES)
    jobs_cps = conversations / loop_s
    per_1000 = total * 1000 / conversations
    ctx.results["jobs_cps"] = jobs_cps
    routes_note = ", ".join(f"{r} {c}" for r, c in by_route.items() if c)
    rows = [
        Row(
            "jobs",
            "jobs path: requests per 1,000 conversations",
            per_1000,
            "",
            Target("<=", 1.5),
            note=f"every budgeted route ({total} requests: {routes_note}), {conversations:,} conversations",
        ),
        Row(
            "jobs",
            "query path: requests per 1,000 conversations",
            query_per_1000,
            "",
            note="details-query pages of 100 over the same backlog (jobs off)",
        ),
        Row(
            "jobs",
            "jobs path: backfill throughput at the limit",
            jobs_cps,
            "conv/s",
            note=f"whole run: {conversations:,} conversations / {loop_s:.1f} s of main loop (job queueing, "
            f"polls and deletes included), limit {limit}/min",
        ),
        Row(
            "jobs",
            "query path: backfill throughput at the limit",
            query_cps,
            "conv/s",
            note=f"steady slope over {query_span:.0f} s of the same backlog (jobs off), limit {limit}/min "
            f"(physical limit {limit * p.page_size / 60:g} conv/s)",
        ),
        Row("jobs", "throughput jobs path / query path", jobs_cps / query_cps, "x", Target(">=", 4.0)),
        Row("jobs", "jobs path: share of requests on job routes", job_requests / max(1, total), ""),
    ]
    return rows, {
        "conversations": conversations,
        "messages": messages,
        "requests_by_route": by_route,
        "query_path": {
            "conversations_per_s": query_cps,
            "requests_per_1000": query_per_1000,
            "span_s": query_span,
            "samples": slope.samples,
            "settings": query_settings,
            **_run_details(query_run),
        },
        "settings": settings,
        **_run_details(run),
    }


def jobs_cpu(ctx: Context) -> Result:
    """Connector CPU per conversation and peak RSS on the jobs path, several jobs at once."""
    p = ctx.profile
    m = _jobs_unlimited(ctx, "jobs_cpu")
    run: ConnectorRun = m.pop("run")
    conversations = m["conversations"]
    loop_cpu = run.loop_cpu_s
    rows = [
        Row(
            "jobs_cpu",
            "conversations per CPU-second, main loop",
            None if not loop_cpu else conversations / loop_cpu,
            "conv/CPU-s",
            Target(">=", 10_000),
            note=f"CPU after 'connector started' ({loop_cpu or 0:.1f} s; the query path's `cpu` row counts "
            "the whole process)",
        ),
        Row(
            "jobs_cpu",
            "conversations per CPU-second, whole process",
            conversations / run.cpu_s,
            "conv/CPU-s",
            note=f"user+sys incl. start-up ({run.cpu_s:.1f} s; simulator used {m['simulator_cpu_s']:.1f} s)",
        ),
        Row("jobs_cpu", "throughput without limit", conversations / (run.loop_wall_s or 1), "conv/s"),
        Row(
            "jobs_cpu",
            f"peak RSS, {conversations // 1000}k backlog, {p.jobs_max_concurrent} jobs at once",
            run.peak_rss_bytes / MB,
            "MB",
            Target("<=", 200),
            note="ru_maxrss of the connector process; result pages of 1,000 records",
        ),
    ]
    return rows, {**m, **_run_details(run)}


def jobs_cpu_profile(ctx: Context) -> Result:
    """(On request) the `jobs_cpu` backlog with the connector under cProfile: where the jobs path's CPU
    goes (see bench/profiling.py)."""
    out = ctx.workdir / "connector-jobs.prof"
    command = [sys.executable, "-m", "bench.profiled_connector", str(out)]
    m = _jobs_unlimited(ctx, "jobs_cpu_profile", command=command)
    return profile_rows(ctx, "jobs_cpu_profile", m, out)


def _jobs_unlimited(ctx: Context, scenario: str, *, command: list[str] | None = None) -> dict[str, Any]:
    """The jobs path over `jobs_cpu_backlog` conversations: no latency, no practical limit, several jobs
    at once (one per UTC day), result pages of 1,000."""
    p = ctx.profile
    # A lower hourly volume spreads the backlog over several days: one job per UTC day, several at once.
    spread = dataclasses.replace(p, volume_per_hour=p.jobs_cpu_volume_per_hour)
    local = dataclasses.replace(ctx, profile=spread)
    n = p.jobs_cpu_backlog
    days = n / p.jobs_cpu_volume_per_hour / 24
    ctx.say(
        f"{scenario}: {n:,} conversations over {days:.1f} days, {p.jobs_max_concurrent} jobs at once, "
        f"pages of 1,000, no latency, no limit"
    )
    fields = local.simulator_fields(
        n,
        rate_limit=UNLIMITED,
        latency_ms=0.0,
        duplicate_probability=0.0,
        max_concurrent_jobs=p.jobs_max_concurrent,
        job_queued_s=0.2,
        job_pending_s=0.3,
    )
    extra = {**JOBS_ON, "JOBS__MAX_CONCURRENT": str(p.jobs_max_concurrent), "JOBS__PAGE_SIZE": "1000"}
    with simulator(fields, ctx.workdir) as sim:
        settings = local.first_pass_settings(n, rate_limit=UNLIMITED, extra=extra)
        sim_cpu_before = sim.cpu_seconds()
        run, topic = local.run_bounded(scenario, sim, settings, timeout_s=n / 100 + 180, command=command)
        sim_cpu = sim.cpu_seconds() - sim_cpu_before
        conversations, messages = _delivered(ctx, sim, run, topic)
        by_route = requests_by_route(sim.control.counters())
    if by_route["job_results"] == 0:
        raise ScenarioError(f"no job results were read; log tail:\n{run.log_tail()}")
    return {
        "run": run,
        "conversations": conversations,
        "messages": messages,
        "requests_by_route": by_route,
        "simulator_cpu_s": round(sim_cpu, 2),
        "settings": settings,
    }
