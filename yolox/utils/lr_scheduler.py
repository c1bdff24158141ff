"""Learning-rate schedules indexed by the global iteration count (upstream YOLOX's names and formulas)."""
import math
from functools import partial
from typing import Callable, Sequence

__all__ = ["LRScheduler"]


def _cosine(lr: float, min_lr: float, position: float, length: float) -> float:
    """Half-cosine from lr (position 0) down to min_lr (position length)."""
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * position / length))


def cos_lr(lr: float, total_iters: int, iters: int) -> float:
    return _cosine(lr, 0.0, iters, total_iters)


def warm_cos_lr(lr: float, total_iters: int, warmup_total_iters: int, warmup_lr_start: float,
                iters: int) -> float:
    if warmup_total_iters > 0 and iters <= warmup_total_iters:
        return (lr - warmup_lr_start) * iters / warmup_total_iters + warmup_lr_start
    return _cosine(lr, 0.0, iters - warmup_total_iters, total_iters - warmup_total_iters)


def yolox_warm_cos_lr(lr: float, min_lr_ratio: float, total_iters: int, warmup_total_iters: int,
                      warmup_lr_start: float, no_aug_iters: int, iters: int) -> float:
    min_lr = lr * min_lr_ratio
    if warmup_total_iters > 0 and iters <= warmup_total_iters:
        return (lr - warmup_lr_start) * (iters / warmup_total_iters) ** 2 + warmup_lr_start
    if iters >= total_iters - no_aug_iters:
        return min_lr
    cosine_len = total_iters - warmup_total_iters - no_aug_iters
    return _cosine(lr, min_lr, iters - warmup_total_iters, cosine_len)


def yolox_semi_warm_cos_lr(lr: float, min_lr_ratio: float, total_iters: int, warmup_total_iters: int,
                           warmup_lr_start: float, no_aug_iters: int, normal_iters: int,
                           semi_iters: int, iters_per_epoch: int, iters_per_epoch_semi: int,
                           iters: int) -> float:
    """Like yoloxwarmcos, but semi-supervised epochs (of another length) advance the cosine
    at the supervised epoch rate."""
    min_lr = lr * min_lr_ratio
    if warmup_total_iters > 0 and iters <= warmup_total_iters:
        return (lr - warmup_lr_start) * (iters / warmup_total_iters) ** 2 + warmup_lr_start
    if iters >= normal_iters + semi_iters:
        return min_lr
    cosine_len = total_iters - warmup_total_iters - no_aug_iters
    if iters <= normal_iters:
        return _cosine(lr, min_lr, iters - warmup_total_iters, cosine_len)
    semi_progress = (iters - normal_iters) * iters_per_epoch / iters_per_epoch_semi
    return _cosine(lr, min_lr, normal_iters - warmup_total_iters + semi_progress, cosine_len)


def multistep_lr(lr: float, milestones: Sequence[int], gamma: float, iters: int) -> float:
    passed = sum(1 for milestone in milestones if iters >= milestone)
    return lr * gamma ** passed


class LRScheduler:
    """LR as a function of the global iteration count.

    Args:
        name: "cos", "warmcos", "yoloxwarmcos", "yoloxsemiwarmcos" or "multistep".
        lr: base learning rate (basic_lr_per_img x total batch size).
        iters_per_epoch: iterations in one epoch.
        total_epochs: number of epochs of the run.
        kwargs: warmup_epochs, warmup_lr_start, no_aug_epochs, min_lr_ratio, milestones, gamma,
            semi_epoch, iters_per_epoch_semi (each schedule reads the ones it needs).
    """

    def __init__(self, name: str, lr: float, iters_per_epoch: int, total_epochs: int, **kwargs):
        self.name = name
        self.lr = lr
        self.iters_per_epoch = iters_per_epoch
        self.total_epochs = total_epochs
        self.total_iters = iters_per_epoch * total_epochs
        self.options = dict(kwargs)
        self.lr_func = self._build()

    def update_lr(self, iters: int) -> float:
        """Learning rate for iteration count `iters`."""
        return self.lr_func(iters)

    def _require(self, key: str):
        if key not in self.options:
            raise ValueError(f"LR scheduler '{self.name}' needs the keyword argument '{key}'")
        return self.options[key]

    def _iters(self, epochs_key: str, default=None) -> int:
        epochs = self.options.get(epochs_key, default)
        if epochs is None:
            epochs = self._require(epochs_key)
        return int(self.iters_per_epoch * epochs)

    def _build(self) -> Callable[[int], float]:
        builders = {
            "cos": self._cos,
            "warmcos": self._warmcos,
            "yoloxwarmcos": self._yoloxwarmcos,
            "yoloxsemiwarmcos": self._yoloxsemiwarmcos,
            "multistep": self._multistep,
        }
        if self.name not in builders:
            raise ValueError(f"Scheduler '{self.name}' is not supported; choose one of {sorted(builders)}")
        return builders[self.name]()

    def _cos(self):
        return partial(cos_lr, self.lr, self.total_iters)

    def _warmcos(self):
        warmup_iters = self._iters("warmup_epochs", 0)
        warmup_lr_start = self.options.get("warmup_lr_start", 1e-6)
        return partial(warm_cos_lr, self.lr, self.total_iters, warmup_iters, warmup_lr_start)

    def _yolox_common(self):
        return (self.lr, self.options.get("min_lr_ratio", 0.2), self.total_iters,
                self._iters("warmup_epochs", 0), self.options.get("warmup_lr_start", 0),
                self._iters("no_aug_epochs", 0))

    def _yoloxwarmcos(self):
        return partial(yolox_warm_cos_lr, *self._yolox_common())

    def _yoloxsemiwarmcos(self):
        semi_epoch = self._require("semi_epoch")
        iters_per_epoch_semi = self._require("iters_per_epoch_semi")
        no_aug_epochs = self.options.get("no_aug_epochs", 0)
        normal_iters = self.iters_per_epoch * semi_epoch
        semi_iters = iters_per_epoch_semi * (self.total_epochs - semi_epoch - no_aug_epochs)
        return partial(yolox_semi_warm_cos_lr, *self._yolox_common(), normal_iters, semi_iters,
                       self.iters_per_epoch, iters_per_epoch_semi)

    def _multistep(self):
        milestones = [int(self.iters_per_epoch * m) for m in self._require("milestones")]
        return partial(multistep_lr, self.lr, milestones, self.options.get("gamma", 0.1))
