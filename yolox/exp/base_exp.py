"""Abstract experiment: the object that owns the construction of model, data, optimizer and evaluator."""
from abc import ABCMeta, abstractmethod
from pprint import pformat
from typing import Any, Sequence

from tabulate import tabulate
from torch.nn import Module

from yolox.exp.opts import apply_opts


class BaseExp(metaclass=ABCMeta):
    """Settings shared by every experiment; subclasses build the pieces of a training run."""

    def __init__(self) -> None:
        self.seed = None
        self.output_dir = "./YOLOX_outputs"
        self.print_interval = 100
        self.eval_interval = 10
        self.dataset = None

    @abstractmethod
    def get_model(self) -> Module:
        pass

    @abstractmethod
    def get_dataset(self, cache: bool = False, cache_type: str = "ram"):
        pass

    @abstractmethod
    def get_data_loader(self, batch_size: int, is_distributed: bool):
        pass

    @abstractmethod
    def get_optimizer(self, batch_size: int):
        pass

    @abstractmethod
    def get_lr_scheduler(self, lr: float, iters_per_epoch: int, **kwargs):
        pass

    @abstractmethod
    def get_evaluator(self):
        pass

    @abstractmethod
    def eval(self, model, evaluator, weights):
        pass

    def __repr__(self) -> str:
        rows = [(key, pformat(value)) for key, value in vars(self).items() if not key.startswith("_")]
        return tabulate(rows, headers=["keys", "values"], tablefmt="fancy_grid")

    def merge(self, cfg_list: Sequence[Any]) -> None:
        """Apply command-line `KEY VALUE ...` overrides with the types of the current values."""
        apply_opts(self, cfg_list)
