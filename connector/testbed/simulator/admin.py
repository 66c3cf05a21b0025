"""Admin routes under `/_sim/` (never under /api/v2): the HTTP face of `SimulatorControl`.

- GET /_sim/health -> {status, conversations, now}; GET /_sim/config (no secrets); GET /_sim/catalog (ids)
- GET /_sim/truth?start=&end=&records=true&ended_only=false -> {count, conversations: [{conversationId,
  version, conversationStart, conversationEnd?, record?}]} for conversations started in [start, end)
- GET /_sim/conversations/{id} -> {conversationId, version, record} (404 if unknown)
- POST /_sim/conversations {count, start, spacing_s?, duration_s?, media_type?, scenario?, queue_id?}
  -> {conversationIds}
- POST /_sim/mutate {conversation_id, kind?} -> {version}; POST /_sim/tick -> {applied}
- GET|POST /_sim/clock {advance_s} -> {now}
- POST /_sim/live (alias /_sim/volume) {rate_per_minute?, duration_s?, ingest_delay_s?, paused?, delays?}
- GET|POST /_sim/faults {script?: [...], probabilities?: {...}, route?: "api", clear?: bool} -> {pending}
- GET /_sim/counters -> {counters: {route: {status: n}}}; POST /_sim/counters/reset
- POST /_sim/ratelimit {limit, window_s?}; POST /_sim/latency {mean_ms, jitter_ms?}
- POST /_sim/paging {total_hits_jitter?, duplicate_probability?, fixed_total_hits? (int >= 0 | "off")}
- GET /_sim/tokens -> {tokens: [...]} every bearer token issued so far (to check none leaked)
- POST /_sim/revoke {token?, client_id?} -> {revoked}
- POST /_sim/clients {client_id, client_secret, permissions?}
- POST /_sim/jobs/fail {count?, message?} (the next jobs fail) or {job_id, message?} (that job fails now)
- POST /_sim/jobs/expire {job_id?} -> {expired}; POST /_sim/jobs/settings {max_concurrent?,
  max_interval_days?, failure_probability?, queued_s?, pending_s?, ttl_s?}
- GET|POST /_sim/datalake {lag_s?, step_s?, pin?, unpin?} -> {dataAvailabilityDate, lag_s, step_s, pinned}
- POST /_sim/index {unstable_tie_order?, late_index_probability?, late_index_delay_s?, start_granularity_s?}
- GET /_sim/late?start=&end= -> {count, conversations: [{conversationId, indexedAt}]}

Bad input -> 400 `{"message": ...}` naming the problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.testbed.simulator.auth import ALL_PERMISSIONS
from connector.testbed.simulator.control import SimulatorControl
from connector.testbed.simulator.isotime import format_ms, to_ms

AdminHandler = Callable[[SimulatorControl, Request, dict[str, Any]], Any]


def _ok(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"'{value}' is not a boolean (use true or false)")


def admin(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """Parse the JSON body, call the handler with the control API, map ValueError/KeyError to 400/404."""

    async def endpoint(request: Request) -> Response:
        control: SimulatorControl = request.app.state.control
        try:
            raw = await request.body() if request.method == "POST" else b""
            body = orjson.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return _ok(handler(control, request, body))
        except orjson.JSONDecodeError:
            return _ok({"message": "the body is not valid JSON"}, 400)
        except KeyError as exc:
            return _ok({"message": f"not found: {exc.args[0]}"}, 404)
        except (ValueError, TypeError) as exc:
            return _ok({"message": str(exc)}, 400)

    return endpoint


def _health(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return {"status": "ok", "conversations": c.conversation_count(), "now": format_ms(to_ms(c.now()))}


def _config(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return c.simulation.config.public_dict()


def _catalog(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return c.catalog()


def _truth(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    q = r.query_params
    if "start" not in q or "end" not in q:
        raise ValueError("start and end query parameters are required (ISO-8601)")
    rows = c.truth(
        q["start"],
        q["end"],
        records=_flag(q.get("records"), True),
        ended_only=_flag(q.get("ended_only"), False),
        attributes=_flag(q.get("attributes"), False),
    )
    return {"count": len(rows), "conversations": rows}


def _conversation(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    cid = r.path_params["conversation_id"]
    record = c.record(cid)
    if record is None:
        raise KeyError(cid)
    return {"conversationId": cid, "version": c.version(cid), "record": record}


def _add(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if "count" not in b or "start" not in b:
        raise ValueError("count and start are required")
    options = {k: b[k] for k in ("spacing_s", "duration_s", "media_type", "scenario", "queue_id") if k in b}
    return {"conversationIds": c.add_conversations(int(b["count"]), b["start"], **options)}


def _mutate(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if "conversation_id" not in b:
        raise ValueError("conversation_id is required")
    return {"version": c.mutate(b["conversation_id"], b.get("kind"))}


def _tick(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return {"applied": c.tick()}


def _clock(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if r.method == "POST":
        c.advance_clock(float(b.get("advance_s", 0)))
    return {"now": format_ms(to_ms(c.now()))}


def _live(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if "rate_per_minute" in b or "duration_s" in b or "ingest_delay_s" in b:
        rate = b.get("rate_per_minute", c.simulation.live.rate_per_minute)
        c.set_live_rate(float(rate), duration_s=b.get("duration_s"), ingest_delay_s=b.get("ingest_delay_s"))
    if "paused" in b:
        (c.pause_live if b["paused"] else c.resume_live)()
    if b.get("delays"):
        c.set_delays(**b["delays"])
    return {"ok": True}


def _faults(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if r.method == "POST":
        route = b.get("route", "api")
        if b.get("clear"):
            c.clear_faults()
        if "probabilities" in b:
            c.set_faults(b["probabilities"], route=route)
        if "script" in b:
            c.script_faults(list(b["script"]), route=route)
    return {"pending": c.pending_faults()}


def _counters(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return {"counters": c.counters()}


def _reset_counters(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    c.reset_counters()
    return {"ok": True}


def _ratelimit(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    c.set_rate_limit(int(b["limit"]), float(b.get("window_s", 60.0)))
    return {"ok": True}


def _latency(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    c.set_latency(float(b.get("mean_ms", 0.0)), float(b.get("jitter_ms", 0.0)))
    return {"ok": True}


def _paging(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    c.set_paging(
        total_hits_jitter=b.get("total_hits_jitter"),
        duplicate_probability=b.get("duplicate_probability"),
        fixed_total_hits=b.get("fixed_total_hits"),
    )
    return {"ok": True}


def _tokens(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return {"tokens": c.issued_tokens()}


def _revoke(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    return {"revoked": c.revoke_tokens(token=b.get("token"), client_id=b.get("client_id"))}


def _clients(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if "client_id" not in b or "client_secret" not in b:
        raise ValueError("client_id and client_secret are required")
    c.add_client(str(b["client_id"]), str(b["client_secret"]), tuple(b.get("permissions", ALL_PERMISSIONS)))
    return {"ok": True}


def _fail_jobs(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    message = str(b.get("message", "Internal error while running the query"))
    if "job_id" in b:
        c.fail_job(str(b["job_id"]), message)
    else:
        c.fail_next_jobs(int(b.get("count", 1)), message)
    return {"ok": True}


def _expire_jobs(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    job_id = b.get("job_id")
    return {"expired": c.expire_jobs(None if job_id is None else str(job_id))}


_JOB_SETTINGS = (
    "max_concurrent",
    "max_interval_days",
    "failure_probability",
    "queued_s",
    "pending_s",
    "ttl_s",
)


def _number(b: dict[str, Any], key: str) -> float | None:
    value = b.get(key)
    return None if value is None else float(value)


def _known_keys(b: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = set(b) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; use {', '.join(allowed)}")


def _job_settings(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    _known_keys(b, _JOB_SETTINGS, "job settings")
    concurrent = _number(b, "max_concurrent")
    c.set_job_settings(
        max_concurrent=None if concurrent is None else int(concurrent),
        max_interval_days=_number(b, "max_interval_days"),
        failure_probability=_number(b, "failure_probability"),
        queued_s=_number(b, "queued_s"),
        pending_s=_number(b, "pending_s"),
        ttl_s=_number(b, "ttl_s"),
    )
    return {"ok": True}


def _datalake(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    if r.method == "POST":
        _known_keys(b, ("lag_s", "step_s", "pin", "unpin"), "data lake settings")
        c.set_data_lake(
            lag_s=_number(b, "lag_s"),
            step_s=_number(b, "step_s"),
            pin=b.get("pin"),
            unpin=bool(b.get("unpin", False)),
        )
    return c.data_lake()


_INDEX_SETTINGS = (
    "unstable_tie_order",
    "late_index_probability",
    "late_index_delay_s",
    "start_granularity_s",
)


def _index(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    _known_keys(b, _INDEX_SETTINGS, "index settings")
    tie = b.get("unstable_tie_order")
    if tie is not None and not isinstance(tie, bool):
        raise ValueError("unstable_tie_order must be true or false")
    c.set_indexing(
        unstable_tie_order=tie,
        late_index_probability=_number(b, "late_index_probability"),
        late_index_delay_s=_number(b, "late_index_delay_s"),
        start_granularity_s=_number(b, "start_granularity_s"),
    )
    return {"ok": True}


def _late(c: SimulatorControl, r: Request, b: dict[str, Any]) -> Any:
    q = r.query_params
    if "start" not in q or "end" not in q:
        raise ValueError("start and end query parameters are required (ISO-8601)")
    rows = [
        {"conversationId": cid, "indexedAt": format_ms(to_ms(at))}
        for cid, at in c.late_indexed(q["start"], q["end"]).items()
    ]
    return {"count": len(rows), "conversations": rows}


def routes() -> list[Route]:
    """Every admin route."""
    table: list[tuple[str, AdminHandler, list[str]]] = [
        ("/_sim/health", _health, ["GET"]),
        ("/_sim/config", _config, ["GET"]),
        ("/_sim/catalog", _catalog, ["GET"]),
        ("/_sim/truth", _truth, ["GET"]),
        ("/_sim/conversations/{conversation_id}", _conversation, ["GET"]),
        ("/_sim/conversations", _add, ["POST"]),
        ("/_sim/mutate", _mutate, ["POST"]),
        ("/_sim/tick", _tick, ["POST"]),
        ("/_sim/clock", _clock, ["GET", "POST"]),
        ("/_sim/live", _live, ["POST"]),
        ("/_sim/volume", _live, ["POST"]),
        ("/_sim/faults", _faults, ["GET", "POST"]),
        ("/_sim/counters", _counters, ["GET"]),
        ("/_sim/counters/reset", _reset_counters, ["POST"]),
        ("/_sim/ratelimit", _ratelimit, ["POST"]),
        ("/_sim/latency", _latency, ["POST"]),
        ("/_sim/paging", _paging, ["POST"]),
        ("/_sim/tokens", _tokens, ["GET"]),
        ("/_sim/revoke", _revoke, ["POST"]),
        ("/_sim/clients", _clients, ["POST"]),
        ("/_sim/jobs/fail", _fail_jobs, ["POST"]),
        ("/_sim/jobs/expire", _expire_jobs, ["POST"]),
        ("/_sim/jobs/settings", _job_settings, ["POST"]),
        ("/_sim/datalake", _datalake, ["GET", "POST"]),
        ("/_sim/index", _index, ["POST"]),
        ("/_sim/late", _late, ["GET"]),
    ]
    return [Route(path, admin(handler), methods=methods) for path, handler, methods in table]
