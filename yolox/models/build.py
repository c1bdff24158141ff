"""Model factories: the YOLOX family and yolov3 built from size names, with upstream's init."""
from typing import Dict, Optional, Tuple, Union

import torch
from torch import nn

from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt, load_model_weights

from .yolo_fpn import YOLOFPN
from .yolo_head import YOLOXHead
from .yolo_pafpn import P2_CHANNELS, YOLOPAFPN
from .yolox import YOLOX

__all__ = ["MODEL_SIZES", "build_yolox", "build_yolov3", "init_yolox", "create_yolox_model"]

# name -> (depth, width, depthwise); test sizes and other training settings live in the exps.
MODEL_SIZES: Dict[str, Tuple[float, float, bool]] = {
    "yolox-nano": (0.33, 0.25, True),
    "yolox-tiny": (0.33, 0.375, False),
    "yolox-s": (0.33, 0.50, False),
    "yolox-m": (0.67, 0.75, False),
    "yolox-l": (1.0, 1.0, False),
    "yolox-x": (1.33, 1.25, False),
}
_IN_CHANNELS = (256, 512, 1024)
_STRIDES = (8, 16, 32)
# The stride-4 level is the head's fourth (index 3), after the standard three, whose keys stay those of
# the official weights; its anchors come last in the outputs.
P2_STRIDES = (*_STRIDES, 4)


def build_yolox(
    depth: float, width: float, num_classes: int = 80, act: str = "silu", depthwise: bool = False,
    p2: bool = False,
) -> YOLOX:
    """YOLOPAFPN + YOLOXHead with PyTorch's default init (see init_yolox).

    p2=True adds a stride-4 level (neck output and head branch); False is exactly upstream's model.
    """
    backbone = YOLOPAFPN(depth, width, in_channels=_IN_CHANNELS, depthwise=depthwise, act=act, p2=p2)
    in_channels, strides = ((*_IN_CHANNELS, P2_CHANNELS), P2_STRIDES) if p2 else (_IN_CHANNELS, _STRIDES)
    head = YOLOXHead(num_classes, width, strides=strides, in_channels=in_channels, act=act, depthwise=depthwise)
    return YOLOX(backbone, head)


def build_yolov3(num_classes: int = 80) -> YOLOX:
    """Darknet-53 + YOLOFPN with the YOLOX head (all LeakyReLU)."""
    head = YOLOXHead(num_classes, 1.0, in_channels=(128, 256, 512), act="lrelu")
    return YOLOX(YOLOFPN(), head)


def init_yolox(model: nn.Module, prior_prob: float = 1e-2) -> nn.Module:
    """BatchNorm eps 1e-3 / momentum 0.03 everywhere and prior-probability cls/obj biases."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
            module.momentum = 0.03
    model.head.initialize_biases(prior_prob)
    return model


def _build_named(name: str, num_classes: int) -> nn.Module:
    if name == "yolov3":
        return init_yolox(build_yolov3(num_classes))
    if name == "yolox_custom":
        raise ValueError("the model of an exp file is built above the model layer: "
                         "yolox.exp.create_exp_model(exp_path, ckpt_path, device) (torch.hub: yolox_custom)")
    if name not in MODEL_SIZES:
        known = ", ".join([*MODEL_SIZES, "yolov3"])
        raise ValueError(f"unknown model name {name!r}; expected one of: {known}")
    depth, width, depthwise = MODEL_SIZES[name]
    return init_yolox(build_yolox(depth, width, num_classes, depthwise=depthwise))


def create_yolox_model(
    name: str,
    pretrained: bool = False,
    num_classes: int = 80,
    device: Union[str, torch.device] = "cpu",
    ckpt_path: Optional[str] = None,
) -> nn.Module:
    """Build a named model on `device`; weights come only from `ckpt_path` (nothing is downloaded).

    The checkpoint loads strictly, except when num_classes differs from the 80 COCO classes of
    the official weights: then the class predictors are skipped (fine-tune load).
    """
    if pretrained and ckpt_path is None:
        raise ValueError(
            f"create_yolox_model({name!r}, pretrained=True) needs ckpt_path: weights are never downloaded; "
            "pass the path of a local .pth file"
        )
    model = _build_named(name, num_classes)
    if ckpt_path is not None:
        if num_classes == 80:
            load_model_weights(model, ckpt_path, strict=True)
        else:
            load_ckpt(model, load_checkpoint_file(ckpt_path))
    return model.to(device)
