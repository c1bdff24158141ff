"""Training orchestration: the Trainer and the process launcher."""
from yolox.core.launch import launch
from yolox.core.trainer import Trainer

__all__ = ["Trainer", "launch"]
