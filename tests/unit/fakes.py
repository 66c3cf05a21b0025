"""In-process stand-ins shared by the unit tests (loaded by tests/unit/conftest.py).

Only the unit tests use fakes; integration and end-to-end tests run against the real broker and the
simulator over HTTP. Each fake has the same methods, with the same signatures, as the part it stands in
for (`WindowFetcher.fetch`/`follow_open`, `KafkaPublisher.publish`/`flush`), so it fits wherever that part
is typed by what it does rather than by its class, and it records what it was asked so that tests can
assert on observable state instead of on timing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from connector.genesys.fetcher import Page, RequestTally
from connector.kafka.publisher import BatchResult
from connector.kafka.records import OutboundMessage
from connector.metrics import ConnectorMetrics
from connector.windows import Window


def sample(metrics: ConnectorMetrics, name: str, **labels: str) -> float:
    """Current value of `genesys_connector_<name>{labels}`; 0 for a series never touched."""
    value = metrics.registry.get_sample_value(f"genesys_connector_{name}", labels)
    return 0.0 if value is None else value


def offline_config(
    tmp_path: Path, port: int, *, client_secret: str = "s", genesys: str = "", kafka: str = ""
) -> Path:
    """`tmp_path/connector.yaml` with every endpoint (Genesys API and login, Kafka) at 127.0.0.1:`port`.

    `genesys` and `kafka` are YAML lines added to their sections (a `bootstrap_servers` in `kafka` replaces
    the default); the checkpoint directory is `tmp_path/state`. Used by the command tests, which check
    that nothing connects to `port`.
    """
    bootstrap = "" if "bootstrap_servers" in kafka else f"  bootstrap_servers: 127.0.0.1:{port}\n"
    path = tmp_path / "connector.yaml"
    path.write_text(
        "genesys:\n"
        f"  api_base_url: http://127.0.0.1:{port}\n"
        f"  login_base_url: http://127.0.0.1:{port}\n"
        "  client_id: c\n"
        f"  client_secret: {client_secret}\n"
        f"{genesys}"
        f"kafka:\n{bootstrap}{kafka}"
        f"checkpoint:\n  directory: {tmp_path / 'state'}\n"
    )
    return path


def fails_with(code: int, message: str | None = None) -> Callable[..., Any]:
    """A stand-in for an `os` call (write, fsync, replace, ...) that fails with errno `code`.

    Monkeypatched over the real call to make a disk full (ENOSPC, EDQUOT), read-only (EROFS) or broken
    (EIO) at one exact step; the message is the system's text for `code` unless given.
    """

    def fail(*args: object) -> Any:
        raise OSError(code, message if message is not None else os.strerror(code))

    return fail


async def eventually(predicate: Callable[[], bool], *, timeout_s: float = 10.0, what: str = "") -> None:
    """Yield to the event loop (and to threads) until `predicate()` holds; fail after `timeout_s`.

    The deadline is a hang guard, generous because the machine may be loaded; healthy tests pass the
    predicate within a few iterations.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what or predicate}")
        await asyncio.sleep(0.005)


#: Called before each page of one pass is yielded, with its number; may raise or wait (planted trouble).
PageHook = Callable[[int], Awaitable[None]]


class PassFake:
    """What the fetcher fakes share: `fetch` with `WindowFetcher.fetch`'s signature and request tally.

    A subclass says which pages a pass has (`numbered_pages`: page number and a builder called when the
    page is yielded) and may note the start and end of a pass (`pass_started` returns the pass's page hook,
    `pass_ended` runs however the pass ends). A request is counted per page and one for the final empty
    page, as WindowFetcher counts; pages before `start_page` are neither counted nor yielded.
    """

    def numbered_pages(self, window: Window, pass_no: int) -> Iterable[tuple[int, Callable[[], Page]]]:
        raise NotImplementedError

    def pass_started(self, window: Window, pass_no: int, start_page: int) -> PageHook | None:
        return None

    def pass_ended(self) -> None:
        return None

    async def fetch(
        self,
        window: Window,
        pass_no: int,
        *,
        start_page: int = 1,
        tally: RequestTally | None = None,
    ) -> AsyncIterator[Page]:
        before_page = self.pass_started(window, pass_no, start_page)
        try:
            for number, build in self.numbered_pages(window, pass_no):
                if number < start_page:
                    continue
                await asyncio.sleep(0)
                if tally is not None:
                    tally.count += 1
                if before_page is not None:
                    await before_page(number)
                yield build()
            if tally is not None:
                tally.count += 1
        finally:
            self.pass_ended()


class FakeFetcher(PassFake):
    """Yields the given pages per pass number; counts a request per page and one for the final empty page."""

    def __init__(self, pages: dict[int, list[Page]]) -> None:
        self.pages = pages
        self.calls: list[tuple[Window, int, int]] = []
        self.by_id: dict[str, dict[str, Any]] = {}

    def numbered_pages(self, window: Window, pass_no: int) -> Iterable[tuple[int, Callable[[], Page]]]:
        return [(page.page_number, lambda page=page: page) for page in self.pages.get(pass_no, [])]

    def pass_started(self, window: Window, pass_no: int, start_page: int) -> PageHook | None:
        self.calls.append((window, pass_no, start_page))
        return None

    async def follow_open(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Current versions by id (multi-get): whatever the test put in `by_id`, for the ids asked."""
        return [self.by_id[cid] for cid in ids if cid in self.by_id]


class FakePublisher:
    """Records every batch in call order; answers with queued results (default: all acked).

    `gates[n]` holds the n-th call (1-based) until the event is set; `on_publish` runs when a batch arrives.
    An ungated call still yields to the event loop once, as a real acknowledgement would, so that
    concurrent passes interleave.
    """

    def __init__(self) -> None:
        self.batches: list[list[OutboundMessage]] = []
        self.results: deque[BatchResult] = deque()
        self.gates: dict[int, asyncio.Event] = {}
        self.on_publish: Callable[[Sequence[OutboundMessage]], None] | None = None
        self.flushed = 0

    async def publish(self, messages: Sequence[OutboundMessage]) -> BatchResult:
        self.batches.append(list(messages))
        if self.on_publish is not None:
            self.on_publish(messages)
        gate = self.gates.get(len(self.batches))
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(0)
        return self.results.popleft() if self.results else BatchResult(acked=len(messages))

    @property
    def messages(self) -> list[OutboundMessage]:
        """Every message published, in publish order."""
        return [m for batch in self.batches for m in batch]

    @property
    def keys(self) -> list[str]:
        return [m.key for m in self.messages]

    def flush(self, timeout_s: float) -> int:
        self.flushed += 1
        return 0
