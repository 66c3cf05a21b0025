"""The checkpoint: where the connector is, kept on disk so a restart resumes instead of starting over.

The rule this module exists for: **the checkpoint never moves past messages Kafka has not acknowledged.**
The app saves a new state only after every message that state covers has been acked (producer flushed, no
delivery error latched) and after the change store has recorded those acks. A crash therefore re-fetches
at most the passes that were in flight; nothing is skipped. This module cannot see Kafka, so the app
enforces the rule; this module makes sure that what the app saved is what a restart reads.

On disk (`<directory>/checkpoint.json`, format 2; format 1, written before async jobs, is read as is):

- writes are atomic: `checkpoint.json.tmp` in the same directory, fsync, `os.replace`, fsync of the
  directory. A crash at any point leaves either the old or the new file, never a torn one.
- the format is versioned (`"format": 2`; 2 added job passes with their `job_cursor` and the windows
  waiting for their settling job, `unsettled`; a format-1 file is read with neither). A file from a newer
  connector, or one that is corrupt or fails validation, stops the worker with a `CheckpointError` naming
  the file and the problem. The file is never modified, renamed or deleted on error; starting over needs
  the explicit `--reset-checkpoint` flag, which moves the old file aside to
  `checkpoint.json.bak-<timestamp>` (never deletes it).
- an exclusive `flock` on `<directory>/.lock` stops a second worker from using the same directory.

`read_only_load()` is for `genesys-connector status`: it takes no lock and never writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from connector.clock import Clock
from connector.errors import CheckpointError
from connector.secrets import Redactor
from connector.state.statedir import disk_full_error

FORMAT_VERSION = 2
#: Older formats this version reads (a format-1 file simply has no job passes and no `unsettled`).
READABLE_FORMATS = frozenset({1, 2})
CHECKPOINT_FILE = "checkpoint.json"
LOCK_FILE = ".lock"
_TMP_SUFFIX = ".tmp"
_RESET_HINT = "start over with --reset-checkpoint (the old file is kept as a backup)"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobCursor(_Frozen):
    """Where a job pass stands: its job and the cursor after its last ACKNOWLEDGED page (None: first page).

    The plain-data form of `connector.genesys.job_events.JobResume` (the cursor is opaque, not a secret).
    """

    job_id: str
    cursor: str | None = None
    submitted_at: UtcDatetime


class PassProgress(_Frozen):
    """One window pass in flight: resume it at `next_page` (pages before it are fetched and acked).

    A job pass (`job`: read through an async job, not the details query) resumes at `job_cursor` instead:
    pass 0 is a backfill span, pass 1 a settling job.

    `next_page` is a resume hint: query pages can shift while paging, and the change store absorbs the
    overlap when a pass is resumed or restarted.
    """

    window_start: UtcDatetime
    window_end: UtcDatetime
    pass_no: int = Field(ge=0, description="0 = first pass, 1..n = n-th settlement re-scan")
    next_page: int = Field(default=1, ge=1)
    # When the pass first asked for a page (None in checkpoints written before it was recorded): data read
    # at or after a re-scan's due time makes that re-scan unnecessary (see `Progress.complete`).
    started_at: UtcDatetime | None = None
    job: bool = False
    job_cursor: JobCursor | None = None

    @model_validator(mode="after")
    def _window_not_empty(self) -> PassProgress:
        if self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self


class RescanEntry(_Frozen):
    """A settlement re-scan of one window, due at `due_at`."""

    window_start: UtcDatetime
    window_end: UtcDatetime
    pass_no: int = Field(ge=1)
    due_at: UtcDatetime

    @model_validator(mode="after")
    def _window_not_empty(self) -> RescanEntry:
        if self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self


class UnsettledWindow(_Frozen):
    """A window read (by query, or by a job before the data lake passed it) waiting for its settling job."""

    window_start: UtcDatetime
    window_end: UtcDatetime


class LastError(_Frozen):
    """The last error the worker stopped or retried on (for `status`; never contains a secret)."""

    at: UtcDatetime
    message: str


class CheckpointState(_Frozen):
    """Everything the connector needs to resume. A frozen value: build a new one with `model_copy(update=)`.

    `watermark` is the end of the contiguous range whose first pass is complete and acked; None before the
    first window completes. `planned_until` is the end of the last first-pass window handed out (passes
    between the watermark and it are either in `in_progress` or complete). `config_fingerprint` (see
    `config_fingerprint()`) lets the app notice that the topic or the filters changed since the
    checkpoint was written.
    """

    format: Literal[1, 2] = 2
    watermark: UtcDatetime | None = None
    planned_until: UtcDatetime | None = None
    in_progress: list[PassProgress] = Field(default_factory=list)
    rescans: list[RescanEntry] = Field(default_factory=list)
    open_conversations: dict[str, UtcDatetime] = Field(default_factory=dict)
    unsettled: list[UnsettledWindow] = Field(default_factory=list)
    last_error: LastError | None = None
    updated_at: UtcDatetime | None = None
    connector_version: str = ""
    config_fingerprint: str = ""
    stats: dict[str, int] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        """The on-disk form: UTF-8 JSON, ISO-8601 UTC instants."""
        return self.model_dump_json(indent=1).encode() + b"\n"


class CheckpointStore(Protocol):
    """What the app needs from a checkpoint store (FileCheckpointStore, or a fake in tests)."""

    def load(self) -> CheckpointState | None: ...

    def save(self, state: CheckpointState) -> CheckpointState: ...


def config_fingerprint(parts: Mapping[str, object]) -> str:
    """Stable short hash of the settings that decide *what* is published (topic, filters...).

    Stored in the checkpoint so that resuming with a different topic or filter is detected and reported
    rather than silently mixing two data sets. Values must be JSON-serialisable.
    """
    canonical = orjson.dumps(dict(parts), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def parse_checkpoint(data: bytes, *, path: Path) -> CheckpointState:
    """Decode and validate checkpoint bytes; any problem is a CheckpointError naming `path`."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(
            f"checkpoint is corrupt: not valid JSON ({exc}); {_RESET_HINT}", path=str(path)
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint is corrupt: expected a JSON object; {_RESET_HINT}", path=str(path))
    _check_format(raw.get("format"), path)
    try:
        return CheckpointState.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise CheckpointError(
            f"checkpoint has invalid fields: {problems}{more}; {_RESET_HINT}", path=str(path)
        ) from None


def _check_format(version: Any, path: Path) -> None:
    if type(version) is int and version in READABLE_FORMATS:
        return
    if type(version) is int and version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint was written by a newer connector (format {version}; this version reads format "
            f"{FORMAT_VERSION}); run the newer version or {_RESET_HINT}",
            path=str(path),
        )
    shown = "missing" if version is None else repr(version)
    raise CheckpointError(f"checkpoint has an unknown format ({shown}); {_RESET_HINT}", path=str(path))


def read_only_load(directory: Path) -> CheckpointState | None:
    """Read the checkpoint in `directory` without locking or writing anything (for `status`).

    Returns None when there is no checkpoint yet.
    """
    return _read(Path(directory) / CHECKPOINT_FILE)


def _read(path: Path) -> CheckpointState | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint: {_reason(exc)}", path=str(path)) from None
    return parse_checkpoint(data, path=path)


def _reason(exc: OSError) -> str:
    """A short cause for an OSError (`No space left on device`), without repeating the path."""
    if exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {os.strerror(exc.errno)}"
    return str(exc)


class FileCheckpointStore:
    """The checkpoint file in one directory, guarded by an exclusive lock.

    Lifecycle: `lock()` (or `with store:`) before `load()`, `save()` or `reset()`; `close()` releases the
    lock. The lock is an `flock` on `<directory>/.lock`, released by the OS if the process dies.
    `redact` masks secrets in `last_error` before it is written (pass the process `Redactor.redact`; the
    default knows only the patterns, no registered secret): an error's text may quote a token or a password,
    and the file outlives the process.
    """

    def __init__(self, directory: Path, clock: Clock, *, redact: Callable[[str], str] | None = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CHECKPOINT_FILE
        self._tmp_path = self.directory / (CHECKPOINT_FILE + _TMP_SUFFIX)
        self._clock = clock
        self._redact = redact if redact is not None else Redactor().redact
        self._lock_fd: int | None = None

    @property
    def is_locked(self) -> bool:
        """True while this store holds the directory lock."""
        return self._lock_fd is not None

    def lock(self) -> None:
        """Create the directory if needed and take the exclusive lock; fail fast if another worker has it."""
        if self._lock_fd is not None:
            return
        where = str(self.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise disk_full_error(exc, self.directory, operation="lock file") or CheckpointError(
                f"checkpoint directory is not usable: {_reason(exc)}", path=where
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._lock_owner(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(
                    f"another worker is using {where}{holder} (only one connector may use a checkpoint "
                    "directory)",
                    path=where,
                ) from None
            raise CheckpointError(f"cannot lock checkpoint directory: {_reason(exc)}", path=where) from None
        self._lock_fd = fd
        self._write_lock_owner(fd)

    @staticmethod
    def _lock_owner(fd: int) -> str:
        """` (pid N)` as recorded by the worker holding the lock, or "" if unknown."""
        try:
            recorded = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return ""
        return f" (pid {recorded})" if recorded.isdigit() else ""

    @staticmethod
    def _write_lock_owner(fd: int) -> None:
        """Record our pid in the lock file, for whoever investigates a "directory in use" error."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> FileCheckpointStore:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_lock(self, operation: str) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"FileCheckpointStore.{operation}() called before lock()")

    def load(self) -> CheckpointState | None:
        """The saved state, or None when there is none yet. Never modifies the file, even on error."""
        self._require_lock("load")
        return _read(self.path)

    def save(self, state: CheckpointState) -> CheckpointState:
        """Atomically replace the checkpoint with `state` stamped with `updated_at`; return what was saved.

        Call only once every message `state` covers is acknowledged by Kafka. On failure raises
        CheckpointError (StateDirectoryFullError for a full volume) and the previous checkpoint stays intact.
        """
        self._require_lock("save")
        update: dict[str, Any] = {"updated_at": self._clock.now().astimezone(UTC)}
        if state.last_error is not None:
            message = self._redact(state.last_error.message)
            update["last_error"] = state.last_error.model_copy(update={"message": message})
        update["format"] = FORMAT_VERSION
        stamped = state.model_copy(update=update)
        data = stamped.to_json()
        try:
            self._write_tmp(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._tmp_path.unlink()
            raise disk_full_error(exc, self.directory, operation="checkpoint save") or CheckpointError(
                f"cannot write checkpoint (the previous one is unchanged): {_reason(exc)}",
                path=str(self.path),
            ) from None
        try:
            os.replace(self._tmp_path, self.path)
            self._fsync_directory()
        except OSError as exc:
            raise disk_full_error(exc, self.directory, operation="checkpoint commit") or CheckpointError(
                f"cannot commit checkpoint: {_reason(exc)}", path=str(self.path)
            ) from None
        return stamped

    def _write_tmp(self, data: bytes) -> None:
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _fsync_directory(self) -> None:
        """Make the rename itself durable (otherwise a power cut may bring the old file back)."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def reset(self) -> Path | None:
        """Start over (`--reset-checkpoint`): move the current file aside, never delete it.

        Returns the backup path (`checkpoint.json.bak-<UTC timestamp>`), or None if there was no file.
        After this, `load()` returns None.
        """
        self._require_lock("reset")
        if not self.path.exists():
            return None
        backup = self._backup_path()
        try:
            os.rename(self.path, backup)
            self._fsync_directory()
        except OSError as exc:
            raise CheckpointError(
                f"cannot move checkpoint aside: {_reason(exc)}", path=str(self.path)
            ) from None
        return backup

    def _backup_path(self) -> Path:
        stamp = self._clock.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        candidate = self.directory / f"{CHECKPOINT_FILE}.bak-{stamp}"
        n = 1
        while candidate.exists():
            candidate = self.directory / f"{CHECKPOINT_FILE}.bak-{stamp}-{n}"
            n += 1
        return candidate
