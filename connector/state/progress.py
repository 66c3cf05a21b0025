"""What is done and what is next: the in-memory truth behind the checkpoint.

`Progress` knows which window passes are in flight (and which page of each comes next), how far the
first pass has reached without gaps (the watermark), which settlement re-scans are due, and which
conversations were last seen in progress. It changes only when the app tells it that pages were
*acknowledged by Kafka*, so a `snapshot()` taken at any moment is safe to write as the checkpoint.

Passes are identified by `PassKey(window, pass_no)`: pass 0 is the first pass of a window, pass n >= 1
the n-th settlement re-scan. First passes may complete out of order when several run at once; the
watermark only moves over a contiguous run of completed windows (`planned_until` remembers how far
windows were handed out, so a restart neither skips nor repeats a completed window).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.state.checkpoint import CheckpointState, LastError, PassProgress, RescanEntry
from connector.windows import Window


@dataclass(frozen=True, order=True)
class PassKey:
    """One pass over one window."""

    window: Window
    pass_no: int

    @property
    def label(self) -> str:
        """Metric/header label: "0" for the first pass, "1".."n" for re-scans."""
        return str(self.pass_no)


class Progress:
    """Tracks acked progress and the re-scan schedule; produces checkpoint states."""

    def __init__(
        self,
        state: CheckpointState | None,
        *,
        rescan_delays: Sequence[timedelta],
        version: str,
        fingerprint: str,
    ) -> None:
        state = state or CheckpointState()
        self._delays = list(rescan_delays)
        self._version = version
        self._fingerprint = fingerprint
        self._base = state
        self.planned_until: datetime | None = state.planned_until or state.watermark
        self.in_progress: dict[PassKey, int] = {
            PassKey(Window(p.window_start, p.window_end), p.pass_no): p.next_page for p in state.in_progress
        }
        # Re-scans beyond the configured number of passes (the list was shortened or emptied since the
        # checkpoint was written) are dropped: the configuration says they are not wanted.
        self.rescans: list[RescanEntry] = sorted(
            (r for r in state.rescans if r.pass_no <= len(self._delays)),
            key=lambda r: (r.due_at, r.window_start),
        )
        self.open_conversations: dict[str, datetime] = dict(state.open_conversations)
        self.stats: dict[str, int] = dict(state.stats)

    # ----------------------------------------------------------------------------------- queries
    @property
    def watermark(self) -> datetime | None:
        """End of the contiguous range whose first pass is complete and acked."""
        firsts = [k.window.start for k in self.in_progress if k.pass_no == 0]
        if firsts:
            return min(firsts)
        return self.planned_until

    def resumable(self) -> list[tuple[PassKey, int]]:
        """Passes that were in flight when the checkpoint was written, with the page to resume at."""
        return sorted(self.in_progress.items(), key=lambda kv: (kv[0].pass_no, kv[0].window.start))

    def next_rescan_due(self) -> datetime | None:
        """When the earliest scheduled re-scan is due (None if none is scheduled)."""
        return self.rescans[0].due_at if self.rescans else None

    def oldest_due_rescan(self, now: datetime) -> datetime | None:
        """Due time of the longest-waiting re-scan not yet complete: due and waiting, or in flight.

        An in-flight re-scan was due at its window's end plus its delay (a merged window: its last part).
        None when no re-scan is due. The app compares it with `now` to tell overdue work from live work.
        """
        dues = [r.due_at for r in self.rescans if r.due_at <= now]
        dues += [
            key.window.end + self._delays[key.pass_no - 1]
            for key in self.in_progress
            if 1 <= key.pass_no <= len(self._delays)
        ]
        return min(dues, default=None)

    # ----------------------------------------------------------------------------------- changes
    def begin_first_pass(self, window: Window) -> PassKey:
        """Hand out the next first-pass window (it must start where the previous one ended)."""
        key = PassKey(window, 0)
        self.in_progress[key] = 1
        self.planned_until = window.end
        return key

    def take_due_rescans(
        self, now: datetime, *, max_length: timedelta, limit: int | None = None
    ) -> list[PassKey]:
        """Remove the re-scans due at `now` and return them as passes, merging adjacent windows.

        Contiguous windows due for the same pass number are fetched as one interval (up to `max_length`):
        one query instead of many means fewer requests and fewer boundary duplicates. At most `limit`
        merged passes are taken (the rest stay scheduled), so a backlog of due re-scans after downtime
        respects the parallelism limit.
        """
        due = [r for r in self.rescans if r.due_at <= now]
        if not due or (limit is not None and limit <= 0):
            return []
        keys: list[PassKey] = []
        taken: set[tuple[datetime, datetime, int]] = set()
        for pass_no in sorted({r.pass_no for r in due}):
            spans = sorted((r.window_start, r.window_end) for r in due if r.pass_no == pass_no)
            for start, end in _merge(spans, max_length):
                if limit is not None and len(keys) >= limit:
                    break
                key = PassKey(Window(start, end), pass_no)
                self.in_progress[key] = 1
                keys.append(key)
                taken.update((s, e, pass_no) for s, e in spans if start <= s and e <= end)
        self.rescans = [r for r in self.rescans if (r.window_start, r.window_end, r.pass_no) not in taken]
        return keys

    def page_acked(self, key: PassKey, page_number: int) -> None:
        """Every message of `page_number` (and of all pages before it) is acknowledged."""
        if key in self.in_progress:
            self.in_progress[key] = max(self.in_progress[key], page_number + 1)

    def complete(self, key: PassKey) -> None:
        """A pass fetched its last page and every message is acknowledged: schedule what follows."""
        self.in_progress.pop(key, None)
        if key.pass_no < len(self._delays):
            delay = self._delays[key.pass_no]
            nxt = key.pass_no + 1
            # A merged re-scan window stays merged for its next pass: fewer, larger queries.
            self.rescans.append(
                RescanEntry(
                    window_start=key.window.start,
                    window_end=key.window.end,
                    pass_no=nxt,
                    due_at=key.window.end + delay,
                )
            )
            self.rescans.sort(key=lambda r: (r.due_at, r.window_start))
        self.stats[f"passes_completed_{key.pass_no}"] = (
            self.stats.get(f"passes_completed_{key.pass_no}", 0) + 1
        )

    def note_open(self, ids: Iterable[str], now: datetime) -> None:
        """Remember conversations seen without conversationEnd (reported by `status`)."""
        for cid in ids:
            self.open_conversations.setdefault(cid, now)

    def note_ended(self, ids: Iterable[str]) -> None:
        """Forget conversations once a version with conversationEnd was published."""
        for cid in ids:
            self.open_conversations.pop(cid, None)

    def open_since_before(self, moment: datetime) -> list[str]:
        """Conversations first seen open before `moment` and not seen ended since, oldest first."""
        return [
            cid
            for cid, seen in sorted(self.open_conversations.items(), key=lambda kv: kv[1])
            if seen < moment
        ]

    def prune_open(self, older_than: datetime) -> None:
        """Stop tracking open conversations first seen before `older_than` (bounded state)."""
        self.open_conversations = {k: v for k, v in self.open_conversations.items() if v >= older_than}

    def add_stat(self, name: str, value: int) -> None:
        """Accumulate a counter shown by `status` (survives restarts through the checkpoint)."""
        self.stats[name] = self.stats.get(name, 0) + value

    def snapshot(self, *, last_error: tuple[datetime, str] | None = None) -> CheckpointState:
        """The checkpoint to write now: covers acknowledged work only."""
        update: dict[str, object] = {
            "watermark": self.watermark,
            "planned_until": self.planned_until,
            "in_progress": [
                PassProgress(
                    window_start=k.window.start, window_end=k.window.end, pass_no=k.pass_no, next_page=p
                )
                for k, p in self.resumable()
            ],
            "rescans": list(self.rescans),
            "open_conversations": dict(self.open_conversations),
            "connector_version": self._version,
            "config_fingerprint": self._fingerprint,
            "stats": dict(self.stats),
        }
        if last_error is not None:
            update["last_error"] = LastError(at=last_error[0], message=last_error[1])
        return self._base.model_copy(update=update)


def _merge(spans: list[tuple[datetime, datetime]], max_length: timedelta) -> list[tuple[datetime, datetime]]:
    """Merge touching/overlapping spans (sorted by start) into runs no longer than `max_length`."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] and max(end, merged[-1][1]) - merged[-1][0] <= max_length:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
