#!/usr/bin/env python3
"""Model step (forward, loss, backward, SGD) of upstream YOLOX and of this project, interleaved in one process.

Upstream is imported from a source tree given with --upstream (its `yolox` package is loaded under its own
module table, so both live in one process); both models get the same weights, images and boxes.

    pip download --no-deps --no-build-isolation yolox==0.3.0 -d /tmp/up && tar xzf /tmp/up/yolox-0.3.0.tar.gz -C /work/upstream_site
    python benchmarks/bench_upstream_cpu.py --upstream /work/upstream_site/yolox-0.3.0 --threads 2 --reps 15
"""
import statistics
import sys
import time
import types
from typing import Callable, Dict, List, Optional

import torch

from yolox.utils.user_errors import CLIParser, run_cli

from benchmark import synthetic_batch  # benchmarks/benchmark.py: this script's folder is first on sys.path


OURS = "ours (cpu policy)"


def load_upstream_yolox(source_dir: str) -> types.SimpleNamespace:
    """Import upstream's yolox.models from `source_dir` without disturbing this project's `yolox`."""
    ours = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "yolox" or name.startswith("yolox.")}
    sys.modules.setdefault("thop", types.SimpleNamespace(profile=None))  # upstream's FLOP counter, unused here
    sys.path.insert(0, source_dir)
    try:
        from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead  # upstream's, from source_dir
    finally:
        sys.path.remove(source_dir)
        for name in [name for name in sys.modules if name == "yolox" or name.startswith("yolox.")]:
            sys.modules.pop(name)
        sys.modules.update(ours)
    return types.SimpleNamespace(YOLOPAFPN=YOLOPAFPN, YOLOX=YOLOX, YOLOXHead=YOLOXHead)


def nano(classes: Callable, num_classes: int) -> torch.nn.Module:
    """yolox-nano (depth 0.33, width 0.25, depthwise) from a module namespace with upstream's constructors."""
    in_channels = [256, 512, 1024]
    backbone = classes.YOLOPAFPN(0.33, 0.25, in_channels=in_channels, depthwise=True)
    head = classes.YOLOXHead(num_classes, 0.25, in_channels=in_channels, depthwise=True)
    return classes.YOLOX(backbone, head)


def step_fn(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)

    def step() -> None:
        loss = model(images, targets)["total_loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = CLIParser("upstream vs ours, CPU model step")
    parser.add_argument("--upstream", required=True, help="upstream YOLOX source dir (holds yolox/)")
    parser.add_argument("-b", "--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=15, help="timed steps of each, interleaved")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from yolox.models.build import build_yolox, init_yolox
    from yolox.utils.device import build_policy

    upstream = load_upstream_yolox(args.upstream)
    torch.manual_seed(0)
    ours = init_yolox(build_yolox(0.33, 0.25, num_classes=1, depthwise=True)).train()
    theirs = nano(upstream, 1).train()
    theirs.load_state_dict(ours.state_dict())
    images, targets = synthetic_batch(args.batch_size, args.size, 20, 1, torch.device("cpu"))
    # ours as the trainer sets it up: the CPU policy's layout and BatchNorm+SiLU kernel
    policy = build_policy("cpu")
    ours = policy.place_model(ours)
    ours_images = images.contiguous(memory_format=torch.channels_last) if policy.channels_last else images
    print(f"ours: channels_last={policy.channels_last}, fused_bn_act={policy.fused_bn_act} "
          f"({policy.reasons['fused_bn_act']})")
    steps = {"upstream": step_fn(theirs, images, targets), OURS: step_fn(ours, ours_images, targets)}
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for rep in range(args.warmup + args.reps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if rep >= args.warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, sec in medians.items():
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(f"{name:22s} median {sec:.3f} s/step ({spread})  {args.batch_size / sec:.1f} img/s")
    ratio = medians["upstream"] / medians[OURS]
    print(f"ours / upstream speed: {ratio:.2f}x (batch {args.batch_size}, {args.size} px, {args.threads} threads, "
          f"{args.reps} interleaved reps)")
    return medians


if __name__ == "__main__":
    run_cli(main)
