#!/usr/bin/env python3
"""What the user sees: the crater command as typed with --time, timed from its start to its exit, beside
Ultralytics YOLO with the same budget (../shared/tools/peer_ultralytics.py), per seed, one training at a time.

Each run is a child process timed from just before it starts to its exit. Then it reads what the run left: our
run folder's eval_history.jsonl and wall_clock.json (where the wall went), the peer's JSON line and its
results.csv. It prints one markdown table (per seed, then mean ± std per tool over the seeds that finished) and
rewrites <out>/user_clock.json after each run. AP50 best is the AP50 of the checkpoint each tool keeps as best
(ours: highest AP50:95; the peer's: its own fitness), both scored with pycocotools, the peer's at 100 detections
per image; the peer scores no final checkpoint, so its AP50 final is "-". Its images are epochs x training tiles.

    python benchmarks/user_clock.py --data D --time 150s --seeds 0,1,2 --imgsz 416 --extra="-b 16 -c none"
    python benchmarks/user_clock.py --data D --time 1m --subset 40 --imgsz 320 --no-peer --seeds 0,
    python benchmarks/user_clock.py --summarize OUT/user_clock.json      # the table of the rows written so far
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from coco_subset import TRAIN_ANN, make_coco_subset
from crater_bench import CRATER_COMMAND, mean_std, parse_seeds
from tabulate import tabulate

from yolox.utils.durations import parse_duration
from yolox.utils.eval_history import best_and_final, read_eval_history
from yolox.utils.user_errors import CLIParser, run_cli

REPO = Path(__file__).resolve().parents[1]
PEER_SCRIPT = REPO.parent / "shared" / "tools" / "peer_ultralytics.py"
# the peer script keeps its converted data and its run in /tmp/ul_data_<run> and /tmp/ul_runs_<run>
PEER_SCRATCH = Path("/tmp")
PEER_DEVICES = {"cuda": "0", "cpu": "cpu", "mps": "mps"}
PHASES = ("startup", "train_steps", "data_wait", "host_sync", "evaluation", "checkpoints", "teardown", "other")
# (header, row key, digits) of the figures both tools have
COLUMNS = (("wall s", "wall_s", 1), ("budget s", "budget_s", 0), ("AP50 final", "final_AP50", 3),
           ("AP50 best", "best_AP50", 3), ("epochs", "epochs", 0), ("img/s", "img_per_s", 1))
# seconds kept before --deadline to stop a run still going (half of it for its exit) and print the table
STOP_RESERVE_S = 20.0
RESULTS_FILE = "user_clock.json"


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("user_clock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="crater data folder in COCO layout (annotations/, train2017/, val2017/)")
    parser.add_argument("--time", default="150s", help="the budget as our --time takes it: 150s, 10m, 1h30m")
    parser.add_argument("--seeds", default="3", help="a count K (seeds 0..K-1) or a list such as 0,1,2")
    parser.add_argument("--subset", type=int, default=None,
                        help="train on N training tiles (chosen with seed 0), the full validation split kept")
    parser.add_argument("--imgsz", type=int, default=None,
                        help="training and test size of both tools (ours: input_size and test_size overrides)")
    parser.add_argument("--extra", default="", help='more flags of our command, one string: --extra="-b 16 -c none"')
    parser.add_argument("--device", default=None, help="our --device (cuda, cpu, mps); the peer gets 0, cpu or mps")
    parser.add_argument("--no-peer", action="store_true", help="run only our command")
    parser.add_argument("--peer-script", default=str(PEER_SCRIPT), help="path of peer_ultralytics.py")
    parser.add_argument("--peer-model", default="yolo11s.yaml", help="the peer's model (default yolo11s.yaml)")
    parser.add_argument("--peer-batch", type=int, default=16, help="the peer's batch (default 16)")
    parser.add_argument("--command", default=None,
                        help="our command before its flags (default: python -m yolox.tools.train_crater_device_aware)")
    parser.add_argument("--name", default="user_clock", help="run folder names: <name>_s<seed>")
    parser.add_argument("--out", default="./YOLOX_outputs/user_clock",
                        help="folder of the runs, logs, subset and user_clock.json")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds from now by which the benchmark ends: a run that cannot finish is not started, "
                             "one still going is stopped, and the table is printed")
    parser.add_argument("--parallel", action="store_true",
                        help="start every run (each seed of each tool) at once, sharing the machine: what a short "
                             "lease allows; their notes say so, and the wall times are not those of a run alone")
    parser.add_argument("--summarize", metavar="JSON", help="only print the table of a user_clock.json")
    return parser


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """Check the arguments, parse the budget and make the subset; the same namespace, completed."""
    if not args.data or not os.path.isdir(args.data):
        raise SystemExit(f"--data {args.data}: no such folder; give the crater data folder (COCO layout)")
    if not args.no_peer and args.imgsz is None:
        raise SystemExit("--imgsz: give the size both tools train at (e.g. 416), or --no-peer")
    if not args.no_peer and not os.path.isfile(args.peer_script):
        raise SystemExit(f"--peer-script {args.peer_script}: not found; give the path of peer_ultralytics.py "
                         "(../shared/tools/) or --no-peer")
    args.budget_s = parse_duration(args.time)
    args.out = Path(args.out).resolve()
    if args.subset is not None:
        args.data = str(make_coco_subset(args.data, args.out / f"subset_{args.subset}", args.subset, seed=0))
    args.train_tiles = count_train_tiles(Path(args.data))
    return args


def count_train_tiles(data: Path) -> Optional[int]:
    """Images in the COCO training annotations of `data`; None when it has none in that layout."""
    figures = read_json(data / "annotations" / TRAIN_ANN)
    return len(figures["images"]) if "images" in figures else None


def read_json(path: Path) -> Dict:
    """The JSON object in `path`; {} when it is missing or unreadable (a run killed while writing it)."""
    try:
        with open(path) as handle:
            content = json.load(handle)
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def run_timed(command: List[str], log_path: Path, deadline_at: Optional[float], need_s: float) -> Dict:
    """Run `command` (output in `log_path`), timed from just before it starts to its exit. A run that cannot
    get `need_s` seconds before `deadline_at` is not started; one still going then is stopped."""
    timeout = None if deadline_at is None else deadline_at - time.monotonic() - STOP_RESERVE_S
    if timeout is not None and timeout < need_s:
        return {"status": "not run", "note": f"{max(timeout, 0):.0f} s left before the deadline, {need_s:.0f} s needed"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        started = time.monotonic()
        # a session of its own, so that stopping it at the deadline stops its loader workers too
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(process, grace_s=STOP_RESERVE_S / 2)
            return {"status": "cut off", "wall_s": round(time.monotonic() - started, 2),
                    "note": f"stopped at the deadline; see {log_path}"}
        wall_s = round(time.monotonic() - started, 2)
    if code != 0:
        return {"status": "failed", "wall_s": wall_s, "exit_code": code, "note": f"exit code {code}; see {log_path}"}
    return {"status": "ok", "wall_s": wall_s, "exit_code": 0}


def stop(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the run's process group, SIGKILL after `grace_s` seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def our_command(args: argparse.Namespace, seed: int) -> List[str]:
    """Our crater command as a user types it: its flags first, the KEY VALUE overrides last."""
    command = shlex.split(args.command) if args.command else list(CRATER_COMMAND)
    command += ["--data-dir", args.data, "--time", args.time]
    if args.device:
        command += ["--device", args.device]
    # -expn before the extra flags: an override among them would take every word after it
    command += ["-expn", f"{args.name}_s{seed}", *shlex.split(args.extra)]
    if args.imgsz:
        size = f"{args.imgsz},{args.imgsz}"
        command += ["input_size", size, "test_size", size]
    return command + ["seed", str(seed), "output_dir", str(args.out / "runs")]


def our_figures(run_dir: Path) -> Dict:
    """AP50 final and best, epochs, images and phases of one run folder; what it lacks is left out."""
    figures: Dict = {}
    ends = best_and_final(read_eval_history(str(run_dir)))
    if ends:
        figures.update(final_AP50=ends["final"]["AP50"], best_AP50=ends["best"]["AP50"],
                       epochs=ends["final"]["epoch"])
    clock = read_json(run_dir / "wall_clock.json")
    figures.update({key: clock[key] for key in ("budget_s", "epochs", "iterations", "images", "batch_size")
                    if clock.get(key) is not None})
    if isinstance(clock.get("phases_s"), dict):
        figures["phases_s"] = clock["phases_s"]
    return figures


def run_ours(args: argparse.Namespace, seed: int, deadline_at: Optional[float]) -> Dict:
    """One seed of our command: its row."""
    run_dir = args.out / "runs" / f"{args.name}_s{seed}"
    # a folder left by an earlier benchmark would be read as this run's if this one dies before writing
    shutil.rmtree(run_dir, ignore_errors=True)
    command = our_command(args, seed)
    row = {"tool": "yolox", "seed": seed, "budget_s": args.budget_s, "command": shlex.join(command),
           "run_dir": str(run_dir)}
    row.update(run_timed(command, args.out / "logs" / f"yolox_s{seed}.log", deadline_at, args.budget_s))
    if row["status"] != "not run":
        row.update(our_figures(run_dir))
    return with_rate(row)


def peer_device(device: Optional[str]) -> Optional[str]:
    """The peer's --device for our --device: cuda -> 0, cuda:1 -> 1; None leaves it to Ultralytics."""
    if not device or device == "auto":
        return None
    if device.startswith("cuda:"):
        return device.split(":", 1)[1]
    return PEER_DEVICES.get(device, device)


def peer_command(args: argparse.Namespace, seed: int) -> List[str]:
    """The peer's command with our budget in minutes; --epochs is only a cap under its time budget."""
    command = [sys.executable, args.peer_script, "--data", args.data, "--out", str(args.out / "peer"),
               "--time", f"{args.budget_s / 60:g}", "--seed", str(seed), "--epochs", "1000",
               "--model", args.peer_model, "--imgsz", str(args.imgsz), "--batch", str(args.peer_batch)]
    device = peer_device(args.device)
    return command + (["--device", device] if device else [])


def peer_figures(log_path: Path, results_csv: Path, train_tiles: Optional[int]) -> Dict:
    """AP50 best (pycocotools, 100 detections), epochs and images of one peer run; what it lacks is left out."""
    figures: Dict = {}
    result = last_json_line(log_path)
    if result:
        figures["peer_result"] = result
    if "ap50_maxdet100" in result:
        figures["best_AP50"] = result["ap50_maxdet100"]
    epochs = csv_rows(results_csv)
    if epochs:
        figures["epochs"] = epochs
        if train_tiles:
            figures["images"] = epochs * train_tiles
    return figures


def last_json_line(path: Path) -> Dict:
    """The last line of `path` that is a JSON object; {} when there is none."""
    if not path.is_file():
        return {}
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


def csv_rows(path: Path) -> int:
    """Data rows of a CSV with a header line (an epoch each in Ultralytics' results.csv); 0 when it is missing."""
    if not path.is_file():
        return 0
    return max(0, sum(1 for line in path.read_text().splitlines() if line.strip()) - 1)


def run_peer(args: argparse.Namespace, seed: int, deadline_at: Optional[float]) -> Dict:
    """One seed of the peer: its row."""
    run = f"{args.peer_model.split('.')[0]}_s{seed}"
    # the peer appends to the results.csv and keeps the images it finds there: clear both of an earlier run
    for scratch in (PEER_SCRATCH / f"ul_data_{run}", PEER_SCRATCH / f"ul_runs_{run}"):
        shutil.rmtree(scratch, ignore_errors=True)
    (args.out / "peer").mkdir(parents=True, exist_ok=True)
    command = peer_command(args, seed)
    log_path = args.out / "logs" / f"peer_s{seed}.log"
    row = {"tool": "ultralytics", "seed": seed, "budget_s": args.budget_s, "command": shlex.join(command)}
    row.update(run_timed(command, log_path, deadline_at, args.budget_s))
    if row["status"] != "not run":
        row.update(peer_figures(log_path, PEER_SCRATCH / f"ul_runs_{run}" / "run" / "results.csv",
                                args.train_tiles))
    return with_rate(row)


def with_rate(row: Dict) -> Dict:
    """The row with img/s end to end: images over the wall time measured from outside."""
    if row.get("images") and row.get("wall_s"):
        row["img_per_s"] = round(row["images"] / row["wall_s"], 1)
    return row


def tool_summary(tool: str, rows: List[Dict]) -> Dict:
    """Mean ± std of each figure and phase over the seeds of `tool` that finished; the seeds that did not."""
    done = [row for row in rows if row["tool"] == tool and row["status"] == "ok"]
    summary: Dict = {"tool": tool, "seeds": [row["seed"] for row in done],
                     "not_ok": [row["seed"] for row in rows if row["tool"] == tool and row["status"] != "ok"]}
    for _, key, _ in COLUMNS:
        values = [row[key] for row in done if row.get(key) is not None]
        if values:
            summary[key] = mean_std(values)
    phases = {phase: [row["phases_s"][phase] for row in done if row.get("phases_s", {}).get(phase) is not None]
              for phase in PHASES}
    if any(phases.values()):
        summary["phases_s"] = {phase: mean_std(values) for phase, values in phases.items() if values}
    return summary


def cell(value, digits: int) -> str:
    """A figure, a {mean, std} or '-' for one absent."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
    return f"{value:.{digits}f}"


def table_line(row: Dict, seed_text: str, note: str) -> List[str]:
    phases = row.get("phases_s", {})
    return [row["tool"], seed_text, *(cell(row.get(key), digits) for _, key, digits in COLUMNS),
            *(cell(phases.get(phase), 1) for phase in PHASES), note]


def format_table(rows: List[Dict]) -> str:
    """The per-seed rows, then mean ± std per tool, as one markdown table."""
    headers = ["tool", "seed", *(header for header, _, _ in COLUMNS), *(f"{phase.replace('_', ' ')} s"
                                                                        for phase in PHASES), "note"]
    lines = [table_line(row, str(row["seed"]), row.get("note", "")) for row in rows]
    for tool in dict.fromkeys(row["tool"] for row in rows):
        summary = tool_summary(tool, rows)
        note = f"not finished: seeds {', '.join(map(str, summary['not_ok']))}" if summary["not_ok"] else ""
        lines.append(table_line(summary, f"mean of {len(summary['seeds'])}", note))
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def save(out: Path, rows: List[Dict]) -> None:
    """Rewrite <out>/user_clock.json with every row so far and the summaries."""
    summaries = [tool_summary(tool, rows) for tool in dict.fromkeys(row["tool"] for row in rows)]
    with open(out / RESULTS_FILE, "w") as handle:
        json.dump({"rows": rows, "summary": summaries}, handle, indent=1)


def bench(args: argparse.Namespace) -> List[Dict]:
    """Every seed: ours, then the peer, one at a time (or, with --parallel, all at once); the rows."""
    deadline_at = None if args.deadline is None else time.monotonic() + args.deadline
    tools: List[Callable[..., Dict]] = [run_ours] if args.no_peer else [run_ours, run_peer]
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(run, seed) for seed in parse_seeds(args.seeds) for run in tools]
    if args.parallel:
        with ThreadPoolExecutor(len(jobs)) as pool:
            rows = list(pool.map(lambda job: job[0](args, job[1], deadline_at), jobs))
        for row in rows:
            row["note"] = f"{len(jobs)} runs sharing the machine; {row.get('note', '')}".strip("; ")
        save(args.out, rows)
        return rows
    rows: List[Dict] = []
    for run, seed in jobs:
        rows.append(run(args, seed, deadline_at))
        save(args.out, rows)
        print(f"{rows[-1]['tool']} seed {seed}: {rows[-1]['status']}, wall {rows[-1].get('wall_s', '-')} s",
              flush=True)
    return rows


def read_rows(path: str) -> List[Dict]:
    content = read_json(Path(path))
    if "rows" not in content:
        raise SystemExit(f"--summarize {path}: not a user_clock.json with rows; give the file user_clock wrote")
    return content["rows"]


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = make_parser().parse_args(argv)
    rows = read_rows(args.summarize) if args.summarize else bench(prepare(args))
    table = format_table(rows)
    if not args.summarize:
        (args.out / "user_clock.md").write_text(table + "\n")
    print(table, flush=True)
    return rows


if __name__ == "__main__":
    run_cli(main)
