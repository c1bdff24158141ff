"""When the command started: the moment a --time budget counts from (no torch import here, so a command can ask
before it sets up the environment torch reads)."""
import time

import psutil

__all__ = ["process_started_at"]


def process_started_at() -> float:
    """When this process started (wall clock, seconds): the moment the user pressed enter, imports included."""
    try:
        return float(psutil.Process().create_time())
    except (psutil.Error, OSError):
        return time.time()
