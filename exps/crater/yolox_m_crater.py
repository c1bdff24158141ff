"""YOLOX-m for craters (depth 0.67, width 0.75, 640 input): fine-tune from weights/yolox_m.pth."""
from yolox.crater.exp import CraterExp
from yolox.exp.yolox_base import exp_name_of


class Exp(CraterExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.67
        self.width = 0.75
        self.exp_name = exp_name_of(__file__)
