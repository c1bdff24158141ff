#!/usr/bin/env python3
"""Measure YOLOX training and inference throughput on CUDA, MPS or CPU.

Prints one JSON line per measurement, then a table. Paste both into an issue.

Examples:
    python benchmarks/benchmark.py -n yolox-s -b 64 --size 640 --gts 20 --settings plain,fast
    python benchmarks/benchmark.py -n yolox-nano -b 8 --size 416 --device cpu --threads 2
    python benchmarks/benchmark.py -n yolox-s -b 64 --measure trainer --iters 200 --warmup 30
"""
import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from tabulate import tabulate

from yolox.exp import get_exp
from yolox.utils.device import DevicePolicy, build_policy
from yolox.utils.user_errors import CLIParser, run_cli


@dataclass(frozen=True)
class Settings:
    """One named combination of speed settings; "plain" is upstream's arithmetic."""

    name: str
    precision: str  # "fp32", "fp16" (autocast + GradScaler) or "bf16" (autocast, no scaler)
    channels_last: bool
    compile: bool


# "fast" is what the device layer picks by default; "plain" is upstream's arithmetic and layout.
PRESETS = {
    "plain": {"cuda": Settings("plain", "fp16", False, False),
              "mps": Settings("plain", "fp32", False, False),
              "cpu": Settings("plain", "fp32", False, False)},
    "fast": {"cuda": Settings("fast", "fp16", True, False),
             "mps": Settings("fast", "fp32", False, False),
             "cpu": Settings("fast", "fp32", True, False)},
    "compiled": {"cuda": Settings("compiled", "fp16", True, True),
                 "mps": Settings("compiled", "fp32", False, True),
                 "cpu": Settings("compiled", "fp32", True, True)},
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = CLIParser("YOLOX benchmark")
    parser.add_argument("-n", "--name", default="yolox-s", help="default exp name, e.g. yolox-s")
    parser.add_argument("-f", "--exp_file", default=None, help="exp file (wins over -n)")
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the exp's)")
    parser.add_argument("--gts", type=int, default=20, help="ground truths per image")
    parser.add_argument("--num-classes", type=int, default=1, help="classes (craters: 1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--settings", default="plain,fast",
                        help=f"comma list of {sorted(PRESETS)}, or custom precision:cl:compile e.g. bf16:1:0")
    parser.add_argument("--measure", default="step,eval",
                        help="comma list of step (model step), trainer (full trainer), loader (data only), eval")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cudnn-benchmark", default="auto", choices=["auto", "on", "off"],
                        help="cuDNN autotuning (auto: the device layer's decision)")
    parser.add_argument("--data-dir", default=None, help="trainer measurement: dataset (default: synthetic craters)")
    parser.add_argument("--workers", type=int, default=None, help="trainer/loader measurement: loader workers")
    parser.add_argument("--cache", default=None, choices=["ram", "disk"],
                        help="trainer/loader measurement: cache decoded images (like tools/train.py --cache)")
    parser.add_argument("--augment", default="exp", choices=["exp", "device", "worker"],
                        help="trainer/loader measurement: device = batched augmentation after the prefetcher "
                             "(exp.device_augment=True), worker = per-image numpy pipeline in the loader workers, "
                             "exp = the exp's setting (None: the device policy's batch_augment)")
    parser.add_argument("--fused-optimizer", default="auto", choices=["auto", "on", "off"],
                        help="fused SGD/AdamW kernels (auto: the device layer's decision)")
    parser.add_argument("--compile-model", default="auto", choices=["auto", "on", "off"],
                        help="step and trainer measurements: compile the model's backbone (the --settings compiled "
                             "preset turns it on for every measurement)")
    parser.add_argument("--compile-augment", default="auto", choices=["auto", "on", "off"],
                        help="trainer/loader measurement: compile the batch augmentation's image half "
                             "(auto: the device layer's decision)")
    parser.add_argument("--profile", type=int, default=0,
                        help="trainer measurement: profile this many more iterations with torch.profiler and print "
                             "where host and device time go")
    parser.add_argument("--trace-out", default=None, help="with --profile: write the Chrome trace here")
    parser.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    return parser.parse_args(argv)


def resolve_settings(spec: str, kind: str) -> List[Settings]:
    """Turn "plain,fast" or "bf16:1:0" into Settings for this device kind."""
    chosen = []
    for item in spec.split(","):
        item = item.strip()
        if item in PRESETS:
            chosen.append(PRESETS[item][kind])
            continue
        parts = item.split(":")
        if len(parts) != 3 or parts[0] not in ("fp32", "fp16", "bf16"):
            raise SystemExit(f"--settings: '{item}' is neither a preset {sorted(PRESETS)} nor precision:cl:compile")
        chosen.append(Settings(item, parts[0], parts[1] == "1", parts[2] == "1"))
    return chosen


def policy_for(args: argparse.Namespace, settings: Settings) -> DevicePolicy:
    switch = {"auto": None, "on": True, "off": False}
    return build_policy(args.device, fp16=settings.precision == "fp16", bf16=settings.precision == "bf16",
                        channels_last=settings.channels_last,
                        compile_model=settings.compile or switch[args.compile_model],
                        cudnn_benchmark=switch[args.cudnn_benchmark], fused_optimizer=switch[args.fused_optimizer],
                        compile_augment=switch[args.compile_augment])


def synthetic_batch(batch: int, size: int, gts: int, num_classes: int, device: torch.device, seed: int = 0):
    """Noise images and `gts` random boxes per image, as the trainer feeds them (cx, cy, w, h pixels)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen) * 255
    wh = 8 + torch.rand(batch, gts, 2, generator=gen) * (size / 5)
    centre = wh / 2 + torch.rand(batch, gts, 2, generator=gen) * (size - wh)
    cls = torch.randint(0, num_classes, (batch, gts, 1), generator=gen).float()
    targets = torch.cat([cls, centre, wh], dim=2)
    return images.to(device), targets.to(device)


def build_model(exp, policy: DevicePolicy, train: bool):
    model = policy.place_model(exp.get_model())
    model.train(train)
    return model


def timed(run: Callable[[], None], policy: DevicePolicy, iters: int, warmup: int) -> float:
    """Median-free simple mean: seconds per call over `iters` calls after `warmup` calls."""
    for _ in range(warmup):
        run()
    policy.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        run()
    policy.synchronize()
    return (time.perf_counter() - start) / iters


def measure_step(exp, args, settings: Settings, size: int) -> Dict:
    """Forward, loss, backward and optimizer step on a fixed synthetic batch."""
    policy = policy_for(args, settings)
    policy.configure_backends()
    model = build_model(exp, policy, train=True)
    optimizer = exp.get_optimizer(args.batch_size, model=model, policy=policy)
    scaler = policy.make_grad_scaler()
    images, targets = synthetic_batch(args.batch_size, size, args.gts, exp.num_classes, policy.device)
    if policy.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    policy.compile_model_parts(model)

    def step() -> None:
        with policy.autocast():
            loss = model(images, targets)["total_loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    policy.reset_peak_memory()
    sec = timed(step, policy, args.iters, args.warmup)
    return {"measure": "model_step", "sec_per_iter": sec, "img_per_s": args.batch_size / sec,
            "peak_mem_mb": policy.peak_memory() / 2**20}


def measure_eval(exp, args, settings: Settings, size: int) -> Dict:
    """Eval forward plus postprocess (no gradients)."""
    from yolox.utils.boxes import postprocess

    policy = policy_for(args, settings)
    policy.configure_backends()
    model = build_model(exp, policy, train=False)
    images, _ = synthetic_batch(args.batch_size, size, 1, exp.num_classes, policy.device)
    if policy.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def infer() -> None:
        with policy.autocast():
            outputs = model(images)
        postprocess(outputs.float(), exp.num_classes, exp.test_conf, exp.nmsthre)

    policy.reset_peak_memory()
    sec = timed(infer, policy, args.iters, args.warmup)
    return {"measure": "eval", "sec_per_iter": sec, "img_per_s": args.batch_size / sec,
            "peak_mem_mb": policy.peak_memory() / 2**20}


def synthetic_data_dir(size: int, num_train: int) -> str:
    """A synthetic crater set at `size` under the temp dir, made once and reused."""
    from yolox.synthetic.craters import generate_synthetic_craters

    out_dir = Path(tempfile.gettempdir()) / f"yolox_bench_craters_{size}_{num_train}"
    if not (out_dir / "annotations" / "instances_val2017.json").exists():
        generate_synthetic_craters(out_dir, num_train=num_train, num_val=8, img_size=size, seed=0)
    return str(out_dir)


def prepare_training_exp(exp, args, size: int) -> None:
    """Point the exp at real data and keep it in the mosaic phase with no evaluation."""
    from yolox.utils.setup_env import configure_module

    configure_module()
    exp.data_dir = args.data_dir or synthetic_data_dir(size, num_train=128)
    exp.input_size = exp.test_size = (size, size)
    exp.max_epoch, exp.eval_interval = 10**6, 10**6
    exp.output_dir = tempfile.mkdtemp(prefix="yolox_bench_")
    if args.workers is not None:
        exp.data_num_workers = args.workers
    if args.augment != "exp":
        exp.device_augment = args.augment == "device"
    if args.cache:
        exp.dataset = exp.get_dataset(cache=True, cache_type=args.cache)


def measure_loader(exp, args, settings: Settings, size: int) -> Dict:
    """Batches per second out of the training loader and prefetcher alone (workers, augmentation wherever
    the exp puts it, collation, pinning, the copy to the device)."""
    from yolox.data.data_prefetcher import DataPrefetcher

    prepare_training_exp(exp, args, size)
    policy = policy_for(args, settings)
    exp.resolve_device_augment(policy.batch_augment, policy.reasons["batch_augment"])
    train_loader = exp.get_data_loader(batch_size=args.batch_size, is_distributed=False, cache_img=args.cache,
                                       policy=policy)
    prefetcher = DataPrefetcher(train_loader, policy)
    for _ in range(args.warmup):
        prefetcher.next()
    policy.synchronize()
    start = time.perf_counter()
    for _ in range(args.iters):
        prefetcher.next()
    policy.synchronize()
    sec = (time.perf_counter() - start) / args.iters
    return {"measure": "loader", "sec_per_iter": sec, "img_per_s": args.batch_size / sec, "peak_mem_mb": 0.0,
            "workers": train_loader.num_workers, "cache": args.cache, "device_augment": bool(exp.device_augment)}


def measure_trainer(exp, args, settings: Settings, size: int) -> Dict:
    """The real Trainer: data loading, mosaic/mixup and multi-scale as the exp sets them, EMA, LR schedule."""
    from yolox.core.trainer import Trainer

    policy = policy_for(args, settings)
    prepare_training_exp(exp, args, size)
    trainer_args = argparse.Namespace(batch_size=args.batch_size, experiment_name="benchmark", device=args.device,
                                      fp16=settings.precision == "fp16", resume=False, ckpt=None, start_epoch=None,
                                      cache=args.cache, occupy=False, logger="tensorboard", trust_ckpt=False)
    trainer = Trainer(exp, trainer_args, policy=policy)
    trainer.before_train()
    for step in range(args.warmup + args.iters):
        if step == args.warmup:
            policy.synchronize()
            policy.reset_peak_memory()
            start = time.perf_counter()
        trainer.epoch, trainer.iter = divmod(step, trainer.max_iter)
        trainer.train_one_iter()
        trainer.after_iter()
    policy.synchronize()
    sec = (time.perf_counter() - start) / args.iters
    if args.profile:
        profile_trainer(trainer, policy, args.warmup + args.iters, args.profile, args.trace_out)
    return {"measure": "trainer", "sec_per_iter": sec, "img_per_s": args.batch_size / sec,
            "peak_mem_mb": policy.peak_memory() / 2**20, "workers": trainer.train_loader.num_workers,
            "cache": args.cache, "device_augment": bool(exp.device_augment),
            "data_wait_s": trainer.meter["data_time"].global_avg, "last_size": trainer.input_size[0]}


def _device_time_us(event) -> float:
    """Device time of a kernel or copy event average (torch renamed the attribute from cuda to device)."""
    return getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0.0)


def profile_trainer(trainer, policy: DevicePolicy, first_step: int, iters: int, trace_out: Optional[str]) -> None:
    """Run `iters` more trainer iterations under torch.profiler; print the trainer's ranges, the top device
    kernels and how busy the device was."""
    from torch.autograd import DeviceType
    from torch.profiler import profile

    with profile(activities=policy.profiler_activities()) as prof:
        start = time.perf_counter()
        for step in range(first_step, first_step + iters):
            trainer.epoch, trainer.iter = divmod(step, trainer.max_iter)
            trainer.train_one_iter()
            trainer.after_iter()
        policy.synchronize()
        wall_us = (time.perf_counter() - start) * 1e6
    events = prof.key_averages()
    ranges = [e for e in events if e.key.startswith("trainer.")]
    print(tabulate([[e.key, e.count, e.cpu_time_total / 1e3 / iters] for e in ranges],
                   headers=["range", "calls", "host ms per iter"], floatfmt=".2f"))
    # the kernels and copies themselves: host ops and ranges also carry the device time of what they launched
    on_device = [e for e in events if e.device_type != DeviceType.CPU]
    busy_us = sum(_device_time_us(e) for e in on_device)
    if busy_us:
        top = sorted(on_device, key=_device_time_us, reverse=True)[:25]
        print(tabulate([[e.key[:70], e.count // iters, _device_time_us(e) / 1e3 / iters] for e in top],
                       headers=["device op", "calls per iter", "device ms per iter"], floatfmt=".2f"))
    busy = (f", device busy {busy_us / 1e3 / iters:.1f} ms ({100 * busy_us / wall_us:.0f}%, kernels on all streams "
            "summed)") if busy_us else ""
    print(f"profiled {iters} iterations: {wall_us / 1e3 / iters:.1f} ms per iteration{busy}")
    if trace_out:
        prof.export_chrome_trace(trace_out)


MEASURES = {"step": measure_step, "eval": measure_eval, "trainer": measure_trainer, "loader": measure_loader}


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    kind = build_policy(args.device).kind
    rows = []
    for settings in resolve_settings(args.settings, kind):
        for measure in args.measure.split(","):
            exp = get_exp(args.exp_file, args.name)
            exp.num_classes = args.num_classes
            size = args.size or exp.input_size[0]
            result = MEASURES[measure.strip()](exp, args, settings, size)
            policy = policy_for(args, settings)
            result.update(model=args.exp_file or args.name, batch=args.batch_size, size=size, gts=args.gts,
                          device=str(policy.device), fused_bn_act=policy.fused_bn_act,
                          fused_optimizer=policy.fused_optimizer, compile_augment=policy.compile_augment,
                          compile_model=policy.compile_model,
                          cudnn_benchmark=args.cudnn_benchmark, threads=torch.get_num_threads(),
                          torch=torch.__version__, host=platform.node(), **asdict(settings))
            line = json.dumps(result)
            print(line, flush=True)
            if args.json_out:
                with open(args.json_out, "a") as sink:
                    sink.write(line + "\n")
            rows.append(result)
    columns = ["measure", "name", "precision", "channels_last", "fused_bn_act", "compile_model", "batch", "size", "img_per_s",
               "sec_per_iter", "peak_mem_mb"]
    print(tabulate([[row.get(c) for c in columns] for row in rows], headers=columns, floatfmt=".3f"))
    return rows


if __name__ == "__main__":
    run_cli(main)
