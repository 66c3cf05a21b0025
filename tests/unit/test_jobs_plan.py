"""Pure planning of jobs: backfill spans up to the data lake's availability date, the handover to the query,
settling jobs for query-read windows; and the `jobs:` settings that drive them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.config import JobsSettings, load_config
from connector.errors import ConfigError
from connector.jobs_plan import (
    BackfillPlanner,
    next_settlement_at,
    plan_settlement,
    settlement_due,
)
from connector.windows import Window

DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC)


def jobs(**overrides: Any) -> JobsSettings:
    return JobsSettings.model_validate(overrides)


# --------------------------------------------------------------------------------------------- backfill
def test_backfill_spans_are_whole_utc_days_from_the_frontier_to_the_availability_date() -> None:
    plan = BackfillPlanner(jobs()).plan(at(1, 6, 30), at(4, 9))
    assert plan.by_jobs
    assert plan.handover == at(4, 9)
    assert plan.spans == (
        Window(at(1, 6, 30), at(2)),
        Window(at(2), at(3)),
        Window(at(3), at(4)),
        Window(at(4), at(4, 9)),
    )


def test_spans_partition_the_backlog_without_gap_or_overlap() -> None:
    planner = BackfillPlanner(jobs(span="7d"))
    plan = planner.plan(at(1, 3, 17), datetime(2026, 7, 9, 13, 5, 0, 123000, tzinfo=UTC))
    assert plan.spans[0].start == plan.frontier
    assert plan.spans[-1].end == plan.handover
    for a, b in zip(plan.spans, plan.spans[1:], strict=False):
        assert a.end == b.start
        assert b.duration <= timedelta(days=7)
    assert all(
        (s.end - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(days=7) == timedelta(0)
        for s in plan.spans[:-1]
    )


def test_no_jobs_when_the_data_lake_is_behind_the_frontier_or_unknown() -> None:
    planner = BackfillPlanner(jobs())
    for availability in (None, at(3), at(2, 23)):
        plan = planner.plan(at(3), availability)
        assert not plan.by_jobs
        assert plan.handover == at(3)


def test_a_short_backlog_is_left_to_the_query() -> None:
    planner = BackfillPlanner(jobs(), min_backlog=timedelta(hours=1))
    assert not planner.plan(at(3, 10), at(3, 10, 59)).by_jobs
    assert planner.plan(at(3, 10), at(3, 11)).spans == (Window(at(3, 10), at(3, 11)),)


def test_a_bounded_run_hands_over_at_its_end() -> None:
    plan = BackfillPlanner(jobs(), end=at(2, 12)).plan(at(1), at(5))
    assert plan.handover == at(2, 12)
    assert plan.spans == (Window(at(1), at(2)), Window(at(2), at(2, 12)))


def test_next_spans_start_the_earliest_within_max_concurrent() -> None:
    planner = BackfillPlanner(jobs(max_concurrent=3))
    plan = planner.plan(at(1), at(8))
    assert planner.next_spans(plan, busy=()) == list(plan.spans[:3])
    busy = {plan.spans[0], plan.spans[2]}
    assert planner.next_spans(plan, busy=busy, done={plan.spans[1]}) == [plan.spans[3]]
    assert planner.next_spans(plan, busy=set(plan.spans[:3])) == []


# --------------------------------------------------------------------------------------------- settlement
def test_a_window_is_due_once_the_data_lake_passed_its_end_plus_the_delay() -> None:
    window = Window(at(3, 10), at(3, 10, 5))
    delay = timedelta(hours=2)
    assert not settlement_due(window, None, delay)
    assert not settlement_due(window, at(3, 12, 5) - MS, delay)
    assert settlement_due(window, at(3, 12, 5), delay)
    assert next_settlement_at([window, Window(at(3, 9), at(3, 9, 5))], delay) == at(3, 11, 5)
    assert next_settlement_at([], delay) is None


def test_due_windows_that_touch_become_one_job_never_across_a_day() -> None:
    settings = jobs(settle_delay="1h")
    five = timedelta(minutes=5)
    windows = [Window(at(3, 23, 45) + n * five, at(3, 23, 50) + n * five) for n in range(6)]  # to 00:15
    gap = Window(at(4, 0, 30), at(4, 0, 35))
    late = Window(at(4, 5), at(4, 5, 5))  # not due yet
    plan = plan_settlement([*windows, windows[0], gap, late], at(4, 1, 40), settings)
    assert [(s.span, len(s.windows)) for s in plan] == [
        (Window(at(3, 23, 45), at(4)), 3),
        (Window(at(4), at(4, 0, 15)), 3),
        (Window(at(4, 0, 30), at(4, 0, 35)), 1),
    ]
    assert plan_settlement(windows, at(3, 23), settings) == []


# --------------------------------------------------------------------------------------------- settings
BASE_ENV = {
    "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "client-123",
    "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "x",
    "GENESYS_CONNECTOR__GENESYS__REGION": "us_east_1",
}


def test_jobs_defaults_are_cautious() -> None:
    settings = load_config(None, environ=BASE_ENV).jobs
    assert settings.page_size == 1000
    assert settings.max_concurrent == 2
    assert settings.span == DAY
    assert settings.settle_delay == timedelta(hours=24)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("SPAN", "12h", "jobs.span: must be whole days from 1d to 31d (got 12h)"),
        ("SPAN", "32d", "jobs.span: must be whole days from 1d to 31d (got 32d)"),
        ("PAGE_SIZE", "1001", "jobs.page_size"),
        ("POLL_MAX", "500ms", "jobs.poll_max: must be >= jobs.poll_initial (1s)"),
        ("SETTLE_DELAY", "-1h", "jobs.settle_delay"),
    ],
)
def test_bad_jobs_settings_name_the_field(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={**BASE_ENV, f"GENESYS_CONNECTOR__JOBS__{key}": value})
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
