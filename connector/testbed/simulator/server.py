"""Running the simulator: in a background thread (tests), in the foreground (CLI), or as a subprocess.

```python
with start_simulator(SimulatorConfig(seed=7, history_days=1)) as sim:
    sim.base_url   # "http://127.0.0.1:PORT" - API and login on the same server
    sim.control    # SimulatorControl
```

The listening socket is bound before the server starts, so the port (0 = any free port) is known at once.
In the foreground the server prints `SIMULATOR_URL=http://HOST:PORT` on one stdout line when it is ready, so
a parent process can read it (`spawn_simulator` does exactly that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import uvicorn

from connector.testbed.simulator.app import build_app
from connector.testbed.simulator.config import SimulatorConfig
from connector.testbed.simulator.control import RemoteSimulatorControl, SimulatorControl
from connector.testbed.simulator.simulation import Simulation

URL_PREFIX = "SIMULATOR_URL="
__all__ = [
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorProcess",
    "run_foreground",
    "spawn_simulator",
    "start_simulator",
]


def _bind(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    # without it every response waits ~40 ms (Nagle + delayed ACK: uvicorn writes headers and body apart).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _server(sim: Simulation, config: SimulatorConfig) -> uvicorn.Server:
    uv_config = uvicorn.Config(
        build_app(sim),
        log_level=config.log_level,
        access_log=False,
        lifespan="on",
        http="h11",
        timeout_keep_alive=30,
    )
    return uvicorn.Server(uv_config)  # signal handlers are only installed on the main thread


@dataclass
class SimulatorHandle:
    """A simulator running in a thread of this process."""

    base_url: str
    control: SimulatorControl
    simulation: Simulation
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def login_url(self) -> str:
        """Base URL of the login host (the same server as the API)."""
        return self.base_url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server and wait for its thread (idempotent)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)


@contextlib.contextmanager
def start_simulator(config: SimulatorConfig | None = None) -> Iterator[SimulatorHandle]:
    """Run a simulator on `config.host:config.port` (default 127.0.0.1, any free port) in a daemon thread."""
    config = config or SimulatorConfig()
    sim = Simulation(config)
    sock = _bind(config.host, config.port)
    server = _server(sim, config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="genesys-simulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the simulator server did not start")
        time.sleep(0.005)
    handle = SimulatorHandle(_url(config.host, sock), SimulatorControl(sim), sim, server, thread)
    try:
        yield handle
    finally:
        handle.stop()
        sock.close()


def run_foreground(config: SimulatorConfig, *, out: TextIO | None = None) -> int:
    """Serve until SIGINT/SIGTERM, printing the `SIMULATOR_URL=` line once listening; 0 on a clean stop."""
    stream = out if out is not None else sys.stdout
    # uvicorn captures SIGINT/SIGTERM while serving and re-raises them afterwards: make that a no-op so a
    # stop request ends the process with exit code 0 instead of dying from the re-raised signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    began = time.perf_counter()
    sim = Simulation(config)
    sock = _bind(config.host, config.port)
    server = _server(sim, config)
    url = _url(config.host, sock)
    print(f"{URL_PREFIX}{url}", file=stream, flush=True)
    logging.getLogger("connector.testbed.simulator").info(
        "simulator ready at %s with %d conversations (%.1fs)",
        url,
        len(sim.store),
        time.perf_counter() - began,
    )
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
    return 0


@dataclass
class SimulatorProcess:
    """A simulator running as a child process (`python -m connector.testbed.simulator ...`)."""

    base_url: str
    control: RemoteSimulatorControl
    process: subprocess.Popen[str]
    _reader: threading.Thread = field(repr=False)

    @property
    def login_url(self) -> str:
        """Base URL of the login host (the same server as the API)."""
        return self.base_url

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        self.control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self._reader.join(timeout_s)  # it stops at EOF, once the child has exited
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)


@contextlib.contextmanager
def spawn_simulator(
    args: Sequence[str] = (),
    *,
    startup_timeout_s: float = 120.0,
    launcher: Sequence[str] | None = None,
) -> Iterator[SimulatorProcess]:
    """Start `python -m connector.testbed.simulator --port 0 ARGS...` and wait for its URL line.

    `launcher` replaces `python -m connector.testbed.simulator` by another command taking the same options
    (e.g. `connector.testbed.accelerated.command(mapping, "simulator")`: the simulator on a fast clock).
    """
    prefix = list(launcher) if launcher is not None else [sys.executable, "-m", "connector.testbed.simulator"]
    cmd = [*prefix, "--port", "0", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        url, reader = _read_url(proc, startup_timeout_s)
        handle = SimulatorProcess(url, RemoteSimulatorControl(url), proc, reader)
    except BaseException:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        raise
    try:
        yield handle
    finally:
        handle.stop()


def _read_url(proc: subprocess.Popen[str], timeout_s: float) -> tuple[str, threading.Thread]:
    """Wait for the URL line; keep draining stdout afterwards so the child never blocks on a full pipe."""
    found: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not found and line.startswith(URL_PREFIX):
                found.append(line[len(URL_PREFIX) :].strip())
                ready.set()
        ready.set()

    thread = threading.Thread(target=reader, name="simulator-stdout", daemon=True)
    thread.start()
    ready.wait(timeout_s)
    if not found:
        raise RuntimeError(f"the simulator process did not print {URL_PREFIX}... (exit code {proc.poll()})")
    return found[0], thread
