"""Days of simulated time in minutes: the connector and the simulator on one accelerated clock.

Both processes run on `connector.testbed.accelerated.ScaledClock` built from the same mapping (FACTOR
simulated seconds per real second), so about 80 hours pass in under three minutes. The connector catches up
a day of history, then keeps up with live traffic of realistic durations plus a few planted long
conversations; along the way every settlement re-scan runs, the 26 h and 74 h ones included, e-mails
open past the last re-scan are followed by id, and the change store is pruned. At the end, read back from
the real broker and compared with the simulator's ground truth:

- nothing is missing, and no identical snapshot was published twice (pruning must not cause re-publishing);
- the latest message of every settled conversation (ended, last change before its window's 74 h re-scan)
  equals the simulator's current record;
- each planted e-mail that ended after its window's last re-scan has its ended version in Kafka;
- the 26 h and 74 h re-scans completed (the connector's own counters), and the change store holds fewer
  conversations than the topic (old entries were pruned).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_fixtures import ConnectorRunner, connector_env, create_test_topic, iso_z, wait_for

from connector.kafka.records import HEADER_ENDED
from connector.state.changes import ChangeStore
from connector.testbed.accelerated import ClockMapping, command
from connector.testbed.reconcile import read_topic, reconcile
from connector.testbed.simulator import SimulatorProcess, spawn_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.timeout(420)]

FACTOR = 1800.0  # simulated seconds per real second: 80 h in 160 s
HOUR = timedelta(hours=1)
HISTORY = timedelta(hours=24)
WINDOW = HOUR  # windows.length = max_catchup_length: few, cheap windows
LAST_RESCAN = timedelta(hours=74)  # the longest re-scan delay of the query-only schedule below
LAG = timedelta(minutes=2)  # windows.lag default
REPROCESS = timedelta(hours=6)  # the simulator's last post-end change (default 48 h) comes sooner
EMAIL_END_AFTER_RESCAN = HOUR  # the planted e-mails end this long after their last window's 74 h re-scan
PRUNED_AFTER = timedelta(hours=79)  # history is published at the start; prune_after = 74h + 1h + 2 x 1h
LONG_MESSAGE = timedelta(hours=30)  # ends after its 26 h re-scan: the 74 h one brings the end
# A second or two of real start-up is an hour of simulated time; these bound what the checks rely on.
MARGIN = timedelta(hours=3)


@pytest.fixture
def mapping(kafka_bootstrap: str) -> ClockMapping:
    """Simulated time starts at 20:00 UTC today (the planted conversations start late in their UTC day,
    which keeps the run short, see below), now: once the broker is up, so that its start-up does not eat
    simulated hours."""
    epoch = datetime.now(UTC).replace(hour=20, minute=0, second=0, microsecond=0)
    return ClockMapping(real_epoch=time.time(), sim_epoch=epoch, factor=FACTOR)


@pytest.fixture
def simulator(mapping: ClockMapping, tmp_path: Path) -> Iterator[SimulatorProcess]:
    fields = {
        "seed": 23,
        "history_start": (mapping.sim_epoch - HISTORY).isoformat(),
        "history_end": mapping.sim_epoch.isoformat(),
        "volume_per_hour": 20.0,
        "live_rate_per_minute": 0.3,
        "live_tick_s": 0.02,  # real seconds: 36 simulated seconds per tick
        "reprocess_delay_s": REPROCESS.total_seconds(),
        "log_level": "warning",
    }
    path = tmp_path / "simulator.json"
    path.write_text(json.dumps(fields), encoding="utf-8")
    with spawn_simulator(["--config", str(path)], launcher=command(mapping, "simulator")) as sim:
        yield sim


def _metrics(log_path: Path) -> dict[str, float]:
    """The connector's own counters (by name and labels) from the metrics URL its start-up line gives."""
    url = None
    for line in log_path.read_text(errors="replace").splitlines():
        if '"connector started"' in line:
            url = json.loads(line)["metrics_url"]
    assert url is not None, "the connector never logged 'connector started'"
    text = httpx.get(url.rstrip("/") + "/metrics", timeout=10.0).text
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _window_end(start: datetime) -> datetime:
    return start.replace(minute=0, second=0, microsecond=0) + WINDOW


def _day_end(start: datetime) -> datetime:
    return start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _settled(row: dict[str, Any]) -> bool:
    """Ended, and its last change (reprocessing, the latest one) came before its window's 74 h re-scan."""
    if "conversationEnd" not in row:
        return False
    last_change = _instant(row["conversationEnd"]) + REPROCESS
    return last_change < _window_end(_instant(row["conversationStart"])) + LAST_RESCAN


def test_days_of_traffic_reconcile_after_every_rescan_following_and_pruning(
    mapping: ClockMapping,
    simulator: SimulatorProcess,
    kafka_bootstrap: str,
    connector_runner: ConnectorRunner,
    tmp_path: Path,
) -> None:
    control = simulator.control
    epoch = mapping.sim_epoch
    now = control.now()
    planted = now - timedelta(minutes=5)
    # The details query returns a conversation to every window of its start day that overlaps its life, so
    # these stay open past the last re-scan of every such window: only following them by id sees them end.
    email_end = _day_end(planted) + LAST_RESCAN + EMAIL_END_AFTER_RESCAN
    emails = control.add_conversations(
        3, planted, spacing_s=60, duration_s=(email_end - planted).total_seconds() - 180, media_type="email"
    )
    messages = control.add_conversations(
        3, planted, spacing_s=60, duration_s=LONG_MESSAGE.total_seconds(), media_type="message"
    )
    topic = create_test_topic(kafka_bootstrap, "long-horizon")
    state_dir = tmp_path / "state"
    start = epoch - HISTORY
    env = connector_env(
        api_url=simulator.base_url,
        bootstrap=kafka_bootstrap,
        topic=topic,
        state_dir=state_dir,
        extra={
            "GENESYS_CONNECTOR__WINDOWS__START": iso_z(start),
            "GENESYS_CONNECTOR__WINDOWS__LENGTH": "1h",
            "GENESYS_CONNECTOR__WINDOWS__MAX_CATCHUP_LENGTH": "1h",
            "GENESYS_CONNECTOR__GENESYS__PAGE_SIZE": "100",
            # settlement by the query alone (the query-only schedule): this test covers the late re-scans
            "GENESYS_CONNECTOR__WINDOWS__RESCAN_DELAYS": '["15m", "2h", "26h", "74h"]',
            "GENESYS_CONNECTOR__JOBS__BACKFILL": "false",
            "GENESYS_CONNECTOR__JOBS__SETTLE": "false",
        },
    )
    proc = connector_runner.start(env, command=command(mapping, "connector"))

    stop_at = max(email_end + 2 * HOUR, now + PRUNED_AFTER)  # the e-mails' ends followed, history pruned
    real_deadline = mapping.wall_at(stop_at) - time.time() + 120
    assert wait_for(lambda: control.now() >= stop_at or proc.proc.poll() is not None, real_deadline, 0.5)
    assert proc.proc.poll() is None, f"the connector exited early; log tail:\n{proc.log_tail()}"
    counters = _metrics(proc.log_path)
    proc.terminate()
    assert proc.wait(60) == 0, proc.log_tail()
    stopped = control.now()

    # The connector's own account: every kind of pass ran, the late ones included, and following by id.
    for pass_no in ("3", "4"):  # the 26 h and 74 h re-scans
        assert counters[f'genesys_connector_windows_completed_total{{pass="{pass_no}"}}'] > 0, pass_no
    records = read_topic(kafka_bootstrap, topic)
    followed = counters['genesys_connector_conversations_published_total{pass="open"}']
    email_versions = [(m.key[:8], dict(m.headers)) for m in records if m.key in emails]
    assert followed >= len(emails), f"followed {followed}; e-mails at {email_end}: {email_versions}"

    reconciled_until = stopped - MARGIN  # every first pass of this range is long done
    rows = control.truth(start, reconciled_until)
    truth = {row["conversationId"]: row["record"] for row in rows}
    result = reconcile(truth, records)
    assert not result.missing, f"{len(result.missing)} missing, e.g. {result.missing[:5]}"
    assert result.identical_duplicates == 0, result.summary()

    last_rescan_done = stopped - LAST_RESCAN - WINDOW - LAG - MARGIN
    settled = {
        row["conversationId"]
        for row in rows
        if _instant(row["conversationStart"]) < last_rescan_done and _settled(row)
    }
    assert len(settled) > 300, "too few settled conversations to judge"
    stale = sorted(settled & set(result.stale_latest))
    assert not stale, f"{len(stale)} of {len(settled)} settled conversations stale in Kafka, e.g. {stale[:5]}"
    assert set(messages) <= settled - set(result.stale_latest)

    ended_in_kafka = {m.key for m in records if m.headers.get(HEADER_ENDED) == "true"}
    assert set(emails) <= ended_in_kafka, "an e-mail open past its last re-scan never had its end published"

    with ChangeStore(state_dir) as changes:
        stored = changes.count()
    assert stored < result.keys, f"nothing pruned: {stored} hashes stored for {result.keys} conversations"
