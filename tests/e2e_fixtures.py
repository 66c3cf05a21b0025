"""Helpers for end-to-end tests: run `genesys-connector run` as a real subprocess.

The connector gets its whole configuration from environment variables (the same mechanism operators
use), talks to the simulator over real HTTP and to the real Kafka broker of `kafka_fixtures`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pytest

from connector.clock import format_instant
from connector.config import ENV_DELIMITER, ENV_PREFIX


@dataclass
class ConnectorProcess:
    """A running `python -m connector run` with its log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"connector did not finish in {timeout_s} s; log tail:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or checkpoint."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ConnectorRunner:
    """Starts connector subprocesses with a base environment; cleans them up after the test."""

    base_env: dict[str, str]
    workdir: Path
    started: list[ConnectorProcess] = field(default_factory=list)

    def start(
        self,
        env: Mapping[str, str] | None = None,
        *,
        args: tuple[str, ...] = (),
        command: Sequence[str] | None = None,
    ) -> ConnectorProcess:
        """`python -m connector run ARGS` (or `command`, e.g. the accelerated-clock wrapper, then ARGS)."""
        argv = [*command] if command is not None else [sys.executable, "-m", "connector", "run"]
        full = {**os.environ, **self.base_env, **(env or {})}
        full.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        log_path = self.workdir / f"connector-{len(self.started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*argv, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full,
            )
        cp = ConnectorProcess(proc, log_path)
        self.started.append(cp)
        return cp

    def stop_all(self) -> None:
        for cp in self.started:
            cp.kill()


#: A setting's value in `connector_env(settings=...)`: text, or an instant (written with `iso_z`).
Setting = str | datetime


def settings_env(settings: Mapping[str, Setting]) -> dict[str, str]:
    """Environment variables for settings named as in the config file.

    `windows.filters.media_types` -> `GENESYS_CONNECTOR__WINDOWS__FILTERS__MEDIA_TYPES`; an instant is
    written as the config takes it (`iso_z`, which refuses a sub-millisecond instant).
    """
    return {
        ENV_PREFIX + name.upper().replace(".", ENV_DELIMITER): iso_z(value)
        if isinstance(value, datetime)
        else value
        for name, value in settings.items()
    }


def connector_env(
    *,
    api_url: str,
    bootstrap: str,
    topic: str,
    state_dir: Path,
    settings: Mapping[str, Setting] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a connector against the simulator and the broker.

    `settings` (names as in the config file, see `settings_env`) override the defaults here; `extra` holds
    raw environment variables and is applied last.
    """
    env = settings_env(
        {
            "genesys.api_base_url": api_url,
            "genesys.login_base_url": api_url,
            "genesys.client_id": "demo-client",
            "genesys.client_secret": "demo-secret",
            "genesys.backoff_base_s": "0.1",
            "genesys.backoff_max_s": "1",
            "kafka.bootstrap_servers": bootstrap,
            "kafka.topic": topic,
            "checkpoint.directory": str(state_dir),
            "metrics.host": "127.0.0.1",
            "metrics.port": "0",
            "logging.format": "json",
            "logging.level": "INFO",
            # The query path alone unless a test turns jobs on (their records carry attributes, which
            # the query-view ground truth these tests compare with does not).
            "jobs.backfill": "false",
            "jobs.settle": "false",
            **(settings or {}),
        }
    )
    env.update(extra or {})
    return env


class ConnectorSetup(Protocol):
    """The `connector_setup` fixture's function (see there)."""

    def __call__(
        self, api_url: str, prefix: str, settings: Mapping[str, Setting], *, state: str | Path = "state"
    ) -> tuple[str, dict[str, str]]: ...


@pytest.fixture
def connector_setup(kafka_bootstrap: str, tmp_path: Path) -> ConnectorSetup:
    """`topic, env = connector_setup(sim.base_url, "e2e-x", {"windows.start": start})`.

    A fresh topic on the test broker (named after `prefix`) and the environment of a connector that reads
    the simulator at `api_url` into it, with `settings` and its state in `tmp_path / state` (or at
    `state`, when absolute).
    """

    def setup(
        api_url: str, prefix: str, settings: Mapping[str, Setting], *, state: str | Path = "state"
    ) -> tuple[str, dict[str, str]]:
        topic = create_test_topic(kafka_bootstrap, prefix)
        env = connector_env(
            api_url=api_url,
            bootstrap=kafka_bootstrap,
            topic=topic,
            state_dir=tmp_path / state,
            settings=settings,
        )
        return topic, env

    return setup


@pytest.fixture
def connector_runner(tmp_path: Path) -> Iterator[ConnectorRunner]:
    runner = ConnectorRunner(base_env={}, workdir=tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()


def wait_for(predicate: object, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `predicate()` until true or timeout; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return bool(predicate())  # type: ignore[operator]


def create_test_topic(bootstrap: str, prefix: str, partitions: int = 3) -> str:
    """A fresh, uniquely named topic on the test broker."""
    import uuid

    from connector.testbed.broker import create_topic

    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, partitions)
    return name


def config_instant(moment: datetime) -> datetime:
    """`moment` at the precision the connector keeps configured instants (milliseconds).

    A test computes each range boundary once with this and uses that value both in the connector's
    configuration and in its ground truth, so the two ranges are the same to the millisecond.
    """
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def iso_z(moment: datetime) -> str:
    """An instant as the connector's config takes it: ISO-8601 UTC with milliseconds and `Z`.

    Refuses a sub-millisecond instant rather than silently rounding it: a rounded configuration and an
    unrounded ground truth disagree about the conversations that arrive in between (the flaky-e2e bug).
    """
    if moment != config_instant(moment):
        raise ValueError(f"{moment!r} is finer than a millisecond: pass config_instant(moment) first")
    return format_instant(moment)
