"""The simulator's HTTP application: Genesys API routes, the login route and the `/_sim/` admin routes.

Every /api/v2 request goes through one pipeline, in this order: bearer token (401) -> permission (403) ->
rate limit (429, counted per token) -> injected fault -> artificial latency -> handler. Every /api/v2
response carries the `inin-ratelimit-*` headers; every response (also /oauth/token and /_sim/) carries an
`ININ-Correlation-Id` header equal to the `contextId` of an error body. Handlers are synchronous functions of
(simulation, request data) that run under the simulation lock and return JSON bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.testbed.simulator import admin
from connector.testbed.simulator.auth import AGENT_DETAIL_VIEW, DETAIL_VIEW, AccessToken
from connector.testbed.simulator.control import SimulatorControl
from connector.testbed.simulator.errors import ApiProblem, bad_request, rate_limit_message
from connector.testbed.simulator.faults import Fault
from connector.testbed.simulator.isotime import format_ms
from connector.testbed.simulator.live import live_loop
from connector.testbed.simulator.query import page_of, parse_details_query, parse_job_query
from connector.testbed.simulator.simulation import Simulation

CORRELATION_HEADER = "ININ-Correlation-Id"
JSON = "application/json"
_QUERY_PERMISSIONS = (DETAIL_VIEW, AGENT_DETAIL_VIEW)
_JOB_PERMISSIONS = (DETAIL_VIEW,)
_HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>awselb/2.0</center></body></html>"
)


@dataclass(frozen=True)
class Call:
    """What a handler sees of one request."""

    path: dict[str, Any]
    params: dict[str, str]
    body: Any


Handler = Callable[[Simulation, Call], tuple[int, bytes]]


@dataclass(frozen=True)
class ApiRoute:
    """One /api/v2 endpoint: its counter/fault name, handler and the permissions it accepts."""

    name: str
    handler: Handler
    permissions: tuple[str, ...]
    mutating: bool = False  # a truncated-body fault must not run the handler


# --- handlers (run under the simulation lock) ------------------------------------------------------------
def handle_query(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """POST /api/v2/analytics/conversations/details/query."""
    query = parse_details_query(call.body, sim.limits)
    matched = sim.query_view(sim.engine.matching(query), query.order, query.order_by)
    page = page_of(
        matched,
        query.page_size,
        query.page_number,
        duplicate_probability=sim.duplicate_probability,
        total_hits_jitter=sim.total_hits_jitter,
        rng=sim.hits_rng,
        fixed_total_hits=sim.fixed_total_hits,
    )
    if page.past_end:
        return 200, b'{"totalHits":%d}' % page.total_hits
    records = b",".join(sim.record_bytes(spec) for spec in page.specs)
    return 200, b'{"conversations":[' + records + b'],"totalHits":%d}' % page.total_hits


def handle_conversation(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """GET /api/v2/analytics/conversations/{conversationId}/details."""
    spec = sim.store.get(call.path["conversation_id"])
    if spec is None or not sim.indexed(spec):
        raise ApiProblem(404, f"Conversation {call.path['conversation_id']} was not found")
    return 200, sim.record_bytes(spec)


def handle_conversations(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """GET /api/v2/analytics/conversations/details?id=a,b,c (unknown ids are left out)."""
    raw = call.params.get("id", "")
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids:
        raise bad_request("id is required: a comma-separated list of conversation ids", field="id")
    if len(ids) > sim.config.multiget_max_ids:
        raise bad_request(f"at most {sim.config.multiget_max_ids} conversation ids per request", field="id")
    specs = [s for cid in dict.fromkeys(ids) if (s := sim.store.get(cid)) is not None and sim.indexed(s)]
    return 200, b'{"conversations":[' + b",".join(sim.record_bytes(s) for s in specs) + b"]}"


def handle_job_create(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """POST /api/v2/analytics/conversations/details/jobs -> 202 {"jobId"}."""
    job = sim.jobs.submit(parse_job_query(call.body, sim.limits))
    return 202, orjson.dumps({"jobId": job.job_id})


def handle_job_status(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """GET .../jobs/{jobId}."""
    return 200, orjson.dumps(sim.jobs.status_body(sim.jobs.get(call.path["job_id"])))


def handle_job_delete(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """DELETE .../jobs/{jobId} -> 204, job CANCELLED."""
    sim.jobs.cancel(call.path["job_id"])
    return 204, b""


def handle_job_results(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """GET .../jobs/{jobId}/results?cursor=&pageSize= (records with participant attributes)."""
    job = sim.jobs.get(call.path["job_id"])
    size_text = call.params.get("pageSize")
    try:
        size = None if size_text is None else int(size_text)
    except ValueError:
        raise bad_request(f"pageSize must be an integer (got {size_text!r})", field="pageSize") from None
    specs, cursor, availability = sim.jobs.results_page(job, call.params.get("cursor"), size)
    parts = []
    if specs:
        parts.append(
            b'"conversations":[' + b",".join(sim.record_bytes(s, attributes=True) for s in specs) + b"]"
        )
    if cursor is not None:
        parts.append(b'"cursor":' + orjson.dumps(cursor))
    parts.append(b'"dataAvailabilityDate":' + orjson.dumps(format_ms(availability)))
    return 200, b"{" + b",".join(parts) + b"}"


def handle_availability(sim: Simulation, call: Call) -> tuple[int, bytes]:
    """GET .../jobs/availability."""
    return 200, orjson.dumps({"dataAvailabilityDate": format_ms(sim.jobs.availability_ms())})


# --- pipeline --------------------------------------------------------------------------------------------
def _json_response(status: int, content: bytes, headers: dict[str, str] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def _problem_response(problem: ApiProblem, context_id: str) -> Response:
    return _json_response(problem.status, orjson.dumps(problem.body(context_id)), problem.headers)


async def _read_call(request: Request) -> Call:
    body: Any = None
    if request.method in ("POST", "PUT"):
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise bad_request("The request body is not valid JSON") from None
    return Call(dict(request.path_params), dict(request.query_params), body)


async def abort_connection(scope: Scope) -> bool:
    """Drop the client's TCP connection with a reset and no response. False if the server cannot."""
    raw_send = scope.get("sim.raw_send")
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    scope["sim.reset"] = True
    counter = scope.get("sim.count")
    if counter is not None:
        counter("reset")  # before the client can see the reset, as responses are counted before they leave
    transport.abort()
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True  # uvicorn then skips its own "no response" 500
    await asyncio.sleep(0)
    return True


async def _faulted(
    sim: Simulation,
    request: Request,
    fault: Fault,
    token: AccessToken | None,
    produce: Callable[[], Awaitable[bytes]],
) -> Response | None:
    """The response for an injected fault, or None to continue normally (after a slow fault's delay)."""
    kind = fault.kind
    if kind == "slow":
        await asyncio.sleep(fault.seconds or 0.0)
        return None
    if kind in ("500", "502", "503", "504", "408"):
        raise ApiProblem(int(kind))
    if kind == "429":
        seconds = int(fault.seconds or 0)
        raise ApiProblem(429, rate_limit_message(seconds), headers={"Retry-After": str(seconds)})
    if kind == "revoke" and token is not None:
        with sim.lock:
            sim.auth.revoke(token=token.token)
        raise ApiProblem(401, "The access token has been revoked.", code=sim.auth.unauthorized_code)
    if kind == "html502":
        return HTMLResponse(_HTML_502, status_code=502)
    if kind == "reset" and await abort_connection(request.scope):
        return Response(status_code=500)  # never reaches the client: the connection is gone
    if kind == "truncated":
        content = await produce()
        return Response(content[: max(1, len(content) // 2)], status_code=200, media_type=JSON)
    raise ApiProblem(502, f"fault '{fault.label}' could not be injected on this server")


def api_endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler in the /api/v2 pipeline."""

    async def endpoint(request: Request) -> Response:
        sim: Simulation = request.app.state.sim
        request.scope["sim.route"] = route.name
        context_id: str = request.scope["sim.correlation_id"]
        token: AccessToken | None = None
        rate_headers: dict[str, str] | None = None
        try:
            with sim.lock:
                token = sim.auth.authenticate(request.headers.get("authorization"))
                rate_headers = sim.limiter.peek(token.token).headers()
                sim.auth.require_any(token, route.permissions)
                decision = sim.limiter.hit(token.token)
                rate_headers = decision.headers()
                if not decision.allowed:
                    retry = str(decision.reset_s)
                    raise ApiProblem(
                        429, rate_limit_message(decision.reset_s), headers={"Retry-After": retry}
                    )
                fault = sim.faults.next_fault(route.name)
            call = await _read_call(request)

            async def produce() -> bytes:
                if route.mutating:
                    return orjson.dumps({"jobId": str(uuid.uuid4())})
                with sim.lock:
                    return route.handler(sim, call)[1]

            response = await _faulted(sim, request, fault, token, produce) if fault else None
            if response is None:
                delay = sim.latency_s()
                if delay:
                    await asyncio.sleep(delay)
                with sim.lock:
                    status, content = route.handler(sim, call)
                response = _json_response(status, content)
        except ApiProblem as problem:
            response = _problem_response(problem, context_id)
        if rate_headers is None:
            with sim.lock:
                rate_headers = sim.limiter.peek(None).headers()
        response.headers.update(rate_headers)
        return response

    return endpoint


async def token_endpoint(request: Request) -> Response:
    """POST /oauth/token (client credentials)."""
    sim: Simulation = request.app.state.sim
    request.scope["sim.route"] = "token"
    context_id: str = request.scope["sim.correlation_id"]
    try:
        with sim.lock:
            fault = sim.faults.next_fault("token")
        if fault is not None:

            async def produce() -> bytes:
                return orjson.dumps({"access_token": "x" * 64, "token_type": "bearer", "expires_in": 86399})

            faulted = await _faulted(sim, request, fault, None, produce)
            if faulted is not None:
                return faulted
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise bad_request("The token request must be a form (application/x-www-form-urlencoded)")
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = form.get("grant_type", [None])[0]
        with sim.lock:
            body = sim.auth.issue(request.headers.get("authorization"), grant)
        return _json_response(200, orjson.dumps(body), {"Cache-Control": "no-store"})
    except ApiProblem as problem:
        return _problem_response(problem, context_id)


async def unknown_api_route(request: Request) -> Response:
    """Any other /api/v2 path: 404 ErrorBody."""
    context_id: str = request.scope["sim.correlation_id"]
    return _problem_response(ApiProblem(404, f"No resource at {request.url.path}"), context_id)


class CorrelationMiddleware:
    """Outermost ASGI layer: correlation id on every response, raw `send` for resets, response counters."""

    def __init__(self, app: ASGIApp, sim: Simulation) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context_id = str(uuid.uuid4())
        scope["sim.correlation_id"] = context_id
        scope["sim.raw_send"] = send
        counted: list[bool] = []

        def count(outcome: str) -> None:
            route = scope.get("sim.route")
            if route and not counted:
                counted.append(True)
                self.sim.count(route, outcome)

        scope["sim.count"] = count

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Counted before the response leaves: a client that reads the counters right after its
                # response must find it counted (counting after the handler returned raced with it).
                count(str(message["status"]))
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"inin-correlation-id"]
                headers.append((CORRELATION_HEADER.encode(), context_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
        count("reset" if scope.get("sim.reset") else "0")  # no response started: a reset, or nothing sent


_DETAILS = "/api/v2/analytics/conversations/details"
API_ROUTES: tuple[tuple[str, str, ApiRoute], ...] = (
    ("POST", f"{_DETAILS}/query", ApiRoute("query", handle_query, _QUERY_PERMISSIONS)),
    ("GET", _DETAILS, ApiRoute("conversations", handle_conversations, _QUERY_PERMISSIONS)),
    ("GET", f"{_DETAILS}/jobs/availability", ApiRoute("availability", handle_availability, _JOB_PERMISSIONS)),
    ("POST", f"{_DETAILS}/jobs", ApiRoute("jobs_create", handle_job_create, _JOB_PERMISSIONS, mutating=True)),
    ("GET", f"{_DETAILS}/jobs/{{job_id}}", ApiRoute("job_status", handle_job_status, _JOB_PERMISSIONS)),
    (
        "DELETE",
        f"{_DETAILS}/jobs/{{job_id}}",
        ApiRoute("job_delete", handle_job_delete, _JOB_PERMISSIONS, mutating=True),
    ),
    (
        "GET",
        f"{_DETAILS}/jobs/{{job_id}}/results",
        ApiRoute("job_results", handle_job_results, _JOB_PERMISSIONS),
    ),
    (
        "GET",
        "/api/v2/analytics/conversations/{conversation_id}/details",
        ApiRoute("conversation", handle_conversation, _QUERY_PERMISSIONS),
    ),
)


def build_app(sim: Simulation, *, run_live: bool = True) -> ASGIApp:
    """The ASGI app for one simulation (the live generator runs while the app's lifespan is up)."""
    routes = [Route(path, api_endpoint(api), methods=[method]) for method, path, api in API_ROUTES]
    routes.append(Route("/oauth/token", token_endpoint, methods=["POST"]))
    routes.extend(admin.routes())
    routes.append(
        Route("/api/v2/{rest:path}", unknown_api_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(live_loop(sim)) if run_live else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    app.state.control = SimulatorControl(sim)
    return CorrelationMiddleware(app, sim)
