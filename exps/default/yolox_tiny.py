"""yolox-tiny: depth 0.33, width 0.375 at 416x416, no mixup."""
from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.375
        self.input_size = (416, 416)
        self.mosaic_scale = (0.5, 1.5)
        self.random_size = (10, 20)
        self.test_size = (416, 416)
        self.enable_mixup = False
        self.exp_name = exp_name_of(__file__)
