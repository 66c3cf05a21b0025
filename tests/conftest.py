"""Test-suite root. Fixtures live in `tests/*_fixtures.py` plugin modules, one per area (Kafka,
simulator, ...), so that several people can add fixtures without editing this file: every such module
is loaded here as a pytest plugin.
"""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(path.stem for path in Path(__file__).parent.glob("*_fixtures.py"))
