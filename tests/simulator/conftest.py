"""Fixtures for the simulator conformance tests: real simulators on 127.0.0.1:0, real HTTP (httpx).

Each test gets its own small simulator (see simulator_support.base_config), so tests never share state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from simulator_support import Api, SimFactory, base_config

from connector.testbed.simulator import SimulatorHandle, start_simulator


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Start simulators with `base_config(**overrides)`; all are stopped after the test."""
    with contextlib.ExitStack() as stack:

        def factory(**overrides: Any) -> tuple[SimulatorHandle, Api]:
            handle = stack.enter_context(start_simulator(base_config(**overrides)))
            api = Api(handle)
            stack.callback(api.close)
            return handle, api

        yield factory


@pytest.fixture
def sim(make_sim: SimFactory) -> tuple[SimulatorHandle, Api]:
    """One default simulator and an authenticated client."""
    return make_sim()
