"""Metrics and health on one HTTP port: `/metrics`, `/healthz`, `/readyz`.

- `/metrics`: the injected Prometheus registry, in the format the scraper asks for (text or OpenMetrics).
- `/healthz` (liveness): 200 while the main loop's `Heartbeat` is fresh, else 503 with the reason. A stuck
  loop is what a restart can fix, so only the heartbeat counts here.
- `/readyz` (readiness): 200 when every registered check passes (token, producer, checkpoint...), else
  503 listing the failing ones. A failing dependency is not fixed by a restart, so it stays out of
  `/healthz`.

The server is the stdlib `ThreadingHTTPServer` in a daemon thread: no event loop is shared with the
connector, so a busy or blocked main loop cannot stop `/healthz` from answering that it is blocked.
Readiness checks therefore run on the server's threads: they must be cheap, thread-safe reads of state
the app keeps (a flag, a timestamp), never network calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from connector.clock import Clock
from connector.errors import ConfigError

ReadinessCheck = Callable[[], tuple[bool, str]]
"""Returns (ok, detail). `detail` is shown on /readyz: a short state description, never a secret."""

_log = logging.getLogger(__name__)
_POLL_INTERVAL_S = 0.2  # how quickly stop() is noticed by serve_forever


class Heartbeat:
    """Proof of life from the main loop: the app calls `beat()` on every iteration (and while it waits).

    Construction counts as a beat, which gives the loop `max_age_s` to start. Reading it from the server
    thread is safe: it is a single float assignment.
    """

    def __init__(self, clock: Clock, *, max_age_s: float) -> None:
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self._clock = clock
        self.max_age_s = max_age_s
        self._last = clock.monotonic()
        self._beats = 0
        self.max_gap_s = 0.0

    def beat(self) -> None:
        """Record that the main loop is alive now (and the longest gap between two beats so far)."""
        now = self._clock.monotonic()
        if self._beats:  # the wait before the first beat is start-up, not a gap in the loop
            self.max_gap_s = max(self.max_gap_s, now - self._last)
        self._beats += 1
        self._last = now

    def age_s(self) -> float:
        """Seconds since the last beat."""
        return max(0.0, self._clock.monotonic() - self._last)

    def check(self) -> tuple[bool, str]:
        """(alive, reason) as served on /healthz."""
        age = self.age_s()
        if age <= self.max_age_s:
            return True, f"main loop reported {age:.1f} s ago"
        return False, f"main loop has not reported for {age:.1f} s (limit {self.max_age_s:g} s)"


class LoopStallMonitor:
    """The longest time the asyncio event loop could not run anything: a blocking call on the loop.

    A small task sleeps `interval_s` again and again; when it wakes up late, the loop was busy for the
    lateness. Main-loop heartbeats cannot show this alone: their gaps include the loop's deliberate waits.
    It measures real seconds on the event loop's own clock, not the injected `Clock`: a blocked loop is a
    fact about this process, whatever time the schedule runs on (the accelerated test-bed clock included).
    """

    def __init__(self, *, interval_s: float = 0.05) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.max_stall_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring (on the running event loop; idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-stall-monitor")

    async def stop(self) -> None:
        """Stop measuring (idempotent); `max_stall_s` keeps its value."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            self.max_stall_s = max(self.max_stall_s, loop.time() - before - self.interval_s)


class ServerState(enum.Enum):
    """Lifecycle of the HealthServer: NEW -> RUNNING -> STOPPED (no restart)."""

    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    health: HealthServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """Serves `/metrics`, `/healthz` and `/readyz` on `host:port` (port 0 picks a free port; see `.port`).

    `redact` is applied to readiness details before they are served (pass the logging Redactor's
    `redact` so nothing registered as a secret can leak through a check's text).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        heartbeat: Heartbeat,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.registry = registry
        self.heartbeat = heartbeat
        self._redact = redact if redact is not None else (lambda text: text)
        self._checks: dict[str, ReadinessCheck] = {}
        self._checks_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.state = ServerState.NEW

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Make /readyz depend on `check` (replaces an earlier check of the same name)."""
        with self._checks_lock:
            self._checks[name] = check

    def readiness(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """Run every readiness check now: (all ok, {name: {"ok": bool, "detail": str}})."""
        with self._checks_lock:
            checks = dict(self._checks)
        results: dict[str, dict[str, object]] = {}
        for name, check in checks.items():
            ok, detail = _run_check(check)
            results[name] = {"ok": ok, "detail": self._redact(detail)}
        return all(r["ok"] for r in results.values()), results

    @property
    def port(self) -> int:
        """The bound port (useful with port 0). Only valid once started."""
        if self._server is None:
            raise RuntimeError("HealthServer.port read before start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for local clients, e.g. `http://127.0.0.1:9464`."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises ConfigError if the address cannot be used."""
        if self.state is ServerState.RUNNING:
            return
        if self.state is ServerState.STOPPED:
            raise RuntimeError("HealthServer cannot be restarted after stop()")
        server = self._bind()
        server.health = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name="health-server",
            daemon=True,
        )
        self._thread.start()
        self.state = ServerState.RUNNING
        _log.info("metrics and health endpoints listening", extra={"url": self.url})

    def _bind(self) -> _Server:
        cls = _Server6 if ":" in self.host else _Server
        where = f"{self.host}:{self._requested_port}"
        try:
            return cls((self.host, self._requested_port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                problem = f"metrics.port: port {self._requested_port} is already in use on {self.host}"
            else:
                problem = f"metrics.host/metrics.port: cannot listen on {where}: {exc.strerror or exc}"
            raise ConfigError([problem]) from None

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent; safe before start)."""
        server, thread = self._server, self._thread
        self.state = ServerState.STOPPED
        if server is None:
            return
        self._server, self._thread = None, None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run_check(check: ReadinessCheck) -> tuple[bool, str]:
    try:
        ok, detail = check()
    except Exception as exc:  # noqa: BLE001 - a broken check must answer "not ready", not kill the server
        return False, f"check raised {type(exc).__name__}"
    return bool(ok), str(detail)


class _Handler(BaseHTTPRequestHandler):
    """Routes the three endpoints; anything else is 404, any method but GET/HEAD is 405."""

    server: _Server
    server_version = "genesys-connector"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_POST(self) -> None:
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET"}, send_body=True)

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _dispatch(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        health = self.server.health
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, encoder(health.registry), content_type, send_body=send_body)
        elif path == "/healthz":
            alive, reason = health.heartbeat.check()
            body: dict[str, object] = {
                "status": "ok" if alive else "unhealthy",
                "reason": reason,
                "heartbeat_age_s": round(health.heartbeat.age_s(), 3),
            }
            status = HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE
            self._send_json(status, body, send_body=send_body)
        elif path == "/readyz":
            ready, checks = health.readiness()
            failing = [name for name, result in checks.items() if not result["ok"]]
            body = {"status": "ready" if ready else "not ready", "failing": failing, "checks": checks}
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            self._send_json(status, body, send_body=send_body)
        else:
            self._send_json(
                HTTPStatus.NOT_FOUND, {"error": "try /metrics, /healthz or /readyz"}, send_body=send_body
            )

    def _send_json(self, status: HTTPStatus, body: dict[str, object], *, send_body: bool) -> None:
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        self._send(status, data, "application/json", send_body=send_body)

    def _send(self, status: HTTPStatus, data: bytes, content_type: str, *, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Route the stdlib's access log to logging at DEBUG (scrapes every 15 s are noise)."""
        _log.debug("health endpoint request: " + format, *args)
