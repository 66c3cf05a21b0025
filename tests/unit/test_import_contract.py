"""The import contract in pyproject.toml holds, covers every worker module, and fails when broken.

Contracts: the worker never imports the test bed (`connector.testbed`, starlette, uvicorn), and the Genesys
side (`connector.genesys`) and the Kafka side (`connector.kafka`) never import each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (found,) = [c for c in config["contracts"] if c["id"] == contract_id]
    return found


def test_the_import_contract_is_kept() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_worker_module_is_under_the_testbed_contract() -> None:
    """A new worker module must be added to the contract's list, or the contract would not see it."""
    listed = set(_contract("worker-without-testbed")["source_modules"])  # type: ignore[arg-type]
    package = REPO / "connector"
    worker = {
        f"connector.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    } - {"connector.testbed"}
    assert worker - listed == set(), "add these modules to the contract in pyproject.toml"


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "connector", tmp_path / "connector", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        (
            "connector/windows.py",
            "import connector.testbed.simulator",
            "The worker never imports the test bed",
        ),
        ("connector/genesys/fetcher.py", "import connector.testbed.reconcile", "The worker never imports"),
        ("connector/state/progress.py", "import uvicorn", "The worker never imports"),
        ("connector/genesys/client.py", "import connector.kafka.records", "do not import each other"),
        ("connector/kafka/publisher.py", "import connector.genesys.auth", "do not import each other"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    package_copy: Path, module: str, bad_import: str, contract: str
) -> None:
    path = package_copy / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa: E402\n")
    result = _lint(package_copy)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout
