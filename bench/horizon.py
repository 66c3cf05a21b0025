"""Scenarios on the accelerated clock: hours of simulated traffic in a minute or two.

Both the simulator and the connector run through `python -m connector.testbed.accelerated` on one
`ClockMapping` (`profile.accel_factor` simulated seconds per real second), so every duration below is
simulated time. Budgets are simulated too (300 requests per simulated minute is factor x 5 per real second
at most), but the connector's demand stays small: default 5-minute windows, a few conversations per
simulated minute.

- `freshness`: traffic of realistic durations (voice minutes, chats tens of minutes, messaging and
  e-mails hours, a few e-mails days), a day of history then live, the connector on its defaults from a day
  ago (the catch-up takes simulated minutes). For every conversation that ended from 30 minutes after the
  connector caught up (its checkpoint: watermark within 15 minutes of now, nothing in flight, no re-scan
  overdue) until the stop (conversations that began up to a day earlier end during that span), the time
  from its `conversationEnd` (simulator clock) to the `genesys.observed_at` of its first ended version in
  Kafka (the connector's clock when it fetched that version; Kafka's acknowledgement
  follows within real milliseconds). An end not in Kafka when the run stops counts with its age then (a
  lower bound), so the percentiles are never flattered by leaving slow ends out; only ends at least one
  target's length before the stop are counted.
- `downtime`: the connector runs live for `downtime_before_h`, stops for `downtime_h` while traffic goes
  on, then restarts with live traffic paused (new windows are empty: the catch-up's requests are the
  downtime's own). Requests from the restart until it has caught up (watermark within 15 minutes of now,
  no pass in flight, no re-scan due for more than 10 minutes: read from its checkpoint) per 1,000
  conversations of the downtime, next to the first pass alone (`rescans` scenario).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.context import Context, ScenarioError
from bench.harness import LogEvents, run_connector, simulator
from bench.profiles import RATE_WINDOW_S
from bench.report import Row, Target
from bench.scenarios import LoopSampler
from connector.kafka.records import HEADER_ENDED, HEADER_OBSERVED_AT
from connector.state.checkpoint import read_only_load
from connector.testbed.accelerated import ClockMapping, command
from connector.testbed.reconcile import TopicMessage, read_topic

WINDOW = timedelta(minutes=5)  # windows.length default
LAG = timedelta(minutes=2)  # windows.lag default
HISTORY = timedelta(days=1)  # freshness: a day of history before the start, caught up first
WARMUP = timedelta(minutes=30)  # freshness: ends are measured from this long after the catch-up
CAUGHT_UP_LAG = timedelta(minutes=15)
OVERDUE = timedelta(minutes=10)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _simulator_fields(ctx: Context, rate_per_minute: float, history_days: float = 0.0) -> dict[str, Any]:
    return {
        "seed": ctx.profile.seed,
        "history_days": history_days,
        "volume_per_hour": rate_per_minute * 60,
        "live_rate_per_minute": rate_per_minute,
        "live_tick_s": 0.05,  # real seconds: factor x 0.05 simulated seconds per tick
        "rate_limit": 300,
        "rate_window_s": RATE_WINDOW_S,
        "log_level": "warning",
    }


def caught_up(state_dir: Path, now: datetime) -> bool:
    """What the connector's checkpoint says: watermark within CAUGHT_UP_LAG of `now`, no pass in flight,
    no re-scan due for longer than OVERDUE."""
    state = read_only_load(state_dir)
    if state is None or state.watermark is None or state.in_progress:
        return False
    if state.watermark < now - CAUGHT_UP_LAG:
        return False
    return not any(r.due_at < now - OVERDUE for r in state.rescans)


@dataclass
class SimUntil:
    """Stops the connector once simulated time reaches `span` after its main loop started, or, with
    `state_dir`, after it caught up (`began` is then that moment)."""

    mapping: ClockMapping
    span: timedelta
    state_dir: Path | None = None
    loop: LoopSampler = field(default_factory=LoopSampler)
    began: datetime | None = None
    _checked: float = float("-inf")

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        self.loop(elapsed, events)
        now = self.mapping.sim_at(time.time())
        if self.began is None:
            if events.started_at is None or elapsed - self._checked < 0.5:
                return False
            self._checked = elapsed
            if self.state_dir is None or caught_up(self.state_dir, now):
                self.began = now
            return False
        return now >= self.began + self.span


# ------------------------------------------------------------------------------------------ freshness
def _media(record: dict[str, Any]) -> str:
    for participant in record.get("participants", []):
        for session in participant.get("sessions", []):
            if "mediaType" in session:
                return str(session["mediaType"])
    return "unknown"


def _first_ended(records: list[TopicMessage]) -> dict[str, datetime]:
    """conversationId -> observed_at of its first ended version in the topic."""
    first: dict[str, datetime] = {}
    for m in records:
        if m.headers.get(HEADER_ENDED) == "true" and HEADER_OBSERVED_AT in m.headers:
            at = _instant(m.headers[HEADER_OBSERVED_AT])
            if m.key not in first or at < first[m.key]:
                first[m.key] = at
    return first


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def freshness(ctx: Context) -> tuple[list[Row], dict[str, Any]]:
    """Time from a conversation's end to its ended version in Kafka (see module docstring)."""
    p = ctx.profile
    # Simulated time starts at 20:30 UTC: the measured span (after the catch-up and warm-up) includes a UTC
    # midnight, where ends come late - the details query returns a conversation only to windows of the UTC
    # day it started on, so one that crosses midnight is seen ending only by its start day's re-scans.
    evening = datetime.now(UTC).replace(hour=20, minute=30, second=0, microsecond=0)
    mapping = ClockMapping(time.time(), evening, p.accel_factor)
    target = timedelta(seconds=p.follow_interval_s) + LAG + WINDOW
    ctx.say(
        f"freshness: {p.freshness_hours:g} simulated hours at x{p.accel_factor:g}, "
        f"{p.freshness_rate_per_minute:g} conversations/simulated minute, realistic durations"
    )
    fields = _simulator_fields(ctx, p.freshness_rate_per_minute, HISTORY.total_seconds() / 86_400)
    with simulator(fields, ctx.workdir, launcher=command(mapping, "simulator")) as sim:
        topic = ctx.new_topic("freshness")
        settings = {
            "WINDOWS__START": "-1d",
            "GENESYS__PAGE_SIZE": str(p.page_size),
            # The interval the target is computed from, set explicitly so the two cannot drift apart.
            "WINDOWS__FOLLOW_INTERVAL": f"{p.follow_interval_s:g}s",
            **p.freshness_settings,
        }
        state_dir = ctx.workdir / f"state-freshness-{int(time.time())}"
        env = ctx.env_for(sim, topic, state_dir, settings)
        # The day of history is caught up first (CPU-bound: an hour or more of simulated time at x240);
        # the measured span starts once the checkpoint says it has caught up.
        stop = SimUntil(mapping, timedelta(hours=p.freshness_hours) + WARMUP, state_dir)
        run = run_connector(
            env,
            ctx.workdir / "connector-freshness.log",
            timeout_s=p.freshness_hours * 3600 / p.accel_factor + 300,
            on_tick=stop,
            command=command(mapping, "connector"),
        )
        if stop.began is None or run.exit_code != 0:
            raise ScenarioError(f"the connector did not run (exit {run.exit_code}); log:\n{run.log_tail()}")
        stopped = sim.control.now()
        measured_from = stop.began + WARMUP
        truth = sim.control.truth(stopped - HISTORY * 2, stopped, records=True)
    first = _first_ended(read_topic(ctx.kafka.bootstrap_servers, topic))
    latencies: dict[str, list[float]] = {}
    missing = 0
    for row in truth:
        if "conversationEnd" not in row:
            continue
        end = _instant(row["conversationEnd"])
        if end < measured_from or end > stopped - target:
            continue
        seen = first.get(row["conversationId"])
        if seen is None:
            missing += 1
        latency = ((seen if seen is not None else stopped) - end).total_seconds() / 60
        latencies.setdefault(_media(row["record"]), []).append(max(0.0, latency))
    every = [v for values in latencies.values() for v in values]
    if not every:
        raise ScenarioError("no conversation ended early enough to be measured")
    target_min = target.total_seconds() / 60
    rows = [
        Row(
            "freshness",
            "end -> ended version in Kafka, p50",
            _percentile(every, 0.5),
            "min",
            note=f"{len(every):,} ends over {p.freshness_hours:g} simulated hours (clock "
            f"x{p.accel_factor:g}); from conversationEnd (simulator) to genesys.observed_at of the first "
            "ended version",
        ),
        Row(
            "freshness",
            "end -> ended version in Kafka, p95",
            _percentile(every, 0.95),
            "min",
            Target("<=", target_min),
            note=f"target = follow interval {p.follow_interval_s / 60:g} min + lag 2 min + one 5-min window",
        ),
    ]
    for media in ("voice", "chat", "message", "email"):
        if media in latencies:
            rows.append(
                Row(
                    "freshness",
                    f"p95 for {media} ({len(latencies[media])})",
                    _percentile(latencies[media], 0.95),
                    "min",
                )
            )
    rows.append(
        Row(
            "freshness",
            "ends not in Kafka when the run stopped",
            float(missing),
            "",
            note="counted above with their age at the stop (a lower bound of their latency)",
        )
    )
    rows += stop.loop.rows("freshness", len(truth))[:1]
    details = {
        "settings": settings,
        "factor": p.accel_factor,
        "simulated_start": stop.began.isoformat(),
        "simulated_stop": stopped.isoformat(),
        "ends_measured": len(every),
        "ends_missing_at_stop": missing,
        "percentiles_min": {
            media: {"n": len(v), "p50": _percentile(v, 0.5), "p95": _percentile(v, 0.95)}
            for media, v in latencies.items()
        },
        "loop_gauges": stop.loop.last,
        "exit_code": run.exit_code,
        "process_wall_s": round(run.wall_s, 1),
    }
    return rows, details


# ------------------------------------------------------------------------------------------ downtime
@dataclass
class CaughtUp:
    """Stops the connector once its checkpoint says it has caught up (see `caught_up`)."""

    mapping: ClockMapping
    state_dir: Path
    caught_up_at: datetime | None = None
    _last: float = float("-inf")

    def __call__(self, elapsed: float, events: LogEvents) -> bool:
        if events.started_at is None or elapsed - self._last < 0.5:
            return False
        self._last = elapsed
        now = self.mapping.sim_at(time.time())
        if not caught_up(self.state_dir, now):
            return False
        self.caught_up_at = now
        return True


def downtime(ctx: Context) -> tuple[list[Row], dict[str, Any]]:
    """Requests of the catch-up after a downtime, per 1,000 conversations of the downtime."""
    p = ctx.profile
    mapping = ClockMapping(time.time(), datetime.now(UTC), p.accel_factor)
    ctx.say(
        f"downtime: live {p.downtime_before_h:g} h, down {p.downtime_h:g} h, then catch up "
        f"(x{p.accel_factor:g}, {p.downtime_rate_per_minute:g} conversations/simulated minute)"
    )
    fields = _simulator_fields(ctx, p.downtime_rate_per_minute)
    state_dir = ctx.workdir / f"state-downtime-{int(time.time())}"
    with simulator(fields, ctx.workdir, launcher=command(mapping, "simulator")) as sim:
        topic = ctx.new_topic("downtime")
        settings = {"WINDOWS__START": "-1m", "GENESYS__PAGE_SIZE": str(p.page_size)}
        env = ctx.env_for(sim, topic, state_dir, settings)
        accel = command(mapping, "connector")
        before = SimUntil(mapping, timedelta(hours=p.downtime_before_h))
        first = run_connector(
            env,
            ctx.workdir / "connector-downtime-1.log",
            timeout_s=p.downtime_before_h * 3600 / p.accel_factor + 180,
            on_tick=before,
            command=accel,
        )
        if first.exit_code != 0 or before.began is None:
            raise ScenarioError(f"the first run failed (exit {first.exit_code}); log:\n{first.log_tail()}")
        down_from = sim.control.now()
        _wait_until(mapping, down_from + timedelta(hours=p.downtime_h))
        sim.control.pause_live()
        down_until = sim.control.now()
        sim.control.reset_counters()
        caught = CaughtUp(mapping, state_dir)
        second = run_connector(
            env, ctx.workdir / "connector-downtime-2.log", timeout_s=300, on_tick=caught, command=accel
        )
        requests = sim.query_requests()
        conversations = len(sim.control.truth(down_from, down_until, records=False))
    if caught.caught_up_at is None or second.exit_code != 0:
        raise ScenarioError(
            f"the restart did not catch up (exit {second.exit_code}); log:\n{second.log_tail()}"
        )
    per_1000 = requests * 1000 / max(1, conversations)
    catch_up_min = (caught.caught_up_at - down_until).total_seconds() / 60
    rows = [
        Row(
            "downtime",
            "catch-up after downtime, requests per 1,000 conv",
            per_1000,
            "",
            note=f"{conversations:,} conversations started during {p.downtime_h:g} h of downtime; requests "
            f"from the restart until caught up ({catch_up_min:.0f} simulated min), live traffic paused "
            "meanwhile",
        )
    ]
    first_pass = ctx.results.get("first_pass_per_1000")
    if first_pass:
        rows.append(
            Row(
                "downtime",
                "catch-up after downtime / first pass alone",
                per_1000 / first_pass,
                "x",
                Target("<=", 2.0),
                note="target: the first pass plus one re-scan (first pass alone from the rescans scenario)",
            )
        )
    return rows, {
        "settings": settings,
        "factor": p.accel_factor,
        "conversations_in_downtime": conversations,
        "query_requests": requests,
        "downtime_from": down_from.isoformat(),
        "downtime_until": down_until.isoformat(),
        "caught_up_at": caught.caught_up_at.isoformat(),
    }


def _wait_until(mapping: ClockMapping, moment: datetime) -> None:
    """Sleep (real time) until the accelerated clock reaches `moment`: the connector is down meanwhile."""
    delay = mapping.wall_at(moment) - time.time()
    if delay > 0:
        time.sleep(delay)
