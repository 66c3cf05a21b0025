"""Windows: the value object and first-pass planning (lag, alignment, catch-up, bounded end)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connector.clock import FakeClock, format_instant
from connector.config import WindowsSettings
from connector.windows import Window, WindowPlanner, align_down

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def planner(now: datetime, **overrides: object) -> tuple[WindowPlanner, FakeClock]:
    clock = FakeClock(now)
    config = WindowsSettings.model_validate({"start": "-1h", **overrides})
    return WindowPlanner(config, clock), clock


# ---------------------------------------------------------------------------------------- Window


def test_interval_is_iso_utc_with_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    window = Window(
        datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=plus_two), datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    )
    assert window.interval == "2026-05-01T10:00:00.123Z/2026-05-01T10:05:00.000Z"
    assert window.start.tzinfo == UTC
    assert window.start.microsecond == 123000
    assert str(window) == window.interval


def test_window_rejects_naive_and_empty_ranges() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 5, 1), datetime(2026, 5, 2))
    with pytest.raises(ValueError, match="before its end"):
        Window(at(1), at(1))


def test_split_into_halves() -> None:
    first, second = Window(at(0), at(1)).split()
    assert first == Window(at(0), at(0, 30))
    assert second == Window(at(0, 30), at(1))
    odd_first, odd_second = Window(at(0), at(0, 0, 0.003)).split()
    assert odd_first.end == odd_second.start
    assert odd_first.duration == timedelta(milliseconds=1)
    with pytest.raises(ValueError, match="too short"):
        Window(at(0), at(0, 0, 0.001)).split()


def test_windows_sort_chronologically() -> None:
    windows = [Window(at(2), at(3)), Window(at(0), at(1)), Window(at(0), at(0, 30))]
    assert sorted(windows) == [Window(at(0), at(0, 30)), Window(at(0), at(1)), Window(at(2), at(3))]


def test_align_down_and_format() -> None:
    assert align_down(at(0, 7, 30), timedelta(minutes=5)) == at(0, 5)
    assert align_down(at(5), timedelta(hours=6)) == at(0)
    assert format_instant(at(0, 0, 1.5)) == "2026-05-01T12:00:01.500Z"


# ---------------------------------------------------------------------------------------- planner


def test_caught_up_windows_have_the_configured_length_and_respect_the_lag() -> None:
    plan, clock = planner(at(1, 3), lag="2m", length="5m")
    # 12:00 is a boundary, now - lag = 13:01: [12:55, 13:00) is complete, [13:00, 13:05) is not.
    window = plan.next_window(at(0, 55))
    assert window == Window(at(0, 55), at(1))
    assert plan.next_window(at(1)) is None  # caught up: the caller waits poll_interval
    assert plan.next_window_ready_in(at(1)) == timedelta(minutes=4)  # 13:05 + 2m lag - 13:03
    clock.advance(4 * 60 - 1)
    assert plan.next_window(at(1)) is None
    clock.advance(1)
    assert plan.next_window(at(1)) == Window(at(1), at(1, 5))
    assert plan.next_window_ready_in(at(1)) == timedelta(0)


def test_window_end_never_exceeds_now_minus_lag() -> None:
    plan, clock = planner(at(0), lag="2m", length="5m", max_catchup_length="1h", start="-3d")
    watermark = None
    for _ in range(500):
        window = plan.next_window(watermark)
        if window is None:
            clock.advance(37)
            continue
        assert window.end <= clock.now() - timedelta(minutes=2)
        watermark = window.end
        clock.advance(3)


def test_first_window_starts_at_the_aligned_relative_start() -> None:
    plan, _ = planner(at(0, 7, 13), start="-1h", length="5m", lag="1m")
    window = plan.next_window(None)
    assert window is not None
    assert window.start == at(-1, 5)  # 11:07:13 aligned down to the 5-minute grid
    assert plan.initial_start() == at(-1, 5)


def test_absolute_start_is_kept_exactly_and_later_windows_are_aligned() -> None:
    plan, clock = planner(at(0, 7), start="2026-05-01T12:03:00Z", length="5m", lag="1m")
    first = plan.next_window(None)
    assert first == Window(at(0, 3), at(0, 5))
    clock.advance(5 * 60)
    second = plan.next_window(first.end)
    assert second == Window(at(0, 5), at(0, 10))


def test_windows_grow_while_behind_up_to_max_catchup_aligned() -> None:
    plan, _ = planner(at(72), start="-3d", length="5m", max_catchup_length="6h", lag="2m")
    first = plan.next_window(None)
    assert first == Window(at(0), at(6))  # 12:00 -> 18:00, a 6-hour boundary
    second = plan.next_window(first.end)
    assert second == Window(at(6), at(12))


def test_a_short_backlog_is_read_in_one_window() -> None:
    # 50 minutes behind: one window up to the last 5-minute boundary before now - lag.
    plan, _ = planner(at(0, 52), start="2026-05-01T12:00:00Z", length="5m", max_catchup_length="6h", lag="2m")
    assert plan.next_window(None) == Window(at(0), at(0, 50))
    assert plan.is_behind(at(0))
    assert not plan.is_caught_up(at(0))
    assert plan.is_caught_up(at(0, 50))
    assert plan.is_behind(None)


def test_consecutive_windows_cover_the_range_without_gaps_or_overlap() -> None:
    plan, clock = planner(at(30), start="-2d", length="5m", max_catchup_length="6h", lag="2m")
    windows: list[Window] = []
    watermark = None
    while (window := plan.next_window(watermark)) is not None:
        windows.append(window)
        watermark = window.end
    assert windows[0].start == plan.initial_start()
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert windows[-1].end == align_down(clock.now() - timedelta(minutes=2), timedelta(minutes=5))
    assert max(w.duration for w in windows) == timedelta(hours=6)
    assert len(windows) < 12


def test_bounded_run_stops_at_windows_end() -> None:
    plan, clock = planner(at(5), start="2026-05-01T12:00:00Z", end="2026-05-01T13:02:30Z", length="5m")
    watermark = None
    windows = []
    while (window := plan.next_window(watermark)) is not None:
        windows.append(window)
        watermark = window.end
    assert windows[-1].end == at(1, 2, 30)  # the last window is partial, and never beyond the end
    assert all(w.end <= at(1, 2, 30) for w in windows)
    assert plan.is_finished(watermark)
    assert not plan.is_finished(at(1))
    assert plan.next_window_ready_in(watermark) is None
    clock.advance(86400)
    assert plan.next_window(watermark) is None


def test_bounded_end_in_the_future_waits_for_the_lag() -> None:
    plan, clock = planner(at(0, 10), start="2026-05-01T12:00:00Z", end="2026-05-01T12:10:00Z", lag="2m")
    assert plan.next_window(None) == Window(at(0), at(0, 5))
    assert plan.next_window(at(0, 5)) is None
    assert not plan.is_finished(at(0, 5))
    clock.advance(120)
    assert plan.next_window(at(0, 5)) == Window(at(0, 5), at(0, 10))


def test_relative_start_is_resolved_once() -> None:
    plan, clock = planner(at(0), start="-1h")
    first = plan.initial_start()
    clock.advance(3600)
    assert plan.initial_start() == first
