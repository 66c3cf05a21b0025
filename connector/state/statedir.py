"""The state directory's room to write: a start-up check, and telling a full disk apart from corruption.

Why this exists: a worker that starts on a full volume used to resume its in-flight passes, fetch and
publish their pages, and only then fail to record them. Every restart re-published the same pages (three
restarts on a full disk turned 737 conversations into 1,237 messages), and once SQLite could not even open
its shared-memory file the error read "change store is corrupt ... move the file aside", advice that
republishes everything. So:

- `check_state_directory()` runs at start-up, after the lock and before anything is fetched or produced.
  It requires `checkpoint.min_free_bytes` free and really writes, fsyncs and removes a probe file (which
  also catches quotas and read-only mounts that `statvfs` does not show). The change store adds its own
  write probe (`ChangeStore.probe_write`).
- `disk_full_error()` maps what a full volume raises (ENOSPC, EDQUOT, SQLITE_FULL, and an SQLite I/O
  error while almost nothing is free) onto `StateDirectoryFullError`, the same one-line message at start-up
  and mid-run, so the operator frees space instead of deleting state.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

from connector.errors import CheckpointError, StateDirectoryFullError

PROBE_FILE = ".write-probe"
PROBE_BYTES = 256 * 1024
"""Size of the start-up probe write: large enough to need real blocks, small enough to be instant."""
LOW_SPACE_BYTES = 1024 * 1024
"""Below this much free space an SQLite I/O error (e.g. SQLITE_IOERR_SHMSIZE, when the `-shm` file cannot
be sized on a full tmpfs) is the full volume speaking, not a failing device."""
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `directory`."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def disk_full_error(exc: BaseException, directory: Path, *, operation: str) -> StateDirectoryFullError | None:
    """The disk-full error for `exc` if the volume holding `directory` is full (or over quota), else None.

    Callers map every storage failure through this first, so that a full disk is never reported as a
    corrupt or unusable file.
    """
    reason = _full_reason(exc, directory)
    if reason is None:
        return None
    return StateDirectoryFullError(
        path=str(directory), free_bytes=_free_or_zero(directory), operation=f"{operation}: {reason}"
    )


def _full_reason(exc: BaseException, directory: Path) -> str | None:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return errno.errorcode[exc.errno]
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None) or str(exc)
        if code == sqlite3.SQLITE_FULL:
            return name
        # An extended result code (SQLITE_IOERR_SHMSIZE...) keeps its primary code in the low byte.
        io_error = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR
        if io_error and _free_or_zero(directory) < LOW_SPACE_BYTES:
            return name
    return None


def _free_or_zero(directory: Path) -> int:
    try:
        return free_bytes(directory)
    except OSError:
        return 0


def check_state_directory(directory: Path, *, min_free_bytes: int) -> None:
    """Prove `directory` writable with at least `min_free_bytes` free; call before producing anything.

    Raises StateDirectoryFullError when space is short (by `statvfs` or because the probe write hit
    ENOSPC/EDQUOT), CheckpointError when the directory cannot be written for another reason.
    """
    directory = Path(directory)
    try:
        available = free_bytes(directory)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint directory is not usable: {exc.strerror}", path=str(directory)
        ) from None
    if available < min_free_bytes:
        raise StateDirectoryFullError(
            path=str(directory),
            free_bytes=available,
            operation=f"start-up check: checkpoint.min_free_bytes is {min_free_bytes}",
        )
    _write_probe(directory / PROBE_FILE)


def _write_probe(path: Path) -> None:
    """Write, fsync and remove a probe file: what the checkpoint and the change store are about to do."""
    try:
        _write_synced(path, bytes(PROBE_BYTES))
    except OSError as exc:
        _remove(path)  # first, so the error reports the space there really is
        full = disk_full_error(exc, path.parent, operation="start-up write probe")
        raise full or CheckpointError(
            f"checkpoint directory is not writable: {exc.strerror}", path=str(path.parent)
        ) from None
    _remove(path)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
