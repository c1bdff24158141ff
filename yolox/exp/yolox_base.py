"""The YOLOX experiment: every setting of a run and the construction of its pieces, with upstream's field names."""
import os
import random
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from loguru import logger
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from yolox.core import Trainer
from yolox.data.batch_augment import BatchAugment, BatchAugmentConfig
from yolox.data.data_augment import TrainTransform, ValTransform
from yolox.data.dataloading import DataLoader as TrainDataLoader
from yolox.data.dataloading import get_yolox_datadir, worker_init_reset_seed
from yolox.data.datasets import MosaicDetection
from yolox.data.datasets.detection_formats import build_detection_dataset, check_num_classes
from yolox.data.datasets.read_crop import ReadCropDataset, collate_read_crop
from yolox.data.label_caps import CAP_NAMES, densest_image_boxes, images_per_sample, resolve_cap
from yolox.data.samplers import InfiniteSampler, YoloBatchSampler
from yolox.evaluators import COCOEvaluator
from yolox.exp.base_exp import BaseExp
from yolox.exp.param_groups import split_param_groups, start_momentum_at_zero
from yolox.models.build import build_yolox, init_yolox
from yolox.utils.compat import accepts_keyword
from yolox.utils.device import DevicePolicy
from yolox.utils.dist import broadcast_object, get_world_size, wait_for_the_master
from yolox.utils.ema import RAMP_UPDATES
from yolox.utils.lr_scheduler import LRScheduler
from yolox.utils.user_errors import UserError

__all__ = ["Exp", "check_exp_value"]


class Exp(BaseExp):
    """Defaults of yolox-l on COCO; exp files subclass this and override attributes or methods."""

    def __init__(self) -> None:
        super().__init__()

        # model
        self.num_classes = 80
        self.depth = 1.00
        self.width = 1.00
        self.act = "silu"
        # True: a fourth, stride-4 detection level (neck and head) for objects of a few pixels; the
        # standard three levels keep upstream's keys, so official weights fine-tune into them. False:
        # exactly upstream's model (official checkpoints load strictly)
        self.p2_head = False

        # dataloader
        self.data_num_workers = 4
        self.input_size = (640, 640)  # (height, width)
        # multiscale half-range in units of 32 px, used when random_size is not set
        self.multiscale_range = 5
        # (low, high) multiscale training sizes in units of 32 px; None: input_size +- multiscale_range
        self.random_size: Optional[Tuple[int, int]] = None
        self.data_dir = None
        self.train_ann = "instances_train2017.json"
        self.val_ann = "instances_val2017.json"
        self.test_ann = "instances_test2017.json"

        # transform
        self.mosaic_prob = 1.0
        self.mixup_prob = 1.0
        self.hsv_prob = 1.0
        self.flip_prob = 0.5
        self.degrees = 10.0
        self.translate = 0.1
        self.mosaic_scale = (0.1, 2)
        self.enable_mixup = True
        self.mixup_scale = (0.5, 1.5)
        self.shear = 2.0

        # training
        self.warmup_epochs = 5
        self.max_epoch = 300
        self.warmup_lr = 0
        self.min_lr_ratio = 0.05
        self.basic_lr_per_img = 0.01 / 64.0
        self.scheduler = "yoloxwarmcos"
        self.no_aug_epochs = 15
        self.l1_in_no_aug = True  # upstream adds the L1 box loss when mosaic stops
        self.ema = True
        self.ema_decay = 0.9998  # upstream's; the EMA ramps up to it over the first few thousand steps
        # upstream's ramp length: after 3,000 steps (60 short crater epochs) the decay is only 0.78: an
        # average over about 5 steps; a shorter ramp lets a short schedule's EMA average at all
        self.ema_ramp_updates = RAMP_UPDATES
        self.weight_decay = 5e-4
        self.momentum = 0.9
        self.print_interval = 10
        self.eval_interval = 10
        self.save_history_ckpt = True
        # the resume checkpoint (latest_ckpt.pth) at most this often, and at the end: a kill loses at most this
        # much training (a resume replays it exactly); 0 writes it after every epoch, like upstream
        self.save_latest_every_s = 60.0
        # True: a --time plan also fits the EMA's averaging window to the planned run (the fine-tuning plan sets it)
        self.ema_fit_to_schedule = False
        # -b auto (yolox-train-craters): the largest total batch the memory probe may choose
        self.max_batch = 64
        self.exp_name = exp_name_of(__file__)

        # testing
        self.test_size = (640, 640)
        self.test_conf = 0.01
        self.nmsthre = 0.65

        # not in upstream YOLOX (its exp files run unchanged with these defaults)
        # label rows per image out of the mosaic pipeline, and COCO maxDets of the reported AP;
        # None: from the densest image of the data, with headroom (see label_cap)
        self.max_labels: Optional[int] = 120
        self.eval_max_dets: Optional[int] = 100
        self.data_format = "auto"  # "auto", "coco", "yolo" or "csv"
        self.strict_data = False  # True: a bad image stops the run (default: the dataset check skips it)
        # True: loader workers only read and letterbox (uint8); mosaic, affine, mixup, HSV and flips run
        # batched on the training device after the prefetcher (yolox/data/batch_augment.py). False: the
        # per-image numpy pipeline in the workers (upstream's). None: the device policy's batch_augment.
        self.device_augment: Optional[bool] = None

    # ------------------------------------------------------------------ model
    def get_model(self) -> nn.Module:
        """A new detector at each call, with upstream's BN settings and prior biases, in train mode."""
        model = build_yolox(self.depth, self.width, num_classes=self.num_classes, act=self.act, p2=self.p2_head)
        init_yolox(model)
        return model.train()

    # ------------------------------------------------------------------- data
    def label_cap(self, name: str) -> int:
        """exp.max_labels or exp.eval_max_dets; None is resolved from the densest image when first needed (the
        field then holds the value) and logged with why."""
        if getattr(self, name) is None:
            self._log_cap(name, *self._resolved_cap(name))
        return getattr(self, name)

    def _resolved_cap(self, name: str) -> Tuple[int, str]:
        return resolve_cap(name, getattr(self, name),
                           lambda split: densest_image_boxes(self.resolved_data_dir(), split, self.data_format),
                           images_per_sample(self.mosaic_prob, self.enable_mixup, self.mixup_prob))

    def _log_cap(self, name: str, value: int, reason: str) -> None:
        setattr(self, name, value)
        logger.info(f"label caps: {name} = {value}  ({reason})")

    def device_augment_default(self, policy_choice: bool, policy_reason: str) -> Tuple[bool, str]:
        """(device_augment, why) when neither the exp nor the command line sets it: the device policy's."""
        return bool(policy_choice), f"device policy: {policy_reason}"

    def resolve_device_augment(self, policy_choice: bool, policy_reason: str) -> bool:
        """device_augment as set by the exp or the command line, else device_augment_default; logged."""
        if self.device_augment is None:
            self.device_augment, reason = self.device_augment_default(policy_choice, policy_reason)
        else:
            reason = "set by the exp or the command line"
        logger.info(f"device_augment = {self.device_augment}  ({reason})")
        return self.device_augment

    def label_caps(self) -> Dict[str, int]:
        """Both caps, resolved (see label_cap), each logged with where its value came from."""
        for name in CAP_NAMES:
            self._log_cap(name, *self._resolved_cap(name))
        return {name: getattr(self, name) for name in CAP_NAMES}

    def resolved_data_dir(self) -> str:
        return self.data_dir if self.data_dir is not None else os.path.join(get_yolox_datadir(), "COCO")

    def build_dataset(self, split: str, json_file: str, name: str, img_size: Tuple[int, int], preproc,
                      **kwargs):
        """Dataset of one split in `data_format` ("auto" detects COCO, YOLO txt or crater CSV).

        Raises a one-line ValueError when the data's class count differs from num_classes.
        """
        dataset = build_detection_dataset(self.resolved_data_dir(), split, img_size, preproc,
                                          data_format=self.data_format, json_file=json_file, name=name,
                                          strict=self.strict_data, **kwargs)
        check_num_classes(dataset, self.num_classes)
        return dataset

    def get_dataset(self, cache: bool = False, cache_type: str = "ram"):
        """Training split (images without mosaic) at input_size."""
        preproc = TrainTransform(max_labels=50, flip_prob=self.flip_prob, hsv_prob=self.hsv_prob)
        return self.build_dataset("train", self.train_ann, "train2017", self.input_size, preproc,
                                  cache=cache, cache_type=cache_type)

    def loader_kwargs(self, policy: Optional[DevicePolicy] = None) -> dict:
        """Worker count and pinning: the device policy's choice when one is given."""
        if policy is not None:
            return dict(policy.loader_kwargs(self.data_num_workers))
        return {"num_workers": self.data_num_workers, "pin_memory": False}

    def get_data_loader(self, batch_size: int, is_distributed: bool, no_aug: bool = False,
                        cache_img: Optional[str] = None, start: int = 0, policy: Optional[DevicePolicy] = None):
        """Infinite mosaic loader of per-rank batches; `start` = samples of the stream already consumed.

        `self.dataset` holds the training images (built on first use; `--cache` builds it cached beforehand);
        each loader wraps them anew for mosaic or device augmentation, so a rebuilt loader never wraps a wrapper.
        """
        if self.dataset is None:
            if cache_img is not None:
                raise ValueError("cache_img needs exp.dataset built beforehand (yolox.core.run.train does this for "
                                 "--cache)")
            with wait_for_the_master():
                self.dataset = self.get_dataset(cache=False)
        items = self.train_items(self.dataset, no_aug)
        if is_distributed:
            batch_size = batch_size // get_world_size()

        sampler = InfiniteSampler(len(items), seed=self.seed if self.seed else 0, start=start)
        batch_sampler = YoloBatchSampler(sampler=sampler, batch_size=batch_size, drop_last=False,
                                         mosaic=not no_aug, seed=self.seed)
        extra = {}
        if self.device_augment:
            extra = {"collate_fn": collate_read_crop, "batch_transform": BatchAugment(self.batch_augment_config())}
        return TrainDataLoader(items, batch_sampler=batch_sampler, worker_init_fn=worker_init_reset_seed,
                               **extra, **self.loader_kwargs(policy))

    def train_items(self, images, no_aug: bool):
        """The training items: uint8 reads for device augmentation, else the mosaic pipeline per image."""
        if self.device_augment:
            return ReadCropDataset(images, self.input_size, mosaic=not no_aug)
        return MosaicDetection(
            dataset=images,
            img_size=self.input_size,
            mosaic=not no_aug,
            preproc=TrainTransform(max_labels=self.label_cap("max_labels"), flip_prob=self.flip_prob,
                                   hsv_prob=self.hsv_prob),
            degrees=self.degrees,
            translate=self.translate,
            mosaic_scale=self.mosaic_scale,
            mixup_scale=self.mixup_scale,
            shear=self.shear,
            enable_mixup=self.enable_mixup,
            mosaic_prob=self.mosaic_prob,
            mixup_prob=self.mixup_prob,
        )

    def batch_augment_config(self):
        """The augmentation values for BatchAugment (device_augment=True)."""
        return BatchAugmentConfig(
            degrees=self.degrees, translate=self.translate, mosaic_scale=self.mosaic_scale, shear=self.shear,
            mosaic_prob=self.mosaic_prob, enable_mixup=self.enable_mixup, mixup_prob=self.mixup_prob,
            mixup_scale=self.mixup_scale, hsv_prob=self.hsv_prob, flip_prob=self.flip_prob,
            max_labels=self.label_cap("max_labels"),
        )

    def random_resize(self, data_loader, epoch: int, rank: int, is_distributed: bool) -> Tuple[int, int]:
        """Next multiscale training size (h, w), drawn on rank 0 and shared with the other ranks."""
        size = None
        if rank == 0:
            size_factor = self.input_size[1] / self.input_size[0]
            k = random.randint(*self.multiscale_bounds())
            size = (32 * k, 32 * int(k * size_factor))
        if is_distributed:
            size = broadcast_object(size, src=0)
        return int(size[0]), int(size[1])

    def multiscale_bounds(self) -> Tuple[int, int]:
        """(low, high) training sizes in units of 32 px: random_size, else input_size +- multiscale_range."""
        if self.random_size is not None:
            return int(self.random_size[0]), int(self.random_size[1])
        base = int(self.input_size[0] / 32)
        return base - self.multiscale_range, base + self.multiscale_range

    def preprocess(self, inputs: torch.Tensor, targets: torch.Tensor, tsize: Tuple[int, int]):
        """Resize a batch to tsize (bilinear) and rescale its (class, cx, cy, w, h) targets to match."""
        scale_y = tsize[0] / self.input_size[0]
        scale_x = tsize[1] / self.input_size[1]
        if scale_x != 1 or scale_y != 1:
            inputs = F.interpolate(inputs, size=tsize, mode="bilinear", align_corners=False)
            targets[..., 1::2] = targets[..., 1::2] * scale_x
            targets[..., 2::2] = targets[..., 2::2] * scale_y
        return inputs, targets

    # -------------------------------------------------------------- training
    def get_optimizer(self, batch_size: int, model: Optional[nn.Module] = None,
                      policy: Optional[DevicePolicy] = None) -> torch.optim.Optimizer:
        """A new Nesterov SGD over `model`'s [BN weights (no decay), other weights (decay), biases (no decay)].

        Without `model`, self.model: the model an upstream-style exp caches in get_model.
        """
        lr = self.warmup_lr if self.warmup_epochs > 0 else self.basic_lr_per_img * batch_size
        bn_weights, weights, biases = split_param_groups(self.optimized_model(model))
        optimizer = torch.optim.SGD(bn_weights, lr=lr, momentum=self.momentum, nesterov=True,
                                    **self.optimizer_options(policy))
        optimizer.add_param_group({"params": weights, "weight_decay": self.weight_decay})
        optimizer.add_param_group({"params": biases})
        if optimizer.defaults.get("fused"):
            start_momentum_at_zero(optimizer)
        return optimizer

    def optimized_model(self, model: Optional[nn.Module]) -> nn.Module:
        """`model`, else `self.model`: the model of the run, which the trainer sets before it calls an
        upstream-style get_optimizer(batch_size) (and which an upstream-style get_model caches)."""
        if model is not None:
            return model
        if "model" not in self.__dict__:
            raise TypeError("get_optimizer needs the model it optimizes: get_optimizer(batch_size, model=model), "
                            "or set exp.model first")
        return self.model

    def optimizer_options(self, policy: Optional[DevicePolicy] = None) -> dict:
        """What the device policy adds to the optimizer's arguments: fused kernels where it chose them."""
        return {"fused": True} if policy is not None and policy.fused_optimizer else {}

    def get_lr_scheduler(self, lr: float, iters_per_epoch: int, **kwargs):
        return LRScheduler(
            self.scheduler,
            lr,
            iters_per_epoch,
            self.max_epoch,
            warmup_epochs=self.warmup_epochs,
            warmup_lr_start=self.warmup_lr,
            no_aug_epochs=self.no_aug_epochs,
            min_lr_ratio=self.min_lr_ratio,
            **kwargs,
        )

    def get_trainer(self, options, policy: Optional[DevicePolicy] = None) -> Trainer:
        """The trainer of a run with these RunOptions (yolox.core.options) on `policy`'s device."""
        return Trainer(self, options, policy)

    # ------------------------------------------------------------ evaluation
    def get_eval_dataset(self, **kwargs):
        """Val split (or test-dev with testdev=True) at test_size."""
        testdev = kwargs.get("testdev", False)
        legacy = kwargs.get("legacy", False)
        split, json_file, name = ("test", self.test_ann, "test2017") if testdev else ("val", self.val_ann, "val2017")
        return self.build_dataset(split, json_file, name, self.test_size, ValTransform(legacy=legacy))

    def get_eval_loader(self, batch_size: int, is_distributed: bool, policy: Optional[DevicePolicy] = None,
                        **kwargs):
        """Sequential (per-rank) loader of the eval split, with no more workers than it has batches."""
        from yolox.data.dataloading import eval_loader_workers

        dataset = self.get_eval_dataset(**kwargs)
        if is_distributed:
            batch_size = batch_size // get_world_size()
            sampler = DistributedSampler(dataset, shuffle=False)
        else:
            sampler = SequentialSampler(dataset)
        loader_kwargs = self.loader_kwargs(policy)
        workers = eval_loader_workers(len(sampler), batch_size, loader_kwargs["num_workers"])
        loader_kwargs["num_workers"] = workers
        if "persistent_workers" in loader_kwargs:
            loader_kwargs["persistent_workers"] = workers > 0
        # its own generator: each evaluation's loader would otherwise draw its workers' base seed from torch's
        # global one, so a run resumed after a kill during an evaluation would train on a shifted RNG stream
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=False,
                          generator=torch.Generator(), **loader_kwargs)

    def get_evaluator(self, batch_size: int, is_distributed: bool, testdev: bool = False, legacy: bool = False,
                      policy: Optional[DevicePolicy] = None):
        # an upstream-style get_eval_loader override takes no policy
        newer = {"policy": policy} if accepts_keyword(self.get_eval_loader, "policy") else {}
        loader = self.get_eval_loader(batch_size, is_distributed, testdev=testdev, legacy=legacy, **newer)
        return COCOEvaluator(
            dataloader=loader,
            img_size=self.test_size,
            confthre=self.test_conf,
            nmsthre=self.nmsthre,
            num_classes=self.num_classes,
            testdev=testdev,
            max_dets=self.label_cap("eval_max_dets"),
        )

    def eval(self, model, evaluator, is_distributed: bool, half: bool = False, return_outputs: bool = False,
             policy: Optional[DevicePolicy] = None, amp: bool = False):
        """The evaluator's results (and per-image outputs with return_outputs); `amp`: inference under the
        policy's autocast. An upstream-style evaluator gets neither keyword."""
        newer = {name: value for name, value in (("policy", policy), ("amp", amp))
                 if accepts_keyword(evaluator.evaluate, name)}
        return evaluator.evaluate(model, is_distributed, half, return_outputs=return_outputs, **newer)


def exp_name_of(path: str) -> str:
    """Experiment name of an exp file: its real file name up to the first '.'."""
    return os.path.basename(os.path.realpath(path)).split(".")[0]


class ExpValueError(UserError, ValueError):
    """An exp setting that cannot work."""


def check_exp_value(exp: Any) -> None:
    """Training sizes must be multiples of 32 (the largest stride)."""
    height, width = exp.input_size[:2]
    if height % 32 != 0 or width % 32 != 0:
        raise ExpValueError(f"input_size {tuple(exp.input_size)} must be multiples of 32 in height and width: "
                            "set input_size in the exp (or `input_size 640,640` on the command line)")
