"""FileCheckpointStore: atomic saves, strict loading, the directory lock, explicit reset."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from fakes import fails_with

from connector.clock import FakeClock
from connector.errors import CheckpointError, StateDirectoryFullError
from connector.secrets import Redactor
from connector.state import checkpoint as checkpoint_module
from connector.state.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointState,
    FileCheckpointStore,
    JobCursor,
    LastError,
    PassProgress,
    RescanEntry,
    UnsettledWindow,
    config_fingerprint,
    parse_checkpoint,
    read_only_load,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def full_state() -> CheckpointState:
    """A state with every field set to something other than its default."""
    return CheckpointState(
        watermark=T0,
        planned_until=T0 + timedelta(minutes=5),
        in_progress=[
            PassProgress(window_start=T0, window_end=T0 + timedelta(minutes=5), pass_no=0, next_page=3),
            PassProgress(
                window_start=T0 - timedelta(hours=2),
                window_end=T0 - timedelta(hours=1, minutes=55),
                pass_no=2,
                next_page=1,
            ),
            PassProgress(
                window_start=T0 - timedelta(days=2),
                window_end=T0 - timedelta(days=1),
                pass_no=0,
                job=True,
                job_cursor=JobCursor(job_id="job-1", cursor="opaque", submitted_at=T0 - timedelta(minutes=3)),
            ),
        ],
        rescans=[
            RescanEntry(
                window_start=T0 - timedelta(minutes=5),
                window_end=T0,
                pass_no=1,
                due_at=T0 + timedelta(minutes=15),
            )
        ],
        open_conversations={
            "c-1": T0 - timedelta(minutes=1),
            "c-2": datetime(2026, 5, 1, 11, 0, 0, 123456, tzinfo=UTC),
        },
        unsettled=[
            UnsettledWindow(window_start=T0 - timedelta(minutes=10), window_end=T0 - timedelta(minutes=5))
        ],
        last_error=LastError(at=T0, message="429 from analytics, retried"),
        updated_at=T0 - timedelta(seconds=1),
        connector_version="1.2.3",
        config_fingerprint=config_fingerprint({"topic": "t", "filters": {"media_types": ["voice"]}}),
        stats={"published_total": 42, "unchanged_total": 7},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=30))


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[FileCheckpointStore]:
    s = FileCheckpointStore(tmp_path / "state", clock)
    s.lock()
    yield s
    s.close()


def snapshot_dir(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and p.name != ".lock"}


def test_load_returns_none_when_no_checkpoint(store: FileCheckpointStore) -> None:
    assert store.load() is None


def test_round_trip_keeps_every_field(store: FileCheckpointStore, clock: FakeClock) -> None:
    state = full_state()
    saved = store.save(state)
    loaded = store.load()
    assert loaded == saved
    assert saved == state.model_copy(update={"updated_at": clock.now()})
    # every field really differs from its default, so the round trip covered all of them
    defaults = CheckpointState()
    for name in CheckpointState.model_fields:
        if name != "format":
            assert getattr(loaded, name) != getattr(defaults, name), name


def test_file_is_versioned_json_with_utc_instants(store: FileCheckpointStore) -> None:
    store.save(full_state())
    raw = orjson.loads(store.path.read_bytes())
    assert raw["format"] == 2
    assert raw["watermark"] == "2026-05-01T12:00:00Z"
    assert raw["in_progress"][0]["next_page"] == 3


def test_offsets_are_normalised_to_utc_and_naive_datetimes_rejected() -> None:
    plus2 = timezone(timedelta(hours=2))
    state = CheckpointState(watermark=datetime(2026, 5, 1, 14, 0, tzinfo=plus2))
    assert state.watermark == T0
    assert state.watermark is not None
    assert state.watermark.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone"):
        CheckpointState(watermark=datetime(2026, 5, 1, 12, 0))


def test_empty_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="window_start must be before window_end"):
        PassProgress(window_start=T0, window_end=T0, pass_no=0)


def test_save_stamps_updated_at_from_the_clock(store: FileCheckpointStore, clock: FakeClock) -> None:
    store.save(CheckpointState())
    clock.advance(60)
    saved = store.save(CheckpointState())
    assert saved.updated_at == clock.now()
    loaded = store.load()
    assert loaded is not None
    assert loaded.updated_at == clock.now()


def test_crash_between_temp_write_and_rename_keeps_old_checkpoint(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.save(full_state())
    before = store.path.read_bytes()

    crash = fails_with(errno.EIO, "simulated crash before rename")
    monkeypatch.setattr(checkpoint_module.os, "replace", crash)
    with pytest.raises(CheckpointError, match="cannot commit checkpoint"):
        store.save(CheckpointState(watermark=T0 + timedelta(days=1)))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert store.load() == old


def test_leftover_temp_file_from_a_crash_is_ignored(store: FileCheckpointStore) -> None:
    old = store.save(full_state())
    (store.directory / "checkpoint.json.tmp").write_bytes(b'{"format": 1, "waterm')  # torn write
    assert store.load() == old
    store.save(CheckpointState())  # and the next save overwrites it
    assert store.load() == CheckpointState().model_copy(update={"updated_at": old.updated_at})


def test_disk_full_keeps_previous_checkpoint(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.save(full_state())
    before = store.path.read_bytes()

    monkeypatch.setattr(checkpoint_module.os, "write", fails_with(errno.ENOSPC))
    with pytest.raises(StateDirectoryFullError, match=r"^state directory full: ") as info:
        store.save(CheckpointState())
    monkeypatch.undo()
    assert "checkpoint save: ENOSPC" in str(info.value)
    assert info.value.path == str(store.directory)
    assert store.path.read_bytes() == before
    assert not (store.directory / "checkpoint.json.tmp").exists()
    assert store.load() == old


def test_fsync_failure_keeps_previous_checkpoint(
    store: FileCheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(full_state())
    before = store.path.read_bytes()

    monkeypatch.setattr(checkpoint_module.os, "fsync", fails_with(errno.EIO))
    with pytest.raises(CheckpointError, match="EIO"):
        store.save(CheckpointState())
    monkeypatch.undo()
    assert store.path.read_bytes() == before


def test_unwritable_temp_path_keeps_previous_checkpoint(store: FileCheckpointStore) -> None:
    store.save(full_state())
    before = store.path.read_bytes()
    (store.directory / "checkpoint.json.tmp").mkdir()  # os.open(O_WRONLY) on a directory fails, even as root
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        store.save(CheckpointState())
    assert store.path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"format": 1, "watermark": "2026-05-01T12:00:00Z", "in_pro', "not valid JSON"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b'{"watermark": null}', r"unknown format \(missing\)"),
        (b'{"format": "1"}', r"unknown format \('1'\)"),
        (b'{"format": true}', "unknown format"),
        (b'{"format": 3, "something": "new"}', r"newer connector \(format 3; this version reads format 2\)"),
        (b'{"format": 1, "watermark": "yesterday"}', "invalid fields: watermark"),
        (b'{"format": 1, "watermark": "2026-05-01T12:00:00"}', "invalid fields: watermark.*timezone"),
        (
            b'{"format": 1, "in_progress": [{"window_start": "2026-05-01T12:00:00Z",'
            b' "window_end": "2026-05-01T12:05:00Z", "pass_no": 0, "next_page": 0}]}',
            r"in_progress\.0\.next_page",
        ),
        (b'{"format": 1, "surprise": 1}', "invalid fields: surprise"),
    ],
)
def test_bad_checkpoint_stops_with_clear_error_and_file_untouched(
    store: FileCheckpointStore, content: bytes, expected: str
) -> None:
    store.path.write_bytes(content)
    before = snapshot_dir(store.directory)
    with pytest.raises(CheckpointError, match=expected) as info:
        store.load()
    message = str(info.value)
    assert str(store.path) in message
    assert "--reset-checkpoint" in message
    assert snapshot_dir(store.directory) == before  # byte-identical, nothing renamed or added


def test_unreadable_checkpoint_names_the_problem(store: FileCheckpointStore) -> None:
    store.path.mkdir()  # a directory where the file should be: unreadable as a file, even as root
    with pytest.raises(CheckpointError, match="cannot read checkpoint: EISDIR"):
        store.load()
    assert store.path.is_dir()


def test_operations_need_the_lock(tmp_path: Path, clock: FakeClock) -> None:
    s = FileCheckpointStore(tmp_path, clock)
    for call in (s.load, lambda: s.save(CheckpointState()), s.reset):
        with pytest.raises(RuntimeError, match="before lock"):
            call()


def test_lock_creates_the_directory(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "a" / "b"
    with FileCheckpointStore(directory, clock) as s:
        assert s.is_locked
        assert (directory / ".lock").read_text().strip() == str(os.getpid())
    assert not s.is_locked
    s.close()  # idempotent


def test_unusable_directory_is_a_clear_error(tmp_path: Path, clock: FakeClock) -> None:
    # chmod cannot stop root from writing, so use a path below a regular file: unusable for everyone.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    s = FileCheckpointStore(blocker / "state", clock)
    with pytest.raises(CheckpointError, match="checkpoint directory is not usable") as info:
        s.lock()
    assert info.value.path == str(blocker / "state")
    assert str(blocker / "state") in str(info.value)


_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""


def test_lock_held_by_another_process_stops_a_second_worker(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(directory / ".lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        s = FileCheckpointStore(directory, clock)
        with pytest.raises(CheckpointError, match="another worker is using") as info:
            s.lock()
        assert str(directory) in str(info.value)
        assert not s.is_locked
        holder.stdin.close()
        holder.wait(timeout=10)
    s.lock()  # the OS released the lock when the other process exited
    assert s.is_locked
    s.close()


def test_second_store_in_same_process_is_refused(store: FileCheckpointStore, clock: FakeClock) -> None:
    with pytest.raises(CheckpointError, match=rf"another worker is using .* \(pid {os.getpid()}\)"):
        FileCheckpointStore(store.directory, clock).lock()


def test_reset_moves_the_old_file_aside(store: FileCheckpointStore, clock: FakeClock) -> None:
    store.save(full_state())
    before = store.path.read_bytes()
    backup = store.reset()
    assert backup == store.directory / "checkpoint.json.bak-20260501T123000Z"
    assert backup.read_bytes() == before
    assert store.load() is None
    store.path.write_bytes(b"corrupt")  # the explicit flag is also the way out of a corrupt file
    second = store.reset()
    assert second is not None
    assert second != backup
    assert second.read_bytes() == b"corrupt"
    assert backup.read_bytes() == before
    assert store.reset() is None


def test_read_only_load_needs_no_lock_and_writes_nothing(store: FileCheckpointStore, tmp_path: Path) -> None:
    saved = store.save(full_state())
    before = snapshot_dir(store.directory)
    assert read_only_load(store.directory) == saved  # while the worker holds the lock
    assert snapshot_dir(store.directory) == before
    missing = tmp_path / "missing"
    assert read_only_load(missing) is None
    assert not missing.exists()
    store.path.write_bytes(b"{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_only_load(store.directory)


def test_config_fingerprint_is_stable_and_sensitive() -> None:
    a = config_fingerprint({"topic": "t", "filters": {"queue_ids": ["q"], "media_types": []}})
    b = config_fingerprint({"filters": {"media_types": [], "queue_ids": ["q"]}, "topic": "t"})
    c = config_fingerprint({"topic": "other", "filters": {"queue_ids": ["q"], "media_types": []}})
    assert a == b
    assert a != c
    assert len(a) == 16


def test_last_error_is_redacted_before_it_is_written(tmp_path: Path, clock: FakeClock) -> None:
    token = "registered-oauth-token-4f1e"
    redactor = Redactor([token])
    message = f"boom: token {token} with client_secret=abc123 and Authorization: Bearer xyz"
    with FileCheckpointStore(tmp_path, clock, redact=redactor.redact) as s:
        s.save(CheckpointState(last_error=LastError(at=T0, message=message)))
    raw = (tmp_path / CHECKPOINT_FILE).read_text()
    for leaked in (token, "abc123", "xyz"):
        assert leaked not in raw
    assert "boom: token *** with client_secret=***" in raw


def test_last_error_is_pattern_redacted_even_without_a_redactor(tmp_path: Path, clock: FakeClock) -> None:
    with FileCheckpointStore(tmp_path, clock) as s:
        saved = s.save(CheckpointState(last_error=LastError(at=T0, message="sasl.password=pw-123 rejected")))
    assert saved.last_error is not None
    assert saved.last_error.message == "sasl.password=*** rejected"
    assert "pw-123" not in (tmp_path / CHECKPOINT_FILE).read_text()


def test_a_checkpoint_written_before_passes_recorded_their_start_still_loads(tmp_path: Path) -> None:
    old = {
        "format": 1,
        "watermark": "2026-05-01T10:00:00Z",
        "in_progress": [
            {
                "window_start": "2026-05-01T10:00:00Z",
                "window_end": "2026-05-01T10:05:00Z",
                "pass_no": 0,
                "next_page": 3,
            }
        ],
    }
    state = parse_checkpoint(orjson.dumps(old), path=tmp_path / "checkpoint.json")
    assert state.in_progress[0].started_at is None
    assert state.in_progress[0].next_page == 3
