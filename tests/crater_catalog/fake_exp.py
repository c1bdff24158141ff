"""An exp file whose model is the disc-finding stand-in, so that tools/detect_craters.py runs in a second or two.

FAKE_MODEL_DELAY_S (environment) makes each forward pass sleep, so a run lasts long enough to be killed
midway on any machine.
"""
import os
import time

import torch

from tests.crater_catalog.fake_model import DiscFinder
from yolox.exp import Exp as BaseExp


class SlowDiscFinder(DiscFinder):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        time.sleep(float(os.environ.get("FAKE_MODEL_DELAY_S", "0")))
        return super().forward(images)


class Exp(BaseExp):
    def __init__(self) -> None:
        super().__init__()
        self.num_classes = 1
        self.test_size = (256, 256)
        self.exp_name = "disc_finder"

    def get_model(self) -> torch.nn.Module:
        return SlowDiscFinder()
