"""Stand-in for peer_ultralytics.py in tests of benchmarks/user_clock.py: its flags, its outputs, no training.

Writes three epochs to STAND_IN_SCRATCH/ul_runs_<model>_s<seed>/run/results.csv (where the real script's
Ultralytics run writes them, under /tmp), its arguments to OUT/argv_s<seed>.json, and prints its JSON line.
"""
import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--data", "--out", "--model", "--device"):
        parser.add_argument(flag)
    for flag in ("--epochs", "--batch", "--imgsz", "--seed"):
        parser.add_argument(flag, type=int)
    parser.add_argument("--time", type=float)
    args = parser.parse_args()
    run_dir = Path(os.environ["STAND_IN_SCRATCH"]) / f"ul_runs_{args.model.split('.')[0]}_s{args.seed}" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.csv").write_text("epoch,time,metrics/mAP50(B)\n1,1.0,0.1\n2,2.0,0.2\n3,3.0,0.3\n")
    (Path(args.out) / f"argv_s{args.seed}.json").write_text(json.dumps(vars(args)))
    time.sleep(0.1)
    print("Ultralytics progress lines\n{not json")
    print(json.dumps({"what": "ultralytics_holdout", "seed": args.seed, "ap50_maxdet100": 0.4 + args.seed / 100,
                      "ap50_maxdet1000": 0.41}), flush=True)


if __name__ == "__main__":
    main()
