"""The parts the main loop drives, typed as Protocols so that tests can hand it fakes (`connector.app`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from connector.state.progress import PassKey


class PassRunning(Protocol):
    """Runs one window pass, or one follow-up of open conversations (`connector.passes.PassRunner`)."""

    async def run(self, key: PassKey, *, start_page: int, should_stop: Callable[[], bool]) -> bool: ...

    async def follow_open(self, ids: Sequence[str]) -> int: ...


class Flushing(Protocol):
    """The producer, as far as shutdown is concerned: wait for outstanding acks (blocking)."""

    def flush(self, timeout_s: float) -> int: ...


class BudgetMode(Protocol):
    """The pacer's one switch: full budget share while catching up, the polite share once live."""

    def set_catching_up(self, catching_up: bool) -> None: ...


class ControlReporting(Protocol):
    """Range-final events and the watermark heartbeat (`connector.completeness.ControlReporter`)."""

    def next_in_s(self) -> float: ...

    async def report(self, *, beat: bool = False) -> int: ...


class Beating(Protocol):
    """The liveness heartbeat (`/healthz`)."""

    def beat(self) -> None: ...
