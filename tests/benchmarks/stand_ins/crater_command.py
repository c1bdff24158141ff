"""Stand-in for the crater command in tests of benchmarks/user_clock.py: a fake run folder, a short sleep.

Its run folder (output_dir/-expn) gets two evaluations (the first flagged best), a wall_clock.json with some
keys left out, and argv.json (the words it was given). STAND_IN_SLEEP sets the sleep in seconds;
STAND_IN_FAIL_SEED makes that seed exit with status 3 after writing its folder.
"""
import json
import os
import sys
import time
from pathlib import Path
from typing import List


def value_after(argv: List[str], word: str) -> str:
    return argv[argv.index(word) + 1]


def main(argv: List[str]) -> int:
    seed = int(value_after(argv, "seed"))
    run_dir = Path(value_after(argv, "output_dir")) / value_after(argv, "-expn")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "argv.json").write_text(json.dumps(argv))
    rows = [{"epoch": 1, "AP50": 0.2 + seed / 100, "AP50:95": 0.1, "best": True},
            {"epoch": 2, "AP50": 0.3 + seed / 100, "AP50:95": 0.05, "best": False}]
    (run_dir / "eval_history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    clock = {"budget_s": 1.0, "wall_s": 0.1, "epochs": 2, "images": 40, "batch_size": 8,
             "phases_s": {"startup": 5.0 + seed, "train_steps": 40.0}}
    (run_dir / "wall_clock.json").write_text(json.dumps(clock))
    time.sleep(float(os.environ.get("STAND_IN_SLEEP", "0.1")))
    return 3 if os.environ.get("STAND_IN_FAIL_SEED") == str(seed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
