"""OpenConversations: followed by id from the first sighting, every interval, until they end or age out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.state.followup import OpenConversations

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)
HORIZON = timedelta(days=31)


def tracker(**first_seen: datetime) -> OpenConversations:
    return OpenConversations(first_seen, interval=FIVE, horizon=HORIZON)


def test_a_conversation_is_due_one_interval_after_its_first_sighting() -> None:
    o = tracker()
    o.note_open(["a"], T0)
    o.note_open(["a"], T0 + timedelta(minutes=3))  # seen again: the first sighting counts
    assert o.next_due() == T0 + FIVE
    assert o.due(T0 + FIVE - timedelta(seconds=1), limit=100) == []
    assert o.due(T0 + FIVE, limit=100) == ["a"]


def test_it_stays_due_until_followed_then_comes_due_again_one_interval_later() -> None:
    o = tracker(a=T0)
    now = T0 + FIVE
    assert o.due(now, limit=100) == ["a"]
    assert o.due(now, limit=100) == ["a"], "a failed follow-up leaves it due"
    o.followed(["a"], now)
    assert o.due(now, limit=100) == []
    assert o.next_due() == now + FIVE


def test_due_ids_come_longest_waiting_first_up_to_the_limit() -> None:
    o = tracker(c=T0 + timedelta(minutes=2), a=T0, b=T0 + timedelta(minutes=1))
    assert o.due(T0 + timedelta(hours=1), limit=2) == ["a", "b"]


def test_an_ended_conversation_is_no_longer_followed() -> None:
    o = tracker(a=T0, b=T0)
    o.note_ended(["a", "unknown"])
    assert o.due(T0 + FIVE, limit=100) == ["b"]
    assert len(o) == 1


def test_past_the_horizon_it_is_dropped_instead_of_followed() -> None:
    o = tracker(old=T0, young=T0 + timedelta(days=30))
    later = T0 + HORIZON + timedelta(minutes=1)
    assert o.due(later, limit=100) == ["young"]
    assert set(o.first_seen) == {"young"}


def test_without_an_interval_nothing_is_followed_but_the_table_is_pruned_by_age() -> None:
    o = OpenConversations({"old": T0}, interval=None, horizon=HORIZON)
    o.note_open(["new"], T0 + timedelta(days=2))
    assert o.next_due() is None
    assert o.due(T0 + timedelta(days=40), limit=100) == []
    assert o.prune(T0 + HORIZON + timedelta(days=1)) == 1
    assert set(o.first_seen) == {"new"}
