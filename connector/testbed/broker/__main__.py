"""`python -m connector.testbed.broker fetch | run`: fill the jar cache, or run a broker in the foreground.

`fetch` is what `make kafka` runs. `run` prints `KAFKA_BOOTSTRAP=127.0.0.1:PORT` once the broker is ready
and stops it on Ctrl-C or SIGTERM. Exit codes: 0 success, 1 the broker could not be fetched or started.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from connector.errors import BrokerError
from connector.testbed.broker.fetch import fetch_jars
from connector.testbed.broker.launcher import EmbeddedKafka


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connector.testbed.broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = sub.add_parser("fetch", help="resolve the broker jars from Maven Central into the cache")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="cache root (default: .cache/kafka)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the cache is complete")
    run = sub.add_parser("run", help="start a broker in the foreground until Ctrl-C / SIGTERM")
    run.add_argument("--partitions", type=int, default=1, help="num.partitions for new topics")
    run.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME[:PARTITIONS]",
        help="create this topic once the broker is up (repeatable)",
    )
    run.add_argument("--work-dir", type=Path, default=None, help="keep config, data and log here")
    return parser


def _fetch(args: argparse.Namespace) -> int:
    result = fetch_jars(args.cache_dir, force=args.force)
    what = "fetched" if result.fetched else "already complete"
    print(f"Kafka broker jars {what}: {result.jar_count} jars in {result.lib_dir} ({result.seconds:.1f} s)")
    return 0


def _parse_topic(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    if not name or (count and not count.isdigit()):
        raise BrokerError(f"bad --topic {spec!r}: expected NAME or NAME:PARTITIONS")
    return name, int(count or 1)


def _run(args: argparse.Namespace) -> int:
    topics = [_parse_topic(spec) for spec in args.topic]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with EmbeddedKafka(work_dir=args.work_dir, num_partitions=args.partitions) as kafka:
        for name, partitions in topics:
            kafka.create_topic(name, partitions, exist_ok=True)
        print(f"KAFKA_BOOTSTRAP={kafka.bootstrap_servers}", flush=True)
        print(f"broker log: {kafka.log_path} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            if kafka.pid is None:
                print("the Kafka broker exited unexpectedly", file=sys.stderr)
                return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; BrokerError becomes a one-paragraph message and exit code 1."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _fetch(args) if args.command == "fetch" else _run(args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
