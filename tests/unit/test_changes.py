"""ChangeStore: persistent last-published hash per conversation, bounded by prune()."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.errors import CheckpointError, StateDirectoryFullError
from connector.state.changes import CHANGES_FILE, ChangeItem, ChangeStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChangeStore]:
    s = ChangeStore(tmp_path)
    yield s
    s.close()


def items(n: int, *, prefix: str = "c", hash_prefix: str = "h") -> list[ChangeItem]:
    return [(f"{prefix}{i}", f"{hash_prefix}{i:032x}", T0 - timedelta(minutes=i % 60)) for i in range(n)]


def test_put_then_get_returns_only_known_ids(store: ChangeStore) -> None:
    assert store.put_many([("a", "h1", T0), ("b", "h2", None)], seen_at=T0) == 2
    assert store.get_many(["a", "b", "unknown"]) == {"a": "h1", "b": "h2"}
    assert store.get_many([]) == {}
    assert store.count() == 2


def test_put_replaces_hash_and_keeps_known_start(store: ChangeStore, tmp_path: Path) -> None:
    store.put_many([("a", "h1", T0)], seen_at=T0)
    store.put_many([("a", "h2", None)], seen_at=T0 + timedelta(hours=1))
    assert store.get_many(["a"]) == {"a": "h2"}
    assert store.count() == 1
    with sqlite3.connect(tmp_path / CHANGES_FILE) as raw:
        row = raw.execute("SELECT last_seen, conversation_start FROM changes").fetchone()
    raw.close()
    assert row == ((T0 + timedelta(hours=1)).timestamp(), T0.timestamp())


def test_get_many_handles_more_ids_than_one_query_takes(store: ChangeStore) -> None:
    store.put_many(items(1234), seen_at=T0)
    ids = [f"c{i}" for i in range(0, 2000, 1)]
    found = store.get_many(ids)
    assert len(found) == 1234
    assert found["c1233"] == f"h{1233:032x}"
    assert "c1234" not in found


def test_entries_survive_reopening(tmp_path: Path) -> None:
    with ChangeStore(tmp_path) as first:
        first.put_many(items(10), seen_at=T0)
    with ChangeStore(tmp_path) as second:
        assert second.count() == 10
        assert second.get_many(["c3"]) == {"c3": f"h{3:032x}"}


def test_uses_wal_journal(store: ChangeStore, tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / CHANGES_FILE)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_prune_deletes_only_entries_seen_before_the_bound(store: ChangeStore) -> None:
    store.put_many(items(5, prefix="old"), seen_at=T0 - timedelta(days=4))
    store.put_many(items(3, prefix="new"), seen_at=T0)
    assert store.prune(T0 - timedelta(days=3)) == 5
    assert store.count() == 3
    assert store.get_many(["old1", "new1"]) == {"new1": f"h{1:032x}"}
    assert store.prune(T0 - timedelta(days=3)) == 0


def test_put_many_is_all_or_nothing(store: ChangeStore) -> None:
    store.put_many([("kept", "h0", None)], seen_at=T0)

    def broken() -> Iterator[ChangeItem]:
        yield ("a", "h1", None)
        yield ("b", "h2", None)
        raise ValueError("upstream bug halfway through the batch")

    with pytest.raises(ValueError, match="halfway"):
        store.put_many(broken(), seen_at=T0)
    assert store.count() == 1
    assert store.get_many(["a", "b", "kept"]) == {"kept": "h0"}


def test_disk_full_is_a_state_directory_full_error_and_keeps_earlier_entries(
    store: ChangeStore, tmp_path: Path
) -> None:
    store.put_many(items(10), seen_at=T0)
    assert store._conn is not None
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count={pages + 2}")  # the database cannot grow: SQLITE_FULL
    with pytest.raises(StateDirectoryFullError, match=r"^state directory full: ") as info:
        store.put_many(items(20_000, prefix="big"), seen_at=T0)
    assert info.value.path == str(tmp_path)
    assert "change store write: SQLITE_FULL" in str(info.value)
    assert "corrupt" not in str(info.value)
    assert store.count() == 10


def test_disk_full_while_opening_is_not_called_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full volume used to read "change store is corrupt or unusable ... move the file aside", advice
    that re-publishes every conversation. It must say the disk is full, and nothing about rebuilding."""
    with ChangeStore(tmp_path) as s:
        s.put_many(items(3), seen_at=T0)

    def full_disk(self: ChangeStore, conn: sqlite3.Connection) -> None:
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # what the sqlite3 module sets for a real SQLITE_FULL
        exc.sqlite_errorname = "SQLITE_FULL"
        raise exc

    monkeypatch.setattr(ChangeStore, "_prepare", full_disk)
    with pytest.raises(StateDirectoryFullError) as info:
        ChangeStore(tmp_path)
    message = str(info.value)
    assert message.startswith(f"state directory full: {info.value.free_bytes} bytes free at {tmp_path} ")
    assert message.endswith("free space or grow the volume")
    assert "corrupt" not in message
    assert "move the file aside" not in message


def test_open_failure_that_is_not_corruption_has_no_rebuild_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(self: ChangeStore, conn: sqlite3.Connection) -> None:
        exc = sqlite3.OperationalError("database is locked")
        exc.sqlite_errorcode = 5  # SQLITE_BUSY
        raise exc

    monkeypatch.setattr(ChangeStore, "_prepare", busy)
    with pytest.raises(CheckpointError, match="change store open failed: database is locked") as info:
        ChangeStore(tmp_path)
    assert not isinstance(info.value, StateDirectoryFullError)
    assert "move the file aside" not in str(info.value)


def test_write_probe_takes_the_write_lock_and_leaves_nothing_behind(store: ChangeStore) -> None:
    store.put_many(items(3), seen_at=T0)
    store.probe_write()
    assert store.count() == 3
    assert store._conn is not None
    assert not store._conn.in_transaction


def test_garbage_file_is_a_clear_error_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / CHANGES_FILE
    path.write_bytes(b"this is not sqlite" * 100)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="change store is corrupt") as info:
        ChangeStore(tmp_path)
    assert str(path) in str(info.value)
    assert "move the file aside" in str(info.value)
    assert path.read_bytes() == before


def test_damaged_database_is_detected_on_open(tmp_path: Path) -> None:
    with ChangeStore(tmp_path) as s:
        s.put_many(items(5000), seen_at=T0)
    path = tmp_path / CHANGES_FILE
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for offset in range(2 * page_size, len(data), 3 * page_size):  # scribble over b-tree pages
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="change store is corrupt"):
        ChangeStore(tmp_path)


def altered_store(tmp_path: Path, sql: str, *, rows: int) -> None:
    """A change store with `rows` entries, then `sql` run on its file behind its back (another version)."""
    with ChangeStore(tmp_path) as s:
        s.put_many(items(rows), seen_at=T0)
    raw = sqlite3.connect(tmp_path / CHANGES_FILE)
    raw.execute(sql)
    raw.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    altered_store(tmp_path, "PRAGMA user_version=2", rows=1)
    with pytest.raises(CheckpointError, match=r"newer connector \(schema 2"):
        ChangeStore(tmp_path)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot open change store") as info:
        ChangeStore(tmp_path / "does-not-exist")
    assert str(tmp_path / "does-not-exist" / CHANGES_FILE) in str(info.value)


def test_close_is_idempotent_and_use_after_close_is_refused(tmp_path: Path) -> None:
    s = ChangeStore(tmp_path)
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="after close"):
        s.count()


def test_hundred_thousand_entries_sanity(store: ChangeStore) -> None:
    """Not a timing assert: makes sure the batch path copes with the expected volume at all."""
    n = 100_000
    store.put_many(((f"conv-{i:06d}", f"{i:032x}", T0) for i in range(n)), seen_at=T0)
    assert store.count() == n
    hits = 0
    for start in range(0, 5000, 100):  # how the app asks: one page of 100 ids at a time
        hits += len(store.get_many([f"conv-{i:06d}" for i in range(start * 19, start * 19 + 100)]))
    assert hits == 5000
    store.put_many(((f"conv-{i:06d}", "changed", T0) for i in range(0, n, 2)), seen_at=T0 + timedelta(days=4))
    assert store.prune(T0 + timedelta(days=1)) == n // 2
    assert store.count() == n // 2
    assert store.get_many(["conv-000000", "conv-000001"]) == {"conv-000000": "changed"}


def test_prune_finds_its_rows_through_the_last_seen_index(store: ChangeStore, tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / CHANGES_FILE)
    try:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT conversation_id FROM changes WHERE last_seen < ? LIMIT 10", (0.0,)
        ).fetchall()
    finally:
        raw.close()
    assert any("changes_last_seen" in str(row[-1]) for row in plan), plan


def test_a_store_written_before_the_index_gains_it_on_open(tmp_path: Path) -> None:
    altered_store(tmp_path, "DROP INDEX changes_last_seen", rows=3)
    with ChangeStore(tmp_path) as s:
        assert s.prune(T0 + timedelta(seconds=1)) == 3
    raw = sqlite3.connect(tmp_path / CHANGES_FILE)
    try:
        names = {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        raw.close()
    assert "changes_last_seen" in names
