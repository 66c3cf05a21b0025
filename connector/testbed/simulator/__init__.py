"""Genesys Cloud analytics API simulator: the test oracle of the connector (see docs/simulator.md).

```python
from connector.testbed.simulator import SimulatorConfig, start_simulator
with start_simulator(SimulatorConfig(seed=7, history_days=1)) as sim:
    sim.base_url, sim.control.ground_truth(start, end)
```
"""

from connector.testbed.simulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SimulatorClient,
    SimulatorConfig,
)
from connector.testbed.simulator.control import RemoteSimulatorControl, SimulatorControl
from connector.testbed.simulator.server import (
    SimulatorHandle,
    SimulatorProcess,
    spawn_simulator,
    start_simulator,
)

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "RemoteSimulatorControl",
    "SimulatorClient",
    "SimulatorConfig",
    "SimulatorControl",
    "SimulatorHandle",
    "SimulatorProcess",
    "spawn_simulator",
    "start_simulator",
]
