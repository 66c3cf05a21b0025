"""`python -m bench [--quick] [--scenario NAME ...]` (`make bench`): run, print one table, save JSON.

One embedded Kafka broker serves the whole invocation; every scenario starts its own simulator process
and connector process (see docs/benchmark.md). A scenario that fails is reported as failed (with the
reason) and the others still run; the exit code is 0 when every scenario ran and every target was met,
1 when a target was missed, 2 when a scenario could not run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import Context, ScenarioError
from bench.harness import scratch_dir
from bench.horizon import downtime, freshness
from bench.jobs import jobs, jobs_cpu, jobs_cpu_profile
from bench.live import live
from bench.profiles import PROFILES
from bench.profiling import cpu_profile
from bench.report import Report, Row, print_table
from bench.scenarios import cpu, naive, rescans, rss, throughput

Scenario = Callable[[Context], tuple[list[Row], dict[str, Any]]]

#: In run order: the naive loop runs after the throughput run so it can report the ratio.
SCENARIOS: dict[str, Scenario] = {
    "throughput": throughput,
    "naive": naive,
    "cpu": cpu,
    "rss": rss,
    "rescans": rescans,
    "downtime": downtime,  # after rescans: its ratio uses the first-pass cost measured there
    "jobs": jobs,  # the jobs path next to the query path (issue 11)
    "jobs_cpu": jobs_cpu,
    "live": live,
    "freshness": freshness,
}
EXTRA: dict[str, Scenario] = {"cpu_profile": cpu_profile, "jobs_cpu_profile": jobs_cpu_profile}
RESULTS_DIR = Path(__file__).parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput, CPU and memory benchmark of the connector against the simulator and a real "
        "Kafka broker. Prints one table and saves it as JSON under bench/results/.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="higher limit, lower latency, smaller backlogs (~8-9 min)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *EXTRA],
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join([*SCENARIOS, *EXTRA])}",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="where to save the JSON (bench/results)"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep logs and connector state in this directory (default: a temp dir)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = PROFILES["quick" if args.quick else "default"]
    names = args.scenario or list(SCENARIOS)
    ordered = [n for n in [*SCENARIOS, *EXTRA] if n in names]
    report = Report(profile=profile.to_dict(), started_at=datetime.now(UTC))
    began = time.monotonic()
    out = sys.stdout

    from connector.testbed.broker import EmbeddedKafka

    with scratch_dir(args.keep) as workdir, EmbeddedKafka(num_partitions=3) as kafka:
        ctx = Context(profile=profile, kafka=kafka, workdir=workdir, out=out)
        ctx.say(f"profile {profile.name}: scenarios {', '.join(ordered)}; broker {kafka.bootstrap_servers}")
        for name in ordered:
            started = time.monotonic()
            try:
                rows, details = {**SCENARIOS, **EXTRA}[name](ctx)
            except ScenarioError as exc:
                report.failures[name] = str(exc).splitlines()[0]
                ctx.say(f"{name}: FAILED: {exc}")
                continue
            except Exception as exc:
                report.failures[name] = f"{type(exc).__name__}: {exc}"
                ctx.say(f"{name}: FAILED:\n{traceback.format_exc()}")
                continue
            details["scenario_wall_s"] = round(time.monotonic() - started, 1)
            report.add(rows, details, scenario=name)
            ctx.say(f"{name}: done in {details['scenario_wall_s']:.0f} s")
    report.finished_at = datetime.now(UTC)
    out.write(f"\nBenchmark ({profile.name} profile), {time.monotonic() - began:.0f} s:\n")
    print_table(report, out)
    path = report.save(args.out)
    out.write(f"saved {path}\n")
    if report.failures:
        return 2
    return 0 if all(r.ok is not False for r in report.rows) else 1
