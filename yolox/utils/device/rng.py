"""Seeding and the device generator's state, for seeded runs and exact resume."""
from __future__ import annotations

import random
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from loguru import logger


def device_rng_state(device: torch.device) -> Optional[Dict[str, Any]]:
    """The device generator's state for exact resume ({"type", "state"}); None on CPU (torch's state covers it)."""
    if device.type == "cuda":
        return {"type": "cuda", "state": torch.cuda.get_rng_state(device)}
    if device.type == "mps":
        return {"type": "mps", "state": torch.mps.get_rng_state()}
    return None


def set_device_rng_state(device: torch.device, state: Optional[Mapping[str, Any]]) -> None:
    """Restore device_rng_state(); a state saved on another device type is skipped with a warning."""
    if state is None:
        return
    if state.get("type") != device.type:
        logger.warning(f"device RNG state saved on {state.get('type')} not restored on {device.type}: "
                       "random draws on the device will differ from the original run")
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["state"], device)
    else:
        torch.mps.set_rng_state(state["state"])


def seed_everything(device: torch.device, seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy, torch and `device`; `deterministic` also pins cuDNN to repeatable kernels."""
    seed = int(seed)  # Exp.merge may hand over the string "42"
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    # the CPU generator directly: torch.manual_seed would also reach into torch.cuda on machines without it
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
