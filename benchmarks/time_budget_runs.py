#!/usr/bin/env python3
"""Crater runs under one --time budget, several seeds per variant, in parallel: final and best AP50, mean ± std.

The variants of issue 27's measurement: from scratch (the from-scratch plan), fine-tuned with the exp's own
settings (--recipe exp) and fine-tuned with the fine-tuning plan. Each run is a separate
tools/train_crater_device_aware.py process with its own thread count, so runs of one table share the machine
alike. Example (the command of docs/crater_recipe.md's table):

    python benchmarks/time_budget_runs.py --data-dir datasets/themis_mars --weights yolox_nano_coco_unfolded.pth \
        --time 8m --seeds 0 1 2 --jobs 9 --threads 1 --out runs/time_budget
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
NANO_EXP = REPO / "exps" / "crater" / "yolox_nano_crater.py"
VARIANTS = {
    "scratch": lambda weights: ["-c", "none"],
    "fine-tune, exp settings": lambda weights: ["-c", weights, "--recipe", "exp"],
    "fine-tune, plan": lambda weights: ["-c", weights],
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--weights", required=True, help="COCO nano weights with BatchNorm (see weights/README.md)")
    parser.add_argument("--time", default="8m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=3, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("-b", "--batch-size", default="8")
    parser.add_argument("--out", default="runs/time_budget")
    return parser


def run_one(args, variant: str, seed: int) -> Dict[str, object]:
    name = f"{variant.replace(', ', '_').replace(' ', '_')}_s{seed}"
    command = [sys.executable, str(REPO / "tools" / "train_crater_device_aware.py"), "-f", str(NANO_EXP),
               "--data-dir", args.data_dir, "--device", "cpu", "-b", args.batch_size, "--time", args.time,
               "-expn", name, *VARIANTS[variant](args.weights),
               "seed", str(seed), "output_dir", args.out, "data_num_workers", "1"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    started = time.time()
    with open(Path(args.out) / f"{name}.stdout", "w") as log:
        status = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    history = Path(args.out) / name / "eval_history.jsonl"
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()] if history.exists() else []
    return {"variant": variant, "seed": seed, "status": status, "wall_s": round(time.time() - started, 1),
            "epochs": rows[-1]["epoch"] if rows else 0, "final_AP50": rows[-1]["AP50"] if rows else None,
            "best_AP50": max((row["AP50"] for row in rows), default=None)}


def _mean_std(results: List[Dict[str, object]], key: str) -> str:
    if not results:
        return "-"
    values = [float(r[key]) for r in results]
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def summary(results: List[Dict[str, object]], variants: List[str]) -> str:
    table = []
    for variant in variants:
        done = [r for r in results if r["variant"] == variant and r["final_AP50"] is not None]
        table.append([variant, len(done), _mean_std(done, "final_AP50"), _mean_std(done, "best_AP50"),
                      "/".join(str(r["epochs"]) for r in done), max((r["wall_s"] for r in done), default="-")])
    return tabulate(table, ["variant", "seeds", "final AP50", "best AP50", "epochs", "longest wall s"],
                    tablefmt="github")


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    jobs = [(variant, seed) for seed in args.seeds for variant in args.variants]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(args, *job), jobs))
    for result in results:
        print(json.dumps(result))
    print(summary(results, args.variants))
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))
    return 0 if all(r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
