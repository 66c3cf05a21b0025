"""Days of simulated time in minutes: the connector and the simulator on one accelerated clock.

`ScaledClock(mapping)` maps the wall clock onto simulated time, `sim_now = sim_epoch + (wall_now -
real_epoch) x factor`; its monotonic time runs `factor` times faster and `sleep(s)` waits `s / factor` real
seconds. Both processes build the same mapping from the same three numbers and read the same wall clock,
so they stay in step without talking to each other. (libfaketime cannot do this: librdkafka then waits
wrongly on its own timeouts.)

Production configuration has no such knob: the accelerated clock is only reachable through this test-bed
entry point, which wraps the normal commands:

```
python -m connector.testbed.accelerated --factor 1800 --sim-epoch 2026-05-01T00:00:00Z \
    --real-epoch 1790000000.0 connector -- [--config FILE] [--reset-checkpoint]
python -m connector.testbed.accelerated --factor 1800 --sim-epoch ... --real-epoch ... \
    simulator -- [simulator options, e.g. --config FILE]
```

What still runs in real time: HTTP timeouts (httpx), librdkafka's timeouts and acknowledgement latency, the
simulator's artificial latency and its live-generator tick (`live_tick_s`, an asyncio sleep), and every
stall of a loaded machine: one real second is `factor` simulated seconds. Budgets, windows, re-scan delays,
token lifetimes and rate-limit windows are all in simulated time, so with factor F the real request rate
can reach F x the configured budget: keep the connector's demand (window length, re-scans) modest.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ROLES = ("connector", "simulator")


@dataclass(frozen=True)
class ClockMapping:
    """Wall clock -> simulated time: `sim_epoch` at the wall instant `real_epoch` (Unix seconds), then
    `factor` simulated seconds per real second."""

    real_epoch: float
    sim_epoch: datetime
    factor: float

    def __post_init__(self) -> None:
        if self.factor <= 0:
            raise ValueError("the clock factor must be positive")
        if self.sim_epoch.tzinfo is None:
            raise ValueError("the simulated epoch must include a timezone")

    def sim_at(self, wall_s: float) -> datetime:
        """The simulated instant of the wall-clock instant `wall_s` (Unix seconds)."""
        return self.sim_epoch + timedelta(seconds=(wall_s - self.real_epoch) * self.factor)

    def wall_at(self, sim: datetime) -> float:
        """The wall-clock instant (Unix seconds) at which simulated time reaches `sim`."""
        return self.real_epoch + (sim - self.sim_epoch).total_seconds() / self.factor

    def args(self) -> list[str]:
        """The options of this module's command line that rebuild this mapping in another process."""
        return [
            "--factor",
            repr(self.factor),
            "--sim-epoch",
            self.sim_epoch.astimezone(UTC).isoformat(),
            "--real-epoch",
            repr(self.real_epoch),
        ]


class ScaledClock:
    """A `connector.clock.Clock` running `mapping.factor` times faster than the wall clock."""

    def __init__(self, mapping: ClockMapping) -> None:
        self.mapping = mapping
        self._mono_origin = time.monotonic()

    def now(self) -> datetime:
        """Simulated now (tz-aware UTC)."""
        return self.mapping.sim_at(time.time())

    def monotonic(self) -> float:
        """Monotonic simulated seconds from an arbitrary origin."""
        return (time.monotonic() - self._mono_origin) * self.mapping.factor

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time (`seconds / factor` real seconds)."""
        await asyncio.sleep(max(0.0, seconds) / self.mapping.factor)


def command(mapping: ClockMapping, role: str, args: Sequence[str] = ()) -> list[str]:
    """argv that runs `role` ("connector": `run`, "simulator") on the accelerated clock."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return [sys.executable, "-m", "connector.testbed.accelerated", *mapping.args(), role, "--", *args]


# ------------------------------------------------------------------------------------------ entry point
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connector.testbed.accelerated",
        description="Run the connector (`run`) or the simulator on an accelerated clock (test bed only).",
    )
    parser.add_argument("--factor", type=float, required=True, help="simulated seconds per real second")
    parser.add_argument(
        "--sim-epoch", type=_instant, required=True, help="simulated instant at --real-epoch (ISO-8601, zone)"
    )
    parser.add_argument(
        "--real-epoch",
        type=float,
        default=None,
        help="wall-clock Unix seconds at which simulated time is --sim-epoch (default: now)",
    )
    parser.add_argument("role", choices=ROLES, help="what to run")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the wrapped command's options")
    return parser


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"'{text}' has no timezone (e.g. 2026-05-01T00:00:00Z)")
    return moment


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        mapping = ClockMapping(
            time.time() if args.real_epoch is None else args.real_epoch, args.sim_epoch, args.factor
        )
    except ValueError as exc:
        print(f"accelerated: {exc}", file=sys.stderr)
        return 2
    clock = ScaledClock(mapping)
    if args.role == "simulator":
        return _run_simulator(clock, rest)
    return _run_connector(clock, rest)


def _run_simulator(clock: ScaledClock, argv: list[str]) -> int:
    """`python -m connector.testbed.simulator ARGV` with the simulator's clock replaced."""
    from pydantic import ValidationError

    from connector.testbed.simulator.cli import add_arguments, config_from_args
    from connector.testbed.simulator.server import run_foreground

    parser = argparse.ArgumentParser(prog="accelerated simulator")
    add_arguments(parser)
    try:
        config = config_from_args(parser.parse_args(argv))
    except (ValidationError, OSError, ValueError) as exc:
        print(f"accelerated simulator: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr)
    return run_foreground(config.model_copy(update={"clock": clock}))


def _run_connector(clock: ScaledClock, argv: list[str]) -> int:
    """`genesys-connector run ARGV` with `clock` injected into `run_connector`."""
    import gc

    from connector.cli import build_parser
    from connector.config import load_config
    from connector.errors import ConfigError
    from connector.logs import configure_logging
    from connector.secrets import Redactor
    from connector.service import RunOptions, run_connector

    args = build_parser().parse_args(["run", *argv])
    redactor = Redactor()
    try:
        settings = load_config(args.config)
        configure_logging(settings.logging.level, settings.logging.format, redactor=redactor)
    except ConfigError as exc:
        print(f"accelerated connector: {exc}", file=sys.stderr)
        return 2
    gc.freeze()
    options = RunOptions(reset_checkpoint=args.reset_checkpoint)
    return asyncio.run(run_connector(settings, options=options, clock=clock, redactor=redactor))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
