"""A small real filesystem that tests can fill up: a tmpfs mounted for the test, unmounted afterwards.

Disk-full behaviour cannot be faked convincingly (SQLite sizes its `-shm` file, the kernel refuses blocks,
not our code), so these tests use a real, tiny volume. Mounting needs root (or CAP_SYS_ADMIN); where the
kernel does not permit it the test is skipped, and any other mount failure fails the test.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_NOT_PERMITTED = ("permission denied", "not permitted", "only root", "must be superuser")


def _mount_tmpfs(path: Path, size_bytes: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        if any(marker in result.stderr.lower() for marker in _NOT_PERMITTED):
            pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
        raise AssertionError(f"mount tmpfs at {path} failed: {result.stderr.strip()}")


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)  # still busy: detach


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """`small_tmpfs(size_bytes)` mounts a fresh tmpfs of that size and returns its path."""
    mounted: list[Path] = []

    def mount(size_bytes: int) -> Path:
        path = tmp_path / f"tmpfs-{len(mounted)}"
        _mount_tmpfs(path, size_bytes)
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            _unmount(path)


def fill_volume(directory: Path, *, leave_bytes: int) -> Path:
    """Fill the volume holding `directory` with one filler file, then give back `leave_bytes` of it.

    Returns the filler's path. The free space left is `leave_bytes` rounded to the page size.
    """
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        chunk = bytes(64 * 1024)
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave_bytes))
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return filler
