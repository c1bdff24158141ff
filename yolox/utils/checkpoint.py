"""Checkpoint I/O: safe (weights-only) loading, fine-tune and strict weight loading, atomic saving."""
import contextlib
import glob
import os
import pickle
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from loguru import logger
from tabulate import tabulate
from torch import nn

from yolox.utils.user_errors import UserError

__all__ = [
    "UnsafeCheckpointError",
    "load_checkpoint_file",
    "load_ckpt",
    "load_exp_model",
    "load_model_weights",
    "save_checkpoint",
]

PathLike = Union[str, os.PathLike]
_TRUST_HINT = "pass --trust-ckpt on the command line or trust_pickle=True in Python"


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """The checkpoint path names no file."""


class UnsafeCheckpointError(UserError, RuntimeError):
    """The checkpoint holds objects that weights-only loading refuses (they could run code)."""


def _torch_at_least(major: int, minor: int) -> bool:
    return tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (major, minor)


def _numpy_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """NumPy scalar/array/dtype constructors that YOLOX checkpoints hold (e.g. best_ap as numpy.float64).

    Files written under NumPy 1.x name them `numpy.core.multiarray.*`, NumPy 2 writes `numpy._core...`;
    torch >= 2.6 accepts both spellings as aliases, older torch only the installed NumPy's own.
    """
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: List[Union[Callable, Tuple[Callable, str]]] = [np.dtype, np.ndarray]
    for name in ("scalar", "_reconstruct"):
        func = getattr(multiarray, name)
        if _torch_at_least(2, 6):
            allowed += [(func, f"numpy.core.multiarray.{name}"), (func, f"numpy._core.multiarray.{name}")]
        else:
            allowed.append(func)
    if hasattr(np, "dtypes"):
        allowed += [cls for cls in vars(np.dtypes).values() if isinstance(cls, type) and issubclass(cls, np.dtype)]
    return allowed


def _refusal(path: PathLike, error: Exception) -> UnsafeCheckpointError:
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    what = f"the global {found.group(1)}" if found else "objects other than tensors, numbers and containers"
    return UnsafeCheckpointError(
        f"{path}: refused to unpickle {what}, which could run code on load; "
        f"if you trust this file, {_TRUST_HINT}"
    )


def load_checkpoint_file(path: PathLike, map_location: Any = "cpu", trust_pickle: bool = False) -> Dict[str, Any]:
    """torch.load with weights_only=True (plus NumPy scalars); full unpickling only when trust_pickle."""
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}: check the path given with -c")
    # torch < 2.5 has no safe_globals: NumPy scalars are then refused like any other global.
    allow = getattr(torch.serialization, "safe_globals", None)
    try:
        with allow(_numpy_safe_globals()) if allow else contextlib.nullcontext():
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust_pickle:
            raise _refusal(path, error) from None
    logger.warning(f"{path}: loading with full unpickling (trusted by the caller)")
    return torch.load(path, map_location=map_location, weights_only=False)


def _model_state(ckpt: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The state_dict inside a training checkpoint (its "model" entry) or a bare one, minus any "module." prefix."""
    state = ckpt["model"] if isinstance(ckpt.get("model"), Mapping) else ckpt
    return {key[len("module.") :] if key.startswith("module.") else key: value for key, value in state.items()}


def load_ckpt(model: nn.Module, state_dict: Mapping[str, Any]) -> nn.Module:
    """Fine-tune load: take every checkpoint tensor whose key and shape fit; report what was skipped."""
    ckpt_state = _model_state(state_dict)
    model_state = model.state_dict()
    selected, mismatched, missing = {}, [], []
    for key, model_value in model_state.items():
        if key not in ckpt_state:
            missing.append(key)
        elif ckpt_state[key].shape != model_value.shape:
            mismatched.append((key, tuple(ckpt_state[key].shape), tuple(model_value.shape)))
        else:
            selected[key] = ckpt_state[key]
    unexpected = [key for key in ckpt_state if key not in model_state]

    if mismatched:
        table = tabulate(mismatched, headers=["skipped key (shape mismatch)", "checkpoint", "model"], tablefmt="pipe")
        logger.warning(f"{len(mismatched)} checkpoint tensors skipped; the model keeps its own values:\n{table}")
    if missing:
        logger.warning(f"{len(missing)} model keys are not in the checkpoint (kept as initialised): {missing}")
    if unexpected:
        logger.warning(f"{len(unexpected)} checkpoint keys are not in the model (ignored): {unexpected}")
    model.load_state_dict(selected, strict=False)
    return model


def _strict_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """One-line summary of why `state` does not fit `model` exactly, or "" when it does."""
    model_state = model.state_dict()
    missing = [key for key in model_state if key not in state]
    unexpected = [key for key in state if key not in model_state]
    reshaped = [key for key in model_state if key in state and state[key].shape != model_state[key].shape]
    problems = [
        f"{len(keys)} {label} (first: {keys[0]})"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", reshaped))
        if keys
    ]
    return "; ".join(problems)


# keys that exist only in a model with the stride-4 level (YOLOPAFPN's p2 modules)
P2_KEY_PREFIX = "backbone.reduce_conv2."


def _fit_exp_layout(exp, state: Mapping[str, torch.Tensor], path: PathLike) -> None:
    """Set the exp's layout fields (p2_head) to what the checkpoint's keys show, before the model is built."""
    has_p2 = any(key.startswith(P2_KEY_PREFIX) for key in state)
    if bool(getattr(exp, "p2_head", False)) == has_p2:
        return
    logger.info(f"{path}: p2_head = {has_p2}, as the checkpoint's layout shows (the exp says {not has_p2})")
    exp.p2_head = has_p2


def load_exp_model(exp, path: PathLike, trust_pickle: bool = False) -> nn.Module:
    """The exp's model in the checkpoint's layout with its weights (strict), the file read once: a model trained
    with a recipe that turned the stride-4 level on loads with the exp file it was trained from."""
    state = _model_state(load_checkpoint_file(path, trust_pickle=trust_pickle))
    _fit_exp_layout(exp, state, path)
    return _load_state(exp.get_model(), state, path, strict=True)


def load_run_model(exp, ckpt: Optional[PathLike], run_dir: PathLike, trust_pickle: bool = False) -> nn.Module:
    """load_exp_model of `ckpt`, or of the run folder's best_ckpt.pth when no checkpoint is given (both logged)."""
    path = ckpt or os.path.join(run_dir, "best_ckpt.pth")
    logger.info(f"loading checkpoint from {path}")
    model = load_exp_model(exp, path, trust_pickle=trust_pickle)
    logger.info(f"loaded checkpoint {path}")
    return model


def load_model_weights(model: nn.Module, path: PathLike, strict: bool = True, trust_pickle: bool = False) -> nn.Module:
    """Eval/demo load of ckpt["model"] (or a bare state_dict); strict by default."""
    return _load_state(model, _model_state(load_checkpoint_file(path, trust_pickle=trust_pickle)), path, strict)


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: PathLike, strict: bool) -> nn.Module:
    if strict:
        problems = _strict_mismatch(model, state)
        if problems:
            raise RuntimeError(
                f"{path}: weights do not fit the model ({problems}); "
                "check the exp (model size, num_classes) or fine-tune from it with -c instead"
            )
    model.load_state_dict(state, strict=strict)
    return model


def _atomic_write(save_dir: str, target_name: str, write: Callable[[str], None]) -> str:
    """Write through a temp file in `save_dir`, fsync it, then rename it over the target."""
    fd, tmp_path = tempfile.mkstemp(prefix=f".{target_name}.", suffix=".tmp", dir=save_dir)
    os.close(fd)
    target = os.path.join(save_dir, target_name)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as written:
            written.flush()
            os.fsync(written.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return target


def _remove_stale_temporaries(save_dir: str) -> None:
    """Delete the temporary files of checkpoint writes a kill interrupted (one process writes a run folder),
    so a run killed again and again does not pile up partial checkpoints."""
    for stale in glob.glob(os.path.join(glob.escape(save_dir), ".*_ckpt.pth.*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)


def save_checkpoint(state: Mapping[str, Any], is_best: bool, save_dir: PathLike, model_name: str = "") -> str:
    """Write <save_dir>/<model_name>_ckpt.pth atomically, and best_ckpt.pth too when is_best. Returns the path."""
    save_dir = os.fspath(save_dir)
    os.makedirs(save_dir, exist_ok=True)
    _remove_stale_temporaries(save_dir)
    path = _atomic_write(save_dir, f"{model_name}_ckpt.pth", lambda tmp: torch.save(state, tmp))
    if is_best:
        _atomic_write(save_dir, "best_ckpt.pth", lambda tmp: shutil.copyfile(path, tmp))
    return path
