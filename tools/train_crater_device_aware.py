#!/usr/bin/env python3
"""Train YOLOX on impact craters with whatever this machine has (CUDA, Apple MPS or CPU).

The device layer decides precision, loader and distributed settings; the batch size is measured,
not guessed; progress is logged with an ETA; the run ends with PNGs of its curves and predictions.
With no data at datasets/craters a synthetic crater set is generated there, so a fresh checkout
trains without downloading anything:

    python tools/train_crater_device_aware.py --demo                 # minutes on a laptop CPU
    python tools/train_crater_device_aware.py -b 16 -c weights/yolox_m.pth
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import yolox.exp.crater
from yolox.utils.user_errors import CLIParser, run_cli

# exps/crater: installed it is the package's own folder, in a checkout the folder the package appends last
CRATER_EXPS = yolox.exp.crater.__path__[-1]
DEFAULT_EXP = os.path.join(CRATER_EXPS, "yolox_m_crater.py")
SCRATCH_EXPS = {size: os.path.join(CRATER_EXPS, f"yolox_{size}_crater.py") for size in ("s", "m")}
RUN_SUMMARY_FILE = "run_summary.json"
DEMO_EXP = os.path.join(CRATER_EXPS, "yolox_nano_crater.py")
DEFAULT_DATA_DIR = os.path.join("datasets", "craters")
SYNTHETIC_SEED = 0
SYNTHETIC_SIZES = dict(num_train=400, num_val=80, img_size=416)
WEIGHTS_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/{name}"
# --demo: nano on small synthetic images, long enough to learn craters, short enough for a 2-core CPU.
# Measured choices: from scratch, many small steps at a high per-image LR and no mosaic learn fastest.
DEMO_SETTINGS = dict(input_size=(192, 192), test_size=(192, 192), random_size=(6, 6), max_epoch=36,
                     warmup_epochs=1, no_aug_epochs=3, eval_interval=6, print_interval=8, mosaic_prob=0.0,
                     basic_lr_per_img=0.08 / 64.0, min_lr_ratio=0.1, data_num_workers=1, seed=0)
DEMO_MAX_BATCH = 8
DEMO_DATA = dict(num_train=128, num_val=32, img_size=192, min_radius=5.0, max_radius_fraction=0.22,
                 craters_per_image=(5, 20), terrain_relief=0.5)


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser(
        "train_crater_device_aware", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-f", "--exp_file", default=None,
                        help=f"experiment file (default {DEFAULT_EXP} with weights; "
                             f"from scratch the size that suits the data; --demo: {DEMO_EXP})")
    parser.add_argument("-expn", "--experiment-name", default=None)
    parser.add_argument("-b", "--batch-size", default="auto",
                        help="total batch size, or 'auto' to measure the largest that fits")
    parser.add_argument("--target-mem-fraction", type=float, default=0.8,
                        help="-b auto: fraction of the device's memory limit the batch may use")
    parser.add_argument("--max-batch", type=int, default=None,
                        help=f"-b auto: upper bound of the batch (default 64; --demo: {DEMO_MAX_BATCH})")
    parser.add_argument("-c", "--ckpt", default=None,
                        help="weights to fine-tune from (e.g. weights/yolox_m.pth); 'none' trains from scratch")
    parser.add_argument("--resume", action="store_true", help="resume from -c or the run's latest_ckpt.pth")
    parser.add_argument("-e", "--start_epoch", type=int, default=None, help="resume at this 1-based epoch")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("-d", "--devices", type=int, default=None, help="GPUs (CUDA only; one process each)")
    parser.add_argument("--fp16", action="store_const", const=True, default=None,
                        help="mixed precision (default: on for CUDA; on MPS only if a probe in a child process passes)")
    parser.add_argument("--no-fp16", dest="fp16", action="store_const", const=False,
                        help="train in fp32 (turns the CUDA default off)")
    parser.add_argument("--compile", action="store_const", const=True, default=None,
                        help="torch.compile the training model (pays on long runs: the first compiles take minutes)")
    parser.add_argument("--grad-ckpt", action="store_true",
                        help="activation checkpointing of backbone and neck: less memory, their forward recomputed in backward")
    parser.add_argument("--cache-release-every", type=int, default=None,
                        help="iterations between device cache releases (default: the device policy's)")
    parser.add_argument("--mps-high-watermark", type=float, default=None,
                        help="PYTORCH_MPS_HIGH_WATERMARK_RATIO, set before torch starts (0 = no limit)")
    parser.add_argument("--eval-batch", type=int, default=None, help="evaluation batch (default 2x training)")
    parser.add_argument("--data-dir", default=None,
                        help=f"crater data (COCO, YOLO-txt or crater CSV; default {DEFAULT_DATA_DIR})")
    parser.add_argument("--demo", action="store_true",
                        help="short run: nano on a synthetic crater set, ends with AP50 in minutes on a CPU")
    parser.add_argument("--cache", type=str, nargs="?", const="ram", default=None, help="cache images: ram | disk")
    parser.add_argument("-l", "--logger", default="tensorboard", help="metric logger (tensorboard)")
    parser.add_argument("--trust-ckpt", action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    parser.add_argument("--dist-url", default=None, help="rendezvous URL for -d > 1 (default: a free local port)")
    parser.add_argument("--strict-data", action="store_true",
                        help="stop on a missing or corrupt image instead of skipping it (exp field strict_data)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=None, help="KEY VALUE pairs to modify the exp")
    return parser


def prepare_environment(argv: Optional[List[str]]) -> None:
    """Set the MPS environment variables before anything imports torch (torch reads them early)."""
    pre = argparse.ArgumentParser(add_help=False)  # pre-parse only
    pre.add_argument("--mps-high-watermark", type=float, default=None)
    known, _ = pre.parse_known_args(argv)
    if sys.platform == "darwin" or known.mps_high_watermark is not None:
        from yolox.utils.mps_patch import setup_mps_environment

        setup_mps_environment(high_watermark_ratio=known.mps_high_watermark)


def parse_batch(value: str) -> Optional[int]:
    """None for 'auto', else a positive int."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise SystemExit(f"-b {value!r}: give a positive number or 'auto'") from None
    if batch < 1:
        raise SystemExit(f"-b {value}: the batch size must be at least 1 (or 'auto')")
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
        raise SystemExit(f"checkpoint {ckpt} not found: {source}; or pass `-c none` to train from scratch")
    return ckpt


def ensure_data(exp, data_dir_given: bool, demo: bool) -> None:
    """Generate the synthetic crater set where the default data folder is missing; a given folder must exist."""
    from loguru import logger

    from yolox.data.datasets.synthetic_craters import generate_synthetic_craters

    if os.path.isdir(exp.data_dir) and os.listdir(exp.data_dir):
        return
    if data_dir_given:
        raise SystemExit(f"--data-dir {exp.data_dir} not found: give a folder in COCO, YOLO-txt or crater CSV "
                         "layout (see README 'Bringing your own crater data')")
    sizes = DEMO_DATA if demo else SYNTHETIC_SIZES
    logger.warning(f"no crater data at {exp.data_dir}: generating a synthetic crater set there (seed "
                   f"{SYNTHETIC_SEED}, {sizes['num_train']} train / {sizes['num_val']} val images of "
                   f"{sizes['img_size']} px); put your own data there, or pass --data-dir, to train on real craters")
    started = time.time()
    counts = generate_synthetic_craters(exp.data_dir, seed=SYNTHETIC_SEED, **sizes)
    logger.info(f"synthetic crater set written in {time.time() - started:.1f}s: {counts}")


def is_scratch(args) -> bool:
    """Training from random weights: no -c weights, no resume, not the demo (which has its own settings)."""
    return args.ckpt is None and not args.resume and not args.demo


def opts_keys(opts: Optional[List[str]]) -> set:
    """The exp attributes set on the command line (`KEY VALUE` pairs)."""
    return set((opts or [])[0::2])


def count_train_images(data_dir: str, data_format: str) -> int:
    """Training images in data_dir; the synthetic set's size where it is still to be generated."""
    from yolox.data.datasets import load_split_as_coco

    if not (os.path.isdir(data_dir) and os.listdir(data_dir)):
        return SYNTHETIC_SIZES["num_train"]
    return len(load_split_as_coco(data_dir, "train", data_format)[0].get("images", []))


def choose_exp_file(args, data_dir: str, data_format: str) -> Tuple[str, str]:
    """(exp file, reason): -f when given; else the demo's, the fine-tuning default, or the scratch size."""
    from yolox.exp.scratch_plan import scratch_model_size

    if args.exp_file:
        return args.exp_file, "given with -f"
    if args.demo:
        return DEMO_EXP, "--demo"
    if not is_scratch(args):
        return DEFAULT_EXP, "fine-tuning from weights: yolox-m"
    choice = scratch_model_size(count_train_images(data_dir, data_format))
    return SCRATCH_EXPS[choice.value], choice.reason


def build_exp(args):
    from yolox.exp import check_exp_value, get_exp

    pairs = dict(zip((args.opts or [])[0::2], (args.opts or [])[1::2]))
    data_dir = args.data_dir or (os.path.join("datasets", "craters_demo") if args.demo else DEFAULT_DATA_DIR)
    exp_file, args.exp_reason = choose_exp_file(args, data_dir, pairs.get("data_format", "auto"))
    exp = get_exp(exp_file, None)
    if args.demo:
        for key, value in DEMO_SETTINGS.items():
            setattr(exp, key, value)
        exp.data_dir = os.path.join("datasets", "craters_demo")
    if args.data_dir is not None:
        exp.data_dir = args.data_dir
    exp.merge(args.opts or [])
    exp.strict_data = exp.strict_data or args.strict_data
    check_exp_value(exp)
    if args.eval_batch is not None:
        exp.eval_batch_size = args.eval_batch
    if not args.experiment_name:
        args.experiment_name = exp.exp_name + ("_demo" if args.demo else "")
    return exp


def prepare_model(exp, grad_ckpt: bool):
    """The exp's (cached) model, checkpointed when asked."""
    from loguru import logger

    from yolox.models.grad_ckpt import enable_grad_checkpointing

    model = exp.get_model()
    if grad_ckpt:
        names = enable_grad_checkpointing(model)
        logger.info(f"gradient checkpointing on {len(names)} backbone/neck blocks (less memory, more compute)")
    return model


def train_label_stats(exp) -> Tuple[int, int]:
    """(most boxes in one training image, training images): realistic label counts for the memory probe."""
    from yolox.data.datasets import load_split_as_coco

    data, _ = load_split_as_coco(exp.data_dir, "train", exp.data_format)
    counts = {}
    for ann in data.get("annotations", []):
        counts[ann["image_id"]] = counts.get(ann["image_id"], 0) + 1
    return max(counts.values(), default=1), len(data.get("images", []))


def choose_batch(exp, args, policy, world_size: int, label_stats: Tuple[int, int]):
    """Measure memory and choose (or check) the total batch; returns (batch, BatchDecision).

    With several processes the step is measured once, on this process's device before the workers start
    (rank 0's GPU; the GPUs of one host are taken to be alike), and the per-device batch is multiplied by
    the world size. A GPU that holds less still recovers: out of memory on any rank halves the batch on all.
    """
    from yolox.utils.autobatch import autobatch

    requested = parse_batch(args.batch_size)
    if requested is not None and requested % world_size:
        raise SystemExit(f"-b {requested} with -d {world_size}: give a multiple of {world_size} so every GPU "
                         "gets the same batch (or -b auto)")
    max_batch = args.max_batch or (DEMO_MAX_BATCH if args.demo else 64)
    boxes, train_images = label_stats
    # keep at least 8 optimizer steps per epoch: a batch larger than that only thins the schedule
    step_cap = max(1, train_images // 8)
    model = policy.to(prepare_model(exp, args.grad_ckpt))
    decision = autobatch(
        model, policy, tuple(exp.input_size), num_classes=exp.num_classes,
        target_fraction=args.target_mem_fraction, multiple=8,
        max_batch=max(1, min(max_batch, step_cap) // world_size),   # both caps are of the total batch
        requested=None if requested is None else requested // world_size,
        num_boxes=min(exp.max_labels, 4 * boxes),   # a mosaic holds up to four images' boxes
        max_labels=exp.max_labels)
    return decision.batch_size * world_size, decision


def apply_scratch_model(exp, overridden: set) -> Dict[str, str]:
    """The model choices of a from-scratch run, made before anything builds the model; {field: reason}."""
    from yolox.exp.scratch_plan import scratch_p2_head

    if "p2_head" in overridden:
        return {}
    choice = scratch_p2_head(bool(exp.p2_head))
    if choice.value != exp.p2_head:
        exp.p2_head = choice.value
        exp.__dict__.pop("model", None)
    return {"p2_head": choice.reason}


def apply_scratch_schedule(exp, batch: int, train_images: int, overridden: set) -> Dict[str, str]:
    """Epochs, no-mosaic epochs, warmup and optimizer for a from-scratch run; {field: reason} of what it set.

    Fields set on the command line are kept as given.
    """
    from yolox.exp.scratch_plan import (
        adamw_lr_per_img, iterations_per_epoch, scaled_no_aug_epochs, scratch_epochs, scratch_optimizer,
        scratch_warmup_epochs,
    )

    reasons = {}
    exp_epochs = exp.max_epoch
    if "max_epoch" not in overridden:
        choice = scratch_epochs(train_images, batch)
        exp.max_epoch, reasons["max_epoch"] = choice.value, choice.reason
        if "no_aug_epochs" not in overridden:
            choice = scaled_no_aug_epochs(exp.no_aug_epochs, exp_epochs, exp.max_epoch)
            exp.no_aug_epochs, reasons["no_aug_epochs"] = choice.value, choice.reason
    if "warmup_epochs" not in overridden:
        choice = scratch_warmup_epochs(exp.warmup_epochs, train_images, batch, exp.max_epoch)
        exp.warmup_epochs, reasons["warmup_epochs"] = choice.value, choice.reason
    if "optimizer_type" not in overridden and hasattr(exp, "optimizer_type"):
        choice = scratch_optimizer(exp.optimizer_type, exp.max_epoch * iterations_per_epoch(train_images, batch))
        exp.optimizer_type, reasons["optimizer_type"] = choice.value, choice.reason
        if exp.optimizer_type == "adamw" and "basic_lr_per_img" not in overridden:
            choice = adamw_lr_per_img(batch)
            exp.basic_lr_per_img, reasons["basic_lr_per_img"] = choice.value, choice.reason
    return reasons


RECIPE_FIELDS = ("p2_head", "max_epoch", "warmup_epochs", "no_aug_epochs", "no_aug_scale", "l1_in_no_aug",
                 "optimizer_type", "basic_lr_per_img", "weight_decay", "momentum", "ema_decay", "ema_ramp_updates",
                 "mosaic_prob", "mosaic_scale", "mixup_prob", "enable_mixup", "multiscale_range", "random_size",
                 "center_radius", "input_size", "seed")


def recipe_lines(exp, overridden: set, reasons: Dict[str, str]) -> List[str]:
    """One line per recipe field the exp has: its value and where it came from."""
    lines = []
    for field in RECIPE_FIELDS:
        if not hasattr(exp, field):
            continue
        source = reasons.get(field) or ("set on the command line" if field in overridden else "the exp's")
        lines.append(f"{field}: {getattr(exp, field)!r}  ({source})")
    return lines


def log_plan(policy, batch: int, decision, exp, world_size: int, recipe: List[str] = ()) -> None:
    """The decisions a Mac or GPU user asks about first, each with its reason."""
    from loguru import logger

    amp = "off" if policy.amp_dtype is None else str(policy.amp_dtype).replace("torch.", "")
    ddp = f"on ({world_size} processes, {policy.dist_backend})" if world_size > 1 else "off"
    if world_size > 1 or policy.dist_backend is None:
        ddp_reason = policy.reasons["dist_backend"]
    else:
        ddp_reason = "one process: -d not given"
    lines = [
        f"device: {policy.device} (rules: {policy.kind})  ({policy.reasons['device']})",
        f"AMP: {amp}  ({policy.reasons['amp_dtype']})",
        f"DDP: {ddp}  ({ddp_reason})",
        f"pin_memory: {'on' if policy.pin_memory else 'off'}  ({policy.reasons['pin_memory']})",
        f"cache release every: {policy.cache_release_every or 'never'}  ({policy.reasons['cache_release_every']})",
        batch_line(batch, decision, world_size, policy),
        f"learning rate: {exp.basic_lr_per_img * batch:.3e} = {exp.basic_lr_per_img:.3e} per image x {batch}",
        *recipe,
    ]
    for line in lines:
        logger.info(f"crater plan: {line}")


def batch_line(batch: int, decision, world_size: int, policy) -> str:
    """The plan's batch line; with several processes it says how the total comes from one device's measurement."""
    if world_size == 1:
        return f"batch: {batch}  ({decision.reason})"
    return (f"batch: per device {decision.batch_size} x {world_size} devices = {batch}  (measured once on "
            f"{policy.device} before the processes start, the other GPUs taken to be alike; {decision.reason})")


def make_trainer_class():
    """A Trainer that also keeps the loss and AP history, epoch throughput, for the end-of-run plots."""
    from loguru import logger

    from yolox.core import Trainer

    class CraterTrainer(Trainer):
        def __init__(self, exp, args, policy=None):
            super().__init__(exp, args, policy)
            self.loss_history: List[dict] = []
            self.ap_history: List[dict] = []

        def before_epoch(self) -> None:
            self.epoch_started = (time.time(), self.samples_seen)
            super().before_epoch()

        def after_iter(self) -> None:
            row = {"iteration": self.progress_in_iter + 1}
            row.update({name: meter.latest for name, meter in self.meter.get_filtered_meter("loss").items()})
            self.loss_history.append(row)
            super().after_iter()

        def after_epoch(self) -> None:
            started, samples = self.epoch_started
            img_per_s = (self.samples_seen - samples) / max(time.time() - started, 1e-9)
            logger.info(f"epoch {self.epoch + 1}/{self.max_epoch}: {img_per_s:.1f} img/s, batch {self.batch_size}, "
                        f"{self.policy.memory_line()}")
            super().after_epoch()

        def evaluate_and_save_model(self) -> None:
            super().evaluate_and_save_model()
            ap50_95, ap50 = self.exp.last_eval[:2]
            self.ap_history.append({"epoch": self.epoch + 1, "AP50": ap50, "AP50:95": ap50_95})

    return CraterTrainer


def save_plots(trainer, exp) -> List[str]:
    """Loss/AP curves and a grid of validation predictions, next to the run's checkpoints."""
    import numpy as np
    from loguru import logger

    from yolox.utils.optional import MissingExtra
    from yolox.utils.plots import history_to_series, save_prediction_grid, save_training_curves

    written = []
    try:
        written.append(str(save_training_curves(history_to_series(trainer.loss_history, "iteration"),
                                                history_to_series(trainer.ap_history, "epoch"),
                                                os.path.join(trainer.file_name, "curves.png"), exp.exp_name)))
    except MissingExtra as missing:
        logger.warning(f"curves.png skipped: {missing}")
    outputs = exp.last_eval_outputs or {}
    dataset = trainer.evaluator.dataloader.dataset
    images, predictions, truths = [], [], []
    for index, image_id in enumerate(dataset.ids[:12]):
        ann_ids = dataset.coco.getAnnIds(imgIds=[int(image_id)], iscrowd=False)
        xywh = np.array([a["bbox"] for a in dataset.coco.loadAnns(ann_ids)], np.float64).reshape(-1, 4)
        result = outputs.get(int(image_id), {"bboxes": [], "scores": []})
        preds = np.hstack([np.asarray(result["bboxes"], np.float64).reshape(-1, 4),
                           np.asarray(result["scores"], np.float64).reshape(-1, 1)])
        images.append(dataset.load_image(index))
        predictions.append(preds)
        truths.append(np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]))
    if images:
        written.append(str(save_prediction_grid(images, predictions, truths,
                                                os.path.join(trainer.file_name, "predictions.png"))))
    return written


def run_training(exp, args, policy=None) -> dict:
    """Train in this process (one process per GPU under -d); returns the final figures on rank 0."""
    from loguru import logger

    from yolox.utils.dist import get_rank

    if policy is None:
        from yolox.utils.device import build_policy
        from yolox.utils.dist import get_local_rank, get_world_size

        policy = build_policy(args.device, fp16=args.fp16, local_rank=get_local_rank(),
                              world_size=get_world_size(), cache_release_every=args.cache_release_every,
                              compile_model=args.compile)
    exp.device_policy = policy
    if exp.seed is not None:
        policy.seed_everything(int(exp.seed))
    prepare_model(exp, args.grad_ckpt)
    trainer = make_trainer_class()(exp, args, policy)
    trainer.train()
    if get_rank() != 0:
        return {}
    figures = {"best_AP50_95": trainer.best_ap, "best_epoch": trainer.best_epoch}
    if trainer.ap_history:
        figures.update(AP50=trainer.ap_history[-1]["AP50"], AP50_95=trainer.ap_history[-1]["AP50:95"])
    figures["plots"] = save_plots(trainer, exp)
    for path in figures["plots"]:
        logger.info(f"wrote {path}")
    return figures


def main(argv: Optional[List[str]] = None, policy=None) -> dict:
    """Run the crater workflow; `policy` replaces the detected device policy (tests simulate MPS this way)."""
    prepare_environment(argv)
    args = make_parser().parse_args(argv)

    from loguru import logger

    from yolox.core import launch
    from yolox.utils.device import DeviceUnavailableError, build_policy, device_count
    from yolox.utils.logger import setup_logger
    from yolox.utils.setup_env import configure_module

    configure_module()
    args.ckpt = resolve_ckpt(args.ckpt, args.resume)
    data_dir_given = args.data_dir is not None
    exp = build_exp(args)
    file_name = os.path.join(exp.output_dir, args.experiment_name)
    os.makedirs(file_name, exist_ok=True)
    setup_logger(file_name, distributed_rank=0, filename="train_log.txt", mode="a")
    ensure_data(exp, data_dir_given, args.demo)

    if policy is None:
        try:
            world = args.devices or 1
            policy = build_policy(args.device, fp16=args.fp16, world_size=world,
                                  cache_release_every=args.cache_release_every, compile_model=args.compile)
        except DeviceUnavailableError as error:
            raise SystemExit(str(error)) from None
    world_size = 1
    if args.devices and args.devices > 1:
        if policy.kind == "cuda" and policy.dist_backend:
            world_size = min(args.devices, device_count("cuda"))
        else:
            logger.warning(f"-d {args.devices} ignored: one process on {policy.kind} "
                           f"({policy.reasons['dist_backend']})")
    exp.device_policy = policy
    if exp.seed is not None:
        policy.seed_everything(int(exp.seed))     # before the model is built: the same initial weights
    exp.label_caps()    # label rows and detections per image from the densest images, logged with the plan
    label_stats = train_label_stats(exp)
    overridden = opts_keys(args.opts)
    reasons = {"model": args.exp_reason}
    if is_scratch(args):
        reasons.update(apply_scratch_model(exp, overridden))
    batch, decision = choose_batch(exp, args, policy, world_size, label_stats)
    args.batch_size = batch
    if is_scratch(args):
        reasons.update(apply_scratch_schedule(exp, batch, label_stats[1], overridden))
    recipe = [f"model: {exp.exp_name} (depth {exp.depth}, width {exp.width})  ({reasons['model']})"]
    log_plan(policy, batch, decision, exp, world_size, recipe + recipe_lines(exp, overridden, reasons))

    started = time.time()
    if world_size > 1:
        exp.device_policy = None
        exp.__dict__.pop("model", None)      # each GPU process builds its own
        policy.release_cache()
        launch(run_training, world_size, backend=policy.dist_backend,
               dist_url=args.dist_url or "auto", args=(exp, args))
        figures = {}
    else:
        figures = run_training(exp, args, policy)
    summary = report_run(file_name, exp, batch, time.time() - started)
    if summary:
        figures.update(summary=summary)
    return figures


def report_run(run_dir: str, exp, batch: int, wall_seconds: float) -> Optional[dict]:
    """Closing lines (best and final AP, their epochs and checkpoints) and run_summary.json; None without evaluations."""
    from loguru import logger

    from yolox.utils.eval_history import best_and_final, read_eval_history

    rows = read_eval_history(run_dir)
    picked = best_and_final(rows)
    if picked is None:
        logger.warning(f"no evaluation recorded in {run_dir}: no AP to report")
        return None
    final = rows[-1]
    summary = {
        "best": dict(picked["best"], ckpt=os.path.join(run_dir, "best_ckpt.pth")),
        "final": dict(picked["final"], ckpt=os.path.join(run_dir, "last_epoch_ckpt.pth")),
        "max_epoch": exp.max_epoch, "batch": batch,
        "img_per_s": final["samples_seen"] / max(final["train_seconds"], 1e-9),
        "train_seconds": final["train_seconds"], "wall_seconds": round(wall_seconds, 3),
    }
    with open(os.path.join(run_dir, RUN_SUMMARY_FILE), "w") as handle:
        json.dump(summary, handle, indent=1)
    for name in ("best", "final"):
        row = summary[name]
        line = (f"{name} AP50 {row['AP50']:.3f}, AP50:95 {row['AP50:95']:.3f} at epoch {row['epoch']} "
                f"({row['ckpt']})")
        logger.info(line)
        print(line, flush=True)
    return summary


def cli() -> None:
    """The `yolox-train-craters` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
