"""YOLOX-nano for craters: depthwise convolutions and a 320 input, small enough to train on a CPU."""
from yolox.crater.exp import CraterExp
from yolox.exp.yolox_base import exp_name_of


class Exp(CraterExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.25
        self.depthwise = True
        self.input_size = (320, 320)
        self.test_size = (320, 320)
        self.random_size = (8, 12)       # multiscale 256..384
        self.mosaic_scale = (0.5, 1.5)
        self.mosaic_prob = 0.5
        self.enable_mixup = False
        self.exp_name = exp_name_of(__file__)
