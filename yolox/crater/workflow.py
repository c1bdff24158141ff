"""The crater planner: data and a time budget in, `(exp, options)` and the plan's report out; it trains nothing.

`plan_crater_run(args)` takes the flags of tools/train_crater_device_aware.py: it builds the exp, generates the
synthetic set where there is no data, measures the batch, applies the from-scratch or fine-tuning recipe and
logs the plan. `yolox.core.run.train` then runs it, as it runs every training.
"""
import argparse
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

from loguru import logger

import yolox.exp.crater

from yolox.cli.flags import options_from_args, policy_from_args
from yolox.core.budget import EVAL_SHARE, TEARDOWN_SECONDS
from yolox.core.options import RunOptions
from yolox.core.run import process_count
from yolox.crater.completeness import completeness_warning
from yolox.crater.exp import CraterExp
from yolox.crater.fine_tune import apply_fine_tune_model, apply_fine_tune_schedule
from yolox.crater.recipe import (
    apply_scratch_model, apply_scratch_schedule, p2_under_budget, recipe_lines, scratch_model_size,
)
from yolox.crater.report import log_plan
from yolox.data.datasets import load_split_as_coco
from yolox.diagnostics.device_check.before_training import checked_policy
from yolox.exp import check_exp_value, get_exp
from yolox.synthetic.craters import generate_synthetic_craters
from yolox.utils.autobatch import BatchDecision, autobatch, make_training_step, run_probe
from yolox.utils.device import DevicePolicy
from yolox.utils.durations import parse_duration
from yolox.utils.logger import setup_logger
from yolox.utils.user_errors import UserError

# exps/crater: installed, the package's own folder; in a checkout, the folder the package appends last
EXPS_DIR = Path(yolox.exp.crater.__path__[-1])
FINE_TUNE_EXP = EXPS_DIR / "yolox_m_crater.py"
SCRATCH_EXPS = {size: EXPS_DIR / f"yolox_{size}_crater.py" for size in ("s", "m")}
DEMO_EXP = EXPS_DIR / "yolox_nano_crater_demo.py"
DEFAULT_DATA_DIR = os.path.join("datasets", "craters")
SYNTHETIC_SEED = 0
# the batch probe's time: a few sizes, each a warm-up and two timed steps; under --time, at most this share of it
PROBE_SECONDS = 60.0
PROBE_SHARE = 0.05
# the synthetic set generated where the data folder is empty, for exps that are no CraterExp (which say it)
SYNTHETIC_SIZES = dict(num_train=400, num_val=80, img_size=416)
WEIGHTS_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/{name}"


class CraterSetupError(UserError, ValueError):
    """A crater run asked for something it cannot have: a missing checkpoint or data folder, a bad batch."""


def parse_batch(value: str) -> Optional[int]:
    """None for 'auto', else a positive int."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise CraterSetupError(f"-b {value!r}: give a positive number or 'auto'") from None
    if batch < 1:
        raise CraterSetupError(f"-b {value}: the batch size must be at least 1 (or 'auto')")
    return batch


def resolve_ckpt(ckpt: Optional[str], resume: bool) -> Optional[str]:
    """The checkpoint path, None for scratch; a missing file is a clear error naming where weights come from."""
    if ckpt is None or ckpt.strip().lower() == "none":
        return None
    if not os.path.isfile(ckpt):
        name = os.path.basename(ckpt)
        source = (f"the official weights come from {WEIGHTS_URL.format(name=name)} (save it as {ckpt}; "
                  "see weights/README.md)" if name.startswith("yolox_") and not resume else
                  "check the path")
        raise CraterSetupError(f"checkpoint {ckpt} not found: {source}; or pass `-c none` to train from scratch")
    return ckpt


def wants_scratch_plan(args) -> bool:
    """Training from random weights: no -c weights, no resume, not the demo (which has its own settings)."""
    return args.ckpt is None and not args.resume and not args.demo


def opts_keys(opts: Optional[List[str]]) -> Set[str]:
    """The exp attributes set on the command line (`KEY VALUE` pairs)."""
    return set((opts or [])[0::2])


def count_train_images(data_dir: str, data_format: str) -> int:
    """Training images in data_dir; the synthetic set's size where it is still to be generated."""
    if not (os.path.isdir(data_dir) and os.listdir(data_dir)):
        return SYNTHETIC_SIZES["num_train"]
    return len(load_split_as_coco(data_dir, "train", data_format)[0].get("images", []))


def choose_exp_file(args, data_dir: str, data_format: str) -> Tuple[str, str]:
    """(exp file, reason): -f when given; else the demo's, the fine-tuning default, or the scratch size."""
    if args.exp_file:
        return args.exp_file, "given with -f"
    if args.demo:
        return str(DEMO_EXP), "--demo"
    if not wants_scratch_plan(args):
        return str(FINE_TUNE_EXP), "fine-tuning from weights: yolox-m"
    choice = scratch_model_size(count_train_images(data_dir, data_format))
    return str(SCRATCH_EXPS[choice.value]), choice.reason


def build_exp(args) -> Tuple[object, str]:
    """(exp, why this exp file): the chosen file with the command line's data folder, flags and `KEY VALUE` pairs."""
    pairs = dict(zip((args.opts or [])[0::2], (args.opts or [])[1::2]))
    exp_file, reason = choose_exp_file(args, args.data_dir or DEFAULT_DATA_DIR, pairs.get("data_format", "auto"))
    exp = get_exp(exp_file, None)
    if args.data_dir is not None:
        exp.data_dir = args.data_dir
    exp.merge(args.opts or [])
    exp.strict_data = exp.strict_data or args.strict_data
    check_exp_value(exp)
    if args.eval_batch is not None:
        exp.eval_batch_size = args.eval_batch
    if args.grad_ckpt:
        if not hasattr(exp, "grad_ckpt"):
            raise CraterSetupError(f"--grad-ckpt: the exp {exp_file} has no grad_ckpt field; base it on "
                                   "yolox.crater.exp.CraterExp or drop --grad-ckpt")
        exp.grad_ckpt = True
    return exp, reason


def ensure_data(exp, data_dir_given: bool) -> None:
    """Generate the synthetic crater set where the default data folder is missing; a given folder must exist."""
    if os.path.isdir(exp.data_dir) and os.listdir(exp.data_dir):
        return
    if data_dir_given:
        raise CraterSetupError(f"--data-dir {exp.data_dir} not found: give a folder in COCO, YOLO-txt or crater "
                               "CSV layout (see README 'Bringing your own crater data')")
    sizes = exp.synthetic_data if isinstance(exp, CraterExp) else SYNTHETIC_SIZES
    logger.warning(f"no crater data at {exp.data_dir}: generating a synthetic crater set there (seed "
                   f"{SYNTHETIC_SEED}, {sizes['num_train']} train / {sizes['num_val']} val images of "
                   f"{sizes['img_size']} px); put your own data there, or pass --data-dir, to train on real craters")
    started = time.time()
    counts = generate_synthetic_craters(exp.data_dir, seed=SYNTHETIC_SEED, **sizes)
    logger.info(f"synthetic crater set written in {time.time() - started:.1f}s: {counts}")


def train_label_stats(exp) -> Tuple[int, int]:
    """(most boxes in one training image, training images): realistic label counts for the memory probe."""
    data, _ = load_split_as_coco(exp.data_dir, "train", exp.data_format)
    counts: Dict[int, int] = {}
    for ann in data.get("annotations", []):
        counts[ann["image_id"]] = counts.get(ann["image_id"], 0) + 1
    return max(counts.values(), default=1), len(data.get("images", []))


def probe_seconds(time_budget: Optional[str]) -> float:
    """What the batch probe may spend: PROBE_SECONDS, or PROBE_SHARE of a --time budget when that is less."""
    if not time_budget:
        return PROBE_SECONDS
    return min(PROBE_SECONDS, PROBE_SHARE * parse_duration(time_budget))


def choose_batch(exp, args, policy, world_size: int, label_stats: Tuple[int, int],
                 clock: Callable[[], float] = time.perf_counter) -> Tuple[int, BatchDecision]:
    """Measure memory and throughput and choose (or check) the total batch; returns (batch, BatchDecision).

    With several processes the step is measured once, on this process's device before the workers start
    (rank 0's GPU; the GPUs of one host are taken to be alike), and the per-device batch is multiplied by
    the world size. A GPU that holds less still recovers: out of memory on any rank halves the batch on all.
    """
    requested = parse_batch(args.batch_size)
    if requested is not None and requested % world_size:
        raise CraterSetupError(f"-b {requested} with -d {world_size}: give a multiple of {world_size} so every "
                               "GPU gets the same batch (or -b auto)")
    max_batch = args.max_batch or exp.max_batch
    boxes, train_images = label_stats
    decision = autobatch(
        policy.to(exp.get_model()), policy, tuple(exp.input_size), num_classes=exp.num_classes,
        target_fraction=args.target_mem_fraction, multiple=8, max_batch=max(1, max_batch // world_size),
        requested=None if requested is None else requested // world_size,
        num_boxes=min(exp.max_labels, 4 * boxes),   # a mosaic holds up to four images' boxes
        max_labels=exp.max_labels, train_images=max(1, train_images // world_size),
        time_budget_s=probe_seconds(args.time), clock=clock)
    return decision.batch_size * world_size, decision


def plan_recipe(exp, args, policy, world_size: int, label_stats: Tuple[int, int], exp_reason: str,
                started_at: float) -> Tuple[int, BatchDecision, List[str]]:
    """The recipe (from-scratch or fine-tuning plan unless `--recipe exp`) and the batch; (batch, decision,
    the plan's recipe lines). Model choices come before the batch probe builds a model, the schedule after."""
    overridden = opts_keys(args.opts)
    own_schedule = isinstance(exp, CraterExp) and not exp.scratch_recipe
    planned = args.recipe == "auto" and not own_schedule
    scratch = planned and wants_scratch_plan(args)
    fine_tune = planned and args.ckpt is not None and not args.resume and not args.demo
    reasons = {"model": exp_reason}
    if scratch:
        reasons.update(apply_scratch_model(exp, overridden))
    if fine_tune:
        reasons.update(apply_fine_tune_model(exp, overridden))
    batch, decision = choose_batch(exp, args, policy, world_size, label_stats)
    if scratch and args.time and exp.p2_head and "p2_head" not in overridden:
        reasons.update(budget_p2_head(exp, policy, batch // world_size, label_stats, decision,
                                      parse_duration(args.time) - (time.time() - started_at)))
    if scratch:
        reasons.update(apply_scratch_schedule(exp, batch, label_stats[1], overridden))
    if fine_tune:
        reasons.update(apply_fine_tune_schedule(exp, batch, label_stats[1], overridden))
    model_line = f"model: {exp.exp_name} (depth {exp.depth}, width {exp.width})  ({reasons['model']})"
    return batch, decision, [model_line, *recipe_lines(exp, overridden, reasons)]


def budget_p2_head(exp, policy, batch: int, label_stats: Tuple[int, int], decision: BatchDecision,
                   seconds_left: float) -> Dict[str, str]:
    """Under --time, whether the stride-4 level stays: a step's cost with and without it at `batch` (the batch
    probe's where it timed that batch) against the epochs the budget affords; {"p2_head": reason}."""
    timed = {probe.batch_size: probe.seconds for probe in decision.probes if probe.peak_bytes}
    with_p2 = timed.get(batch) or step_seconds(exp, policy, batch, label_stats)
    exp.p2_head = False
    without = step_seconds(exp, policy, batch, label_stats)
    train_seconds = max(0.0, seconds_left * (1 - EVAL_SHARE) - TEARDOWN_SECONDS)
    steps = math.ceil(label_stats[1] / max(batch, 1))
    choice = p2_under_budget(train_seconds / (steps * with_p2), train_seconds / (steps * without), with_p2, without)
    exp.p2_head = choice.value
    return {"p2_head": choice.reason}


def step_seconds(exp, policy, batch: int, label_stats: Tuple[int, int]) -> float:
    """Seconds of one training step of the exp's model at `batch` (a warm-up step, then two timed)."""
    step = make_training_step(policy.to(exp.get_model()), policy, tuple(exp.input_size),
                              min(exp.max_labels, 4 * label_stats[0]), exp.max_labels, exp.num_classes)
    return max(run_probe(step, policy, batch).seconds, 1e-9)


def completeness_warning_for(exp) -> Optional[str]:
    """The catalogue-completeness warning of tiles made by make_crater_tiles, at this exp's training scales."""
    data, _ = load_split_as_coco(exp.data_dir, "train", exp.data_format)
    images = data.get("images", [])
    if not images or "catalogue_min_diameter_px" not in data.get("info", {}):
        return None
    tile = max(images[0]["width"], images[0]["height"])
    sizes = [32 * k for k in exp.random_size] if exp.random_size is not None else [exp.input_size[0]] * 2
    jitter = tuple(exp.mosaic_scale) if exp.mosaic_prob > 0 else (1.0, 1.0)
    return completeness_warning(data["info"], (min(sizes) / tile * jitter[0], max(sizes) / tile * jitter[1]))


@dataclass(frozen=True)
class CraterPlan:
    """What the planner hands to `yolox.core.run.train`, and what the report needs afterwards."""

    exp: object
    options: RunOptions
    policy: DevicePolicy
    rank_policy: Callable[..., DevicePolicy]    # each worker process's own policy, under -d
    batch: BatchDecision
    processes: int

    @property
    def run_dir(self) -> str:
        return os.path.join(self.exp.output_dir, self.options.experiment_name)


def plan_crater_run(args, policy: Optional[DevicePolicy] = None, started_at: Optional[float] = None) -> CraterPlan:
    """The crater run the parsed flags describe, planned and logged; `policy` replaces the one built from the
    flags (tests simulate MPS this way); `started_at` is when the run's clock started (default: now). Nothing is
    trained here."""
    started_at = started_at or time.time()
    args = argparse.Namespace(**{**vars(args), "ckpt": resolve_ckpt(args.ckpt, args.resume)})
    exp, exp_reason = build_exp(args)
    run_dir = os.path.join(exp.output_dir, args.experiment_name or exp.exp_name)
    os.makedirs(run_dir, exist_ok=True)
    setup_logger(run_dir, distributed_rank=0, filename="train_log.txt", mode="a")
    ensure_data(exp, data_dir_given=args.data_dir is not None)

    rank_policy = functools.partial(policy_from_args, args, deterministic=args.deterministic,
                                    time_budget_s=parse_duration(args.time) if args.time else None)
    if policy is None:
        policy = checked_policy(lambda: rank_policy(world_size=args.devices or 1))
    processes = process_count(args.devices, policy, args.dist_backend)
    if exp.seed is not None:
        policy.seed_everything(int(exp.seed))     # the batch probe builds a model: the same one on every run
    exp.label_caps()    # label rows and detections per image from the densest images, logged with the plan
    label_stats = train_label_stats(exp)
    batch, decision, recipe = plan_recipe(exp, args, policy, processes, label_stats, exp_reason, started_at)
    log_plan(policy, batch, decision, exp, processes, recipe)
    warning = completeness_warning_for(exp)
    if warning:
        logger.warning(warning)
    options = options_from_args(args, exp, batch, started_at)
    return CraterPlan(exp, options, policy, rank_policy, decision, processes)
