#!/usr/bin/env python3
"""Train a few iterations under autocast and report the first layer whose output or gradient is non-finite.

Every leaf module gets a forward hook (its output) and a tensor hook on that output (its gradient). Each
iteration prints the GradScaler's scale and the loss; the first non-finite forward output, the first
non-finite gradient (in backward order) and any non-finite weight after the step are printed once with the
module name. A non-finite *gradient* with a finite forward is what the scaler handles (it halves the scale
and skips the step); a non-finite *forward output* or weight is the bug.

Example (THEMIS, yolox-nano, fp16 + channels_last, LR held at epoch 3's value; a few minutes on one H200):
    python benchmarks/debug_nonfinite.py -n yolox-nano --data-dir ../shared/datasets/themis_mars -b 64 \\
        --size 416 --iters 400 --fp16 --lr-at-epoch 3
Add --ckpt PATH --resume to start from a checkpoint of the run that diverged (its scaler state included).
"""
import argparse
import math
import tempfile
from typing import Dict, List, Optional

import torch
from loguru import logger

from yolox.exp import get_exp
from yolox.utils.device import build_policy
from yolox.utils.user_errors import CLIParser, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = CLIParser("find the first non-finite layer under autocast")
    parser.add_argument("-n", "--name", default="yolox-nano", help="default exp name")
    parser.add_argument("-f", "--exp_file", default=None, help="exp file (wins over -n)")
    parser.add_argument("--data-dir", required=True, help="COCO-layout dataset, e.g. ../shared/datasets/themis_mars")
    parser.add_argument("--num-classes", type=int, default=1, help="classes in the data (craters: 1)")
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fp16", action="store_true", help="fp16 autocast with a GradScaler")
    parser.add_argument("--contiguous", action="store_true", help="plain layout instead of channels_last")
    parser.add_argument("--ckpt", default=None, help="checkpoint to start from")
    parser.add_argument("--resume", action="store_true", help="resume --ckpt (optimizer, scaler, epoch)")
    parser.add_argument("--lr-at-epoch", type=int, default=None,
                        help="hold the LR at the schedule's value of this epoch (e.g. the one that went NaN)")
    return parser.parse_args(argv)


class NonFiniteWatch:
    """Hooks on every leaf module that remember the first non-finite forward output and gradient."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.first: Dict[str, str] = {}
        self.handles = [module.register_forward_hook(self._forward_hook(name))
                        for name, module in model.named_modules() if not list(module.children())]
        self.iteration = 0

    def _record(self, kind: str, name: str, tensor: torch.Tensor) -> None:
        if kind in self.first or torch.isfinite(tensor).all():
            return
        finite = tensor[torch.isfinite(tensor)]
        peak = float(finite.abs().max()) if finite.numel() else float("nan")
        self.first[kind] = (f"iter {self.iteration}: {kind} of {name} non-finite ({tensor.dtype}, "
                            f"{int((~torch.isfinite(tensor)).sum())} of {tensor.numel()}, max |finite| {peak:.4g})")
        logger.warning(self.first[kind])

    def _forward_hook(self, name: str):
        def hook(module: torch.nn.Module, inputs, output) -> None:
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                return
            self._record("forward output", name, output.detach())
            if output.requires_grad:
                output.register_hook(lambda grad: self._record("gradient", name, grad))
        return hook


def build_trainer(args: argparse.Namespace):
    from yolox.core.trainer import Trainer
    from yolox.utils.setup_env import configure_module

    configure_module()
    exp = get_exp(args.exp_file, args.name)
    exp.data_dir, exp.num_classes = args.data_dir, args.num_classes
    exp.input_size = exp.test_size = (args.size, args.size)
    exp.eval_interval = 10 ** 6
    exp.output_dir = tempfile.mkdtemp(prefix="yolox_nonfinite_")
    policy = build_policy(args.device, fp16=args.fp16, channels_last=False if args.contiguous else None, log=True)
    trainer_args = argparse.Namespace(batch_size=args.batch_size, experiment_name="debug_nonfinite",
                                      device=args.device, fp16=args.fp16, resume=args.resume, ckpt=args.ckpt,
                                      start_epoch=None, cache=None, occupy=False, logger="tensorboard",
                                      trust_ckpt=False)
    trainer = Trainer(exp, trainer_args, policy=policy)
    trainer.before_train()
    return trainer


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    args = parse_args(argv)
    trainer = build_trainer(args)
    watch = NonFiniteWatch(trainer.model)
    epoch = trainer.start_epoch if args.lr_at_epoch is None else args.lr_at_epoch
    for step in range(args.iters):
        trainer.epoch, trainer.iter = epoch, step % trainer.max_iter
        watch.iteration = step
        scale = trainer.scaler.get_scale() if trainer.scaler.is_enabled() else 1.0
        trainer.train_one_iter()
        loss = float(trainer.meter["total_loss"].latest)
        bad_weights = [name for name, param in trainer.model.named_parameters() if not torch.isfinite(param).all()]
        logger.info(f"iter {step}: loss {loss:.4f}, scale {scale:g}, lr {trainer.meter['lr'].latest:.5g}")
        if bad_weights:
            watch.first.setdefault("weights", f"iter {step}: non-finite weights after the step: {bad_weights[:5]}")
            logger.error(watch.first["weights"])
            break
        if not math.isfinite(loss):
            watch.first.setdefault("loss", f"iter {step}: total_loss {loss}")
    print("first non-finite events:" if watch.first else f"no non-finite output, gradient or weight in {args.iters} iters")
    for line in watch.first.values():
        print(f"  {line}")
    return watch.first


if __name__ == "__main__":
    run_cli(main)
