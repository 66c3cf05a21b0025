"""`--scenario cpu_profile`: where the connector's CPU goes (not part of the default run).

The `cpu` scenario's backlog is run once more with the connector under `cProfile` (stdlib; it slows the
process down, so this run is never the measured one) and with a `gc.callbacks` timer, through
`python -m bench.profiled_connector`. Internal time is then summed per module group (connector modules one
by one; httpx/httpcore/anyio/h11 as the HTTP client; orjson; sqlite3; librdkafka calls; asyncio;
imports) and printed as shares of the busy time (waiting in `epoll` is idle, not work). Garbage
collection is reported separately: cProfile charges it to whichever call allocated.

cProfile sees the main thread only; librdkafka's own threads (compression, network) are not in it.
"""

from __future__ import annotations

import json
import pstats
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.report import Row
from bench.scenarios import _run_details, _unlimited_run

IDLE = "idle (epoll wait)"


def _group(file: str, func: str) -> str:
    """The module group a profiled function belongs to."""
    if file == "~":
        if "epoll" in func or "select" in func:
            return IDLE
        for needle, group in (
            ("orjson.loads", "orjson.loads (parse responses)"),
            ("orjson.dumps", "orjson.dumps (canonical JSON)"),
            ("sqlite3", "sqlite3 (change store)"),
            ("cimpl", "confluent_kafka calls"),
            ("blake2b", "hashlib.blake2b"),
            ("_socket", "sockets"),
            ("compile", "imports (startup)"),
            ("marshal", "imports (startup)"),
            ("posix", "imports (startup)"),
        ):
            if needle in func:
                return group
        return "other built-ins"
    path = file.replace("\\", "/")
    if "/connector/" in path and "/site-packages/" not in path:
        module = path.rsplit("/connector/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"connector.{module}"
    for needle, group in (
        ("/httpx/", "httpx/httpcore/anyio/h11 (HTTP client)"),
        ("/httpcore/", "httpx/httpcore/anyio/h11 (HTTP client)"),
        ("/anyio/", "httpx/httpcore/anyio/h11 (HTTP client)"),
        ("/h11/", "httpx/httpcore/anyio/h11 (HTTP client)"),
        ("/asyncio/", "asyncio"),
        ("importlib", "imports (startup)"),
        ("<frozen", "imports (startup)"),
        ("/prometheus_client/", "prometheus_client"),
        ("/pydantic", "pydantic (config)"),
        ("/confluent_kafka/", "confluent_kafka (Python side)"),
        ("/logging/", "logging"),
    ):
        if needle in path:
            return group
    return "other Python"


def summarise(profile_path: Path, top: int = 14) -> list[tuple[str, float]]:
    """(group, internal seconds), busiest first; idle time last."""
    stats: dict[Any, Any] = pstats.Stats(str(profile_path)).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)
    for (file, _line, func), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        totals[_group(file, func)] += tottime
    idle = totals.pop(IDLE, 0.0)
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [*ranked, (IDLE, idle)]


def cpu_profile(ctx: Context) -> tuple[list[Row], dict[str, Any]]:
    """Profile the connector over the cpu scenario's backlog and print the busiest module groups."""
    n = ctx.profile.cpu_backlog
    ctx.say(f"cpu_profile: {n:,} conversations under cProfile (slower than the measured run)")
    out = ctx.workdir / "connector.prof"
    command = [sys.executable, "-m", "bench.profiled_connector", str(out)]
    m = _unlimited_run(ctx, "cpu_profile", n, command=command)
    return profile_rows(ctx, "cpu_profile", m, out)


def profile_rows(
    ctx: Context, scenario: str, m: dict[str, Any], out: Path
) -> tuple[list[Row], dict[str, Any]]:
    """Print the busiest module groups of a profiled run (`m` from a bounded run, `out` its profile)."""
    run = m.pop("run")
    ranked = summarise(out)
    gc_stats = json.loads(out.with_suffix(".gc.json").read_text(encoding="utf-8"))
    busy = sum(seconds for group, seconds in ranked if group != "idle (epoll wait)")
    ctx.say(f"{scenario}: busiest module groups (main thread, {busy:.1f} s busy; profile in {out}):")
    for group, seconds in ranked:
        share = "" if group == IDLE else f"{seconds / busy:6.1%}"
        ctx.say(f"    {group:<48} {seconds:7.2f} s {share}")
    ctx.say(
        f"    garbage collection (inside the above): {gc_stats['seconds']:.2f} s in "
        f"{sum(gc_stats['collections'])} collections {gc_stats['collections']}"
    )
    rows = [
        Row(
            scenario,
            "profiled process CPU per 1,000 conversations",
            run.cpu_s * 1000 / m["conversations"],
            "CPU-s",
            note="under cProfile: slower than the measured cpu scenario; see the printed breakdown",
        ),
        Row(scenario, "garbage collection share of process CPU", gc_stats["seconds"] / run.cpu_s, ""),
    ]
    details = {
        **m,
        **_run_details(run),
        "groups_s": {g: round(s, 3) for g, s in ranked},
        "gc": gc_stats,
        "profile_path": str(out),
    }
    return rows, details
