"""yolox-l: depth 1.0, width 1.0 at 640x640."""
from yolox.exp import Exp as BaseYOLOXExp
from yolox.exp.yolox_base import exp_name_of


class Exp(BaseYOLOXExp):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.0
        self.width = 1.0
        self.exp_name = exp_name_of(__file__)
