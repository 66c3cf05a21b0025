"""The README's promises that a shell can check: its simulator curl walk-through runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from connector.testbed.broker.launcher import free_ports

README = Path(__file__).resolve().parents[2] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no bash block under {heading!r}"
    return match.group(1)


def test_readme_simulator_curl_walkthrough_runs() -> None:
    port = str(free_ports(1)[0])
    script = _block_after("## The Genesys simulator").replace("8089", port)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inin-ratelimit-allowed" in out
    assert "ININ-Correlation-Id" in out
    assert '"conversations"' in out
    assert '"totalHits"' in out
    assert '"state":"FULFILLED"' in out
    assert '"cursor"' in out
    assert '"dataAvailabilityDate"' in out


def test_readme_check_config_command_runs_as_written() -> None:
    """The first command a new user copies from "Running it" validates the example config (exit 0)."""
    section = README.read_text().split("## Running it", 1)[1]
    match = re.search(
        r"^(GENESYS_CONNECTOR__\S+=\.\.\. \\\n\s+genesys-connector check-config[^#\n]*)", section, re.M
    )
    assert match, "no check-config command under 'Running it'"
    command = match.group(1).replace("=...", "=readme-secret-value")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=README.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"client_secret": "***"' in result.stdout
    assert "readme-secret-value" not in result.stdout + result.stderr
