"""yolox-s on PASCAL VOC 2007+2012 trainval, evaluated on VOC2007 test (datasets/VOCdevkit)."""
import os

from yolox.data import TrainTransform, ValTransform, VOCDetection, get_yolox_datadir
from yolox.evaluators import VOCEvaluator
from yolox.exp import Exp as MyExp


class Exp(MyExp):
    def __init__(self):
        super(Exp, self).__init__()
        self.num_classes = 20
        self.depth = 0.33
        self.width = 0.50
        self.warmup_epochs = 1
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]

    def voc_root(self):
        return self.data_dir or os.path.join(get_yolox_datadir(), "VOCdevkit")

    def get_dataset(self, cache: bool = False, cache_type: str = "ram"):
        return VOCDetection(
            data_dir=self.voc_root(),
            image_sets=[("2007", "trainval"), ("2012", "trainval")],
            img_size=self.input_size,
            preproc=TrainTransform(max_labels=50, flip_prob=self.flip_prob, hsv_prob=self.hsv_prob),
            cache=cache,
            cache_type=cache_type,
        )

    def get_eval_dataset(self, **kwargs):
        return VOCDetection(
            data_dir=self.voc_root(),
            image_sets=[("2007", "test")],
            img_size=self.test_size,
            preproc=ValTransform(legacy=kwargs.get("legacy", False)),
        )

    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False, policy=None):
        return VOCEvaluator(
            dataloader=self.get_eval_loader(batch_size, is_distributed, testdev=testdev, legacy=legacy,
                                            policy=policy),
            img_size=self.test_size,
            confthre=self.test_conf,
            nmsthre=self.nmsthre,
            num_classes=self.num_classes,
        )
