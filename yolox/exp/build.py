"""Locate an experiment by exp file (-f) or by standard name (-n), and build the model an exp file describes."""
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import List, Optional, Union

import torch
from torch import nn

from yolox.exp.base_exp import BaseExp
from yolox.utils.checkpoint import load_model_weights
from yolox.utils.user_errors import UserError


class ExpNotFoundError(UserError, FileNotFoundError):
    """No exp file at the path given."""


class UnknownExpError(UserError, ValueError):
    """No exp of the name given, or neither a file nor a name."""

__all__ = ["get_exp", "get_exp_by_file", "get_exp_by_name", "default_exp_names", "create_exp_model"]

_EXP_MARK = "__yolox_exp_file__"  # set on modules loaded from exp files, which a reload may replace


def get_exp_by_file(exp_file: str) -> BaseExp:
    """Import `exp_file` as a module named after its stem and instantiate its class `Exp`."""
    path = Path(exp_file).expanduser().resolve()
    if not path.is_file():
        raise ExpNotFoundError(f"exp file {exp_file} not found; pass the path of a .py file defining class Exp")
    module_name = path.name.split(".")[0]
    # Its folder goes on sys.path so that the file can import its neighbours, and spawned
    # worker processes can re-import the module by name when they unpickle the Exp.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    previous = sys.modules.get(module_name)
    if previous is not None and not getattr(previous, _EXP_MARK, False):
        raise ImportError(f"exp file {exp_file}: its name {module_name!r} is already taken by the module "
                          f"{getattr(previous, '__file__', None) or module_name}; rename the exp file")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    setattr(module, _EXP_MARK, True)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        _restore_module(module_name, previous)
        raise ImportError(f"exp file {exp_file} failed to import: {type(exc).__name__}: {exc}") from exc
    exp_class = getattr(module, "Exp", None)
    if exp_class is None:
        _restore_module(module_name, previous)
        raise ImportError(f"exp file {exp_file} defines no class named 'Exp'; "
                          "subclass yolox.exp.Exp and name the class Exp")
    return _instantiate(exp_class, exp_file)


def get_exp_by_name(exp_name: str) -> BaseExp:
    """Standard experiment such as "yolox-s" or "yolox_s" from yolox.exp.default."""
    module_name = exp_name.replace("-", "_")
    valid = default_exp_names()
    if module_name not in valid:
        raise UnknownExpError(f"unknown experiment name {exp_name!r}; valid names: {', '.join(valid)}")
    module = importlib.import_module(f"yolox.exp.default.{module_name}")
    return _instantiate(module.Exp, exp_name)


def default_exp_names() -> List[str]:
    """Module names available under yolox.exp.default."""
    package = importlib.import_module("yolox.exp.default")
    return sorted({info.name for info in pkgutil.iter_modules(package.__path__) if not info.ispkg})


def get_exp(exp_file: Optional[str] = None, exp_name: Optional[str] = None) -> BaseExp:
    """Exp from a file (wins when both are given) or from a standard name."""
    if exp_file is None and exp_name is None:
        raise UnknownExpError("give an exp file (-f path/to/exp.py) or an experiment name (-n yolox-s)")
    if exp_file is not None:
        return get_exp_by_file(exp_file)
    return get_exp_by_name(exp_name)


def create_exp_model(exp_path: str, ckpt_path: Optional[str] = None,
                     device: Union[str, torch.device] = "cpu") -> nn.Module:
    """The model the exp file describes on `device`, with the weights of `ckpt_path` (strict) when given."""
    model = get_exp(exp_path, None).get_model()
    if ckpt_path is not None:
        load_model_weights(model, ckpt_path, strict=True)
    return model.to(device)


def _instantiate(exp_class: type, source: str) -> BaseExp:
    try:
        return exp_class()
    except Exception as exc:
        raise RuntimeError(f"{source}: Exp() raised {type(exc).__name__}: {exc}") from exc


def _restore_module(module_name: str, previous) -> None:
    if previous is None:
        sys.modules.pop(module_name, None)
    else:
        sys.modules[module_name] = previous
