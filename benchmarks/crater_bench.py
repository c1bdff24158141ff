#!/usr/bin/env python3
"""Train one crater recipe with several seeds and report AP at the best and final checkpoints.

Each seed is one run of tools/train_crater_device_aware.py in its own process (a failing seed is
reported, the others go on); the figures come from the run's run_summary.json. Results are JSON
lines (one per seed plus one summary per recipe) in --out and on stdout, and a table:

    python benchmarks/crater_bench.py --name base --data-dir D --parallel 3 -- -f exps/crater/yolox_s_crater.py \\
        -b 16 -c none input_size 416,416 test_size 416,416
    python benchmarks/crater_bench.py --summarize bench.jsonl other.jsonl     # compare recipes
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

from yolox.utils.user_errors import CLIParser, run_cli

# the crater command as a module, so it is found the same way installed and in a checkout
CRATER_COMMAND = [sys.executable, "-m", "yolox.tools.train_crater_device_aware"]
METRICS = ("best_AP50", "best_AP50_95", "final_AP50", "final_AP50_95")


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("crater_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="recipe", help="tag of this recipe in the JSON lines and tables")
    parser.add_argument("--seeds", default="3", help="a count K (seeds 0..K-1) or a list such as 0,1,2")
    parser.add_argument("--data-dir", default=None, help="crater data folder, passed to the crater script")
    parser.add_argument("--parallel", type=int, default=1, help="seeds trained at once (processes on one GPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers per process (default: the CPU cores shared out over --parallel)")
    parser.add_argument("--output-dir", default="./YOLOX_outputs/crater_bench", help="run folders go here")
    parser.add_argument("--out", default=None, help="JSON lines file to append to (default <output-dir>/<name>.jsonl)")
    parser.add_argument("--summarize", nargs="+", metavar="FILE", help="only print the table of these JSON lines files")
    parser.add_argument("train_args", nargs=argparse.REMAINDER,
                        help="after --: crater script arguments and KEY VALUE exp overrides")
    return parser


def parse_seeds(text: str) -> List[int]:
    """'3' -> [0, 1, 2]; '0,4' -> [0, 4]."""
    pieces = [piece.strip() for piece in str(text).split(",") if piece.strip()]
    try:
        values = [int(piece) for piece in pieces]
    except ValueError:
        raise SystemExit(f"--seeds {text!r}: give a count (3) or comma-separated seeds (0,1,2)") from None
    if len(values) == 1 and "," not in str(text):
        if values[0] < 1:
            raise SystemExit(f"--seeds {text}: the count must be at least 1; for seed 0 alone give --seeds 0,")
        return list(range(values[0]))
    return values


def seed_command(args, seed: int, workers: Optional[int]) -> List[str]:
    """The crater script's command line for one seed: its options first, the KEY VALUE overrides last."""
    command = [*CRATER_COMMAND, "-expn", f"{args.name}_seed{seed}"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    command += [arg for arg in args.train_args if arg != "--"]
    command += ["seed", str(seed), "output_dir", args.output_dir]
    if workers is not None:
        command += ["data_num_workers", str(workers)]
    return command


def run_seed(args, seed: int, workers: Optional[int]) -> Dict:
    """Train one seed in a child process; its JSON row (with `error` when it failed)."""
    run_dir = os.path.join(args.output_dir, f"{args.name}_seed{seed}")
    os.makedirs(run_dir, exist_ok=True)
    command = seed_command(args, seed, workers)
    started = time.time()
    with open(os.path.join(run_dir, "bench_stdout.txt"), "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
    wall = time.time() - started
    row = {"kind": "seed", "name": args.name, "seed": seed, "run_dir": run_dir, "wall_seconds": round(wall, 1),
           "command": " ".join(command)}
    summary_file = os.path.join(run_dir, "run_summary.json")
    if code != 0 or not os.path.isfile(summary_file):
        row["error"] = f"exit code {code}; see {os.path.join(run_dir, 'bench_stdout.txt')}"
        return row
    with open(summary_file) as handle:
        return dict(row, **seed_figures(json.load(handle)))


def seed_figures(summary: Dict) -> Dict:
    """The bench's figures of one run_summary.json."""
    best, final = summary["best"], summary["final"]
    return {"best_AP50": best["AP50"], "best_AP50_95": best["AP50:95"], "best_epoch": best["epoch"],
            "final_AP50": final["AP50"], "final_AP50_95": final["AP50:95"], "final_epoch": final["epoch"],
            "epochs": summary["max_epoch"], "batch": summary["batch"], "img_per_s": round(summary["img_per_s"], 1),
            "train_seconds": summary["train_seconds"]}


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def recipe_summary(name: str, rows: Sequence[Dict]) -> Dict:
    """Mean ± std of every metric over the seeds that finished, and the seeds that failed."""
    done = [row for row in rows if "error" not in row]
    summary = {"kind": "summary", "name": name, "seeds": [row["seed"] for row in done],
               "failed": [row["seed"] for row in rows if "error" in row]}
    for key in (*METRICS, "img_per_s", "wall_seconds"):
        if done:
            summary[key] = mean_std([row[key] for row in done])
    if done:
        summary["epochs"] = done[0]["epochs"]
    return summary


def format_table(rows: Sequence[Dict]) -> str:
    """Per-seed rows and per-recipe mean ± std rows as one table."""
    from tabulate import tabulate

    headers = ["recipe", "seed", "best AP50", "best AP50:95", "best ep", "final AP50", "final AP50:95",
               "final ep", "epochs", "img/s", "wall s"]
    table = []
    for row in rows:
        if row["kind"] == "seed" and "error" in row:
            table.append([row["name"], row["seed"], f"FAILED: {row['error']}"] + [""] * 8)
        elif row["kind"] == "seed":
            table.append([row["name"], row["seed"], *(f"{row[key]:.3f}" for key in METRICS[:2]), row["best_epoch"],
                          *(f"{row[key]:.3f}" for key in METRICS[2:]), row["final_epoch"], row["epochs"],
                          row["img_per_s"], row["wall_seconds"]])
        elif "best_AP50" in row:
            spread = [f"{row[key]['mean']:.3f} ± {row[key]['std']:.3f}" for key in METRICS]
            table.append([row["name"], f"mean of {len(row['seeds'])}", *spread[:2], "", *spread[2:], "",
                          row.get("epochs", ""), f"{row['img_per_s']['mean']:.1f}",
                          f"{row['wall_seconds']['mean']:.0f}"])
    return tabulate(table, headers=headers, tablefmt="github")


def read_rows(paths: Sequence[str]) -> List[Dict]:
    rows = []
    for path in paths:
        if not os.path.isfile(path):
            raise SystemExit(f"--summarize {path}: no such file; give JSON lines files written by crater_bench")
        with open(path) as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def bench(args) -> List[Dict]:
    seeds = parse_seeds(args.seeds)
    parallel = max(1, min(args.parallel, len(seeds)))
    workers = args.workers
    if workers is None and parallel > 1:
        workers = max(1, (os.cpu_count() or 2) // parallel - 1)
    out_path = args.out or os.path.join(args.output_dir, f"{args.name}.jsonl")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    rows = []

    def record(row: Dict) -> None:
        rows.append(row)
        with open(out_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    print(f"crater_bench {args.name}: seeds {seeds}, {parallel} at once, output {out_path}", flush=True)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for row in pool.map(lambda seed: run_seed(args, seed, workers), seeds):
            record(row)
    record(recipe_summary(args.name, rows))
    return rows


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = make_parser().parse_args(argv)
    if args.summarize:
        rows = read_rows(args.summarize)
    else:
        rows = bench(args)
    print(format_table(rows), flush=True)
    return rows


if __name__ == "__main__":
    run_cli(main)
