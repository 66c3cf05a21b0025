"""What every scenario shares: the profile, the one Kafka broker, a scratch directory, and helpers that
build a simulator backlog and a bounded connector run over it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bench.harness import ConnectorRun, Simulator, Tick, connector_env, iso, run_connector
from bench.profiles import RATE_WINDOW_S, Profile
from connector.testbed.broker import EmbeddedKafka
from connector.windows import align_down

#: Plenty for "no limit" (the simulator still sends its rate-limit headers, the connector still paces).
UNLIMITED = 1_000_000
HOUR_MS = 3_600_000


class ScenarioError(RuntimeError):
    """A scenario could not produce a trustworthy measurement (the message says why)."""


@dataclass
class Context:
    """Shared by the scenarios of one invocation."""

    profile: Profile
    kafka: EmbeddedKafka
    workdir: Path
    out: TextIO
    history_end: datetime = field(
        default_factory=lambda: (
            datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)
        )
    )
    results: dict[str, Any] = field(default_factory=dict)  # values one scenario hands to a later one

    def say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.out.write(f"[{stamp}] {text}\n")
        self.out.flush()

    # ------------------------------------------------------------------------------------ data
    def backlog(self, conversations: int) -> tuple[datetime, datetime]:
        """[start, end) of a history holding exactly `conversations` conversations at the profile's volume.

        It ends four days before today's UTC midnight, so every post-end change (wrap-up, survey,
        evaluation, reprocessing) has already happened: the data does not move during a run, and every
        settlement re-scan of the query-only delays (15m, 2h, 26h, 74h) is already due.
        """
        span_ms = round(conversations / self.profile.volume_per_hour * HOUR_MS)
        return self.history_end - timedelta(milliseconds=span_ms), self.history_end

    def simulator_fields(self, conversations: int, **overrides: Any) -> dict[str, Any]:
        """SimulatorConfig fields for a backlog of `conversations` and no live traffic."""
        start, end = self.backlog(conversations)
        fields: dict[str, Any] = {
            "seed": self.profile.seed,
            "history_start": start,
            "history_end": end,
            "volume_per_hour": self.profile.volume_per_hour,
            "live_rate_per_minute": 0.0,
            "rate_limit": self.profile.rate_limit,
            "rate_window_s": RATE_WINDOW_S,
            "latency_ms": self.profile.latency_ms,
            "log_level": "warning",
        }
        fields.update(overrides)
        return fields

    def catchup_windows(
        self, start: datetime, end: datetime, length: timedelta
    ) -> list[tuple[datetime, datetime]]:
        """The first-pass windows the connector's planner uses while catching up (aligned to `length`)."""
        windows = []
        cursor = start
        while cursor < end:
            stop = min(end, align_down(cursor + length, length))
            windows.append((cursor, stop))
            cursor = stop
        return windows

    # ------------------------------------------------------------------------------------ connector
    def new_topic(self, scenario: str) -> str:
        name = f"bench.{scenario}.{uuid.uuid4().hex[:8]}"
        self.kafka.create_topic(name, 3)
        return name

    def env_for(
        self, sim: Simulator, topic: str, state_dir: Path, settings: Mapping[str, str]
    ) -> dict[str, str]:
        """The connector's environment for a run against `sim` and this broker's `topic`."""
        return connector_env(
            api_url=sim.base_url,
            bootstrap=self.kafka.bootstrap_servers,
            topic=topic,
            state_dir=state_dir,
            settings=settings,
        )

    def first_pass_settings(
        self, conversations: int, *, rate_limit: int, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        """A bounded first-pass run over the backlog by the details query (no re-scans, no jobs: the query
        path's baseline; a jobs scenario turns them on in `extra`), full budget share."""
        start, end = self.backlog(conversations)
        settings = {
            "WINDOWS__START": iso(start),
            "WINDOWS__END": iso(end),
            "WINDOWS__RESCAN_DELAYS": "[]",
            "JOBS__BACKFILL": "false",
            "JOBS__SETTLE": "false",
            "GENESYS__REQUESTS_PER_MINUTE": str(rate_limit),
            "GENESYS__BUDGET_SHARE": "1.0",
            "GENESYS__MAX_CONCURRENCY": str(self.profile.max_concurrency),
            "GENESYS__PAGE_SIZE": str(self.profile.page_size),
        }
        settings.update(extra or {})
        return settings

    def run_bounded(
        self,
        scenario: str,
        sim: Simulator,
        settings: dict[str, str],
        *,
        timeout_s: float,
        command: list[str] | None = None,
        on_tick: Tick | None = None,
    ) -> tuple[ConnectorRun, str]:
        """Run the connector to the end of its bounded run on a fresh topic; fail loudly if it did not."""
        topic = self.new_topic(scenario)
        state = self.workdir / f"state-{scenario}-{uuid.uuid4().hex[:6]}"
        env = self.env_for(sim, topic, state, settings)
        sim.control.reset_counters()
        run = run_connector(
            env,
            self.workdir / f"connector-{scenario}.log",
            timeout_s=timeout_s,
            command=command,
            on_tick=on_tick,
        )
        if run.exit_code != 0 or run.loop_wall_s is None:
            raise ScenarioError(
                f"the connector did not finish its bounded run (exit code {run.exit_code}, "
                f"{run.wall_s:.0f} s); log tail:\n{run.log_tail()}"
            )
        return run, topic
