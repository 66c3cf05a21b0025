"""The moving parts of one benchmark scenario: a simulator process, a connector process, a topic.

- `simulator(fields)`: `python -m connector.testbed.simulator --config <file>` in its own process (any
  `SimulatorConfig` field can be set that way), with a `RemoteSimulatorControl` and its CPU time.
- `run_connector(...)`: `python -m connector run` as a child process configured only through
  `GENESYS_CONNECTOR__...` environment variables (the way operators configure it). While it runs, its RSS
  is sampled every `poll_s` (psutil) and its JSON log is tailed for the lines that mark the start of the
  main loop and the end of a bounded run. It is reaped with `os.wait4`, whose rusage is exact for that one
  child: user + system CPU seconds and the kernel's peak RSS (`ru_maxrss`).
- `topic_message_count`: the sum of the topic's end offsets (what the connector delivered, without reading
  the messages back).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from confluent_kafka import Consumer, TopicPartition

from connector.clock import format_instant as iso
from connector.testbed.simulator import RemoteSimulatorControl, spawn_simulator

ENV_PREFIX = "GENESYS_CONNECTOR__"
STARTED_MSG = "connector started"
BOUNDED_DONE_MSG = "bounded run complete"


# ------------------------------------------------------------------------------------------ simulator
@dataclass
class Simulator:
    """A simulator child process: its URL, control API and process handle (for CPU accounting)."""

    base_url: str
    control: RemoteSimulatorControl
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def query_requests(self) -> int:
        """Responses served on the details-query route, every status (the token route is separate)."""
        return sum(self.control.counters().get("query", {}).values())

    def query_status(self, status: str) -> int:
        """Responses with one status (e.g. "429") on the details-query route."""
        return int(self.control.counters().get("query", {}).get(status, 0))


@contextlib.contextmanager
def simulator(
    fields: Mapping[str, Any], workdir: Path, *, launcher: list[str] | None = None
) -> Iterator[Simulator]:
    """Start a simulator process configured by `SimulatorConfig` fields (written to a --config file).

    `launcher` runs it through another command (the accelerated clock: connector.testbed.accelerated).
    """
    path = workdir / f"simulator-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(dict(fields), default=_json_default), encoding="utf-8")
    with spawn_simulator(["--config", str(path)], launcher=launcher) as proc:
        yield Simulator(proc.base_url, proc.control, proc.process.pid)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot write {type(value).__name__} to the simulator config")


# ------------------------------------------------------------------------------------------ connector
def connector_env(
    *, api_url: str, bootstrap: str, topic: str, state_dir: Path, settings: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: ours minus any GENESYS_CONNECTOR__ variable, plus the bench's settings.

    `settings` keys are `SECTION__KEY` (e.g. `WINDOWS__END`); the prefix is added here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    base = {
        "GENESYS__API_BASE_URL": api_url,
        "GENESYS__LOGIN_BASE_URL": api_url,
        "GENESYS__CLIENT_ID": "demo-client",
        "GENESYS__CLIENT_SECRET": "demo-secret",
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA__TOPIC": topic,
        "CHECKPOINT__DIRECTORY": str(state_dir),
        "METRICS__HOST": "127.0.0.1",
        "METRICS__PORT": "0",
        "LOGGING__FORMAT": "json",
        "LOGGING__LEVEL": "INFO",
    }
    base.update(settings)
    env.update({ENV_PREFIX + k: v for k, v in base.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class LogEvents:
    """Instants (wall clock, from the connector's own `ts` field) of the log lines the bench cares about."""

    started_at: datetime | None = None
    done_at: datetime | None = None
    metrics_url: str | None = None
    errors: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        """Parse one JSON log line; returns its message (None if the line is not JSON)."""
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        msg = str(record.get("msg", ""))
        ts = record.get("ts")
        at = datetime.fromisoformat(str(ts).replace("Z", "+00:00")) if ts else None
        if msg == STARTED_MSG and self.started_at is None:
            self.started_at = at
            self.metrics_url = record.get("metrics_url")
        elif msg.startswith(BOUNDED_DONE_MSG):
            self.done_at = at
        if record.get("level") in ("ERROR", "CRITICAL"):
            self.errors.append(msg + (f": {record['error']}" if "error" in record else ""))
        return msg


class _LogTail:
    """Reads complete new lines of a growing file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""

    def lines(self) -> list[str]:
        try:
            with self._path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [c.decode("utf-8", "replace") for c in complete]


@dataclass
class ConnectorRun:
    """What one connector process did, measured from outside."""

    exit_code: int
    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    cpu_at_loop_start_s: float | None
    peak_rss_bytes: int  # kernel's ru_maxrss of the reaped child
    peak_rss_polled_bytes: int  # max of the psutil samples
    rss_samples: int
    rss_timeline: list[tuple[float, int]]  # (seconds since start, RSS bytes), about one per second
    events: LogEvents
    log_path: Path

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    @property
    def loop_cpu_s(self) -> float | None:
        """CPU seconds spent after the main loop started (imports, broker and API checks excluded)."""
        if self.cpu_at_loop_start_s is None:
            return None
        return self.cpu_s - self.cpu_at_loop_start_s

    @property
    def loop_wall_s(self) -> float | None:
        """Main loop start ("connector started") to "bounded run complete" (every page acked)."""
        ev = self.events
        if ev.started_at is None or ev.done_at is None:
            return None
        return (ev.done_at - ev.started_at).total_seconds()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


Tick = Callable[[float, "LogEvents"], bool]
"""Called every poll with (seconds since start, events so far); return True to ask the connector to stop."""


def run_connector(
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout_s: float,
    poll_s: float = 0.1,
    on_tick: Tick | None = None,
    command: list[str] | None = None,
) -> ConnectorRun:
    """Run `python -m connector run` (or `command`) to completion, or until `on_tick` asks for a stop
    (SIGTERM: the connector's graceful shutdown), or `timeout_s`."""
    began = time.monotonic()
    argv = command if command is not None else [sys.executable, "-m", "connector", "run"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    ps = psutil.Process(proc.pid)
    tail = _LogTail(log_path)
    events = LogEvents()
    peak = samples = 0
    timeline: list[tuple[float, int]] = []
    cpu_at_start: float | None = None
    stop_sent_at: float | None = None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            with contextlib.suppress(psutil.Error):
                rss = ps.memory_info().rss
                peak = max(peak, rss)
                samples += 1
                now = time.monotonic() - began
                if not timeline or now - timeline[-1][0] >= 1.0:
                    timeline.append((round(now, 1), rss))
            for line in tail.lines():
                if events.feed(line) == STARTED_MSG and cpu_at_start is None:
                    with contextlib.suppress(psutil.Error):
                        times = ps.cpu_times()
                        cpu_at_start = float(times.user + times.system)
            elapsed = time.monotonic() - began
            if stop_sent_at is None:
                asked = on_tick(elapsed, events) if on_tick is not None else False
                if asked or elapsed > timeout_s:
                    proc.send_signal(signal.SIGTERM)
                    stop_sent_at = elapsed
            elif elapsed - stop_sent_at > 60:
                proc.kill()
            time.sleep(poll_s)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    for line in tail.lines():
        events.feed(line)
    return ConnectorRun(
        exit_code=proc.returncode,
        wall_s=time.monotonic() - began,
        cpu_user_s=usage.ru_utime,
        cpu_sys_s=usage.ru_stime,
        cpu_at_loop_start_s=cpu_at_start,
        peak_rss_bytes=usage.ru_maxrss * 1024,
        peak_rss_polled_bytes=peak,
        rss_samples=samples,
        rss_timeline=timeline,
        events=events,
        log_path=log_path,
    )


SCRAPED = (
    "genesys_connector_api_throttled_total",
    "genesys_connector_lag_seconds",
    "genesys_connector_api_budget_requests_per_minute",
    "genesys_connector_api_budget_utilization_ratio",
    "genesys_connector_conversations_published_total",
    "genesys_connector_loop_max_stall_seconds",
    "genesys_connector_loop_max_heartbeat_gap_seconds",
)


def scrape(url: str | None, wanted: tuple[str, ...] = SCRAPED) -> dict[str, float]:
    """Some of the connector's own metrics from its /metrics (summed over labels); {} if unreachable."""
    if url is None:
        return {}
    try:
        text = httpx.get(url.rstrip("/") + "/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


# ------------------------------------------------------------------------------------------ kafka
def topic_message_count(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> int:
    """Messages in `topic`: the sum of its partitions' end offsets (nothing is deleted in a bench run)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in partitions
        )
    finally:
        consumer.close()


@contextlib.contextmanager
def scratch_dir(keep: Path | None) -> Iterator[Path]:
    """A working directory for state and logs: `keep` if given (left in place), else a temporary one."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="genesys-bench-") as tmp:
        yield Path(tmp)
