"""The random-number state of a training process, stored in checkpoints so a resumed run is exact."""
import random
from typing import Any, Dict

import numpy as np
import torch

from yolox.utils.device import DevicePolicy

__all__ = ["rng_states", "restore_rng_states"]


def rng_states(policy: DevicePolicy) -> Dict[str, Any]:
    """Python, NumPy, torch and device RNG states as plain containers and tensors (a safe load reads them)."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(py_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "device": policy.rng_state(),
    }


def restore_rng_states(states: Dict[str, Any], policy: DevicePolicy) -> None:
    """Set every generator back to what `rng_states` recorded."""
    version, py_state, gauss = states["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    policy.set_rng_state(states.get("device"))
