"""The shared half of the cached-tool fetchers (`get_helm.py`, `get_promtool.py`).

Each fetcher knows where its binary comes from and how to tell a good one; this module holds what they
do alike: honour an override variable, keep a good cached copy, fetch into a temporary directory, move
the result into the git-ignored `.cache/` atomically, and the tiny CLI that prints the path.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPO_ROOT / ".cache"


class ToolUnavailableError(RuntimeError):
    """A tool could not be obtained; the message says why and what to do instead."""


def install_atomically(binary: bytes, target: Path) -> None:
    """Write next to the target and rename, so a concurrent or interrupted run never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(binary)
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def ensure_tool(
    target: Path,
    *,
    override_env: str,
    override_ok: Callable[[Path], bool],
    unusable_override: str,
    cached_ok: Callable[[Path], bool],
    fetch: Callable[[Path], bytes],
    error: type[ToolUnavailableError],
) -> Path:
    """Return the override (if set and `override_ok`), else `target` if `cached_ok`, else `fetch` it there.

    `fetch` gets a scratch directory and returns the checked binary's bytes; `unusable_override` ends the
    message when the override fails `override_ok`. Raises `error` (never returns None) so a test fixture fails
    loudly instead of skipping.
    """
    override = os.environ.get(override_env)
    if override:
        path = Path(override)
        if not override_ok(path):
            raise error(f"{override_env}={override} {unusable_override}")
        return path
    if cached_ok(target):
        return target
    with tempfile.TemporaryDirectory(prefix=f"get-{target.name}-") as tmp:
        install_atomically(fetch(Path(tmp)), target)
    return target


def main(ensure: Callable[[], Path]) -> int:
    """CLI: print the tool's path, fetching it first if needed; a one-line error and exit 1 if not."""
    try:
        path = ensure()
    except ToolUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
