"""Helpers shared by the deploy tests: where the chart is, how to call helm, how to pick manifests.

Every helm call passes `--kube-version` so results do not depend on the binary's compiled-in default.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "genesys-kafka-connector"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
BAD_VALUES = sorted((Path(__file__).parent / "bad-values").glob("*.yaml"))
KUBE_VERSION = "1.33.0"
RELEASE = "org1"
NAMESPACE = "genesys"

Manifests = list[dict[str, Any]]
Render = Callable[..., Manifests]


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with a hard timeout; callers inspect returncode/stdout/stderr."""
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, check=False)


def template_args(values: Sequence[Path | str] = (), sets: dict[str, object] | None = None) -> list[str]:
    """`helm template` arguments: values files, then overrides (strings: --set-string, others: JSON)."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for key, value in (sets or {}).items():
        if isinstance(value, str):
            args += ["--set-string", f"{key}={value}"]
        else:
            args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def find(manifests: Manifests, kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of `kind` (and `name`), failing with what was rendered instead."""
    hits = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    rendered = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, rendered: {rendered}"
    return hits[0]


def kinds(manifests: Manifests) -> list[str]:
    """Kinds rendered, sorted (for set-like assertions with readable diffs)."""
    return sorted(m["kind"] for m in manifests)


def chart_values() -> dict[str, Any]:
    """The chart's default values.yaml."""
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data


def statefulset(manifests: Manifests) -> dict[str, Any]:
    """The chart's StatefulSet."""
    return find(manifests, "StatefulSet")


def connector_container(manifests: Manifests) -> dict[str, Any]:
    """The connector container of the StatefulSet's pod template."""
    containers = statefulset(manifests)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["connector"]
    container: dict[str, Any] = containers[0]
    return container


def rendered_config_text(manifests: Manifests) -> str:
    """The connector config.yaml exactly as the ConfigMap carries it."""
    configmaps = [m for m in manifests if m["kind"] == "ConfigMap" and "config.yaml" in m.get("data", {})]
    assert len(configmaps) == 1, f"expected one ConfigMap with config.yaml, got {len(configmaps)}"
    text: str = configmaps[0]["data"]["config.yaml"]
    return text


def expectations(values_file: Path) -> list[str]:
    """The `# expect: ...` lines of a bad-values file: fragments helm's error output must contain."""
    prefix = "# expect: "
    return [
        line[len(prefix) :].strip()
        for line in values_file.read_text().splitlines()
        if line.startswith(prefix)
    ]
