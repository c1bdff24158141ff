"""torch.hub entry points with upstream's names; weights come from a local file, never from the network.

    model = torch.hub.load("path/to/this/repo", "yolox_s", source="local", ckpt="weights/yolox_s.pth")
    model = torch.hub.load("path/to/this/repo", "yolox_nano", source="local", pretrained=False)  # random init
"""
import os
from functools import partial
from typing import Optional

from torch import nn

from yolox.exp import create_exp_model
from yolox.models.build import create_yolox_model
from yolox.utils.device import select_device

dependencies = ["torch"]

WEIGHTS_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/{}"
# entry point -> (model name in yolox.models.build, official weights file)
_NAMED = {
    "yolox_nano": ("yolox-nano", "yolox_nano.pth"),
    "yolox_tiny": ("yolox-tiny", "yolox_tiny.pth"),
    "yolox_s": ("yolox-s", "yolox_s.pth"),
    "yolox_m": ("yolox-m", "yolox_m.pth"),
    "yolox_l": ("yolox-l", "yolox_l.pth"),
    "yolox_x": ("yolox-x", "yolox_x.pth"),
    "yolov3": ("yolov3", "yolox_darknet.pth"),
}


def _build(entry: str, pretrained: bool = True, num_classes: int = 80, device: Optional[str] = None,
           ckpt: Optional[str] = None) -> nn.Module:
    """The named model in eval mode; `ckpt` (a local .pth) is required when pretrained."""
    name, weights_file = _NAMED[entry]
    if pretrained and (ckpt is None or not os.path.isfile(ckpt)):
        where = "no ckpt= given" if ckpt is None else f"{ckpt} not found"
        raise FileNotFoundError(f"{entry}: {where}; nothing is downloaded: fetch {WEIGHTS_URL.format(weights_file)} "
                                f"and pass ckpt=<its path>, or pretrained=False for random weights")
    model = create_yolox_model(name, pretrained=pretrained, num_classes=num_classes,
                               device=select_device(device or "auto"), ckpt_path=ckpt if pretrained else None)
    return model.eval()


yolox_nano = partial(_build, "yolox_nano")
yolox_tiny = partial(_build, "yolox_tiny")
yolox_s = partial(_build, "yolox_s")
yolox_m = partial(_build, "yolox_m")
yolox_l = partial(_build, "yolox_l")
yolox_x = partial(_build, "yolox_x")
yolov3 = partial(_build, "yolov3")


def yolox_custom(ckpt: Optional[str] = None, exp_path: Optional[str] = None, device: Optional[str] = None) -> nn.Module:
    """The model an exp file describes, with the weights of `ckpt` when given, in eval mode."""
    if exp_path is None:
        raise ValueError("yolox_custom needs exp_path, the exp file describing the model")
    if ckpt is not None and not os.path.isfile(ckpt):
        raise FileNotFoundError(f"yolox_custom: {ckpt} not found; pass the path of a local .pth file")
    return create_exp_model(exp_path, ckpt_path=ckpt, device=select_device(device or "auto")).eval()
