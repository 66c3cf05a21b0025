"""One window pass: pages from the fetcher -> changed snapshots -> Kafka -> acked progress.

For every page the runner keeps only the conversations whose content hash differs from the last one
published (the `ChangeStore`, plus snapshots still waiting for their acks), publishes them as one batch,
waits for Kafka to acknowledge the batch, and only then records the hashes and tells `Progress` that the
page is done. A delivery failure raises `BatchNotDelivered`: nothing of that page is recorded, so the
pass is retried from the same page and nothing is lost.

Per conversation, snapshots are produced in the order they were observed: pages are handled one at a
time per pass, produce order is call order, and a snapshot older than one already produced for the same
conversation (observed earlier by another pass that was slower to get here) is dropped as stale.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from connector.changes import ChangeStore
from connector.errors import DeliveryError, RetriableError
from connector.fetcher import Page, WindowFetcher
from connector.metrics import ConnectorMetrics
from connector.progress import PassKey, Progress
from connector.publisher import DeliveryFailure, KafkaPublisher
from connector.records import OutboundMessage, build_message, encode_record, value_hash

log = logging.getLogger(__name__)


class BatchNotDelivered(RetriableError):
    """Kafka did not acknowledge every message of a page; the pass resumes from that page later."""

    def __init__(self, key: PassKey, page_number: int, failures: list[str]) -> None:
        self.key = key
        self.page_number = page_number
        self.failures = failures
        sample = "; ".join(sorted(set(failures))[:3])
        super().__init__(f"{len(failures)} message(s) of page {page_number} not delivered: {sample}")


@dataclass
class _Pending:
    content_hash: str
    observed_at: datetime


class InFlightSnapshots:
    """Snapshots produced but not yet acknowledged, shared by all passes (dedupe and ordering).

    It also remembers, for a bounded number of recently acknowledged conversations, when the published
    snapshot was observed, so that an older observation handled later by a slower pass is recognised as
    stale instead of overwriting the newer one downstream.
    """

    def __init__(self, *, remember: int = 100_000) -> None:
        self._by_id: dict[str, _Pending] = {}
        self._acked: OrderedDict[str, datetime] = OrderedDict()
        self._remember = remember

    def get(self, cid: str) -> _Pending | None:
        return self._by_id.get(cid)

    def is_stale(self, cid: str, observed_at: datetime) -> bool:
        """True if a newer observation of `cid` is in flight or was recently acknowledged."""
        pending = self._by_id.get(cid)
        if pending is not None and pending.observed_at > observed_at:
            return True
        acked = self._acked.get(cid)
        return acked is not None and acked > observed_at

    def add(self, cid: str, digest: str, observed_at: datetime) -> None:
        self._by_id[cid] = _Pending(digest, observed_at)

    def acked(self, cid: str, observed_at: datetime) -> None:
        self._acked[cid] = observed_at
        self._acked.move_to_end(cid)
        if len(self._acked) > self._remember:
            self._acked.popitem(last=False)

    def release(self, cid: str, digest: str) -> None:
        current = self._by_id.get(cid)
        if current is not None and current.content_hash == digest:
            del self._by_id[cid]


@dataclass(frozen=True)
class _Selected:
    message: OutboundMessage
    cid: str
    digest: str
    start: datetime | None
    ended: bool


class PassRunner:
    """Runs window passes; shared by every concurrent pass of one connector."""

    def __init__(
        self,
        *,
        fetcher: WindowFetcher,
        publisher: KafkaPublisher,
        changes: ChangeStore,
        progress: Progress,
        metrics: ConnectorMetrics,
        in_flight: InFlightSnapshots,
    ) -> None:
        self._fetcher = fetcher
        self._publisher = publisher
        self._changes = changes
        self._progress = progress
        self._metrics = metrics
        self._in_flight = in_flight

    async def run(self, key: PassKey, *, start_page: int, should_stop: Callable[[], bool]) -> bool:
        """Fetch and publish the pass from `start_page`; True when complete, False when stopped early."""
        async for page in self._fetcher.fetch(
            key.window, key.pass_no, start_page=start_page, on_request=lambda: self._count_request(key)
        ):
            await self._handle_page(key, page)
            if should_stop():
                return False
        self._progress.complete(key)
        self._metrics.windows_completed.labels(key.label).inc()
        return True

    def _count_request(self, key: PassKey) -> None:
        self._metrics.query_requests.labels(key.label).inc()
        self._progress.add_stat(f"query_requests_pass_{key.pass_no}", 1)

    async def _handle_page(self, key: PassKey, page: Page) -> None:
        label = key.label
        self._metrics.pages_fetched.labels(label).inc()
        self._metrics.conversations_fetched.labels(label).inc(len(page.conversations))
        self._progress.add_stat(f"fetched_pass_{key.pass_no}", len(page.conversations))
        selected, unchanged = self._select(key, page)
        if unchanged:
            self._metrics.conversations_unchanged.inc(unchanged)
        if selected:
            await self._deliver(key, page, selected)
        open_ids = [c["conversationId"] for c in page.conversations if "conversationEnd" not in c]
        if key.pass_no == 0 and open_ids:
            self._progress.note_open(open_ids, page.received_at)
        self._progress.note_ended(s.cid for s in selected if s.ended)
        self._progress.page_acked(key, page.page_number)

    def _select(self, key: PassKey, page: Page) -> tuple[list[_Selected], int]:
        """The page's conversations whose content differs from what was last published."""
        ids = [c["conversationId"] for c in page.conversations]
        published = self._changes.get_many(ids)
        selected: list[_Selected] = []
        unchanged = 0
        for record in page.conversations:
            cid = record["conversationId"]
            value = encode_record(record)  # canonical JSON, serialised once: hashed and published as is
            digest = value_hash(value)
            if self._in_flight.is_stale(cid, page.received_at):
                unchanged += 1  # a newer observation of this conversation is already published or on its way
                continue
            pending = self._in_flight.get(cid)
            last = pending.content_hash if pending is not None else published.get(cid)
            if last == digest:
                unchanged += 1
                continue
            ended = "conversationEnd" in record
            message = build_message(
                record,
                window=key.window,
                pass_label=key.pass_no,
                observed_at=page.received_at,
                record_hash=digest,
            )
            selected.append(_Selected(message, cid, digest, _start(record), ended))
        return selected, unchanged

    async def _deliver(self, key: PassKey, page: Page, selected: list[_Selected]) -> None:
        for s in selected:
            self._in_flight.add(s.cid, s.digest, page.received_at)
        try:
            result = await self._publisher.publish([s.message for s in selected])
            if not result.ok:
                _raise_if_permanent(result.failures)
                raise BatchNotDelivered(key, page.page_number, [f.error for f in result.failures])
            # Record the hashes before releasing the in-flight entries, so no concurrent pass ever sees
            # neither and publishes the same snapshot twice.
            self._changes.put_many(((s.cid, s.digest, s.start) for s in selected), page.received_at)
            for s in selected:
                self._in_flight.acked(s.cid, page.received_at)
        finally:
            for s in selected:
                self._in_flight.release(s.cid, s.digest)
        self._metrics.conversations_published.labels(key.label).inc(len(selected))
        self._progress.add_stat("published", len(selected))


#: Delivery failures that replaying cannot fix: stop with a clear message instead of retrying forever.
_PERMANENT_CODES = {
    "MSG_SIZE_TOO_LARGE",
    "_MSG_TIMED_OUT_PERMANENT",
    "TOPIC_AUTHORIZATION_FAILED",
    "_UNKNOWN_TOPIC",
}


def _raise_if_permanent(failures: Sequence[DeliveryFailure]) -> None:
    for failure in failures:
        if failure.code in _PERMANENT_CODES:
            hint = (
                " (raise kafka.message_max_bytes and the topic's max.message.bytes)"
                if failure.code == "MSG_SIZE_TOO_LARGE"
                else ""
            )
            raise DeliveryError(
                f"Kafka refused conversation {failure.key} for good{hint}",
                kafka_error=f"{failure.code}: {failure.error}",
            )


def _start(record: dict[str, object]) -> datetime | None:
    value = record.get("conversationStart")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
