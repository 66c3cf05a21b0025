"""A really full state volume (a small tmpfs): every part says "state directory full", never "corrupt".

These are the failures a worker meets on a full persistent volume, produced by the kernel and SQLite
rather than imitated: the start-up check, opening the change store, a change-store write and a checkpoint
save mid-run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tmpfs_fixtures import fill_volume

from connector.clock import FakeClock
from connector.errors import StateDirectoryFullError
from connector.state.changes import ChangeStore
from connector.state.checkpoint import CheckpointState, FileCheckpointStore
from connector.state.statedir import PROBE_FILE, check_state_directory

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SIZE = 4 * 1024 * 1024
LEFT = 8 * 1024


def _assert_full_not_corrupt(error: StateDirectoryFullError, directory: Path) -> None:
    message = str(error)
    assert message.startswith(f"state directory full: {error.free_bytes} bytes free at {directory} (")
    assert message.endswith("; free space or grow the volume")
    assert error.free_bytes < SIZE // 8  # what statvfs reported when it failed: next to nothing
    assert "corrupt" not in message
    assert "move the file aside" not in message


def _seed(directory: Path, n: int = 2000) -> None:
    with ChangeStore(directory) as store:
        store.put_many(((f"c{i}", f"{i:032x}", T0) for i in range(n)), seen_at=T0)


def test_start_up_check_refuses_a_full_volume(small_tmpfs: Callable[[int], Path]) -> None:
    state = small_tmpfs(SIZE)
    check_state_directory(state, min_free_bytes=1024 * 1024)  # room: passes
    fill_volume(state, leave_bytes=LEFT)
    with pytest.raises(StateDirectoryFullError, match="min_free_bytes is 1048576") as by_reserve:
        check_state_directory(state, min_free_bytes=1024 * 1024)
    _assert_full_not_corrupt(by_reserve.value, state)
    # With no reserve configured the probe write itself hits ENOSPC.
    with pytest.raises(StateDirectoryFullError, match="start-up write probe: ENOSPC") as by_probe:
        check_state_directory(state, min_free_bytes=0)
    _assert_full_not_corrupt(by_probe.value, state)
    assert not (state / PROBE_FILE).exists()


def test_opening_the_change_store_on_a_full_volume_is_not_called_corrupt(
    small_tmpfs: Callable[[int], Path],
) -> None:
    """The fifth restart on a full disk used to say "change store is corrupt or unusable ...; move the file
    aside to rebuild it": following that advice re-publishes every conversation."""
    state = small_tmpfs(SIZE)
    _seed(state)  # closed cleanly: the -shm file is gone and must be recreated on open
    fill_volume(state, leave_bytes=0)
    with pytest.raises(StateDirectoryFullError) as info:
        ChangeStore(state)
    _assert_full_not_corrupt(info.value, state)
    assert "change store open" in str(info.value)


def test_writes_on_a_volume_that_fills_mid_run_fail_fast_with_the_same_message(
    small_tmpfs: Callable[[int], Path],
) -> None:
    state = small_tmpfs(SIZE)
    checkpoints = FileCheckpointStore(state, FakeClock(T0))
    checkpoints.lock()
    before = checkpoints.save(CheckpointState(watermark=T0))
    _seed(state)
    with ChangeStore(state) as store:
        store.probe_write()
        fill_volume(state, leave_bytes=LEFT)
        with pytest.raises(StateDirectoryFullError) as write:
            store.put_many(((f"new{i}", f"{i:032x}", T0) for i in range(20_000)), seen_at=T0)
        _assert_full_not_corrupt(write.value, state)
        assert "change store write" in str(write.value)
        assert store.count() == 2000  # all or nothing
    with pytest.raises(StateDirectoryFullError) as save:
        checkpoints.save(CheckpointState(watermark=T0, stats={"x": 1}, open_conversations=_many_open()))
    _assert_full_not_corrupt(save.value, state)
    assert checkpoints.load() == before  # the previous checkpoint is intact
    checkpoints.close()


def _many_open() -> dict[str, datetime]:
    """A checkpoint body larger than the space left (thousands of open conversations)."""
    return {f"{i:08x}-0000-4000-8000-000000000000": T0 for i in range(10_000)}
