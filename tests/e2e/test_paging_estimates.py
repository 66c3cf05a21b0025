"""End to end: a wrong `totalHits` costs at most about twice the requests of an exact one, and loses nothing.

`totalHits` is only an estimate (genesys-api.md §1.2). The same simulated history is read three times by a
real `genesys-connector run` (subprocess, real HTTP, real Kafka): with an exact `totalHits`, with every page
claiming 250,000 hits (past the 80 % split threshold of the 100,000-result cap), and with every page
claiming 0. The simulator counts the query requests it served; the topic is reconciled with its ground
truth. Before the fix, 250,000 split every window in halves down to 1-second windows (thousands of
requests for a few hundred conversations).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from e2e_fixtures import ConnectorRunner, ConnectorSetup

from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorConfig, start_simulator

pytestmark = pytest.mark.kafka


def _query_requests(control: Any) -> int:
    return sum(control.counters().get("query", {}).values())


def test_a_wrong_total_hits_delivers_everything_for_at_most_twice_the_requests(
    kafka_bootstrap: str, connector_runner: ConnectorRunner, connector_setup: ConnectorSetup
) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    start = end - timedelta(hours=3)
    config = SimulatorConfig(
        seed=23,
        history_start=start,
        history_end=end,
        volume_per_hour=100.0,
        diurnal=False,
        total_hits_jitter=0.0,  # exact unless fixed below
        duplicate_probability=0.0,
        rate_limit=100_000,
    )
    requests: dict[str, int] = {}
    with start_simulator(config) as sim:
        truth = sim.control.ground_truth(start, end)
        estimates: dict[str, int | Literal["off"]] = {"exact": "off", "250000": 250_000, "0": 0}
        for name, fixed in estimates.items():
            sim.control.set_paging(fixed_total_hits=fixed)
            sim.control.reset_counters()
            topic, env = connector_setup(
                sim.base_url,
                f"e2e-total-hits-{name}",
                {
                    "genesys.page_size": "25",  # ~4 pages per 1-hour window
                    "windows.start": start,
                    "windows.end": end,
                    "windows.max_catchup_length": "1h",
                    "windows.rescan_delays": "[]",
                },
                state=f"state-{name}",
            )
            proc = connector_runner.start(env)
            assert proc.wait(120) == 0, proc.log_tail()
            requests[name] = _query_requests(sim.control)
            result = reconcile(truth, read_topic(kafka_bootstrap, topic))
            assert result.missing == [], f"totalHits {name}: {len(result.missing)} conversations missing"
            assert result.keys == len(truth)
            warned = "totalHits disagrees with the data" in proc.log_path.read_text()
            assert warned == (name != "exact"), f"totalHits {name}: warning logged = {warned}"

    print(f"\n[e2e] {len(truth)} conversations in 3 windows; query requests by totalHits: {requests}")
    assert len(truth) > 200
    assert requests["250000"] <= 2 * requests["exact"]
    assert requests["0"] <= 2 * requests["exact"]
