"""Experiments: BaseExp, the YOLOX Exp, and get_exp to load one by file or by name."""
from yolox.exp.base_exp import BaseExp
from yolox.exp.build import create_exp_model, get_exp
from yolox.exp.yolox_base import Exp, check_exp_value

__all__ = ["BaseExp", "Exp", "get_exp", "check_exp_value", "create_exp_model"]
