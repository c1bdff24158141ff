"""Utilities, re-exported under upstream's names (`from yolox.utils import postprocess`).

The names resolve lazily so that importing one submodule, e.g. `yolox.utils.mps_patch` before torch starts,
does not import torch through this package.
"""
import importlib
from typing import Any, List

_EXPORTS = {
    "boxes": ["filter_box", "postprocess", "bboxes_iou", "matrix_iou", "adjust_box_anns", "xyxy2xywh",
              "xyxy2cxcywh", "cxcywh2xyxy"],
    "model_utils": ["fuse_conv_and_bn", "fuse_model", "get_model_info", "count_params", "replace_module",
                    "freeze_module", "adjust_status"],
    "checkpoint": ["UnsafeCheckpointError", "load_checkpoint_file", "load_ckpt", "load_exp_model",
                   "load_model_weights", "save_checkpoint"],
    "dist": ["all_gather", "broadcast_object", "gather", "get_local_rank", "get_local_size", "get_rank",
             "get_world_size", "is_main_process", "shared_random_seed", "synchronize", "time_synchronized",
             "wait_for_the_master"],
    "ema": ["ModelEMA", "is_parallel", "unwrap_model"],
    "lr_scheduler": ["LRScheduler"],
    "metric": ["AverageMeter", "MeterBuffer", "mem_usage", "occupy_mem"],
    "logger": ["setup_logger"],
    "setup_env": ["configure_module", "configure_nccl", "configure_omp"],
    "allreduce_norm": ["all_reduce", "all_reduce_norm"],
    "device": ["DeviceUnavailableError", "DevicePolicy", "build_policy", "select_device"],
    "mps_patch": ["patch_trainer_for_mps", "setup_mps_environment"],
    "progress": ["Progress", "track"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
