"""yolox-s: depth 0.33, width 0.50 at 640x640."""
from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.50
        self.exp_name = exp_name_of(__file__)
