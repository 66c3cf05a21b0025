"""Test-suite root. Fixtures live in `tests/*_fixtures.py` plugin modules, one per area (Kafka,
simulator, ...), so that several people can add fixtures without editing this file: every such module
is loaded here as a pytest plugin.

Every test is also marked by the directory it lives in (`unit`, `integration`, `e2e`, `simulator`,
`deploy`), so the fast inner loop is `pytest -m unit` and nobody has to remember to mark a new test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = sorted(path.stem for path in Path(__file__).parent.glob("*_fixtures.py"))

TESTS = Path(__file__).parent
#: The test directories, each also a marker declared in pyproject.toml (--strict-markers).
AREAS = ("unit", "integration", "e2e", "simulator", "deploy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its directory's name; a test outside those directories is an error."""
    for item in items:
        area = item.path.relative_to(TESTS).parts[0]
        if area not in AREAS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of tests/{{{','.join(AREAS)}}}/")
        item.add_marker(getattr(pytest.mark, area))
