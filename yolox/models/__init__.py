"""YOLOX model definitions (the losses are imported by the head when it trains)."""
from .build import build_yolov3, build_yolox, create_yolox_model, init_yolox
from .darknet import CSPDarknet, Darknet
from .yolo_fpn import YOLOFPN
from .yolo_head import YOLOXHead
from .yolo_pafpn import YOLOPAFPN
from .yolox import YOLOX

__all__ = [
    "CSPDarknet",
    "Darknet",
    "YOLOFPN",
    "YOLOPAFPN",
    "YOLOX",
    "YOLOXHead",
    "build_yolov3",
    "build_yolox",
    "create_yolox_model",
    "init_yolox",
]
