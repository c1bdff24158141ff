"""yolov3: Darknet-53 backbone and YOLOFPN neck with the decoupled YOLOX head (LeakyReLU)."""
from torch import nn

from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of
from yolox.models.build import build_yolov3, init_yolox


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.0
        self.width = 1.0
        self.exp_name = exp_name_of(__file__)

    def get_model(self, sublinear: bool = False) -> nn.Module:
        return init_yolox(build_yolov3(self.num_classes))
