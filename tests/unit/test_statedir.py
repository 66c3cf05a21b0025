"""statedir: the start-up room-to-write check, and mapping a full volume onto StateDirectoryFullError."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from fakes import fails_with

from connector.errors import CheckpointError, StateDirectoryFullError
from connector.state import statedir
from connector.state.statedir import PROBE_FILE, check_state_directory, disk_full_error


def _sqlite_error(message: str, code: int, name: str) -> sqlite3.OperationalError:
    """An sqlite3 error as the module raises it (it sets these two attributes itself)."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    exc.sqlite_errorname = name
    return exc


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_and_over_quota_are_state_directory_full(tmp_path: Path, code: int) -> None:
    error = disk_full_error(OSError(code, os.strerror(code)), tmp_path, operation="checkpoint save")
    assert isinstance(error, StateDirectoryFullError)
    assert isinstance(error, CheckpointError)  # still stops the worker like every state-directory problem
    assert error.path == str(tmp_path)
    assert error.free_bytes > 0  # what statvfs reports for tmp_path (plenty: EDQUOT is a quota)
    assert str(error) == (
        f"state directory full: {error.free_bytes} bytes free at {tmp_path} "
        f"(checkpoint save: {errno.errorcode[code]}); free space or grow the volume"
    )
    assert "\n" not in str(error)


def test_a_real_sqlite_full_is_state_directory_full(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (v BLOB)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(sqlite3.Error) as info:
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
    conn.close()
    error = disk_full_error(info.value, tmp_path, operation="change store write")
    assert error is not None
    assert "change store write: SQLITE_FULL" in str(error)


def test_an_sqlite_io_error_is_disk_full_only_when_almost_nothing_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full tmpfs SQLite cannot size its -shm file and says "disk I/O error" (SQLITE_IOERR_SHMSIZE)."""
    shm = _sqlite_error("disk I/O error", 4874, "SQLITE_IOERR_SHMSIZE")
    monkeypatch.setattr(statedir, "free_bytes", lambda _: 4096)
    error = disk_full_error(shm, tmp_path, operation="change store open")
    assert error is not None
    assert error.free_bytes == 4096
    assert "SQLITE_IOERR_SHMSIZE" in str(error)
    monkeypatch.setattr(statedir, "free_bytes", lambda _: 10 * 1024**3)
    assert disk_full_error(shm, tmp_path, operation="change store open") is None  # a failing device


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EACCES, "Permission denied"),
        OSError(errno.EROFS, "Read-only file system"),
        _sqlite_error("database disk image is malformed", sqlite3.SQLITE_CORRUPT, "SQLITE_CORRUPT"),
        _sqlite_error("file is not a database", sqlite3.SQLITE_NOTADB, "SQLITE_NOTADB"),
        ValueError("not a storage error"),
    ],
)
def test_other_failures_are_not_disk_full(tmp_path: Path, exc: BaseException) -> None:
    assert disk_full_error(exc, tmp_path, operation="x") is None


def test_a_writable_directory_with_room_passes_and_keeps_no_probe(tmp_path: Path) -> None:
    check_state_directory(tmp_path, min_free_bytes=1)
    assert list(tmp_path.iterdir()) == []


def test_less_free_space_than_the_reserve_stops_before_anything_is_written(tmp_path: Path) -> None:
    reserve = statedir.free_bytes(tmp_path) + 1024**4  # a terabyte more than there is
    with pytest.raises(StateDirectoryFullError) as info:
        check_state_directory(tmp_path, min_free_bytes=reserve)
    assert f"checkpoint.min_free_bytes is {reserve}" in str(info.value)
    assert str(info.value).startswith("state directory full: ")
    assert list(tmp_path.iterdir()) == []


def test_a_probe_write_hitting_enospc_is_disk_full_and_removes_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quotas and reserved blocks are invisible to statvfs: the probe write is what finds them."""

    monkeypatch.setattr(statedir.os, "write", fails_with(errno.EDQUOT))
    with pytest.raises(StateDirectoryFullError, match="start-up write probe: EDQUOT"):
        check_state_directory(tmp_path, min_free_bytes=0)
    monkeypatch.undo()
    assert not (tmp_path / PROBE_FILE).exists()


def test_a_probe_write_failing_otherwise_is_a_plain_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statedir.os, "write", fails_with(errno.EROFS))
    with pytest.raises(CheckpointError, match="checkpoint directory is not writable: Read-only") as info:
        check_state_directory(tmp_path, min_free_bytes=0)
    monkeypatch.undo()
    assert not isinstance(info.value, StateDirectoryFullError)
    assert info.value.path == str(tmp_path)


def test_a_missing_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not usable"):
        check_state_directory(tmp_path / "gone", min_free_bytes=0)
