"""The per-evaluation record of a training run (eval_history.jsonl in its output folder).

One JSON object per line: epoch, AP50, AP50:95, whether it became the best checkpoint, and the
training progress at that point (iteration, images seen, seconds spent training).
"""
import json
import os
from typing import Dict, List, Optional

from loguru import logger

__all__ = ["EVAL_HISTORY_FILE", "append_eval", "read_eval_history", "reset_eval_history", "best_and_final"]

EVAL_HISTORY_FILE = "eval_history.jsonl"


def history_path(run_dir: str) -> str:
    return os.path.join(run_dir, EVAL_HISTORY_FILE)


def read_eval_history(run_dir: str) -> List[Dict]:
    """The rows of run_dir's history, oldest first; [] when there is none yet. An unfinished last line (its
    append was killed) is dropped with a warning, so the run still resumes; a bad line elsewhere is an error."""
    path = history_path(run_dir)
    if not os.path.isfile(path):
        return []
    with open(path) as handle:
        *lines, last = handle.read().split("\n")  # `last` is "" when the file ends with a newline
    rows = [_parse_row(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if last.strip():
        try:
            rows.append(json.loads(last))
        except json.JSONDecodeError:
            logger.warning(f"{path}: dropped its unfinished last line (a killed run was writing it): {last[:80]!r}")
    return rows


def _parse_row(path: str, number: int, line: str) -> Dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} line {number} is not JSON ({error}): delete the line or the file") from None


def reset_eval_history(run_dir: str, keep_through_epoch: int = 0) -> None:
    """Drop the rows after `keep_through_epoch` (0: all), so a resumed or repeated run does not mix in stale ones."""
    kept = [row for row in read_eval_history(run_dir) if row["epoch"] <= keep_through_epoch]
    path = history_path(run_dir)
    if not kept:
        if os.path.exists(path):
            os.remove(path)
        return
    # a temporary file renamed over the history: a kill while it is written leaves the old rows, not none
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def append_eval(run_dir: str, row: Dict) -> None:
    with open(history_path(run_dir), "a") as handle:
        handle.write(json.dumps(row) + "\n")


def best_and_final(rows: List[Dict]) -> Optional[Dict[str, Dict]]:
    """{"best": the row saved as best_ckpt.pth, "final": the last row}; None without rows.

    The best is the last row flagged `best` (the trainer's rule: highest AP50:95 so far), or the
    highest AP50:95 when no row carries the flag.
    """
    if not rows:
        return None
    flagged = [row for row in rows if row.get("best")]
    best = flagged[-1] if flagged else max(rows, key=lambda row: row["AP50:95"])
    return {"best": best, "final": rows[-1]}
