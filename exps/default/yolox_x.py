"""yolox-x: depth 1.33, width 1.25 at 640x640."""
from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.33
        self.width = 1.25
        self.exp_name = exp_name_of(__file__)
