"""Reading a JobRunner's events as the job tests do (unit tests on fakes, integration on the simulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from connector.config import FilterSettings
from connector.genesys.jobs import JobEvent, JobPage, JobResume, JobRunner, build_job_body
from connector.windows import Window


def job_stream(runner: JobRunner, span: Window, resume: JobResume | None = None) -> AsyncIterator[JobEvent]:
    """The runner's events for one job over `span`, unfiltered (the body every job test submits)."""
    return runner.run(span, build_job_body(span, FilterSettings()), resume=resume)


async def job_events(
    runner: JobRunner,
    span: Window,
    *,
    resume: JobResume | None = None,
    on_event: Callable[[JobEvent], None] | None = None,
) -> list[JobEvent]:
    """Every event of `job_stream`, in order; `on_event` sees each as it arrives (to inject trouble)."""
    events: list[JobEvent] = []
    async for event in job_stream(runner, span, resume):
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events


def pages(events: list[JobEvent]) -> list[JobPage]:
    """The pages among `events`."""
    return [e for e in events if isinstance(e, JobPage)]
