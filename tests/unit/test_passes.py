"""PassRunner: change detection, one batch per page, hashes recorded only after acks, delivery failures.

The fetcher and the publisher are in-process fakes; the change store is the real SQLite one on tmp_path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeFetcher, FakePublisher, sample

from connector.errors import DeliveryError, FatalError
from connector.genesys.fetcher import Page
from connector.kafka.publisher import BatchResult, DeliveryFailure
from connector.kafka.records import (
    HEADER_CONTENT_HASH,
    HEADER_ENDED,
    HEADER_OBSERVED_AT,
    HEADER_PASS,
    HEADER_WINDOW,
    content_hash,
    encode_record,
    value_hash,
)
from connector.metrics import ConnectorMetrics
from connector.passes import BatchNotDelivered, InFlightSnapshots, PassRunner
from connector.state.changes import ChangeStore
from connector.state.progress import PassKey, Progress
from connector.windows import Window

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
W = Window(T0, T0 + timedelta(minutes=5))
DELAYS = [timedelta(minutes=15), timedelta(hours=2)]


def conv(cid: str, *, ended: bool = True, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"conversationId": cid, "conversationStart": "2026-05-01T10:01:00.000Z", **extra}
    if ended:
        record["conversationEnd"] = "2026-05-01T10:03:00.000Z"
    return record


def page(number: int, records: list[dict[str, Any]], *, at: datetime, pass_no: int = 0) -> Page:
    return Page(
        window=W,
        pass_no=pass_no,
        page_number=number,
        conversations=records,
        received_at=at,
        total_hits=None,
        query_window=W,
    )


class Harness:
    """A PassRunner over fakes, a real ChangeStore and a real Progress."""

    def __init__(self, directory: Path, pages: dict[int, list[Page]]) -> None:
        self.metrics = ConnectorMetrics()
        self.progress = Progress(None, rescan_delays=DELAYS, version="test", fingerprint="fp")
        self.changes = ChangeStore(directory)
        self.fetcher = FakeFetcher(pages)
        self.publisher = FakePublisher()
        self.runner = PassRunner(
            fetcher=self.fetcher,
            publisher=self.publisher,
            changes=self.changes,
            progress=self.progress,
            metrics=self.metrics,
            in_flight=InFlightSnapshots(),
        )

    def key(self, pass_no: int) -> PassKey:
        """A pass in flight, as the app would have handed it out."""
        if pass_no == 0:
            return self.progress.begin_first_pass(W, T0)
        key = PassKey(W, pass_no)
        self.progress.in_progress[key] = 1
        return key

    async def run(
        self, key: PassKey, *, start_page: int = 1, stop: Callable[[], bool] = lambda: False
    ) -> bool:
        return await self.runner.run(key, start_page=start_page, should_stop=stop)

    def sample(self, name: str, **labels: str) -> float:
        return sample(self.metrics, name, **labels)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[dict[int, list[Page]]], Harness]]:
    made: list[Harness] = []

    def factory(pages: dict[int, list[Page]]) -> Harness:
        h = Harness(tmp_path, pages)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.changes.close()


# ------------------------------------------------------------------------------------------ changes


def test_unchanged_snapshot_is_not_published_and_is_counted(make: Callable[..., Harness]) -> None:
    same, new = conv("c-same"), conv("c-new")
    h = make({0: [page(1, [same, new], at=T0)]})
    h.changes.put_many([("c-same", content_hash(same), None)], T0 - timedelta(hours=1))

    assert asyncio.run(h.run(h.key(0))) is True

    assert h.publisher.keys == ["c-new"]
    assert h.sample("conversations_unchanged_total") == 1
    assert h.sample("conversations_published_total", **{"pass": "0"}) == 1
    assert h.changes.get_many(["c-same", "c-new"]) == {
        "c-same": content_hash(same),
        "c-new": content_hash(new),
    }


def test_page_with_only_unchanged_snapshots_publishes_nothing_but_is_acked(
    make: Callable[..., Harness],
) -> None:
    rec = conv("c1")
    h = make({0: [page(1, [rec], at=T0), page(2, [conv("c2")], at=T0)]})
    h.changes.put_many([("c1", content_hash(rec), None)], T0)
    key = h.key(0)

    assert asyncio.run(h.run(key, stop=lambda: True)) is False

    assert h.publisher.batches == []
    assert h.progress.in_progress[key] == 2


def test_changed_snapshot_is_published_with_pass_window_hash_and_ended_headers(
    make: Callable[..., Harness],
) -> None:
    ended, still_open = conv("c-ended", wrapup="sale"), conv("c-open", ended=False)
    observed = T0 + timedelta(hours=1, milliseconds=250)
    h = make({1: [page(1, [ended, still_open], at=observed, pass_no=1)]})
    h.changes.put_many([("c-ended", content_hash(conv("c-ended")), None)], T0)  # older content

    asyncio.run(h.run(h.key(1)))

    (batch,) = h.publisher.batches
    by_key = {m.key: m for m in batch}
    assert list(by_key) == ["c-ended", "c-open"], "page order is produce order"
    for record in (ended, still_open):
        msg = by_key[record["conversationId"]]
        assert msg.value == encode_record(record)
        assert msg.headers[HEADER_CONTENT_HASH] == content_hash(record)
        assert msg.headers[HEADER_PASS] == "1"
        assert msg.headers[HEADER_WINDOW] == "2026-05-01T10:00:00.000Z/2026-05-01T10:05:00.000Z"
        assert msg.headers[HEADER_OBSERVED_AT] == "2026-05-01T11:00:00.250Z"
    assert by_key["c-ended"].headers[HEADER_ENDED] == "true"
    assert by_key["c-open"].headers[HEADER_ENDED] == "false"


def test_each_page_is_published_as_one_batch_in_page_order(make: Callable[..., Harness]) -> None:
    h = make({0: [page(1, [conv("a"), conv("b")], at=T0), page(2, [conv("c")], at=T0)]})
    asyncio.run(h.run(h.key(0)))
    assert [[m.key for m in b] for b in h.publisher.batches] == [["a", "b"], ["c"]]


# ------------------------------------------------------------------------------------------ concurrency


def test_snapshot_in_flight_with_same_hash_in_another_pass_is_not_published_twice(
    make: Callable[..., Harness],
) -> None:
    rec = conv("c1")
    h = make(
        {
            0: [page(1, [rec], at=T0)],
            1: [page(1, [dict(rec)], at=T0 + timedelta(seconds=1), pass_no=1)],
        }
    )

    async def scenario() -> None:
        gate = h.publisher.gates[1] = asyncio.Event()
        first = asyncio.create_task(h.run(h.key(0)))
        while not h.publisher.batches:  # pass 0 is waiting for its acks
            await asyncio.sleep(0)
        assert await h.run(h.key(1)) is True
        gate.set()
        assert await first is True

    asyncio.run(scenario())

    assert h.publisher.keys == ["c1"]
    assert h.sample("conversations_unchanged_total") == 1


def newer_then_older(make: Callable[..., Harness]) -> tuple[Harness, dict[str, Any]]:
    """c1 seen at +30 s by pass 0 and, as an older version, at +10 s by pass 1: (harness, the newer)."""
    newer, older = conv("c1", wrapup="final"), conv("c1", wrapup=None)
    h = make(
        {
            0: [page(1, [newer], at=T0 + timedelta(seconds=30))],
            1: [page(1, [older], at=T0 + timedelta(seconds=10), pass_no=1)],
        }
    )
    return h, newer


def test_older_observation_than_one_in_flight_is_dropped_as_stale(make: Callable[..., Harness]) -> None:
    h, newer = newer_then_older(make)

    async def scenario() -> None:
        gate = h.publisher.gates[1] = asyncio.Event()
        first = asyncio.create_task(h.run(h.key(0)))
        while not h.publisher.batches:
            await asyncio.sleep(0)
        await h.run(h.key(1))
        gate.set()
        await first

    asyncio.run(scenario())

    assert [m.content_hash for b in h.publisher.batches for m in b] == [content_hash(newer)]
    assert h.changes.get_many(["c1"]) == {"c1": content_hash(newer)}


def test_older_observation_than_one_already_acked_is_dropped_as_stale(make: Callable[..., Harness]) -> None:
    h, newer = newer_then_older(make)

    async def scenario() -> None:
        await h.run(h.key(0))
        await h.run(h.key(1))

    asyncio.run(scenario())

    assert h.publisher.keys == ["c1"]
    assert h.changes.get_many(["c1"]) == {"c1": content_hash(newer)}
    assert h.sample("conversations_unchanged_total") == 1


def test_newer_observation_with_new_content_is_published_after_the_one_in_flight(
    make: Callable[..., Harness],
) -> None:
    v1, v2 = conv("c1", wrapup=None), conv("c1", wrapup="final")
    h = make(
        {
            0: [page(1, [v1], at=T0)],
            1: [page(1, [v2], at=T0 + timedelta(seconds=30), pass_no=1)],
        }
    )

    async def scenario() -> None:
        gate = h.publisher.gates[1] = asyncio.Event()
        first = asyncio.create_task(h.run(h.key(0)))
        while not h.publisher.batches:
            await asyncio.sleep(0)
        second = asyncio.create_task(h.run(h.key(1)))
        while len(h.publisher.batches) < 2:
            await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())

    assert [m.content_hash for b in h.publisher.batches for m in b] == [content_hash(v1), content_hash(v2)]


def test_acks_arriving_out_of_order_leave_the_newest_hash_and_cause_no_duplicate(
    make: Callable[..., Harness],
) -> None:
    """Batch 1 (older snapshot) is acked after batch 2 (newer snapshot of the same conversation).

    That happens with a real producer when batch 1 also holds messages for a slower partition. The change
    store must keep the newest published hash, or the next pass publishes an identical duplicate of it.
    """
    v1, v2 = conv("c1", wrapup=None), conv("c1", wrapup="final")
    h = make(
        {
            0: [page(1, [v1], at=T0)],
            1: [page(1, [v2], at=T0 + timedelta(seconds=30), pass_no=1)],
            2: [page(1, [dict(v2)], at=T0 + timedelta(hours=2), pass_no=2)],
        }
    )

    async def scenario() -> None:
        gate = h.publisher.gates[1] = asyncio.Event()
        first = asyncio.create_task(h.run(h.key(0)))
        while not h.publisher.batches:
            await asyncio.sleep(0)
        await h.run(h.key(1))  # batch 2 acked while batch 1 still waits
        gate.set()
        await first
        await h.run(h.key(2))  # the next settlement re-scan sees v2 again

    asyncio.run(scenario())

    assert h.changes.get_many(["c1"]) == {"c1": content_hash(v2)}
    assert [m.content_hash for b in h.publisher.batches for m in b] == [content_hash(v1), content_hash(v2)]


# ------------------------------------------------------------------------------------------ acks


def test_hashes_are_written_to_the_change_store_only_after_the_batch_is_acked(
    make: Callable[..., Harness],
) -> None:
    h = make({0: [page(1, [conv("c1"), conv("c2")], at=T0)]})
    seen_while_publishing: list[dict[str, str]] = []
    h.publisher.on_publish = lambda _msgs: seen_while_publishing.append(h.changes.get_many(["c1", "c2"]))

    asyncio.run(h.run(h.key(0)))

    assert seen_while_publishing == [{}]
    assert set(h.changes.get_many(["c1", "c2"])) == {"c1", "c2"}


def test_failed_batch_records_nothing_raises_batch_not_delivered_and_keeps_the_page(
    make: Callable[..., Harness],
) -> None:
    h = make({0: [page(1, [conv("a")], at=T0), page(2, [conv("b"), conv("c")], at=T0)]})
    h.publisher.results.extend(
        [
            BatchResult(acked=1),
            BatchResult(
                acked=1, failures=(DeliveryFailure("c", "_MSG_TIMED_OUT", "Local: Message timed out"),)
            ),
        ]
    )
    key = h.key(0)

    with pytest.raises(BatchNotDelivered) as info:
        asyncio.run(h.run(key))

    assert info.value.key == key
    assert info.value.page_number == 2
    assert "Message timed out" in str(info.value)
    assert h.changes.get_many(["a", "b", "c"]) == {"a": content_hash(conv("a"))}, "b was acked, c was not"
    assert h.progress.in_progress[key] == 2, "page 1 acked, page 2 must be fetched again"
    assert h.progress.rescans == []
    assert h.sample("conversations_published_total", **{"pass": "0"}) == 1


def test_after_a_failed_batch_the_retry_publishes_the_page_again(make: Callable[..., Harness]) -> None:
    h = make({0: [page(1, [conv("a"), conv("b")], at=T0)]})
    h.publisher.results.append(BatchResult(acked=0, failures=(DeliveryFailure("a", "_TRANSPORT", "down"),)))
    key = h.key(0)

    async def scenario() -> None:
        with pytest.raises(BatchNotDelivered):
            await h.run(key)
        assert await h.run(key, start_page=h.progress.in_progress[key]) is True

    asyncio.run(scenario())

    assert [[m.key for m in b] for b in h.publisher.batches] == [["a", "b"], ["a", "b"]]
    assert set(h.changes.get_many(["a", "b"])) == {"a", "b"}


def test_message_too_large_is_a_delivery_error_naming_the_conversation(make: Callable[..., Harness]) -> None:
    h = make({0: [page(1, [conv("small"), conv("conv-huge-42")], at=T0)]})
    h.publisher.results.append(
        BatchResult(
            acked=1,
            failures=(
                DeliveryFailure("conv-huge-42", "MSG_SIZE_TOO_LARGE", "Broker: Message size too large"),
            ),
        )
    )
    key = h.key(0)

    with pytest.raises(DeliveryError) as info:
        asyncio.run(h.run(key))

    assert isinstance(info.value, FatalError)
    assert not isinstance(info.value, BatchNotDelivered)
    assert "conv-huge-42" in str(info.value)
    assert "MSG_SIZE_TOO_LARGE" in str(info.value)
    assert h.changes.get_many(["small", "conv-huge-42"]) == {}
    assert h.progress.in_progress[key] == 1


# ------------------------------------------------------------------------------------------ progress


def test_page_acked_advances_progress_and_a_stopped_pass_is_not_completed(
    make: Callable[..., Harness],
) -> None:
    h = make({0: [page(n, [conv(f"c{n}")], at=T0) for n in (1, 2, 3)]})
    key = h.key(0)
    handled: list[int] = []

    def stop_after_two() -> bool:
        handled.append(1)
        return len(handled) >= 2

    assert asyncio.run(h.run(key, stop=stop_after_two)) is False

    assert h.progress.in_progress[key] == 3
    assert h.publisher.keys == ["c1", "c2"]
    assert h.progress.rescans == []


def test_resumed_pass_starts_at_the_given_page(make: Callable[..., Harness]) -> None:
    h = make({0: [page(n, [conv(f"c{n}")], at=T0) for n in (1, 2, 3)]})
    asyncio.run(h.run(h.key(0), start_page=3))
    assert h.fetcher.calls == [(W, 0, 3)]
    assert h.publisher.keys == ["c3"]


def test_completion_calls_progress_complete(make: Callable[..., Harness]) -> None:
    h = make({0: [page(1, [conv("c1")], at=T0)]})
    key = h.key(0)

    assert asyncio.run(h.run(key)) is True

    assert key not in h.progress.in_progress
    assert h.progress.watermark == W.end
    assert [(r.pass_no, r.due_at) for r in h.progress.rescans] == [(1, W.end + DELAYS[0])]
    assert h.progress.stats["passes_completed_0"] == 1
    assert h.sample("windows_completed_total", **{"pass": "0"}) == 1


def test_open_conversations_are_followed_from_their_first_sighting_and_forgotten_once_ended(
    make: Callable[..., Harness],
) -> None:
    later = T0 + timedelta(minutes=20)
    h = make(
        {
            0: [page(1, [conv("c-open", ended=False), conv("c-done")], at=T0)],
            1: [page(1, [conv("c-open"), conv("c-other", ended=False)], at=later, pass_no=1)],
        }
    )

    asyncio.run(h.run(h.key(0)))
    assert h.progress.open.first_seen == {"c-open": T0}

    asyncio.run(h.run(h.key(1)))
    assert h.progress.open.first_seen == {"c-other": later}, "c-open ended; c-other is first seen open now"


def test_query_requests_are_counted_per_pass(make: Callable[..., Harness]) -> None:
    h = make(
        {
            0: [page(1, [conv("a")], at=T0), page(2, [conv("b")], at=T0)],
            1: [page(1, [conv("a")], at=T0, pass_no=1)],
        }
    )

    async def scenario() -> None:
        await h.run(h.key(0))
        await h.run(h.key(1))

    asyncio.run(scenario())

    assert h.sample("query_requests_total", **{"pass": "0"}) == 3, "two pages and the final empty page"
    assert h.sample("query_requests_total", **{"pass": "1"}) == 2
    assert h.progress.stats["query_requests_pass_0"] == 3
    assert h.progress.stats["query_requests_pass_1"] == 2
    assert h.sample("pages_fetched_total", **{"pass": "0"}) == 2
    assert h.progress.stats["fetched_pass_0"] == 2


# ------------------------------------------------------------------------------------ follow-up by id


def test_follow_up_publishes_the_ended_version_with_the_open_label_and_forgets_it(
    make: Callable[..., Harness],
) -> None:
    h = make({})
    h.progress.open.note_open(["c-mail", "c-gone", "c-chat"], T0)
    h.fetcher.by_id = {"c-mail": conv("c-mail", ended=True), "c-chat": conv("c-chat", ended=False)}
    published = asyncio.run(h.runner.follow_open(["c-mail", "c-gone", "c-chat"]))
    assert published == 2
    assert [m.headers["genesys.pass"] for m in h.publisher.batches[0]] == ["open", "open"]
    assert set(h.progress.open.first_seen) == {"c-chat"}, "ended and vanished ones are no longer followed"


def test_follow_up_of_an_unchanged_conversation_publishes_nothing_but_keeps_its_hash_fresh(
    make: Callable[..., Harness],
) -> None:
    h = make({})
    record = conv("c-mail", ended=False)
    h.fetcher.by_id = {"c-mail": record}
    # Published long ago (T0): without a refresh, pruning past the horizon would forget it and the next
    # follow-up would publish the identical snapshot again.
    h.changes.put_many([("c-mail", value_hash(encode_record(record)), None)], T0)
    assert asyncio.run(h.runner.follow_open(["c-mail"])) == 0
    assert h.publisher.batches == []
    assert h.changes.prune(T0 + timedelta(days=1)) == 0, "the follow-up refreshed its last-seen time"
    assert h.changes.count() == 1
