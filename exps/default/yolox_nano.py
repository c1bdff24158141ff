"""yolox-nano: depthwise convolutions, depth 0.33, width 0.25 at 416x416, mosaic on half the samples."""
from torch import nn

from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of
from yolox.models.build import build_yolox, init_yolox


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.25
        self.input_size = (416, 416)
        self.random_size = (10, 20)
        self.mosaic_scale = (0.5, 1.5)
        self.test_size = (416, 416)
        self.mosaic_prob = 0.5
        self.enable_mixup = False
        self.exp_name = exp_name_of(__file__)

    def get_model(self, sublinear: bool = False) -> nn.Module:
        """A new depthwise PAFPN and head (a new module is in train mode)."""
        return init_yolox(build_yolox(self.depth, self.width, num_classes=self.num_classes, act=self.act,
                                      depthwise=True, p2=self.p2_head))
