"""The one place a run calls the exp methods that users' exp files override.

Exp files are users' code, and many are written for upstream YOLOX, whose methods take no device policy and
no model: `get_optimizer(self, batch_size)` reads `self.model`, `get_data_loader(self, batch_size,
is_distributed, no_aug=False, cache_img=None)`, `get_evaluator(self, batch_size, is_distributed, testdev=False,
legacy=False)`, `eval(self, model, evaluator, is_distributed, half=False, return_outputs=False)`,
`get_trainer(self, args)`. This project's own methods take the newer keywords (`model`, `policy`, `start`,
`amp`). Each function below passes a newer keyword only where the method names it, and otherwise gives the
method what upstream gave it.
"""
from typing import Any, Optional

from torch import nn

from yolox.utils.compat import accepts_keyword
from yolox.utils.device import DevicePolicy

__all__ = ["build_optimizer", "build_train_loader", "build_evaluator", "evaluate", "build_trainer",
           "loader_restarts_at"]


def _newer(method, **keywords: Any) -> dict:
    """The keywords `method` names."""
    return {name: value for name, value in keywords.items() if accepts_keyword(method, name)}


def build_optimizer(exp, batch_size: int, model: nn.Module, policy: DevicePolicy):
    """exp.get_optimizer for `model`. An upstream-style override reads `self.model`: the exp's documented
    `model` field is then set to the model this run trains (upstream's trainer left it there too)."""
    method = exp.get_optimizer
    if accepts_keyword(method, "model"):
        return method(batch_size, **_newer(method, model=model, policy=policy))
    exp.model = model
    return method(batch_size, **_newer(method, policy=policy))


def loader_restarts_at(exp) -> bool:
    """True when exp.get_data_loader takes `start` (the stream position of an exact resume)."""
    return accepts_keyword(exp.get_data_loader, "start")


def build_train_loader(exp, batch_size: int, is_distributed: bool, no_aug: bool, cache_img: Optional[str],
                       start: int, policy: DevicePolicy):
    """exp.get_data_loader at stream position `start` (images already consumed), where the method takes it."""
    method = exp.get_data_loader
    return method(batch_size, is_distributed, no_aug=no_aug, cache_img=cache_img,
                  **_newer(method, start=start, policy=policy))


def build_evaluator(exp, batch_size: int, is_distributed: bool, policy: DevicePolicy, testdev: bool = False,
                    legacy: bool = False):
    method = exp.get_evaluator
    return method(batch_size, is_distributed, testdev, legacy, **_newer(method, policy=policy))


def evaluate(exp, model: nn.Module, evaluator, is_distributed: bool, policy: DevicePolicy, amp: bool = False):
    """exp.eval with the per-image outputs: ((AP50:95, AP50, summary), outputs)."""
    method = exp.eval
    return method(model, evaluator, is_distributed, return_outputs=True, **_newer(method, policy=policy, amp=amp))


def build_trainer(exp, options, policy: DevicePolicy):
    """exp.get_trainer(options, policy); an upstream-style get_trainer(self, args) gets the options alone."""
    method = exp.get_trainer
    return method(options, **_newer(method, policy=policy))
