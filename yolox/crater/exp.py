"""CraterExp: the settings shared by the crater experiments, dense fields of one class in grey orbital images.

The size files in exps/crater/ (yolox_m_crater.py, yolox_s_crater.py, yolox_nano_crater.py and the demo)
subclass it.
"""
import os
from dataclasses import replace
from typing import Optional, Tuple

import torch
from loguru import logger
from torch import nn

from yolox.crater.trainer import CraterTrainer
from yolox.crater.transforms import DihedralTransform, ScaleJitterTransform
from yolox.data.datasets import count_classes
from yolox.exp import Exp
from yolox.exp.param_groups import split_param_groups
from yolox.models.build import build_yolox, init_yolox
from yolox.models.grad_ckpt import enable_grad_checkpointing
from yolox.utils.device import DevicePolicy

OPTIMIZERS = ("sgd", "adamw")


class CraterExp(Exp):
    """One class ("crater"), caps per image from the data's densest image, augmentation for grey imagery."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = os.path.join("datasets", "craters")
        self.num_classes = 1
        # count the classes in the data when the model is built (the data_dir may come from the CLI)
        self.num_classes_from_data = True
        self.depthwise = False

        # a crater field can hold thousands of craters: label rows and detections per image follow the
        # densest image of the data (Exp.label_cap); set numbers here to fix them instead
        self.max_labels = None
        self.eval_max_dets = None

        # grey images: HSV jitter would only add colour that orbital images never have
        self.hsv_prob = 0.0
        self.flip_prob = 0.5
        self.vflip_prob = 0.5
        self.transpose_prob = 0.5
        self.degrees = 0.0
        self.shear = 0.0

        # fine-tuning from COCO weights converges in far fewer epochs than training on COCO
        self.max_epoch = 60
        self.warmup_epochs = 2
        # mosaic to the last epoch: catalogue labels leave small craters unlabelled, and without mosaic's
        # down-scaling the model learns them as background (docs/crater_recipe.md#mosaic-to-the-last-epoch)
        self.no_aug_epochs = 0
        # low-score detections of faint small craters still count toward AP; it costs only evaluation time
        self.test_conf = 0.001
        self.eval_interval = 5
        self.print_interval = 10
        # a short crater epoch would write an epoch_N file per evaluation: the best and final ones are kept
        self.save_history_ckpt = False

        # recipe knobs (each a `KEY VALUE` override; defaults keep the recipe as it was)
        self.optimizer_type = "sgd"     # "sgd" (Nesterov, momentum) or "adamw" (betas (momentum, 0.999))
        self.no_aug_scale: Optional[Tuple[float, float]] = None  # e.g. (0.5, 1.5): scale jitter after mosaic stops
        self.center_radius = 1.5        # SimOTA candidate window, in strides (upstream's 1.5)

        # activation checkpointing of backbone and neck: less memory, their forward recomputed in backward
        self.grad_ckpt = False
        # evaluation keeps no activations for backward: None means twice the training batch
        self.eval_batch_size: Optional[int] = None

        # the crater planner (yolox-train-craters): the synthetic set it generates where data_dir is empty
        # (yolox.synthetic.craters.generate_synthetic_craters arguments), and whether its from-scratch or
        # fine-tuning recipe may change this exp's schedule (False: the exp's own, as written)
        self.synthetic_data = dict(num_train=400, num_val=80, img_size=416)
        self.scratch_recipe = True

    def get_model(self) -> nn.Module:
        """A new detector, num_classes taken from the data when the data folder exists; checkpointed
        backbone and neck when grad_ckpt is set."""
        if self.num_classes_from_data and self.data_dir and os.path.isdir(self.data_dir):
            self.num_classes = count_classes(self.data_dir, self.data_format, self.train_ann)
        model = build_yolox(self.depth, self.width, num_classes=self.num_classes, act=self.act,
                            depthwise=self.depthwise, p2=self.p2_head)
        if self.grad_ckpt:
            names = enable_grad_checkpointing(model)
            logger.info(f"gradient checkpointing on {len(names)} backbone/neck blocks (less memory, more compute)")
        init_yolox(model)
        model.head.center_radius = float(self.center_radius)
        return model.train()

    def get_trainer(self, options, policy: Optional[DevicePolicy] = None) -> CraterTrainer:
        """The crater trainer: the base trainer plus the loss curve, throughput lines and plots."""
        return CraterTrainer(self, options, policy)

    def get_optimizer(self, batch_size: int, model: Optional[nn.Module] = None,
                      policy: Optional[DevicePolicy] = None) -> torch.optim.Optimizer:
        """Upstream's SGD, or AdamW over the same groups (no decay on BN weights and biases); a new one each call."""
        if self.optimizer_type not in OPTIMIZERS:
            raise ValueError(f"optimizer_type {self.optimizer_type!r} is not one of {OPTIMIZERS}: fix the exp "
                             "or the `optimizer_type` override")
        if self.optimizer_type == "sgd":
            return super().get_optimizer(batch_size, model=model, policy=policy)
        lr = self.warmup_lr if self.warmup_epochs > 0 else self.basic_lr_per_img * batch_size
        bn_weights, weights, biases = split_param_groups(self.optimized_model(model))
        optimizer = torch.optim.AdamW(bn_weights, lr=lr, betas=(self.momentum, 0.999), weight_decay=0.0,
                                      **self.optimizer_options(policy))
        optimizer.add_param_group({"params": weights, "weight_decay": self.weight_decay})
        optimizer.add_param_group({"params": biases})
        return optimizer

    def get_data_loader(self, batch_size: int, is_distributed: bool, no_aug: bool = False,
                        cache_img: Optional[str] = None, start: int = 0, policy: Optional[DevicePolicy] = None):
        if self.device_augment and self.no_aug_scale is not None:
            raise ValueError("no_aug_scale works on the per-image pipeline only: set device_augment False "
                             "or drop the no_aug_scale override")
        loader = super().get_data_loader(batch_size, is_distributed, no_aug=no_aug, cache_img=cache_img,
                                         start=start, policy=policy)
        if loader.batch_transform is not None:  # device augmentation: the batch config carries the flips
            return loader
        transform = loader.dataset.preproc
        if no_aug and self.no_aug_scale is not None:
            transform = ScaleJitterTransform(transform, tuple(self.no_aug_scale), self.translate)
        loader.dataset.preproc = DihedralTransform(transform, self.vflip_prob, self.transpose_prob)
        return loader

    def device_augment_default(self, policy_choice: bool, policy_reason: str) -> Tuple[bool, str]:
        """The policy's choice, except that no_aug_scale keeps the per-image pipeline it is built on."""
        if self.no_aug_scale is not None:
            return False, "no_aug_scale is set and works on the per-image pipeline only"
        return super().device_augment_default(policy_choice, policy_reason)

    def batch_augment_config(self):
        """The base config plus the vertical flip and quarter turn."""
        return replace(super().batch_augment_config(), vflip_prob=self.vflip_prob,
                       transpose_prob=self.transpose_prob)

    def get_evaluator(self, batch_size: int, is_distributed: bool, testdev: bool = False, legacy: bool = False,
                      policy: Optional[DevicePolicy] = None):
        eval_batch = self.eval_batch_size if self.eval_batch_size else 2 * batch_size
        return super().get_evaluator(eval_batch, is_distributed, testdev=testdev, legacy=legacy, policy=policy)
