"""Apple MPS entry points for users of the earlier MPS fork, as thin wrappers over yolox.utils.device.

Nothing here patches torch. `patch_trainer_for_mps(trainer)` hands a trainer the MPS device policy;
`setup_mps_environment()` sets the environment variables torch reads when it is imported or first
allocates on MPS. torch is imported lazily so that `setup_mps_environment()` can run before it.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Dict, Optional

from loguru import logger

if TYPE_CHECKING:
    import torch

    from yolox.utils.device import DevicePolicy

__all__ = [
    "apply_policy_to_trainer",
    "get_mps_device",
    "is_mps_available",
    "mps_empty_cache",
    "mps_memory_info",
    "mps_synchronize",
    "patch_trainer_for_mps",
    "setup_mps_environment",
]


def setup_mps_environment(high_watermark_ratio: Optional[float] = None, enable_fallback: bool = True) -> Dict[str, str]:
    """Set PYTORCH_ENABLE_MPS_FALLBACK and PYTORCH_MPS_HIGH_WATERMARK_RATIO; returns what was set.

    torch reads the fallback flag when it is imported and the watermark when MPS first allocates, so call
    this before `import torch`; a warning says so when a changed value may come too late.
    """
    wanted = {"PYTORCH_ENABLE_MPS_FALLBACK": "1" if enable_fallback else "0"}
    if high_watermark_ratio is not None:
        if high_watermark_ratio < 0:
            raise ValueError(f"high_watermark_ratio must be >= 0 (0 disables the limit), got {high_watermark_ratio}")
        wanted["PYTORCH_MPS_HIGH_WATERMARK_RATIO"] = f"{float(high_watermark_ratio):g}"
        if high_watermark_ratio == 0:
            logger.warning("PYTORCH_MPS_HIGH_WATERMARK_RATIO=0 disables the MPS memory limit: "
                           "an oversized batch pushes the Mac into swap instead of raising out-of-memory")
    changed = [name for name, value in wanted.items() if os.environ.get(name) != value]
    os.environ.update(wanted)
    if changed and "torch" in sys.modules:
        logger.warning(f"{', '.join(changed)} set after torch was imported: torch reads the MPS fallback flag at "
                       "import and the watermark at the first MPS allocation, so the new value may not apply; "
                       "call setup_mps_environment() before importing torch, or export it in the shell")
    return wanted


def is_mps_available() -> bool:
    from yolox.utils.device import device_count  # lazy: torch only after setup_mps_environment

    return device_count("mps") > 0


def get_mps_device() -> "torch.device":
    """torch.device("mps"); raises DeviceUnavailableError saying why when MPS is absent."""
    from yolox.utils.device import select_device  # lazy: torch only after setup_mps_environment

    return select_device("mps")


def _mps_memory() -> Any:
    import torch  # lazy: torch only after setup_mps_environment

    from yolox.utils.device import memory_backend_for  # lazy: torch only after setup_mps_environment

    return memory_backend_for(torch.device("mps"))


def mps_empty_cache() -> None:
    """Release MPS cached blocks; a no-op when MPS is absent."""
    if is_mps_available():
        _mps_memory().release_cache()


def mps_synchronize() -> None:
    """Wait for queued MPS work; a no-op when MPS is absent."""
    if is_mps_available():
        _mps_memory().synchronize()


def mps_memory_info() -> Dict[str, int]:
    """Bytes: tensors allocated, driver allocated, and the hard limit (recommended max x high watermark)."""
    if not is_mps_available():
        return {}
    memory = _mps_memory()
    return {"allocated": memory.allocated(), "driver_allocated": memory.driver_allocated(), "limit": memory.limit()}


def patch_trainer_for_mps(trainer: Any, policy: Optional["DevicePolicy"] = None,
                          **policy_kwargs: Any) -> "DevicePolicy":
    """Give `trainer` the MPS device policy (fp32 unless the AMP probe passes, no scaler, no pinning).

    Call it before `trainer.train()`. `policy_kwargs` go to build_policy (e.g. tensors_on="cpu" in tests).
    """
    if policy is None:
        from yolox.utils.device import build_policy  # lazy: torch only after setup_mps_environment

        wants_amp = bool(getattr(trainer, "amp_training", False))
        policy = build_policy("mps", fp16=wants_amp, **policy_kwargs)
    apply_policy_to_trainer(trainer, policy)
    logger.info(f"trainer set up for MPS ({policy.device}); decisions follow")
    policy.log_decisions()
    return policy


def apply_policy_to_trainer(trainer: Any, policy: "DevicePolicy") -> None:
    """Set the attributes a YOLOX Trainer derives from its device: policy, device, AMP, scaler, loader settings.

    This project's Trainer takes the policy through `use_policy` and derives the rest when training starts; an
    upstream-style trainer object gets each attribute set here.
    """
    import torch  # lazy: torch only after setup_mps_environment

    if callable(getattr(trainer, "use_policy", None)):
        trainer.use_policy(policy)
        return
    previous_device = getattr(trainer, "device", None)
    trainer.policy = policy
    trainer.device = str(policy.device) if isinstance(previous_device, str) else policy.device
    trainer.amp_training = policy.amp_dtype is not None
    # inputs are cast only for float16 autocast, as the Trainer does (bfloat16 cannot hold pixel coordinates)
    trainer.data_type = torch.float16 if policy.amp_dtype == torch.float16 else torch.float32
    trainer.scaler = policy.make_grad_scaler()
    args = getattr(trainer, "args", None)
    if args is not None and hasattr(args, "fp16"):
        args.fp16 = policy.amp_dtype == torch.float16
    model = getattr(trainer, "model", None)
    if isinstance(model, torch.nn.Module):
        trainer.model = policy.to(model)
    if getattr(trainer, "train_loader", None) is not None:
        logger.warning("the trainer's data loader was built before the MPS policy was applied: its workers and "
                       "pin_memory keep the old settings until it is rebuilt (patch before trainer.train())")
