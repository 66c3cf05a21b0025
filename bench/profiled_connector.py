"""`python -m bench.profiled_connector OUT.prof`: `python -m connector run` under cProfile, with GC timing.

Writes the cProfile stats to OUT.prof and `{"seconds": ..., "collections": [gen0, gen1, gen2]}` (CPU time
spent in the cyclic garbage collector) to OUT.gc.json when the connector exits, then exits with its code.
"""

from __future__ import annotations

import cProfile
import gc
import json
import runpy
import sys
import time
from pathlib import Path
from typing import Any


class GcTimer:
    """Accumulates CPU time spent in garbage collections (via gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
            return
        self.seconds += time.process_time() - self._started
        self.collections[int(info["generation"])] += 1


def main(out: Path) -> int:
    timer = GcTimer()
    gc.callbacks.append(timer)
    profiler = cProfile.Profile()
    sys.argv = ["connector", "run"]
    code = 0
    profiler.enable()
    try:
        runpy.run_module("connector", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        profiler.disable()
        gc.callbacks.remove(timer)
        profiler.dump_stats(str(out))
        out.with_suffix(".gc.json").write_text(
            json.dumps({"seconds": timer.seconds, "collections": timer.collections}), encoding="utf-8"
        )
    return code


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.profiled_connector OUT.prof")
    raise SystemExit(main(Path(sys.argv[1])))
