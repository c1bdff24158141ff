"""Where a run's wall time went, from the command's start: written to `wall_clock.json` in the run folder.

Phases: start-up (from the process start to the first training step: imports, dataset check, batch probe, model
build, loader start), training steps, data wait (batches not ready), host syncs (device reads for the log),
evaluation, checkpoints, teardown (stopping the loader's workers), and the rest ("other": epoch ends, logging). A benchmark adds what follows training
(report, plots, exit) from its own clock.
"""
import contextlib
import json
import os
import time
from collections import defaultdict
from typing import Dict, Iterator, Optional

__all__ = ["WallClock", "WALL_CLOCK_FILE", "PHASES"]

WALL_CLOCK_FILE = "wall_clock.json"
PHASES = ("startup", "train_steps", "data_wait", "host_sync", "evaluation", "checkpoints", "teardown")


class WallClock:
    """Seconds per phase of one run whose command started at `started_at` (wall clock)."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.seconds: Dict[str, float] = defaultdict(float)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += max(0.0, seconds)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def elapsed(self) -> float:
        return time.time() - self.started_at

    def figures(self, **counts: Optional[float]) -> dict:
        """The wall so far, each phase and what the phases leave unexplained ("other"), with `counts`."""
        wall = self.elapsed()
        phases = {name: round(self.seconds.get(name, 0.0), 3) for name in PHASES}
        phases["other"] = round(max(0.0, wall - sum(phases.values())), 3)
        return {**counts, "wall_s": round(wall, 3), "phases_s": phases}

    def write(self, run_dir: str, **counts: Optional[float]) -> str:
        """Write the figures to run_dir/wall_clock.json (atomically); returns the path."""
        path = os.path.join(run_dir, WALL_CLOCK_FILE)
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "w") as handle:
            json.dump(self.figures(**counts), handle, indent=1)
        os.replace(temporary, path)
        return path
