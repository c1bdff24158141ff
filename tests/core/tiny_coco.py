"""A tiny COCO-layout detection set and an upstream-style exp file for trainer/tool tests."""
import json
import textwrap
from pathlib import Path

import cv2
import numpy as np

CATEGORIES = [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]


def _draw_image(rng: np.random.Generator, size: int):
    img = np.full((size, size, 3), rng.integers(40, 90), dtype=np.uint8)
    annotations = []
    for _ in range(rng.integers(1, 4)):
        w, h = (int(v) for v in rng.integers(size // 6, size // 3, 2))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        category = int(rng.integers(1, 3))
        if category == 1:
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (230, 200, 40), -1)
        else:
            cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, (40, 60, 240), -1)
        annotations.append({"bbox": [x, y, w, h], "category_id": category, "area": w * h, "iscrowd": 0})
    return img, annotations


def make_tiny_coco(root: Path, num_train: int = 12, num_val: int = 4, size: int = 96, seed: int = 0) -> Path:
    """Write <root>/{train2017,val2017}/*.jpg and <root>/annotations/instances_{train,val}2017.json."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (("train2017", num_train), ("val2017", num_val)):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            img, anns = _draw_image(rng, size)
            file_name = f"{image_id:06d}.jpg"
            cv2.imwrite(str(root / split / file_name), img)
            images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
            for ann in anns:
                annotations.append(dict(ann, id=len(annotations) + 1, image_id=image_id))
        data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


EXP_TEMPLATE = '''
import os

from yolox.exp import Exp as MyExp


class Exp(MyExp):
    def __init__(self):
        super(Exp, self).__init__()
        self.depth = 0.33
        self.width = 0.125
        self.num_classes = 2
        self.input_size = (96, 96)
        self.test_size = (96, 96)
        self.random_size = (2, 4)
        self.mosaic_scale = (0.5, 1.5)
        self.enable_mixup = False
        self.data_dir = {data_dir!r}
        self.output_dir = {output_dir!r}
        self.max_epoch = {max_epoch}
        self.warmup_epochs = 1
        self.no_aug_epochs = {no_aug_epochs}
        self.eval_interval = 1
        self.print_interval = 2
        self.data_num_workers = 0
        self.seed = 7
        self.basic_lr_per_img = 0.01 / 8.0
        self.exp_name = os.path.split(os.path.realpath(__file__))[1].split(".")[0]
'''


def write_exp_file(path: Path, data_dir: Path, output_dir: Path, max_epoch: int = 2, no_aug_epochs: int = 1,
                   extra: str = "") -> Path:
    """An exp file like a user's (subclass of yolox.exp.Exp, attributes set in __init__)."""
    body = EXP_TEMPLATE.format(data_dir=str(data_dir), output_dir=str(output_dir), max_epoch=max_epoch,
                               no_aug_epochs=no_aug_epochs)
    path.write_text(textwrap.dedent(body) + textwrap.dedent(extra))
    return path


TINY_MODEL = '''

import torch
from torch import nn

from yolox.models.network_blocks import BaseConv, use_fused_bn_act


class TinyHead(nn.Module):
    """Holds use_l1 and the prediction conv, like YOLOXHead, so the trainer's switch applies."""

    def __init__(self, num_classes):
        super().__init__()
        self.use_l1 = False
        self.num_classes = num_classes
        self.pred = nn.Conv2d(8, 5 + num_classes, 1)


class TinyDetector(nn.Module):
    """A few hundred parameters with a loss that depends on the batch's boxes: trains in milliseconds
    on the CPU, so trainer mechanics (resume, OOM, DDP) can be tested without the YOLOX loss."""

    def __init__(self, num_classes):
        super().__init__()
        # YOLOX's conv block, so the trainer's BatchNorm+SiLU kernel choice applies here too
        self.backbone = BaseConv(3, 8, 3, 2)
        self.head = TinyHead(num_classes)

    def use_fused_bn_act(self, enabled):
        """The device policy's kernel choice, applied as YOLOX applies it."""
        return use_fused_bn_act(self, enabled)

    def forward(self, x, targets=None):
        feats = self.head.pred(self.backbone(x / 255.0))
        if not self.training:
            return feats.flatten(2).transpose(1, 2).sigmoid() * x.shape[-1]
        pooled = feats.mean(dim=(2, 3))
        num_gt = (targets.sum(-1) > 0).sum(1).to(pooled.dtype)
        box_mean = targets[..., 1:5].sum(1) / num_gt.clamp(min=1)[:, None] / x.shape[-1]
        box_err = pooled[:, :4].sigmoid() - box_mean
        iou_loss = (box_err ** 2).mean() * 5.0
        conf_loss = ((pooled[:, 4] - num_gt) ** 2).mean() * 0.01
        cls_loss = (pooled[:, 5:] ** 2).mean()
        l1_loss = box_err.abs().mean() if self.head.use_l1 else pooled.new_zeros(())
        total = iou_loss + conf_loss + cls_loss + l1_loss
        return {"total_loss": total, "iou_loss": iou_loss, "l1_loss": l1_loss, "conf_loss": conf_loss,
                "cls_loss": cls_loss, "num_fg": num_gt.mean()}


def _tiny_get_model(self):
    return TinyDetector(self.num_classes)


Exp.get_model = _tiny_get_model
'''

KILL_HOOK = '''

import json
import os
import signal
import time

from yolox.core import Trainer


class KillableTrainer(Trainer):
    """SIGKILLs its own process right after the checkpoint of epoch KILL_AFTER_EPOCH (env) is written,
    on rank KILL_RANK only when that is set (the time of the kill goes to killed_rank<r>.txt)."""

    def after_epoch(self):
        super().after_epoch()
        rank_matches = os.environ.get("KILL_RANK", str(self.rank)) == str(self.rank)
        if os.environ.get("KILL_AFTER_EPOCH") == str(self.epoch + 1) and rank_matches:
            with open(os.path.join(self.file_name, f"killed_rank{self.rank}.txt"), "w") as handle:
                handle.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)

    def after_train(self):
        super().after_train()
        live = self.model.module if hasattr(self.model, "module") else self.model
        torch.save({k: v.detach().cpu() for k, v in live.state_dict().items()},
                   os.path.join(self.file_name, f"final_rank{self.rank}.pt"))
        with open(os.path.join(self.file_name, f"final_rank{self.rank}.json"), "w") as handle:
            json.dump({"batch_size": self.batch_size, "samples_seen": self.samples_seen,
                       "oom_recoveries": self.oom_recoveries}, handle)


def _killable_trainer(self, args, policy):
    return KillableTrainer(self, args, policy)


Exp.get_trainer = _killable_trainer
'''

OOM_HOOK = '''

import torch.distributed


class _OutOfMemoryInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loss):
        return loss.view_as(loss)

    @staticmethod
    def backward(ctx, grad):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated in backward)")


class OutOfMemoryDetector(TinyDetector):
    """TinyDetector that runs out of memory on rank OOM_RANK (env) at the training steps of OOM_STEPS,
    e.g. "2:forward,5:backward" (1-based counts of training forwards on that rank)."""

    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.steps = 0
        self.plan = dict(item.split(":") for item in os.environ.get("OOM_STEPS", "").split(",") if item)

    def forward(self, x, targets=None):
        if not self.training:
            return super().forward(x, targets)
        self.steps += 1
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        where = self.plan.get(str(self.steps)) if str(rank) == os.environ.get("OOM_RANK") else None
        if where == "forward":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated in forward)")
        outputs = super().forward(x, targets)
        if where == "backward":
            outputs["total_loss"] = _OutOfMemoryInBackward.apply(outputs["total_loss"])
        return outputs


def _oom_get_model(self):
    return OutOfMemoryDetector(self.num_classes)


Exp.get_model = _oom_get_model
'''
