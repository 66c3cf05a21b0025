"""The live generator: a background task that makes the simulated org change in real time.

Every `live_tick_s` it adds new conversations at the configured rate (per minute), applies the scheduled
mutations that fell due (ends, wrap-ups, evaluations, surveys, reprocessing) and moves async jobs along.
It runs on the server's event loop; all the work happens in `Simulation.live_step` under the lock.
"""

from __future__ import annotations

import asyncio
import logging

from connector.testbed.simulator.simulation import Simulation

log = logging.getLogger("connector.testbed.simulator")


async def live_loop(sim: Simulation) -> None:
    """Run until cancelled. An error in one step is logged and the loop carries on."""
    tick_s = sim.config.live_tick_s
    while True:
        await asyncio.sleep(tick_s)
        try:
            sim.live_step()
        except Exception:  # the loop must survive one bad step; the error is logged
            log.exception("simulator live step failed")
