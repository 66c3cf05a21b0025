"""Progress: acked-only state, the watermark over out-of-order completions, re-scans, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.clock import FakeClock
from connector.state.checkpoint import CheckpointState, FileCheckpointStore, PassProgress, RescanEntry
from connector.state.progress import PassKey, Progress
from connector.windows import Window

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DELAYS = [timedelta(minutes=15), timedelta(hours=2), timedelta(hours=26)]


def window(start_min: int, length_min: int = 5) -> Window:
    return Window(T0 + start_min * MIN, T0 + (start_min + length_min) * MIN)


def progress(
    state: CheckpointState | None = None,
    delays: list[timedelta] | None = None,
    follow: timedelta | None = None,
) -> Progress:
    return Progress(
        state,
        rescan_delays=DELAYS if delays is None else delays,
        version="1.2.3",
        fingerprint="fp",
        follow_interval=follow,
    )


def rescan(start_min: int, pass_no: int, due: datetime, length_min: int = 5) -> RescanEntry:
    w = window(start_min, length_min)
    return RescanEntry(window_start=w.start, window_end=w.end, pass_no=pass_no, due_at=due)


# ------------------------------------------------------------------------------------------ watermark


def test_new_progress_has_no_watermark_and_nothing_to_resume() -> None:
    p = progress()
    assert p.watermark is None
    assert p.planned_until is None
    assert p.resumable() == []
    assert p.next_rescan_due() is None


def test_watermark_stays_at_earliest_in_flight_first_pass_when_later_windows_complete_first() -> None:
    p = progress()
    keys = [p.begin_first_pass(window(m), window(m).end) for m in (0, 5, 10, 15)]
    assert p.planned_until == window(15).end
    assert p.watermark == T0

    p.complete(keys[2])
    p.complete(keys[3])
    assert p.watermark == T0, "windows 3 and 4 are done but window 1 is not: nothing is contiguous yet"

    p.complete(keys[0])
    assert p.watermark == window(5).start, "window 1 done: the watermark moves up to window 2, no further"

    p.complete(keys[1])
    assert p.watermark == window(15).end == p.planned_until


def test_rescans_in_flight_do_not_hold_the_watermark_back() -> None:
    p = progress()
    first = p.begin_first_pass(window(0), window(0).end)
    p.complete(first)
    (rescan_key,) = p.take_due_rescans(window(0).end + DELAYS[0], max_length=timedelta(hours=1))
    assert rescan_key in p.in_progress
    assert p.watermark == window(0).end


def test_watermark_of_an_old_checkpoint_without_planned_until_is_where_planning_resumes() -> None:
    p = progress(CheckpointState(watermark=T0))
    assert p.planned_until == T0
    assert p.watermark == T0


# ------------------------------------------------------------------------------------------ pages


def test_page_acked_only_moves_forward() -> None:
    p = progress()
    key = p.begin_first_pass(window(0), window(0).end)
    assert p.in_progress[key] == 1
    p.page_acked(key, 3)
    assert p.in_progress[key] == 4
    p.page_acked(key, 1)  # a late ack of an earlier page must not move the resume point back
    assert p.in_progress[key] == 4
    p.page_acked(key, 4)
    assert p.in_progress[key] == 5


def test_page_acked_for_a_pass_not_in_flight_is_ignored() -> None:
    p = progress()
    key = p.begin_first_pass(window(0), window(0).end)
    p.complete(key)
    p.page_acked(key, 7)
    assert key not in p.in_progress


def test_resumable_after_reload_from_snapshot_gives_same_passes_and_pages(tmp_path: Path) -> None:
    p = progress()
    a = p.begin_first_pass(window(0), window(0).end)
    b = p.begin_first_pass(window(5), window(5).end)
    c = p.begin_first_pass(window(10), window(10).end)
    p.page_acked(a, 2)
    p.page_acked(c, 5)
    p.complete(b)
    (r,) = p.take_due_rescans(window(5).end + DELAYS[0], max_length=timedelta(hours=1))
    p.page_acked(r, 1)
    before = p.resumable()
    assert before == [(a, 3), (c, 6), (r, 2)], "sorted by pass number, then window start"

    store = FileCheckpointStore(tmp_path, FakeClock(T0))
    with store:
        store.save(p.snapshot())
    with store:
        loaded = store.load()
    again = progress(loaded)

    assert again.resumable() == before
    assert again.watermark == p.watermark == T0
    assert again.planned_until == p.planned_until == window(10).end
    assert again.rescans == p.rescans


# ------------------------------------------------------------------------------------------ re-scans


def test_completing_first_pass_schedules_pass_1_at_window_end_plus_first_delay() -> None:
    p = progress()
    key = p.begin_first_pass(window(0), window(0).end)
    p.complete(key)
    assert key not in p.in_progress
    assert p.rescans == [
        RescanEntry(
            window_start=window(0).start,
            window_end=window(0).end,
            pass_no=1,
            due_at=window(0).end + DELAYS[0],
        )
    ]
    assert p.next_rescan_due() == window(0).end + DELAYS[0]
    assert p.stats["passes_completed_0"] == 1


def test_completing_pass_n_schedules_pass_n_plus_1_at_window_end_plus_its_delay() -> None:
    p = progress()
    w = window(0)
    for n in (1, 2):
        p.complete(PassKey(w, n))
        entry = p.rescans[-1]
        assert (entry.pass_no, entry.due_at) == (n + 1, w.end + DELAYS[n])
        assert (entry.window_start, entry.window_end) == (w.start, w.end)
    assert p.stats == {"passes_completed_1": 1, "passes_completed_2": 1}


def test_completing_the_last_pass_schedules_nothing() -> None:
    p = progress()
    p.complete(PassKey(window(0), len(DELAYS)))
    assert p.rescans == []
    assert p.stats[f"passes_completed_{len(DELAYS)}"] == 1


def test_no_rescan_delays_means_first_pass_schedules_nothing() -> None:
    p = progress(delays=[])
    key = p.begin_first_pass(window(0), window(0).end)
    p.complete(key)
    assert p.rescans == []


def test_take_due_rescans_merges_contiguous_windows_of_same_pass_up_to_max_length() -> None:
    due = T0 + timedelta(hours=1)
    state = CheckpointState(rescans=[rescan(m, 1, due) for m in (0, 5, 10, 15, 20)])
    p = progress(state)

    keys = p.take_due_rescans(due, max_length=timedelta(minutes=15))

    assert keys == [
        PassKey(Window(window(0).start, window(10).end), 1),
        PassKey(Window(window(15).start, window(20).end), 1),
    ], "15 minutes at most: three 5-minute windows, then a new run"
    assert all(p.in_progress[k] == 1 for k in keys)
    assert p.rescans == []


def test_take_due_rescans_does_not_merge_windows_with_a_gap() -> None:
    due = T0 + timedelta(hours=1)
    p = progress(CheckpointState(rescans=[rescan(0, 1, due), rescan(10, 1, due)]))
    keys = p.take_due_rescans(due, max_length=timedelta(hours=6))
    assert keys == [PassKey(window(0), 1), PassKey(window(10), 1)]


def test_take_due_rescans_never_merges_beyond_max_length() -> None:
    due = T0 + timedelta(hours=1)
    p = progress(CheckpointState(rescans=[rescan(0, 1, due), rescan(5, 1, due)]))
    keys = p.take_due_rescans(due, max_length=timedelta(minutes=9))
    assert keys == [PassKey(window(0), 1), PassKey(window(5), 1)]
    assert all(k.window.duration <= timedelta(minutes=9) for k in keys)


def test_take_due_rescans_keeps_different_pass_numbers_separate() -> None:
    due = T0 + timedelta(hours=1)
    p = progress(CheckpointState(rescans=[rescan(0, 1, due), rescan(5, 2, due), rescan(10, 1, due)]))
    keys = p.take_due_rescans(due, max_length=timedelta(hours=6))
    assert keys == [PassKey(window(0), 1), PassKey(window(10), 1), PassKey(window(5), 2)]


def test_take_due_rescans_leaves_rescans_not_yet_due() -> None:
    now = T0 + timedelta(hours=1)
    later = rescan(5, 1, now + timedelta(seconds=1))
    p = progress(CheckpointState(rescans=[rescan(0, 1, now), later, rescan(10, 1, now - MIN)]))

    keys = p.take_due_rescans(now, max_length=timedelta(hours=6))

    assert keys == [PassKey(window(0), 1), PassKey(window(10), 1)], "windows 0 and 10 are not contiguous"
    assert p.rescans == [later]
    assert p.next_rescan_due() == later.due_at
    assert p.take_due_rescans(now, max_length=timedelta(hours=6)) == []


def test_merged_rescan_window_stays_merged_for_its_next_pass() -> None:
    due = T0 + timedelta(hours=1)
    p = progress(CheckpointState(rescans=[rescan(0, 1, due), rescan(5, 1, due)]))
    (key,) = p.take_due_rescans(due, max_length=timedelta(hours=1))
    p.complete(key)
    assert [(r.window_start, r.window_end, r.pass_no) for r in p.rescans] == [
        (window(0).start, window(5).end, 2)
    ]
    assert p.rescans[0].due_at == window(5).end + DELAYS[1]


def test_rescans_beyond_the_configured_number_of_delays_are_dropped_on_load() -> None:
    due = T0 + timedelta(hours=1)
    state = CheckpointState(rescans=[rescan(0, 1, due), rescan(5, 2, due), rescan(10, 3, due)])
    p = progress(state, delays=DELAYS[:2])
    assert [r.pass_no for r in p.rescans] == [1, 2]
    assert [r.pass_no for r in progress(state, delays=[]).rescans] == []


# ------------------------------------------------------------------------------------------ collapse


def test_first_pass_started_after_two_rescan_delays_schedules_only_the_third_rescan() -> None:
    p = progress()
    w = window(0)
    key = p.begin_first_pass(w, w.end + timedelta(hours=3))  # passes 1 (15m) and 2 (2h) already due
    p.complete(key)
    assert [(r.pass_no, r.due_at) for r in p.rescans] == [(3, w.end + DELAYS[2])]
    assert p.stats["rescans_unneeded"] == 2


def test_first_pass_of_a_backlog_older_than_the_longest_delay_schedules_no_rescan() -> None:
    p = progress()
    w = window(0)
    p.complete(p.begin_first_pass(w, w.end + DELAYS[-1]))  # due at that very instant counts as read
    assert p.rescans == []
    assert p.stats["rescans_unneeded"] == len(DELAYS)


def test_when_several_passes_of_a_window_are_due_only_the_last_due_one_runs() -> None:
    w = window(0)
    now = w.end + timedelta(hours=3)  # downtime: passes 1 and 2 are both due, pass 3 is not
    p = progress(CheckpointState(rescans=[rescan(0, 1, w.end + DELAYS[0])]))

    (key,) = p.take_due_rescans(now, max_length=timedelta(hours=1))
    assert key == PassKey(w, 2)
    p.complete(key)
    assert [(r.pass_no, r.due_at) for r in p.rescans] == [(3, w.end + DELAYS[2])]
    assert p.stats == {"passes_completed_2": 1}


def test_collapsed_rescans_still_merge_contiguous_windows() -> None:
    a, b = window(0), window(5)
    now = b.end + timedelta(hours=3)
    p = progress(CheckpointState(rescans=[rescan(0, 1, a.end + DELAYS[0]), rescan(5, 2, b.end + DELAYS[1])]))
    assert p.take_due_rescans(now, max_length=timedelta(hours=1)) == [PassKey(Window(a.start, b.end), 2)]
    assert p.rescans == []


def test_start_of_a_pass_in_flight_survives_the_checkpoint_and_still_collapses_after_a_restart() -> None:
    p = progress()
    w = window(0)
    p.begin_first_pass(w, w.end + timedelta(hours=3))
    again = progress(p.snapshot())
    (key, _page), *_ = again.resumable()
    again.complete(key)
    assert [r.pass_no for r in again.rescans] == [3]


def test_pass_resumed_from_a_checkpoint_without_its_start_schedules_the_very_next_pass() -> None:
    """Old checkpoints do not say when a pass started: its early pages may predate every due time."""
    w = window(0)
    old = PassProgress(window_start=w.start, window_end=w.end, pass_no=0, next_page=3)
    p = progress(CheckpointState(in_progress=[old]))
    p.complete(PassKey(w, 0))
    assert [(r.pass_no, r.due_at) for r in p.rescans] == [(1, w.end + DELAYS[0])]


# ------------------------------------------------------------------------------------------ snapshot


def test_snapshot_contains_planned_until_stats_and_last_error() -> None:
    p = progress()
    a = p.begin_first_pass(window(0), window(0).end)
    b = p.begin_first_pass(window(5), window(5).end)
    p.page_acked(b, 1)
    p.complete(a)
    p.add_stat("published", 7)
    p.add_stat("published", 3)
    p.open.note_open(["c1"], T0)
    failed_at = T0 + timedelta(hours=1)

    snap = p.snapshot(last_error=(failed_at, "upstream unavailable status=503"))

    assert snap.planned_until == window(5).end
    assert snap.watermark == window(5).start
    assert snap.in_progress == [
        PassProgress(
            window_start=window(5).start,
            window_end=window(5).end,
            pass_no=0,
            next_page=2,
            started_at=window(5).end,
        )
    ]
    assert [r.pass_no for r in snap.rescans] == [1]
    assert snap.stats == {"published": 10, "passes_completed_0": 1}
    assert snap.open_conversations == {"c1": T0}
    assert snap.last_error is not None
    assert (snap.last_error.at, snap.last_error.message) == (failed_at, "upstream unavailable status=503")
    assert (snap.connector_version, snap.config_fingerprint) == ("1.2.3", "fp")


def test_snapshot_without_a_new_error_keeps_the_loaded_one_and_is_acked_only() -> None:
    first = progress().snapshot(last_error=(T0, "boom"))
    p = progress(first)
    p.begin_first_pass(window(0), window(0).end)  # handed out, nothing acked
    snap = p.snapshot()
    assert snap.last_error is not None
    assert snap.last_error.message == "boom"
    assert snap.watermark == T0, "a window handed out but not acked does not move the watermark"
    assert snap.in_progress[0].next_page == 1


def test_open_conversations_survive_a_snapshot_and_are_due_one_interval_after_their_first_sighting() -> None:
    p = progress(follow=timedelta(minutes=5))
    p.open.note_open(["a", "b"], T0)
    p.open.note_open(["a"], T0 + timedelta(hours=1))  # first sighting is kept
    p.open.note_ended(["b", "unknown"])
    assert p.snapshot().open_conversations == {"a": T0}

    again = progress(p.snapshot(), follow=timedelta(minutes=5))
    assert again.open.next_due() == T0 + timedelta(minutes=5)
    assert again.open.due(T0 + timedelta(minutes=5), limit=100) == ["a"]


# ------------------------------------------------------------------------------------------ overdue re-scans


def test_oldest_due_rescan_counts_waiting_and_in_flight_rescans_but_not_future_ones() -> None:
    now = T0 + timedelta(hours=3)
    p = progress(CheckpointState(rescans=[rescan(0, 1, now + MIN), rescan(5, 2, now - MIN)]))
    assert p.oldest_due_rescan(now) == now - MIN  # the one due in a minute is not due yet
    p.begin_first_pass(window(10), window(10).end)
    assert p.oldest_due_rescan(now) == now - MIN  # first passes are not re-scans

    w = window(20)
    in_flight = PassProgress(window_start=w.start, window_end=w.end, pass_no=1, next_page=3)
    p = progress(CheckpointState(in_progress=[in_flight], rescans=[rescan(5, 2, now - MIN)]))
    assert p.oldest_due_rescan(now) == w.end + DELAYS[0]  # in flight since its window end + 15 min


def test_nothing_due_means_no_oldest_due_rescan() -> None:
    assert progress().oldest_due_rescan(T0) is None
