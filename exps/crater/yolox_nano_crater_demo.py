"""The --demo run: YOLOX-nano on small synthetic crater images, long enough to learn craters, short enough
for a 2-core CPU. From scratch, many small steps at a high per-image LR and no mosaic learn fastest."""
import os

from yolox.exp.crater.yolox_nano_crater import Exp as NanoCraterExp
from yolox.exp.yolox_base import exp_name_of


class Exp(NanoCraterExp):
    def __init__(self) -> None:
        super().__init__()
        self.input_size = (192, 192)
        self.test_size = (192, 192)
        self.random_size = (6, 6)
        self.max_epoch = 36
        self.warmup_epochs = 1
        self.no_aug_epochs = 3
        self.eval_interval = 6
        self.print_interval = 8
        self.mosaic_prob = 0.0
        self.basic_lr_per_img = 0.08 / 64.0
        self.min_lr_ratio = 0.1
        self.data_num_workers = 1
        self.seed = 0
        self.data_dir = os.path.join("datasets", "craters_demo")
        # the crater workflow reads these: the synthetic set it generates where data_dir is empty
        # (yolox.synthetic.craters.generate_synthetic_craters arguments), the largest batch -b auto may
        # choose, and whether the from-scratch recipe may change this schedule (no: it is the demo's own)
        self.synthetic_data = dict(num_train=128, num_val=32, img_size=192, min_radius=5.0,
                                   max_radius_fraction=0.22, craters_per_image=(5, 20), terrain_relief=0.5)
        self.max_batch = 8
        self.scratch_recipe = False
        self.exp_name = exp_name_of(__file__)
