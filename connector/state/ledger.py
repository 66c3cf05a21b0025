"""The completeness ledger: per hour of conversation start, who found each conversation, and did Kafka ack it.

Why: "nothing is missing" must be something an operator can see for their own org, hour by hour, not a
claim of our test suite. For every conversation the ledger keeps the hour it started in, the *source* that
saw it first and whether Kafka acknowledged it. Sources (`SOURCES`):

- `first_pass`: the first pass of a window - the normal case;
- `rescan`: a settlement re-scan of a window found it, the first pass had not;
- `follow_up`: the follow-up by id of open conversations found it first;
- `job`: only the settling job (data lake) had it.

Anything but `first_pass` is a *late find* (`LATE_SOURCES`): a signal that the lag is too short, that
ordering was unstable, or that Genesys indexed the conversation late. Each late find is counted in
`genesys_connector_conversations_found_late_total{source}` and logged (WARNING) with its hour, by
`record_seen` itself so no caller can forget it. Per window pass the ledger also counts sightings and first
sightings (`pass_counts`), to tell which pass found what. Settlement of an hour (`mark_settled`: how,
expected, delivered, `dataAvailabilityDate`) and its report on the control topic (`mark_reported`) are
kept per hour for the range-final events (`connector.kafka.control`).
The conversations each hour's *settling reads* returned (`record_settling`) are kept as a set, so that
`settle_hour` can count expected and delivered when the last of an hour's windows is read for the last
time.

Storage (its own SQLite file beside the checkpoint, why, and pruning): `connector.state.ledger_store`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from connector.metrics import ConnectorMetrics
from connector.state.ledger_store import (
    COUNT_ACKED,
    COUNT_PASS,
    INSERT_SIGHTING,
    LEDGER_FILE,
    SELECT_KNOWN,
    SELECT_LATE,
    LedgerStore,
)
from connector.state.ledger_types import (
    FIRST_PASS,
    FOLLOW_UP,
    HOUR,
    JOB,
    LATE_SOURCES,
    RESCAN,
    SOURCES,
    HourCounts,
    HourSettlement,
    LateFind,
    Sighting,
    hour_key,
    hour_of,
    key_hour,
)

# The ledger's public names, wherever they are defined (callers import them from here).
__all__ = [
    "FIRST_PASS",
    "FOLLOW_UP",
    "HOUR",
    "JOB",
    "LATE_SOURCES",
    "LEDGER_FILE",
    "RESCAN",
    "SOURCES",
    "HourCounts",
    "HourSettlement",
    "LateFind",
    "Ledger",
    "Sighting",
    "hour_of",
]

log = logging.getLogger(__name__)

_CHUNK = 500


class Ledger(LedgerStore):
    """The completeness ledger in SQLite (see the module docstring). One thread at a time, any thread.

    `metrics` (optional) receives the late-find counter; `verify` opens the file read-only without it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        metrics: ConnectorMetrics | None = None,
        read_only: bool = False,
    ) -> None:
        self._metrics = metrics
        super().__init__(directory, read_only=read_only)

    @classmethod
    def open(cls, directory: Path, *, read_only: bool = False) -> Ledger:
        """The ledger of a state directory; read-only for `verify` (no file is created)."""
        return cls(directory, read_only=read_only)

    # ----------------------------------------------------------------------------------- writes
    def record_seen(
        self,
        conversation_id: str,
        start: datetime,
        source: str,
        *,
        at: datetime,
        window: str | None = None,
        pass_label: str | None = None,
    ) -> bool:
        """Note one sighting; True if it is a late find (see `record_seen_many`)."""
        late = self.record_seen_many([Sighting(conversation_id, start, source, window, pass_label)], at=at)
        return bool(late)

    def record_seen_many(self, sightings: Iterable[Sighting], *, at: datetime) -> list[LateFind]:
        """Note sightings (a page, a follow-up batch, a job's results) in one transaction.

        The first sighting of a conversation fixes its source; later ones only add to per-pass counts.
        Returns the late finds among them (first sightings by a source other than the first pass), each
        already counted in the metric and logged with its hour.
        """
        batch = list(sightings)
        for s in batch:
            if s.source not in SOURCES:
                raise ValueError(f"unknown ledger source {s.source!r} (one of {', '.join(SOURCES)})")
        if not batch:
            return []
        known = self._known([s.conversation_id for s in batch])
        seen_at = at.timestamp()
        fresh: dict[str, Sighting] = {}
        for s in batch:
            if s.conversation_id not in known and s.conversation_id not in fresh:
                fresh[s.conversation_id] = s
        pass_rows: dict[tuple[str, str, int], list[int]] = {}
        for s in batch:
            if s.window is None or s.pass_label is None:
                continue
            counts = pass_rows.setdefault((s.window, s.pass_label, hour_key(s.start)), [0, 0])
            counts[0] += 1
            counts[1] += 1 if fresh.get(s.conversation_id) is s else 0
        self._write(
            "write",
            [
                (
                    INSERT_SIGHTING,
                    [
                        (s.conversation_id, hour_key(s.start), s.source, s.window, seen_at)
                        for s in fresh.values()
                    ],
                ),
                (COUNT_PASS, [(w, p, h, c[0], c[1]) for (w, p, h), c in pass_rows.items()]),
            ],
        )
        late = [
            LateFind(s.conversation_id, hour_of(s.start), s.source, at)
            for s in fresh.values()
            if s.source != FIRST_PASS
        ]
        for find in late:
            self._report_late(find)
        return late

    def _report_late(self, find: LateFind) -> None:
        if self._metrics is not None:
            self._metrics.conversations_found_late.labels(find.source).inc()
        log.warning(
            "conversation found late: the first pass of its window did not see it",
            extra={
                "conversation_id": find.conversation_id,
                "hour": find.hour.isoformat(),
                "source": find.source,
            },
        )

    def _known(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                SELECT_KNOWN + f"({marks})",
                tuple(chunk),
            )
            found.update(str(r[0]) for r in rows)
        return found

    def record_acked(
        self, conversations: Iterable[tuple[str, datetime]], *, at: datetime, source: str = FIRST_PASS
    ) -> int:
        """Note conversations whose message Kafka acknowledged; call only after the acks.

        `conversations` are (id, conversationStart). One never recorded as seen is recorded now, with
        `source` (a late find if that is not the first pass). Returns how many were newly acknowledged.
        """
        items = list(conversations)
        if not items:
            return 0
        known = self._known([cid for cid, _ in items])
        unseen = [Sighting(cid, start, source) for cid, start in items if cid not in known]
        if unseen:
            self.record_seen_many(unseen, at=at)
        before = self._acked_count([cid for cid, _ in items])
        self._write(
            "write",
            [
                (
                    "UPDATE sightings SET acked_at = ? WHERE conversation_id = ? AND acked_at IS NULL",
                    [(at.timestamp(), cid) for cid, _ in items],
                )
            ],
        )
        return self._acked_count([cid for cid, _ in items]) - before

    def _acked_count(self, ids: list[str]) -> int:
        total = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            ((n,),) = self._read(
                COUNT_ACKED + f"({marks})",
                tuple(chunk),
            )
            total += int(n)
        return total

    def mark_settled(
        self,
        hour: datetime,
        *,
        settled_by: str,
        expected: int,
        delivered: int,
        at: datetime,
        data_availability_date: str | None = None,
    ) -> HourSettlement:
        """Record that `hour` is final (`settled_by`: "job" or "rescan"); counts the metrics."""
        key = hour_key(hour)
        self._write(
            "write",
            [
                (
                    """
                    INSERT INTO hours (hour, settled_by, settled_at, expected, delivered,
                                       data_availability_date, reported_at)
                    VALUES (?, ?, ?, ?, ?, ?, NULL)
                    ON CONFLICT (hour) DO UPDATE SET settled_by = excluded.settled_by,
                        settled_at = excluded.settled_at, expected = excluded.expected,
                        delivered = excluded.delivered,
                        data_availability_date = excluded.data_availability_date, reported_at = NULL
                    """,
                    [(key, settled_by, at.timestamp(), expected, delivered, data_availability_date)],
                )
            ],
        )
        if self._metrics is not None:
            self._metrics.ranges_settled.labels(settled_by).inc()
            if delivered < expected:
                self._metrics.ranges_mismatch.inc()
            self._metrics.ranges_missing_conversations.set(self.missing_in_settled())
        return HourSettlement(
            key_hour(key), settled_by, at, expected, delivered, data_availability_date, None
        )

    def record_settling(self, conversations: Iterable[tuple[str, datetime]]) -> None:
        """Note conversations a *settling read* returned (the final re-scan, or the settling job).

        An hour's `expected` count is the distinct conversations of that hour its settling reads returned
        (`settle_hour`); kept here, not in memory, because an hour is read by several windows' final
        re-scans, at different times, possibly across restarts.
        """
        rows = [(cid, hour_key(start)) for cid, start in conversations]
        if rows:
            self._write(
                "write",
                [("INSERT INTO settling (conversation_id, hour) VALUES (?, ?) ON CONFLICT DO NOTHING", rows)],
            )

    def settle_hour(
        self, hour: datetime, *, settled_by: str, at: datetime, data_availability_date: str | None = None
    ) -> HourSettlement:
        """Declare `hour` final from its settling reads: expected = the distinct conversations they returned,
        delivered = those of them Kafka acknowledged (so an extra conversation never hides a missing one)."""
        key = hour_key(hour)
        ((expected, delivered),) = self._read(
            "SELECT COUNT(*), COUNT(s.acked_at) FROM settling AS r "
            "LEFT JOIN sightings AS s ON s.conversation_id = r.conversation_id WHERE r.hour = ?",
            (key,),
        )
        return self.mark_settled(
            key_hour(key),
            settled_by=settled_by,
            expected=int(expected),
            delivered=int(delivered),
            at=at,
            data_availability_date=data_availability_date,
        )

    def missing_ids(self, hour: datetime) -> list[str]:
        """Conversations the settling reads of `hour` returned that Kafka has not acknowledged."""
        rows = self._read(
            "SELECT r.conversation_id FROM settling AS r LEFT JOIN sightings AS s "
            "ON s.conversation_id = r.conversation_id WHERE r.hour = ? AND s.acked_at IS NULL "
            "ORDER BY r.conversation_id",
            (hour_key(hour),),
        )
        return [str(r[0]) for r in rows]

    def mark_reported(self, hour: datetime, *, at: datetime) -> None:
        """The hour's range-final event was acknowledged by Kafka (it may now be pruned)."""
        self._write(
            "write", [("UPDATE hours SET reported_at = ? WHERE hour = ?", [(at.timestamp(), hour_key(hour))])]
        )

    # ----------------------------------------------------------------------------------- reads
    def hour_counts(self, hour: datetime) -> HourCounts:
        """Counts of the hour `hour` falls in (zeros when the ledger knows nothing of it)."""
        key = hour_key(hour)
        return self._hour_rows(key, key + 3600).get(key, HourCounts(key_hour(key)))

    def hours(self, start: datetime, end: datetime) -> list[HourCounts]:
        """Counts of every hour in `[hour_of(start), end)` the ledger holds conversations for, in order."""
        rows = self._hour_rows(hour_key(start), int(end.timestamp()))
        return [rows[k] for k in sorted(rows)]

    def _hour_rows(self, first: int, end: int) -> dict[int, HourCounts]:
        rows = self._read(
            "SELECT hour, source, COUNT(*), COUNT(acked_at) FROM sightings WHERE hour >= ? AND hour < ? "
            "GROUP BY hour, source",
            (first, end),
        )
        sources: dict[int, dict[str, int]] = {}
        acked: dict[int, int] = {}
        for hour, source, count, n_acked in rows:
            key = int(hour)
            sources.setdefault(key, {})[str(source)] = int(count)
            acked[key] = acked.get(key, 0) + int(n_acked)
        return {k: HourCounts(key_hour(k), sources[k], acked[k]) for k in sources}

    def found_late(self, start: datetime, end: datetime) -> list[LateFind]:
        """Conversations of the hours in `[hour_of(start), end)` first found late."""
        marks = ",".join("?" * len(LATE_SOURCES))
        rows = self._read(
            SELECT_LATE + f"({marks}) ORDER BY hour, conversation_id",
            (hour_key(start), int(end.timestamp()), *LATE_SOURCES),
        )
        return [
            LateFind(str(c), key_hour(int(h)), str(s), datetime.fromtimestamp(float(t), UTC))
            for c, h, s, t in rows
        ]

    def conversations(
        self, start: datetime, end: datetime, *, acked_only: bool = False
    ) -> dict[str, datetime]:
        """Ids (with their hour) of conversations that started in hours of `[hour_of(start), end)`."""
        sql = "SELECT conversation_id, hour FROM sightings WHERE hour >= ? AND hour < ?"
        if acked_only:
            sql += " AND acked_at IS NOT NULL"
        rows = self._read(sql, (hour_key(start), int(end.timestamp())))
        return {str(c): key_hour(int(h)) for c, h in rows}

    def pass_counts(self, window: str) -> dict[str, dict[datetime, tuple[int, int]]]:
        """Per pass of `window` (its interval): hour -> (sightings, first sightings)."""
        rows = self._read("SELECT pass, hour, seen, first FROM passes WHERE window = ?", (window,))
        out: dict[str, dict[datetime, tuple[int, int]]] = {}
        for pass_label, hour, seen, first in rows:
            out.setdefault(str(pass_label), {})[key_hour(int(hour))] = (int(seen), int(first))
        return out

    def settlement(self, hour: datetime) -> HourSettlement | None:
        rows = self._read(
            "SELECT hour, settled_by, settled_at, expected, delivered, data_availability_date, reported_at "
            "FROM hours WHERE hour = ? AND settled_by IS NOT NULL",
            (hour_key(hour),),
        )
        if not rows:
            return None
        h, by, at, expected, delivered, dad, reported = rows[0]
        return HourSettlement(
            key_hour(int(h)),
            str(by),
            datetime.fromtimestamp(float(at), UTC),
            int(expected),
            int(delivered),
            None if dad is None else str(dad),
            None if reported is None else datetime.fromtimestamp(float(reported), UTC),
        )

    def unreported_settlements(self) -> Iterator[HourSettlement]:
        """Settled hours whose range-final event is not acknowledged yet, oldest first."""
        rows = self._read(
            "SELECT hour FROM hours WHERE settled_by IS NOT NULL AND reported_at IS NULL ORDER BY hour"
        )
        for (hour,) in rows:
            found = self.settlement(key_hour(int(hour)))
            if found is not None:
                yield found

    def missing_in_settled(self) -> int:
        """Conversations missing from Kafka over the settled hours held (expected - delivered, >= 0)."""
        ((n,),) = self._read(
            "SELECT COALESCE(SUM(MAX(expected - delivered, 0)), 0) FROM hours WHERE settled_by IS NOT NULL"
        )
        return int(n)

    def count(self) -> int:
        ((n,),) = self._read("SELECT COUNT(*) FROM sightings")
        return int(n)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
