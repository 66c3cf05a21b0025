"""What the integration tests against the simulator share: a quiet history, settings aimed at it, a client.

The history starts at `DAY0` (UTC midnight), is flat (no diurnal curve) and has no live traffic, and "now"
(`NOW`) is days after it ended, so every conversation in it has settled and the simulator's ground truth
is what a complete fetch must return. Simulator and connector run on the test's one FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from connector.clock import FakeClock
from connector.config import Settings, load_config
from connector.genesys.client import GenesysClient
from connector.metrics import ConnectorMetrics
from connector.testbed.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SimulatorConfig,
    SimulatorHandle,
    start_simulator,
)

DAY0 = datetime(2026, 4, 20, tzinfo=UTC)
NOW = DAY0 + timedelta(days=6)  # the history below has ended and settled long before "now"

T = TypeVar("T")


@contextlib.contextmanager
def quiet_simulator(
    clock: FakeClock, *, seed: int, history_end: datetime, volume_per_hour: int, **overrides: Any
) -> Iterator[SimulatorHandle]:
    """A simulator serving a settled, flat history from DAY0 to `history_end`; `overrides` add trouble."""
    config = SimulatorConfig(
        seed=seed,
        history_start=DAY0,
        history_end=history_end,
        volume_per_hour=volume_per_hour,
        diurnal=False,
        live_rate_per_minute=0,
        clock=clock,
        **overrides,
    )
    with start_simulator(config) as handle:
        yield handle


def settings_for(handle: SimulatorHandle, section: str = "GENESYS", **values: str) -> Settings:
    """Connector settings aimed at `handle` with its default credentials, plus `values` for `section`.

    `settings_for(sim, page_size="50")` sets GENESYS_CONNECTOR__GENESYS__PAGE_SIZE; a value given for
    CLIENT_ID or CLIENT_SECRET replaces the default credential.
    """
    env = {
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": handle.base_url,
        "GENESYS_CONNECTOR__GENESYS__LOGIN_BASE_URL": handle.login_url,
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": DEFAULT_CLIENT_ID,
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    }
    env.update({f"GENESYS_CONNECTOR__{section}__{k.upper()}": v for k, v in values.items()})
    return load_config(None, environ=env)


def run_with_client(
    config: Settings,
    clock: FakeClock,
    action: Callable[[GenesysClient], Awaitable[T]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    metrics: ConnectorMetrics | None = None,
) -> T:
    """Open a GenesysClient on `config` (real HTTP unless `transport`), run `action` with it, close it."""

    async def main() -> T:
        async with GenesysClient(
            config.genesys, clock=clock, metrics=metrics or ConnectorMetrics(), transport=transport
        ) as client:
            return await action(client)

    return asyncio.run(main())
