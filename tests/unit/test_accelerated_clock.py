"""The test bed's accelerated clock: one mapping from the wall clock, shared by two processes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from connector.testbed.accelerated import ClockMapping, ScaledClock, command, main

EPOCH = datetime(2026, 5, 1, tzinfo=UTC)


def test_mapping_runs_factor_times_faster_from_its_epochs() -> None:
    mapping = ClockMapping(real_epoch=1_000.0, sim_epoch=EPOCH, factor=120.0)
    assert mapping.sim_at(1_000.0) == EPOCH
    assert mapping.sim_at(1_030.0) == EPOCH + timedelta(hours=1)
    assert mapping.wall_at(EPOCH + timedelta(hours=1)) == 1_030.0


def test_two_clocks_built_from_the_same_mapping_agree() -> None:
    mapping = ClockMapping(real_epoch=time.time() - 10, sim_epoch=EPOCH, factor=600.0)
    first, second = ScaledClock(mapping), ScaledClock(mapping)
    before = time.time()
    a, b = first.now(), second.now()
    after = time.time()
    for moment in (a, b):
        assert mapping.sim_at(before) <= moment <= mapping.sim_at(after)
    assert abs((a - b).total_seconds()) <= (after - before) * 600.0


def test_sleep_and_monotonic_are_scaled() -> None:
    clock = ScaledClock(ClockMapping(real_epoch=time.time(), sim_epoch=EPOCH, factor=1_000.0))

    async def nap() -> tuple[float, float]:
        real, mono = time.monotonic(), clock.monotonic()
        await clock.sleep(100.0)  # 0.1 real seconds
        return time.monotonic() - real, clock.monotonic() - mono

    real_s, sim_s = asyncio.run(nap())
    assert real_s >= 0.1
    assert real_s < 100.0  # nowhere near the simulated duration
    assert sim_s == pytest.approx(real_s * 1_000.0, rel=0.01)


def test_command_rebuilds_the_mapping_in_another_process() -> None:
    mapping = ClockMapping(real_epoch=1_234.5, sim_epoch=EPOCH, factor=90.0)
    argv = command(mapping, "connector", ["--reset-checkpoint"])
    assert argv[1:3] == ["-m", "connector.testbed.accelerated"]
    assert argv[-3:] == ["connector", "--", "--reset-checkpoint"]
    with pytest.raises(ValueError, match="role"):
        command(mapping, "broker")


def test_bad_factor_is_refused_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--factor", "0", "--sim-epoch", "2026-05-01T00:00:00Z", "connector"]) == 2
    assert capsys.readouterr().err.strip() == "accelerated: the clock factor must be positive"
