"""How long one change-store prune takes at 1M rows, with the `last_seen` index and without it.

`python -m bench.prune [--rows 1000000]` builds a store of `--rows` conversations in a temporary directory,
`ROUNDS` generations of 1 % of them older than the horizon (what expires between two prunes of a busy
store), and times, as the median of `ROUNDS` runs each:

- a prune that deletes one generation, and one with nothing to delete: now `ChangeStore.prune()` (the
  indexed, chunked delete the connector runs every 10 minutes in a worker thread), before one unindexed
  full-table DELETE (what ran on every checkpoint save, on the event loop);
- one page of acks (100 upserts in one transaction): what the index costs the write path.

Prints the figures; asserts nothing. The machine's load shows in the figures: run it twice.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector.state.changes import CHANGES_FILE, ChangeStore

NOW = datetime(2026, 5, 1, tzinfo=UTC)
HORIZON = timedelta(days=4)
ROUNDS = 5
GENERATION = 0.01  # share of the rows expiring between two prunes


def _cutoff(generation: int) -> datetime:
    """Prune cutoff that expires generations 0..`generation`."""
    return NOW - HORIZON - timedelta(minutes=10 * (ROUNDS - 1 - generation))


def _fill(store: ChangeStore, rows: int) -> None:
    """`rows` entries: `ROUNDS` old generations of `GENERATION` each (just before their cutoff), the rest
    recent."""
    old = int(rows * GENERATION)
    spans = [(g * old, (g + 1) * old, _cutoff(g) - timedelta(seconds=1)) for g in range(ROUNDS)]
    spans.append((ROUNDS * old, rows, NOW))
    for first, last, seen in spans:
        for start in range(first, last, 10_000):
            ids = range(start, min(last, start + 10_000))
            store.put_many(((f"conv-{i:08d}", f"{i:032x}", None) for i in ids), seen)


def _timed(directory: Path, action: Callable[[], object]) -> float:
    """ms taken by `action`, after flushing the WAL into the database (no auto-checkpoint lands in it)."""
    raw = sqlite3.connect(directory / CHANGES_FILE, isolation_level=None)
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _measure(
    directory: Path, prune: Callable[[datetime], object], write: Callable[[int], object]
) -> list[float]:
    """Medians in ms: [prune one generation, prune nothing, 100 upserts]."""
    deleting = [_timed(directory, lambda g=g: prune(_cutoff(g))) for g in range(ROUNDS)]
    idle = [_timed(directory, lambda: prune(_cutoff(ROUNDS - 1))) for _ in range(ROUNDS)]
    writes = [_timed(directory, lambda r=r: write(r)) for r in range(ROUNDS)]
    return [statistics.median(x) for x in (deleting, idle, writes)]


def _write(store: ChangeStore, round_no: int) -> None:
    store.put_many(((f"new-{round_no}-{i}", "h", None) for i in range(100)), NOW)


def _indexed(directory: Path, rows: int) -> list[float]:
    with ChangeStore(directory) as store:
        _fill(store, rows)
        return _measure(directory, store.prune, lambda r: _write(store, r))


def _unindexed(directory: Path, rows: int) -> list[float]:
    with ChangeStore(directory) as store:
        _fill(store, rows)
        raw = sqlite3.connect(directory / CHANGES_FILE, isolation_level=None)
        try:
            raw.execute("DROP INDEX changes_last_seen")

            def prune(cutoff: datetime) -> None:
                raw.execute("DELETE FROM changes WHERE last_seen < ?", (cutoff.timestamp(),))

            return _measure(directory, prune, lambda r: _write(store, r))
        finally:
            raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "now").mkdir()
        (Path(tmp) / "before").mkdir()
        now = _indexed(Path(tmp) / "now", args.rows)
        before = _unindexed(Path(tmp) / "before", args.rows)
    print(f"change store, {args.rows:,} rows; median of {ROUNDS} runs, ms")
    print(f"  {'':44}{'indexed, chunked':>17}{'no index (before)':>19}")
    labels = (
        f"prune deleting {GENERATION:.0%} of the rows",
        "prune with nothing to delete",
        "one page of acks (100 upserts)",
    )
    for label, a, b in zip(labels, now, before, strict=True):
        print(f"  {label:44}{a:17.1f}{b:19.1f}")


if __name__ == "__main__":
    main()
