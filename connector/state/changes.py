"""The change store: the last content hash published per conversation, so unchanged snapshots are skipped.

Every re-scan and every follow-up of an open conversation fetches records that were already published.
The connector publishes a record only if its content hash differs from the one stored here. Entries are
written only after Kafka acknowledged the messages they describe (the app enforces this), so the store
never claims something was published that was not.

Storage is SQLite (`<state dir>/changes.sqlite3`), WAL mode, `synchronous=NORMAL`:

- a crash of the process loses nothing that was committed (WAL pages are already in the OS);
- a power cut may lose the last few commits. That is acceptable by design: a lost entry only means the
  next observation of that conversation is published again (a bounded, keyed duplicate), never a gap.

The store is bounded: `prune()` drops entries last published before `now - longest re-scan delay -
margin`, past which no re-scan will see those conversations again. `last_seen` is when the hash was last
written (the ack time of the last publish). `last_seen` is indexed so a prune reads only the rows it
deletes (a full-table scan took ~50 ms at 400k rows); the app prunes on a timer, in a worker thread (see
`connector.state.pruning`), and `prune()` deletes in chunks so that a pass writing acks meanwhile waits
for one chunk at most. The index is created on open: files written before it existed gain it, and an
older connector reads a file with it unchanged (so the schema version stays 1).

Participant attributes: the details query never returns them, async jobs do. For a conversation last
published from a job, `attributes` holds its participants' attributes (`{participantId: {...}}` as JSON),
so a later query or multi-get snapshot can carry them over instead of publishing a version without them
(`connector.passes`). A job snapshot always rewrites the column (`{}` when Genesys returned none: they were
removed), a query snapshot leaves it as it is. The column is added on open to files written before it; an
older connector names its columns and ignores it (the schema version stays 1 for the same reason).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from connector.errors import CheckpointError
from connector.state.statedir import disk_full_error

CHANGES_FILE = "changes.sqlite3"
SCHEMA_VERSION = 1
_CHUNK = 500  # ids per IN (...) query; well under SQLite's bound-parameter limit
_PRUNE_CHUNK = 1_000  # rows per prune transaction: a writer waits ~5 ms at most (bench/prune.py)
_REBUILD_HINT = "move the file aside to rebuild it (that only re-publishes each conversation once)"
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    conversation_id    TEXT PRIMARY KEY,
    content_hash       TEXT NOT NULL,
    last_seen          REAL NOT NULL,
    conversation_start REAL
) WITHOUT ROWID
"""
_ATTRIBUTES_COLUMN = "ALTER TABLE changes ADD COLUMN attributes BLOB"
_SET_ATTRIBUTES = "UPDATE changes SET attributes = ? WHERE conversation_id = ?"
_SELECT_ATTRIBUTES = (
    "SELECT conversation_id, attributes FROM changes WHERE attributes IS NOT NULL AND conversation_id IN "
)
_INDEX = "CREATE INDEX IF NOT EXISTS changes_last_seen ON changes (last_seen)"
_PRUNE = """
DELETE FROM changes WHERE conversation_id IN (
    SELECT conversation_id FROM changes WHERE last_seen < ? LIMIT ?
)
"""
_UPSERT = """
INSERT INTO changes (conversation_id, content_hash, last_seen, conversation_start) VALUES (?, ?, ?, ?)
ON CONFLICT (conversation_id) DO UPDATE SET
    content_hash = excluded.content_hash,
    last_seen = excluded.last_seen,
    conversation_start = COALESCE(excluded.conversation_start, changes.conversation_start)
"""

_SELECT_HASHES = "SELECT conversation_id, content_hash FROM changes WHERE conversation_id IN "

ChangeItem = tuple[str, str, datetime | None]
"""(conversation id, content hash, conversation start or None) of one acknowledged message."""


class ChangeStore:
    """Last published content hash per conversation id, in SQLite.

    Safe to call from one thread at a time from any thread (the app may use `asyncio.to_thread`); calls
    are serialised by an internal lock. Every SQLite failure becomes a CheckpointError naming the file:
    StateDirectoryFullError for a full volume, "corrupt" (with the rebuild hint) only for a corrupt file.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / CHANGES_FILE
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CheckpointError(f"cannot open change store: {exc}", path=str(self.path)) from None
        try:
            self._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._fail("open", exc) from None
        except CheckpointError:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check integrity and the schema version, then set durability options and create the table."""
        (check,) = conn.execute("PRAGMA quick_check").fetchone()
        if check != "ok":
            raise CheckpointError(f"change store is corrupt ({check}); {_REBUILD_HINT}", path=str(self.path))
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise CheckpointError(
                f"change store was written by a newer connector (schema {version}; this version reads "
                f"{SCHEMA_VERSION})",
                path=str(self.path),
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(changes)")}
        if "attributes" not in columns:
            conn.execute(_ATTRIBUTES_COLUMN)
        conn.execute(_INDEX)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("ChangeStore used after close()")
        return self._conn

    def _fail(self, operation: str, exc: sqlite3.Error) -> CheckpointError:
        """The error to raise for a failed SQLite call: disk full, corrupt (with the rebuild hint), or other.

        A full volume must never read as corruption: moving the file aside would re-publish everything.
        """
        full = disk_full_error(exc, self.path.parent, operation=f"change store {operation}")
        if full is not None:
            return full
        if _is_corrupt(exc):
            return CheckpointError(f"change store is corrupt: {exc}; {_REBUILD_HINT}", path=str(self.path))
        return CheckpointError(f"change store {operation} failed: {exc}", path=str(self.path))

    def probe_write(self) -> None:
        """Prove SQLite can take the write lock and write a row, then roll back (start-up check).

        Catches a read-only file or mount and an unusable `-wal`/`-shm` before anything is published.
        """
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(_UPSERT, ("connector.write-probe", "", 0.0, None))
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise self._fail("write probe", exc) from None

    def get_many(self, ids: Sequence[str]) -> dict[str, str]:
        """Stored content hash for each of `ids` that has one (ids never published are absent)."""
        return self._select(_SELECT_HASHES, ids)

    def attributes_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored participant attributes (JSON `{participantId: {...}}`) of those of `ids` last
        published from a job; ids without any are absent."""
        return self._select(_SELECT_ATTRIBUTES, ids)

    def _select(self, sql_prefix: str, ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            conn = self._connection()
            try:
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = sql_prefix + f"({marks})"  # only "?" placeholders are interpolated
                    found.update(conn.execute(sql, chunk).fetchall())
            except sqlite3.Error as exc:
                raise self._fail("read", exc) from None
        return found

    def put_many(
        self, items: Iterable[ChangeItem], seen_at: datetime, *, attributes: Mapping[str, bytes] | None = None
    ) -> int:
        """Record the hashes of acknowledged messages, in one transaction; returns how many were written.

        `attributes` (conversation id -> JSON) replaces the stored participant attributes of those
        conversations (job snapshots); the others keep theirs. Call only after Kafka acknowledged every
        message in `items`. Either all are recorded or none.
        """
        seen = seen_at.timestamp()
        written = 0

        def rows() -> Iterator[tuple[str, str, float, float | None]]:
            nonlocal written
            for conversation_id, content_hash, start in items:
                written += 1
                yield conversation_id, content_hash, seen, None if start is None else start.timestamp()

        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_UPSERT, rows())
                    if attributes:
                        conn.executemany(_SET_ATTRIBUTES, ((v, k) for k, v in attributes.items()))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite already rolled back on some errors (SQLITE_FULL)
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._fail("write", exc) from None
        return written

    def prune(self, older_than: datetime) -> int:
        """Delete entries last published before `older_than`; returns how many were deleted.

        The app calls this with `now - longest re-scan delay - margin`: no later pass can observe those
        conversations again, so their hashes are no longer needed. Runs in chunks of `_PRUNE_CHUNK` rows,
        each its own transaction, releasing the lock in between (call it from a worker thread).
        """
        cutoff = older_than.timestamp()
        deleted = 0
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    rows = conn.execute(_PRUNE, (cutoff, _PRUNE_CHUNK)).rowcount
                except sqlite3.Error as exc:
                    raise self._fail("prune", exc) from None
            deleted += rows
            if rows < _PRUNE_CHUNK:
                return deleted

    def count(self) -> int:
        """Number of conversations with a stored hash."""
        with self._lock:
            conn = self._connection()
            try:
                (n,) = conn.execute("SELECT COUNT(*) FROM changes").fetchone()
            except sqlite3.Error as exc:
                raise self._fail("count", exc) from None
            return int(n)

    def close(self) -> None:
        """Close the database (idempotent). Committed data is already durable to the WAL."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> ChangeStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _is_corrupt(exc: sqlite3.Error) -> bool:
    """True only for SQLite's own corruption verdicts (SQLITE_CORRUPT, SQLITE_NOTADB and their variants)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT_CODES
