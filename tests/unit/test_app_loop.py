"""Connector.run(): bounded runs, resume, parallelism, retries (never skipped), fatal errors, graceful stop,
re-scans that collapse to the last due one, following open conversations from their first sighting.

Real Progress, PassRunner, WindowPlanner, FileCheckpointStore and ChangeStore (on tmp_path); the fetcher and
the publisher are in-process fakes. The clock is a FakeClock, by default set a day after the configured
range (a backlog older than every re-scan delay: each window is read once); the loop sleeps on it, so a
test of a live timeline runs through hours of fake time without waiting.

`Connector._wait_for_progress` waits with `asyncio.wait(timeout=...)` on real time (see the report), so
the retry tests use a clock whose monotonic time moves a little on every read and keep the back-off
delays at a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakePublisher, PageHook, PassFake

from connector import app
from connector.app import Connector, LoopSettings, catching_up
from connector.clock import FakeClock, format_instant
from connector.config import load_config
from connector.errors import (
    BatchNotDelivered,
    PermissionDeniedError,
    RetriesExhaustedError,
    UpstreamUnavailableError,
)
from connector.genesys.fetcher import Page
from connector.genesys.ratelimit import Pacer
from connector.health import Heartbeat
from connector.kafka.records import HEADER_ENDED, HEADER_PASS
from connector.metrics import ConnectorMetrics
from connector.passes import InFlightSnapshots, PassRunner
from connector.retry import RetryPolicy
from connector.state.changes import ChangeStore
from connector.state.checkpoint import (
    CheckpointState,
    FileCheckpointStore,
    PassProgress,
    RescanEntry,
    read_only_load,
)
from connector.state.progress import Progress
from connector.state.pruning import PruneTimer
from connector.windows import Window, WindowPlanner

START = datetime(2026, 4, 30, 0, 0, tzinfo=UTC)
END = datetime(2026, 4, 30, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)  # a day after END: every re-scan delay has passed
HALF_HOUR = timedelta(minutes=30)
WINDOWS = [Window(START + i * HALF_HOUR, START + (i + 1) * HALF_HOUR) for i in range(4)]
SPACING = timedelta(minutes=5)  # one conversation every 5 minutes: 6 per window, 24 in all
PAGE_SIZE = 2
RUN_TIMEOUT_S = 3.0  # a hang guard, not a timing assertion: healthy runs take well under a second
# Hours of fake time are thousands of loop turns (the idle loop wakes every 5 fake seconds): ~1 s alone.
TIMELINE_TIMEOUT_S = 20.0


def env(**extra: str) -> dict[str, str]:
    base = {
        "GENESYS__API_BASE_URL": "https://api.example.test",
        "GENESYS__LOGIN_BASE_URL": "https://login.example.test",
        "GENESYS__CLIENT_ID": "client-id",
        "GENESYS__CLIENT_SECRET": "client-secret",
        "WINDOWS__START": format_instant(START),
        "WINDOWS__END": format_instant(END),
        "WINDOWS__LENGTH": "15m",
        "WINDOWS__MAX_CATCHUP_LENGTH": "30m",
        "WINDOWS__LAG": "2m",
        "WINDOWS__RESCAN_DELAYS": "15m,1h",
    }
    return {f"GENESYS_CONNECTOR__{k}": v for k, v in {**base, **extra}.items()}


def record(at: datetime, pass_no: int) -> dict[str, Any]:
    """Conversations starting at :05, :15... are still open on the first pass and end before pass 1."""
    cid = f"c-{at:%H%M}"
    rec: dict[str, Any] = {"conversationId": cid, "conversationStart": format_instant(at)}
    if pass_no > 0 or at.minute % 10 == 0:
        rec["conversationEnd"] = format_instant(at + timedelta(minutes=3))
    return rec


ALL_IDS = {record(START + i * SPACING, 0)["conversationId"] for i in range(24)}
OPEN_ON_FIRST_PASS = {f"c-{(START + i * SPACING):%H%M}" for i in range(1, 24, 2)}


class SteppingClock(FakeClock):
    """A FakeClock whose time moves `step_s` whenever the monotonic clock is read (back-offs elapse)."""

    def __init__(self, start: datetime, step_s: float) -> None:
        super().__init__(start)
        self.step_s = step_s

    def monotonic(self) -> float:
        self.advance(self.step_s)
        return super().monotonic()

    def peek(self) -> float:
        return super().monotonic()


@dataclass
class Call:
    window: Window
    pass_no: int
    start_page: int
    mono: float


@dataclass(repr=False)
class GridFetcher(PassFake):
    """One conversation every 5 minutes, `PAGE_SIZE` per page; failures and a gate can be planted.

    `failures[(window_start, pass_no)]` lists, attempt by attempt, `(page, error)` to raise at that page.
    With `gate` set, every pass waits for it before yielding page `gate_page` (tests of stopping).
    """

    clock: FakeClock
    failures: dict[tuple[datetime, int], deque[tuple[int, BaseException]]] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    gate_page: int = 2
    calls: list[Call] = field(default_factory=list)
    waiting: set[tuple[Window, int]] = field(default_factory=set)
    active: int = 0
    max_active: int = 0
    on_fetch: Callable[[Window, int], None] | None = None
    followed: list[tuple[datetime, list[str]]] = field(default_factory=list)

    def _mono(self) -> float:
        clock = self.clock
        return clock.peek() if isinstance(clock, SteppingClock) else clock.monotonic()

    def pages(self, window: Window, pass_no: int) -> list[list[dict[str, Any]]]:
        first = START + ((window.start - START + SPACING - timedelta(microseconds=1)) // SPACING) * SPACING
        records = []
        at = first
        while at < window.end:
            records.append(record(at, pass_no))
            at += SPACING
        return [records[i : i + PAGE_SIZE] for i in range(0, len(records), PAGE_SIZE)]

    def numbered_pages(self, window: Window, pass_no: int) -> Iterable[tuple[int, Callable[[], Page]]]:
        def builder(number: int, chunk: list[dict[str, Any]]) -> Callable[[], Page]:
            return lambda: Page(window, pass_no, number, chunk, self.clock.now(), None, window)

        pages = enumerate(self.pages(window, pass_no), start=1)
        return [(number, builder(number, chunk)) for number, chunk in pages]

    def pass_started(self, window: Window, pass_no: int, start_page: int) -> PageHook:
        self.calls.append(Call(window, pass_no, start_page, self._mono()))
        if self.on_fetch is not None:
            self.on_fetch(window, pass_no)
        planned = self.failures.get((window.start, pass_no))
        failure = planned.popleft() if planned else None
        self.active += 1
        self.max_active = max(self.max_active, self.active)

        async def before_page(number: int) -> None:
            if failure is not None and failure[0] == number:
                raise failure[1]
            if self.gate is not None and number >= self.gate_page:
                self.waiting.add((window, pass_no))
                await self.gate.wait()

        return before_page

    def pass_ended(self) -> None:
        self.active -= 1

    async def follow_open(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """By id, every conversation has ended (`c-HHMM` started at HH:MM on START's day)."""
        self.followed.append((self.clock.now(), list(ids)))
        return [record(START.replace(hour=int(c[2:4]), minute=int(c[4:6])), 1) for c in ids]


class World:
    """A Connector over the fakes; `state` (if given) is saved as the checkpoint before it starts."""

    def __init__(
        self,
        directory: Path,
        clock: FakeClock,
        loop: LoopSettings,
        *,
        state: CheckpointState | None = None,
        **env_extra: str,
    ) -> None:
        self.directory = directory
        self.clock = clock
        settings = load_config(None, environ=env(**{"CHECKPOINT__DIRECTORY": str(directory), **env_extra}))
        self.metrics = ConnectorMetrics()
        self.store = FileCheckpointStore(directory, clock)
        self.store.lock()
        if state is not None:
            self.store.save(state)
        self.progress = Progress(
            self.store.load(),
            rescan_delays=settings.windows.rescan_delays,
            version="t",
            fingerprint="fp",
            follow_interval=settings.windows.follow_interval,
        )
        self.changes = ChangeStore(directory)
        self.fetcher = GridFetcher(clock)
        self.publisher = FakePublisher()
        runner = PassRunner(
            fetcher=self.fetcher,
            publisher=self.publisher,
            changes=self.changes,
            progress=self.progress,
            metrics=self.metrics,
            in_flight=InFlightSnapshots(),
            clock=clock,
        )
        self.pruning = PruneTimer(self.changes, keep=timedelta(days=4), interval_s=600.0, clock=clock)
        self.connector = Connector(
            clock=clock,
            metrics=self.metrics,
            planner=WindowPlanner(settings.windows, clock),
            progress=self.progress,
            runner=runner,
            publisher=self.publisher,
            checkpoints=self.store,
            pruning=self.pruning,
            pacer=Pacer.from_config(settings.genesys, clock=clock, metrics=self.metrics),
            heartbeat=Heartbeat(clock, max_age_s=60.0),
            settings=loop,
            max_catchup_length=settings.windows.max_catchup_length,
        )

    def run(self, timeout_s: float = RUN_TIMEOUT_S) -> None:
        asyncio.run(asyncio.wait_for(self.connector.run(), timeout_s))

    def checkpoint(self) -> CheckpointState:
        state = read_only_load(self.directory)
        assert state is not None, "no checkpoint was written"
        return state

    def calls_for(self, window: Window, pass_no: int) -> list[Call]:
        return [c for c in self.fetcher.calls if c.window == window and c.pass_no == pass_no]

    def close(self) -> None:
        self.changes.close()
        self.store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def factory(clock: FakeClock | None = None, loop: LoopSettings | None = None, **kwargs: Any) -> World:
        w = World(tmp_path / f"state{len(made)}", clock or FakeClock(NOW), loop or LoopSettings(), **kwargs)
        made.append(w)
        return w

    yield factory
    for w in made:
        w.close()


def published_passes(w: World) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in w.publisher.messages:
        out.setdefault(m.headers[HEADER_PASS], set()).add(m.key)
    return out


# ------------------------------------------------------------------------------------------ bounded run


def test_bounded_run_of_a_backlog_older_than_every_rescan_delay_reads_each_window_once(
    world: Callable[..., World],
) -> None:
    """Read a day late, a window's data is settled: re-scanning it could add nothing."""
    w = world()
    w.run()

    state = w.checkpoint()
    assert state.watermark == END
    assert state.planned_until == END
    assert state.in_progress == []
    assert state.rescans == []
    assert state.stats["passes_completed_0"] == 4
    assert state.stats["rescans_unneeded"] == 8, "both re-scans of all four windows"
    assert sorted((c.window, c.pass_no, c.start_page) for c in w.fetcher.calls) == [
        (window, 0, 1) for window in WINDOWS
    ]
    assert published_passes(w) == {"0": ALL_IDS}
    assert set(state.open_conversations) == OPEN_ON_FIRST_PASS, "still followed by the next run"
    assert w.publisher.flushed == 1


def test_live_run_publishes_ends_from_the_follow_up_and_still_runs_every_rescan(
    world: Callable[..., World],
) -> None:
    """Each window read as it closes: open conversations are followed by id from their first sighting,
    so their ends reach Kafka one follow interval later, not at the re-scan; re-scans still run on time."""
    first_read = END + timedelta(minutes=2)  # windows.lag after the last window closed
    w = world(clock=FakeClock(first_read), WINDOWS__RESCAN_DELAYS="2h,3h")
    w.run(TIMELINE_TIMEOUT_S)

    state = w.checkpoint()
    assert state.rescans == []
    assert state.open_conversations == {}
    for window in WINDOWS:
        for pass_no in (0, 1, 2):
            assert [c.start_page for c in w.calls_for(window, pass_no)] == [1], (window, pass_no)
    assert published_passes(w) == {"0": ALL_IDS, "open": OPEN_ON_FIRST_PASS}, "ends came from the follow-up"
    # First seen when the first passes read them (at first_read, give or take the loop's fake-time ticks).
    first_follow = min(at for at, _ids in w.fetcher.followed) - first_read
    assert timedelta(minutes=5) <= first_follow < timedelta(minutes=5, seconds=5), first_follow
    assert all(len(ids) <= 1000 for _at, ids in w.fetcher.followed)
    ended = [m for m in w.publisher.messages if m.headers[HEADER_PASS] == "open"]
    assert all(m.headers[HEADER_ENDED] == "true" for m in ended)


BUDGET_METRIC = "genesys_connector_api_budget_requests_per_minute"


def budgets_by_pass(w: World) -> dict[int, set[float | None]]:
    """Record the pacer's allowance (requests/min) at the start of every pass, by pass number."""
    seen: dict[int, set[float | None]] = {}

    def note(window: Window, pass_no: int) -> None:
        seen.setdefault(pass_no, set()).add(w.metrics.registry.get_sample_value(BUDGET_METRIC))

    w.fetcher.on_fetch = note
    return seen


def test_overdue_rescans_collapse_to_the_last_due_pass_at_the_full_budget_share(
    world: Callable[..., World],
) -> None:
    """After downtime passes 1 and 2 of every window are due: only pass 2 runs, as catch-up work."""
    rescans = [
        RescanEntry(window_start=w.start, window_end=w.end, pass_no=1, due_at=w.end + timedelta(minutes=15))
        for w in WINDOWS
    ]
    w = world(state=CheckpointState(watermark=END, planned_until=END, rescans=rescans))
    seen = budgets_by_pass(w)
    w.run()
    assert w.checkpoint().rescans == []
    assert sorted((c.window, c.pass_no) for c in w.fetcher.calls) == [(window, 2) for window in WINDOWS]
    assert seen == {2: {300.0}}, "overdue re-scans must not run at live_budget_share (150/min)"


def test_rescans_started_as_they_come_due_use_the_live_share(world: Callable[..., World]) -> None:
    """Caught up, with re-scans due just now (within overdue_after): polite live share."""
    last = WINDOWS[-1]
    due = last.end + timedelta(hours=1)  # its second re-scan (delays 15m, 1h)
    rescans = [RescanEntry(window_start=last.start, window_end=last.end, pass_no=2, due_at=due)]
    w = world(
        clock=FakeClock(due + timedelta(minutes=1)),
        state=CheckpointState(watermark=END, planned_until=END, rescans=rescans),
    )
    seen = budgets_by_pass(w)
    w.run()
    assert seen == {2: {150.0}}


@pytest.mark.parametrize(
    ("behind", "due_ago", "expected"),
    [
        (True, None, True),  # first pass behind: catch up whatever the re-scans
        (False, None, False),  # nothing due: live
        (False, timedelta(seconds=30), False),  # due just now: live polling's own work
        (False, timedelta(minutes=5), False),  # the boundary itself is still live
        (False, timedelta(minutes=6), True),  # waiting or running past overdue_after: catch-up work
        (False, timedelta(days=3), True),  # a bounded run's backlog of re-scans
    ],
)
def test_catching_up_when_behind_or_rescans_are_overdue(
    behind: bool, due_ago: timedelta | None, expected: bool
) -> None:
    oldest_due = None if due_ago is None else NOW - due_ago
    decision = catching_up(
        first_pass_behind=behind, oldest_due=oldest_due, now=NOW, overdue_after=timedelta(minutes=5)
    )
    assert decision is expected


def test_resumes_in_flight_passes_from_their_next_page(world: Callable[..., World]) -> None:
    state = CheckpointState(
        watermark=WINDOWS[1].start,
        planned_until=WINDOWS[1].end,
        in_progress=[
            PassProgress(window_start=WINDOWS[1].start, window_end=WINDOWS[1].end, pass_no=0, next_page=3)
        ],
    )
    w = world(state=state)
    w.run()

    assert [c.start_page for c in w.calls_for(WINDOWS[1], 0)] == [3]
    assert w.calls_for(WINDOWS[0], 0) == [], "windows before the watermark are not read again"
    assert [c.start_page for c in w.calls_for(WINDOWS[2], 0)] == [1]
    assert w.checkpoint().watermark == END


def test_running_passes_never_exceed_max_parallel_passes(world: Callable[..., World]) -> None:
    """After downtime many re-scans are due at once; they must still run `max_parallel_passes` at a time."""
    due = NOW - timedelta(hours=1)
    earlier = [Window(w.start - timedelta(hours=2), w.end - timedelta(hours=2)) for w in WINDOWS]
    rescans = [RescanEntry(window_start=w.start, window_end=w.end, pass_no=1, due_at=due) for w in WINDOWS]
    rescans += [RescanEntry(window_start=w.start, window_end=w.end, pass_no=2, due_at=due) for w in earlier]
    state = CheckpointState(watermark=END, planned_until=END, rescans=rescans)
    w = world(loop=LoopSettings(max_parallel_passes=2, live_parallel_passes=2), state=state)

    w.run()

    assert len(w.fetcher.calls) == 8, "pass 2 of all 8 windows: each window's pass 1 collapsed into it"
    assert w.fetcher.max_active <= 2, f"{w.fetcher.max_active} passes ran at once with a limit of 2"
    assert w.checkpoint().rescans == []


def test_first_passes_respect_max_parallel_passes(world: Callable[..., World]) -> None:
    w = world(loop=LoopSettings(max_parallel_passes=3, live_parallel_passes=1), WINDOWS__RESCAN_DELAYS="[]")
    w.run()
    assert len(w.fetcher.calls) == 4
    assert w.fetcher.max_active == 3, "three windows at once while behind, never four"
    assert w.checkpoint().watermark == END


# ------------------------------------------------------------------------------------------ retries


# Without a back-off the loop would restart a failed pass ~0.04 fake seconds later (4 clock reads).
RETRY_DELAY_S = 0.1


def retry_loop() -> LoopSettings:
    return LoopSettings(retry_delay_s=RETRY_DELAY_S, retry_delay_max_s=1.0, checkpoint_interval_s=0.05)


def serial_retry_world(
    world: Callable[..., World],
    *,
    base_s: float,
    max_s: float,
    broken: Window,
    failures: list[tuple[int, BaseException]],
) -> World:
    """A World on a SteppingClock whose first pass of `broken` fails as planted (`(page, error)` per attempt).

    One pass at a time, and `broken` is the last window: while it waits for its retry the loop is idle,
    so the fake time between attempts is the back-off (`base_s`, capped at `max_s`) and nothing else.
    """
    serial = replace(retry_loop(), max_parallel_passes=1, live_parallel_passes=1)
    loop = replace(serial, retry_delay_s=base_s, retry_delay_max_s=max_s)
    w = world(clock=SteppingClock(NOW, step_s=0.01), loop=loop)
    w.fetcher.failures[(broken.start, 0)] = deque(failures)
    return w


def seeded_pass_retries(monkeypatch: pytest.MonkeyPatch, seed: int) -> RetryPolicy:
    """Make the loop's pass-retry policy draw from `Random(seed)`; returns a twin to predict its delays."""
    rng = random.Random(seed)

    def policy(settings: LoopSettings) -> RetryPolicy:
        return RetryPolicy(
            base_s=settings.retry_delay_s, max_s=settings.retry_delay_max_s, max_attempts=None, rng=rng
        )

    monkeypatch.setattr(app, "pass_retry_policy", policy)
    return RetryPolicy(base_s=5.0, max_s=20.0, max_attempts=None, rng=random.Random(seed))


def test_pass_failing_with_a_retriable_error_is_retried_from_its_acked_page_after_the_policy_delay(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = seeded_pass_retries(monkeypatch, seed=9)  # 2.3 s, then 3.7 s
    # Delays of seconds: far above the ~0.2 fake seconds a page and the loop's own clock reads take.
    broken = WINDOWS[3]
    failure = UpstreamUnavailableError("service unavailable", reason="http_5xx", status=503)
    w = serial_retry_world(world, base_s=5.0, max_s=20.0, broken=broken, failures=[(2, failure)] * 2)

    w.run()

    attempts = w.calls_for(broken, 0)
    assert [c.start_page for c in attempts] == [1, 2, 2], "retried from the page after the last acked one"
    first, second = twin.delay_s(1), twin.delay_s(2)  # full jitter below 5 s, then below 10 s
    assert first <= attempts[1].mono - attempts[0].mono <= first + 0.5
    assert second <= attempts[2].mono - attempts[1].mono <= second + 0.5
    state = w.checkpoint()
    assert state.watermark == END
    assert state.rescans == []
    assert state.stats["passes_completed_0"] == 4
    assert published_passes(w)["0"] == ALL_IDS, "the failing window was not skipped"
    snapshots = Counter((m.key, m.content_hash) for m in w.publisher.messages)
    assert max(snapshots.values()) == 1, "acked pages are not published again"
    assert state.last_error is not None
    assert "status=503" in state.last_error.message


def test_pass_retry_delays_are_full_jitter_below_the_doubling_ceiling(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unseeded: each retry's delay lies in [0, min(max, base * 2^(n-1))], and no retry starts before it.

    What the loop *waited* also includes waiting for a free pass slot, so the ceiling is checked on the
    delays the policy drew, and the wait only from below (never earlier than drawn).
    """
    drawn: list[float] = []
    real_policy = app.pass_retry_policy

    def recording_policy(settings: LoopSettings) -> RetryPolicy:
        policy = real_policy(settings)
        delay_s = policy.delay_s

        def recorded(failures: int, error: BaseException | None = None) -> float:
            drawn.append(delay_s(failures, error))
            return drawn[-1]

        monkeypatch.setattr(policy, "delay_s", recorded)
        return policy

    monkeypatch.setattr(app, "pass_retry_policy", recording_policy)
    broken = WINDOWS[3]
    failure = UpstreamUnavailableError("down", reason="5xx", status=503)
    w = serial_retry_world(world, base_s=1.0, max_s=4.0, broken=broken, failures=[(1, failure)] * 5)

    w.run()

    times = [c.mono for c in w.calls_for(broken, 0)]
    assert len(times) == 6
    assert len(drawn) == 5
    for delay, ceiling in zip(drawn, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert 0 <= delay <= ceiling
    for gap, delay in zip(itertools.pairwise(times), drawn, strict=True):
        assert gap[1] - gap[0] >= delay


def test_retries_exhausted_in_a_pass_is_retried_not_fatal(world: Callable[..., World]) -> None:
    clock = SteppingClock(NOW, step_s=0.01)
    w = world(clock=clock, loop=retry_loop(), WINDOWS__RESCAN_DELAYS="[]")
    w.fetcher.failures[(WINDOWS[0].start, 0)] = deque(
        [(1, RetriesExhaustedError("429 after 6 attempts", last=None))]
    )

    w.run()

    assert [c.start_page for c in w.calls_for(WINDOWS[0], 0)] == [1, 1]
    assert w.checkpoint().watermark == END


def test_a_page_kafka_did_not_acknowledge_is_retried_not_fatal(world: Callable[..., World]) -> None:
    clock = SteppingClock(NOW, step_s=0.01)
    w = world(clock=clock, loop=retry_loop(), WINDOWS__RESCAN_DELAYS="[]")
    undelivered = BatchNotDelivered(None, 1, ["Message timed out"])
    w.fetcher.failures[(WINDOWS[1].start, 0)] = deque([(1, undelivered)])

    w.run()

    assert [c.start_page for c in w.calls_for(WINDOWS[1], 0)] == [1, 1]
    assert w.checkpoint().watermark == END


# ------------------------------------------------------------------------------------------ fatal


def test_fatal_error_stops_the_loop_writes_a_final_checkpoint_and_is_raised(
    world: Callable[..., World],
) -> None:
    w = world(loop=LoopSettings(max_parallel_passes=1, live_parallel_passes=1))
    denied = PermissionDeniedError("missing permission", status=403, endpoint="details_query")
    w.fetcher.failures[(WINDOWS[2].start, 0)] = deque([(1, denied)])

    with pytest.raises(PermissionDeniedError):
        w.run()

    state = w.checkpoint()
    assert state.last_error is not None
    assert state.last_error.message == str(denied)
    assert state.watermark == WINDOWS[2].start
    assert [(p.window_start, p.pass_no, p.next_page) for p in state.in_progress] == [
        (WINDOWS[2].start, 0, 1)
    ], "the failed pass is kept so a restart resumes it"
    assert state.stats["passes_completed_0"] == 2
    assert w.calls_for(WINDOWS[3], 0) == [], "no new window after a fatal error"
    assert len(w.calls_for(WINDOWS[2], 0)) == 1, "a fatal error is not retried"
    assert w.publisher.flushed == 1


# ------------------------------------------------------------------------------------------ stop


def test_request_stop_lets_in_flight_pages_finish_and_saves_passes_with_their_next_page(
    world: Callable[..., World],
) -> None:
    w = world(loop=LoopSettings(max_parallel_passes=2, live_parallel_passes=2))
    gate = w.fetcher.gate = asyncio.Event()

    async def scenario() -> None:
        task = asyncio.create_task(w.connector.run())
        while len(w.fetcher.waiting) < 2:
            await asyncio.sleep(0.001)
        w.connector.request_stop()
        gate.set()  # the pages being fetched arrive; no further page is asked for
        await asyncio.wait_for(task, RUN_TIMEOUT_S)

    asyncio.run(asyncio.wait_for(scenario(), 2 * RUN_TIMEOUT_S))

    state = w.checkpoint()
    assert [(p.window_start, p.pass_no, p.next_page) for p in state.in_progress] == [
        (WINDOWS[0].start, 0, 3),
        (WINDOWS[1].start, 0, 3),
    ]
    assert state.watermark == WINDOWS[0].start
    assert state.planned_until == WINDOWS[1].end
    assert all(call.window in WINDOWS[:2] for call in w.fetcher.calls)
    assert w.publisher.flushed == 1


def test_request_stop_cancels_passes_stuck_past_the_grace_period_and_keeps_their_acked_page(
    world: Callable[..., World],
) -> None:
    w = world(loop=LoopSettings(max_parallel_passes=2, live_parallel_passes=2, shutdown_grace_s=0.05))
    w.fetcher.gate = asyncio.Event()  # never set: page 2 never arrives

    async def scenario() -> None:
        task = asyncio.create_task(w.connector.run())
        while len(w.fetcher.waiting) < 2:
            await asyncio.sleep(0.001)
        w.connector.request_stop()
        await asyncio.wait_for(task, RUN_TIMEOUT_S)

    asyncio.run(asyncio.wait_for(scenario(), 2 * RUN_TIMEOUT_S))

    state = w.checkpoint()
    assert [(p.window_start, p.next_page) for p in state.in_progress] == [
        (WINDOWS[0].start, 2),
        (WINDOWS[1].start, 2),
    ]
    assert state.watermark == WINDOWS[0].start


# ------------------------------------------------------------------------------------------ housekeeping


def test_checkpoints_and_prunes_run_in_worker_threads_and_prunes_only_on_their_timer(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(clock=FakeClock(END + timedelta(minutes=2)), WINDOWS__RESCAN_DELAYS="2h,3h")  # 3 fake hours
    prunes: list[tuple[datetime, bool]] = []
    saves: list[bool] = []
    prune, save = w.changes.prune, w.store.save

    def recording_prune(older_than: datetime) -> int:
        prunes.append((older_than, threading.current_thread() is threading.main_thread()))
        return prune(older_than)

    def recording_save(state: CheckpointState) -> CheckpointState:
        saves.append(threading.current_thread() is threading.main_thread())
        return save(state)

    monkeypatch.setattr(w.changes, "prune", recording_prune)
    monkeypatch.setattr(w.store, "save", recording_save)
    w.run(TIMELINE_TIMEOUT_S)

    assert saves
    assert not any(saves), "every checkpoint write ran off the event-loop thread"
    assert prunes
    assert not any(on_loop for _at, on_loop in prunes)
    cutoffs = [at for at, _on_loop in prunes]
    assert all(b - a >= timedelta(minutes=10) for a, b in itertools.pairwise(cutoffs)), cutoffs
    assert len(prunes) <= 3 * 6 + 1, "one prune per 10 minutes over 3 hours"
