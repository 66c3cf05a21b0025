"""The completeness ledger's SQLite storage: file, schema, statements, connection, transactions and pruning.

Storage: its own SQLite file beside the checkpoint (`<state dir>/ledger.sqlite3`), WAL, `synchronous=NORMAL`,
like the change store and for the same reasons - a busy org sees ~10k conversations an hour over a
follow-up horizon of days, so a JSON file rewritten atomically on every page (checkpoint.py's way) would be
megabytes per write, while SQLite updates rows in place and answers "per hour" with an index. Not a table
in `changes.sqlite3`: the two have different lifetimes and recovery rules (moving the change store aside
re-publishes everything; moving the ledger aside only loses counts), separate schema versions, and
`verify` opens the ledger read-only (`Ledger.open(..., read_only=True)`) while the worker writes it, which
WAL allows. A power cut may lose the last commits: a lost sighting only makes that conversation look like a
late find when it is seen again, never hides a missing one.

Bounded: `prune(settled_before, all_before)` drops hours that are settled and reported and older than the
first bound, and every hour older than the second (the follow-up horizon), with their per-pass counts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.errors import CheckpointError
from connector.state.ledger_types import hour_key
from connector.state.statedir import disk_full_error

LEDGER_FILE = "ledger.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS sightings (
        conversation_id TEXT PRIMARY KEY,
        hour            INTEGER NOT NULL,
        source          TEXT NOT NULL,
        window          TEXT,
        seen_at         REAL NOT NULL,
        acked_at        REAL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS sightings_hour ON sightings (hour)",
    """
    CREATE TABLE IF NOT EXISTS passes (
        window   TEXT NOT NULL,
        pass     TEXT NOT NULL,
        hour     INTEGER NOT NULL,
        seen     INTEGER NOT NULL DEFAULT 0,
        first    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (window, pass, hour)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS settling (
        conversation_id TEXT PRIMARY KEY,
        hour            INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS settling_hour ON settling (hour)",
    """
    CREATE TABLE IF NOT EXISTS hours (
        hour                   INTEGER PRIMARY KEY,
        settled_by             TEXT,
        settled_at             REAL,
        expected               INTEGER,
        delivered              INTEGER,
        data_availability_date TEXT,
        reported_at            REAL
    )
    """,
)
INSERT_SIGHTING = """
INSERT INTO sightings (conversation_id, hour, source, window, seen_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (conversation_id) DO NOTHING
"""
COUNT_PASS = (  # an UPSERT statement (not a password)
    """
INSERT INTO passes (window, pass, hour, seen, first) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (window, pass, hour) DO UPDATE SET seen = seen + excluded.seen, first = first + excluded.first
"""  # noqa: S105
)

# Statements completed with "(?,?,...)" placeholders only (never values):
SELECT_KNOWN = "SELECT conversation_id FROM sightings WHERE conversation_id IN "
COUNT_ACKED = "SELECT COUNT(*) FROM sightings WHERE acked_at IS NOT NULL AND conversation_id IN "
SELECT_LATE = (
    "SELECT conversation_id, hour, source, seen_at FROM sightings WHERE hour >= ? AND hour < ? AND source IN "
)
DELETE_SIGHTINGS = """
DELETE FROM sightings WHERE hour < ?
   OR hour IN (SELECT hour FROM hours WHERE hour < ? AND reported_at IS NOT NULL)
"""
DELETE_SETTLING = """
DELETE FROM settling WHERE hour < ?
   OR hour IN (SELECT hour FROM hours WHERE hour < ? AND reported_at IS NOT NULL)
"""
DELETE_PASSES = """
DELETE FROM passes WHERE hour < ?
   OR hour IN (SELECT hour FROM hours WHERE hour < ? AND reported_at IS NOT NULL)
"""


class LedgerStore:
    """The ledger's SQLite connection (one thread at a time, any thread); `Ledger` is the API on top."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        self.path = Path(directory) / LEDGER_FILE
        self._read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            if self._read_only:
                if not self.path.exists():
                    raise CheckpointError("no completeness ledger here yet", path=str(self.path))
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CheckpointError(f"cannot open completeness ledger: {exc}", path=str(self.path)) from None
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise CheckpointError(
                    f"completeness ledger was written by a newer connector (schema {version}; this "
                    f"version reads {SCHEMA_VERSION})",
                    path=str(self.path),
                )
            if not self._read_only:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._fail("open", exc) from None
        except CheckpointError:
            conn.close()
            raise
        return conn

    def _fail(self, operation: str, exc: sqlite3.Error) -> CheckpointError:
        full = disk_full_error(exc, self.path.parent, operation=f"completeness ledger {operation}")
        if full is not None:
            return full
        return CheckpointError(
            f"completeness ledger {operation} failed: {exc} (moving the file aside only loses counts)",
            path=str(self.path),
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("Ledger used after close()")
        return self._conn

    def _write(self, operation: str, work: Iterable[tuple[str, Iterable[tuple[object, ...]]]]) -> None:
        """Run `executemany` statements in one transaction."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, rows in work:
                        conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail(operation, exc) from None

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return list(self._connection().execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise self._fail("read", exc) from None

    def prune(self, *, settled_before: datetime, all_before: datetime) -> int:
        """Drop settled-and-reported hours before `settled_before` and every hour before `all_before`.

        Returns the number of conversations dropped. `all_before` is the follow-up horizon: nothing
        sees those hours again, so their counts can no longer change.
        """
        settled_key, all_key = hour_key(settled_before), hour_key(all_before)
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    cur = conn.execute(
                        DELETE_SIGHTINGS,
                        (all_key, settled_key),
                    )
                    dropped = cur.rowcount
                    conn.execute(
                        DELETE_PASSES,
                        (all_key, settled_key),
                    )
                    conn.execute(DELETE_SETTLING, (all_key, settled_key))
                    conn.execute(
                        "DELETE FROM hours WHERE hour < ? OR (hour < ? AND reported_at IS NOT NULL)",
                        (all_key, settled_key),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail("prune", exc) from None
        return dropped

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
