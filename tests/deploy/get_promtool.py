"""Fetch Prometheus' `promtool` into the git-ignored `.cache/promtool/` (no Makefile, no manual step).

Why this route: CI machines reach Debian's package archive, and Debian ships promtool in its `prometheus`
package (bookworm: 2.42). We `apt-get download` that one .deb into a temporary directory (apt checks it
against the archive's signed index, so a tampered file is refused), stream its data tarball through
`dpkg-deb --fsys-tarfile` and keep only `usr/bin/promtool` (it needs nothing but libc). Nothing is
installed system-wide and no Prometheus server is started. If apt has no package lists yet (a fresh
container), `apt-get update` is run once and the download retried.

Use: `python tests/deploy/get_promtool.py` prints the path (fetching if needed). The deploy tests call
`ensure_promtool()` from a fixture. Elsewhere set `GENESYS_PROMTOOL_BIN` to a promtool >= 2.x binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from cached_tool import CACHE_ROOT, ToolUnavailableError, ensure_tool, main

DEBIAN_PACKAGE = "prometheus"
MEMBER = "usr/bin/promtool"
OVERRIDE_ENV = "GENESYS_PROMTOOL_BIN"
#: apt downloads as the unprivileged `_apt` user, which cannot write to a private temp dir; as root it
#: would fall back with a warning, so say so up front.
_APT_OPTIONS = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
_TIMEOUT_S = 600

DEFAULT_TARGET = CACHE_ROOT / "promtool" / "promtool"


class PromtoolUnavailableError(ToolUnavailableError):
    """promtool could not be obtained; the message says why and what to do instead."""


def promtool_version(path: Path) -> str | None:
    """`promtool --version`'s first line, or None if `path` does not run as promtool."""
    try:
        result = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    first = (result.stdout or result.stderr).splitlines()[:1]
    if result.returncode != 0 or not first or not first[0].startswith("promtool, version "):
        return None
    return first[0]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)


def _download_deb(workdir: Path) -> Path:
    """`apt-get download prometheus` into workdir; refresh the package lists once if apt knows no such
    package (a fresh container has none)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PromtoolUnavailableError(
            f"apt-get/dpkg-deb not found (not a Debian-based machine); install promtool, set {OVERRIDE_ENV}"
        )
    download = ["apt-get", *_APT_OPTIONS, "download", DEBIAN_PACKAGE]
    result = _run(download, workdir)
    if result.returncode != 0:
        update = _run(["apt-get", "update"], workdir)
        if update.returncode != 0:
            raise PromtoolUnavailableError(
                f"apt-get download {DEBIAN_PACKAGE} failed ({result.stderr.strip()}) and apt-get update "
                f"failed too ({update.stderr.strip()}); run it as root or set {OVERRIDE_ENV}"
            )
        result = _run(download, workdir)
    if result.returncode != 0:
        raise PromtoolUnavailableError(f"apt-get download {DEBIAN_PACKAGE} failed:\n{result.stderr.strip()}")
    debs = list(workdir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise PromtoolUnavailableError(f"expected one downloaded .deb in {workdir}, found {debs}")
    return debs[0]


def _extract_promtool(deb: Path, workdir: Path) -> Path:
    """Stream the .deb's data tarball and write only promtool (the package also holds a 50 MB server)."""
    out = workdir / "promtool"
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name.removeprefix("./") == MEMBER and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    with out.open("wb") as sink:
                        shutil.copyfileobj(source, sink)
                    break
        while proc.stdout.read(1 << 20):  # drain, so dpkg-deb does not die of a broken pipe
            pass
    if proc.returncode != 0 or not out.is_file():
        raise PromtoolUnavailableError(f"{MEMBER} not found in {deb.name}")
    out.chmod(0o755)
    return out


def _runs(path: Path) -> bool:
    return promtool_version(path) is not None


def _fetch(workdir: Path) -> bytes:
    binary = _extract_promtool(_download_deb(workdir), workdir)
    if not _runs(binary):
        raise PromtoolUnavailableError(f"the {MEMBER} from Debian's {DEBIAN_PACKAGE} package does not run")
    return binary.read_bytes()


def ensure_promtool(target: Path = DEFAULT_TARGET) -> Path:
    """Return a working promtool, fetching Debian's into `target` if it is missing or does not run.

    Raises PromtoolUnavailableError (never returns None) so a test fixture fails loudly instead of skipping.
    """
    return ensure_tool(
        target,
        override_env=OVERRIDE_ENV,
        override_ok=_runs,
        unusable_override="does not run as promtool",
        cached_ok=_runs,
        fetch=_fetch,
        error=PromtoolUnavailableError,
    )


if __name__ == "__main__":
    sys.exit(main(ensure_promtool))
