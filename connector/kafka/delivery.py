"""Delivery tracking by batch: what Kafka answered for each message, and when a whole batch is answered.

`KafkaPublisher.publish` resolves a batch's future only once every message of it has a delivery report
(acknowledged or failed); the caller advances its checkpoint only for a `BatchResult` that is `ok`.
Delivery reports arrive on the publisher's poller thread; a `BatchTracker` counts them there and resolves
its future on the event loop that is waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.errors import DeliveryError


@dataclass(frozen=True)
class DeliveryFailure:
    """One message Kafka did not acknowledge: its key and librdkafka's error."""

    key: str
    code: str
    error: str
    hint: str = ""  # what to do about it, when the publisher knows (e.g. which size limit to raise)


@dataclass(frozen=True)
class BatchResult:
    """Kafka's answer for a whole batch. `ok` means every message was acknowledged."""

    acked: int
    failures: tuple[DeliveryFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(eq=False)  # identity semantics: trackers live in a set
class BatchTracker:
    """Counts the outcomes of one batch; resolves its future (in its loop) after the last one."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[BatchResult]
    total: int
    acked: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)

    def record(self, failure: DeliveryFailure | None) -> bool:
        """Count one outcome (caller holds the lock); True when the batch is complete."""
        if failure is None:
            self.acked += 1
        else:
            self.failures.append(failure)
        return self.acked + len(self.failures) >= self.total

    def resolve(self) -> None:
        result = BatchResult(acked=self.acked, failures=tuple(self.failures))
        self._call(_set_result, result)

    def fail(self, error: DeliveryError) -> None:
        self._call(_set_exception, error)

    def _call(self, fn: Callable[[asyncio.Future[BatchResult], Any], None], arg: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(fn, self.future, arg)


def _set_result(future: asyncio.Future[BatchResult], result: BatchResult) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[BatchResult], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
