"""Benchmark profiles: every number a run depends on, in one place.

`DEFAULT` is the real benchmark (1 s query latency, the documented 300 requests/minute budget, 100k and
400k conversation backlogs; a few minutes on 2 cores). `QUICK` scales it down for a smoke run: a higher
limit and a lower latency chosen so that `rate_limit / 60 x latency` (requests in flight needed to use the
whole budget, which is also the connector's best-case advantage over the one-at-a-time naive loop) stays
the same, so the ratios stay comparable; backlogs are smaller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RATE_WINDOW_S = 60.0  # the simulator's (and Genesys') rate-limit window


@dataclass(frozen=True)
class Profile:
    """Parameters of one benchmark run (see docs/benchmark.md for what each scenario does with them)."""

    name: str
    # --- catch-up throughput and the naive loop --------------------------------------------------------
    rate_limit: int  # simulator requests per token per minute; the connector's requests_per_minute
    latency_ms: float  # simulator latency of every /api/v2 response
    max_concurrency: (
        int  # connector requests in flight (needs >= rate_limit / 60 x latency to use the budget)
    )
    throughput_backlog: int  # conversations in the catch-up backlog
    naive_duration_s: float  # each naive variant runs this long (its rate is steady)
    # --- CPU and memory (no latency, no practical limit) ------------------------------------------------
    cpu_backlog: int  # CPU per conversation and the first peak-RSS point
    rss_backlog: int  # the second peak-RSS point
    # --- re-scans -------------------------------------------------------------------------------------
    rescan_backlog: int
    # --- steady live run and the 429 storm ------------------------------------------------------------
    live_rate_limit: int  # simulator limit in the live run: the connector's demand exceeds 0.9 x this
    live_rate_per_minute: float  # new conversations per minute
    live_latency_ms: float
    live_warmup_s: float  # after the connector's main loop starts, before counting
    live_steady_s: float  # the steady run whose 429s are counted
    storm: tuple[str, ...]  # scripted faults on the query route
    storm_observe_s: float  # how long to watch the request rate after the storm
    # --- jobs path (bench/jobs.py) -----------------------------------------------------------------------
    jobs_backlog: int = 36_000  # conversations older than the data-lake lag
    jobs_rate_limit: int = 60  # low: the budget binds, not CPU or latency
    jobs_latency_ms: float = 50.0
    jobs_query_measure_s: float = 30.0  # the query path's steady rate is measured over this much main loop
    jobs_cpu_backlog: int = 48_000
    jobs_cpu_volume_per_hour: float = 500.0  # spreads jobs_cpu_backlog over several UTC days (one job each)
    jobs_max_concurrent: int = 4  # jobs at once in jobs_cpu (connector and simulator cap)
    # --- data shape -------------------------------------------------------------------------------------
    volume_per_hour: float = 1000.0  # history conversations per hour (diurnal shape)
    page_size: int = 100
    seed: int = 7
    # --- accelerated clock (bench/horizon.py): simulated seconds per real second -------------------------
    accel_factor: float = 240.0
    freshness_hours: float = 10.0  # simulated hours of live traffic with realistic durations
    freshness_rate_per_minute: float = 10.0  # new conversations per simulated minute
    # The connector's windows.follow_interval in the freshness run (set explicitly; its default is 5m): open
    # conversations are re-read by id this often from their first sighting. Target: follow + lag + one window.
    follow_interval_s: float = 300.0
    freshness_settings: dict[str, str] = field(default_factory=dict)  # extra connector settings (env)
    downtime_before_h: float = 1.0  # live before the downtime (simulated hours)
    downtime_h: float = 3.0  # connector down, traffic going on
    downtime_rate_per_minute: float = 1000.0 / 60  # new conversations per simulated minute

    @property
    def physical_limit(self) -> float:
        """Conversations per second the budget allows at best: limit x pageSize / 60."""
        return self.rate_limit * self.page_size / RATE_WINDOW_S

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["storm"] = list(self.storm)
        data["physical_limit_conversations_per_s"] = self.physical_limit
        return data


DEFAULT = Profile(
    name="default",
    rate_limit=300,
    latency_ms=1000.0,
    max_concurrency=8,
    throughput_backlog=30_000,
    naive_duration_s=25.0,
    cpu_backlog=100_000,
    rss_backlog=400_000,
    rescan_backlog=20_000,
    live_rate_limit=120,
    live_rate_per_minute=1200.0,
    live_latency_ms=200.0,
    live_warmup_s=30.0,
    live_steady_s=60.0,
    storm=("429:5",) * 8,
    storm_observe_s=60.0,
    jobs_backlog=72_000,
    jobs_query_measure_s=60.0,
    jobs_cpu_backlog=120_000,
    jobs_cpu_volume_per_hour=1000.0,
)

QUICK = Profile(
    name="quick",
    rate_limit=600,
    latency_ms=500.0,
    max_concurrency=8,
    throughput_backlog=30_000,
    naive_duration_s=8.0,
    cpu_backlog=25_000,
    rss_backlog=50_000,
    rescan_backlog=6_000,
    live_rate_limit=120,
    live_rate_per_minute=1200.0,
    live_latency_ms=100.0,
    live_warmup_s=20.0,
    live_steady_s=15.0,
    storm=("429:3",) * 6,
    storm_observe_s=15.0,
    freshness_hours=4.0,
)

PROFILES = {p.name: p for p in (DEFAULT, QUICK)}
