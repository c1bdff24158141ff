"""The check's fixed inputs: a seeded yolox-nano (1 class) with data-calibrated BatchNorm, and generated craters.

Every figure of the check compares two runs of the same thing, so the inputs only need to be fixed and to
exercise the code: random weights do that, once BatchNorm's running statistics come from real activations
(with running mean 0 and variance 1 the eval-mode signal dies out and every image gives the same output).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List

import cv2
import numpy as np
import torch
from torch import nn

from yolox.models.build import build_yolox, init_yolox
from yolox.synthetic.craters import generate_synthetic_craters

SEED = 0
IMG_SIZE = 224            # a multiple of 32; small enough for seconds on a laptop CPU
TRAIN_IMAGES = 2          # the batch of the forward, loss, assignment and gradient checks
EVAL_IMAGES = 4           # the set of the full evaluation
MAX_LABELS = 50
CRATERS_PER_IMAGE = (6, 30)
PRED_STD = 0.3            # spread of the prediction convs' outputs (see calibrate_predictions)
VAR_FLOOR = 0.1           # running variance floor, as a fraction of the layer's mean (see calibrate_bn)
# boxes of about e^1 strides (8 to 90 px), not sub-pixel ones whose IoU no float format can hold steady
BOX_LOG_SIZE = 1.0


@dataclass(frozen=True)
class CraterBatch:
    """A training batch: images [B, 3, H, W] float32 (BGR 0..255) and labels [B, MAX_LABELS, 5] (cls cx cy w h)."""

    images: torch.Tensor
    labels: torch.Tensor


def build_nano() -> nn.Module:
    """yolox-nano with 1 class and PyTorch's default init under a fixed seed (weights only; see calibrate_bn)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = init_yolox(build_yolox(0.33, 0.25, num_classes=1, depthwise=True))
    return model


@torch.no_grad()
def calibrate_bn(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of `images` (one train-mode forward, cumulative
    average), so eval-mode activations have unit scale and depend on the image."""
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    model.head.train_outputs(model.backbone(images))
    for norm, momentum in zip(norms, momenta):
        # a channel of near-zero variance would be scaled up by 1/std and turn rounding noise into signal
        norm.running_var.clamp_min_(VAR_FLOOR * float(norm.running_var.mean()))
        norm.momentum = momentum
        norm.num_batches_tracked.zero_()
    return model.eval()


@torch.no_grad()
def calibrate_predictions(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Scale the weights of the head's prediction convs so their outputs (before the bias) have standard deviation
    PRED_STD on `images`: with calibrated BatchNorm, random prediction layers give box sizes of exp(100) (inf) and
    saturated scores, which no comparison can use; scaled, boxes are about stride-sized and scores spread below
    the prior probability, as early in training. Box sizes start at BOX_LOG_SIZE."""
    preds = [conv for name in ("reg_preds", "obj_preds", "cls_preds") for conv in getattr(model.head, name)]
    inputs = {}
    handles = [conv.register_forward_hook(lambda module, args, out: inputs.__setitem__(module, args[0]))
               for conv in preds]
    model.eval()
    model(images)
    for handle in handles:
        handle.remove()
    for conv in preds:
        spread = nn.functional.conv2d(inputs[conv], conv.weight).std()
        conv.weight.mul_(PRED_STD / spread.clamp_min(1e-6))
    for conv in model.head.reg_preds:
        conv.bias[2:4] += BOX_LOG_SIZE
    return model


def fixed_model(calibration: torch.Tensor) -> nn.Module:
    """The check's model on the CPU, in eval mode: build_nano(), BatchNorm and prediction layers calibrated."""
    return calibrate_predictions(calibrate_bn(build_nano(), calibration), calibration)


def write_crater_set(root: Path) -> Path:
    """Generate the crater set under `root` (train2017: the batch, val2017: the evaluation set); returns root."""
    generate_synthetic_craters(root, num_train=TRAIN_IMAGES, num_val=EVAL_IMAGES, img_size=IMG_SIZE, seed=SEED,
                               craters_per_image=CRATERS_PER_IMAGE)
    return root


def load_batch(root: Path, split: str = "train2017", ann_file: str = "instances_train2017.json") -> CraterBatch:
    """The images of one generated split as a batch, with their crater boxes as labels (class 0)."""
    coco = json.loads((root / "annotations" / ann_file).read_text())
    images: List[np.ndarray] = []
    labels = torch.zeros(len(coco["images"]), MAX_LABELS, 5)
    for index, info in enumerate(coco["images"]):
        grey = cv2.imread(str(root / split / info["file_name"]), cv2.IMREAD_COLOR)
        images.append(grey.transpose(2, 0, 1).astype(np.float32))
        boxes = [ann["bbox"] for ann in coco["annotations"] if ann["image_id"] == info["id"]][:MAX_LABELS]
        for row, (x, y, w, h) in enumerate(boxes):
            labels[index, row] = torch.tensor([0.0, x + w / 2, y + h / 2, w, h])
    return CraterBatch(torch.from_numpy(np.stack(images)), labels)


def resized(batch: CraterBatch, size: int) -> CraterBatch:
    """The batch at another square input size (multi-scale training), labels scaled alike."""
    scale = size / batch.images.shape[-1]
    images = nn.functional.interpolate(batch.images, size=(size, size), mode="bilinear", align_corners=False)
    return CraterBatch(images, batch.labels * torch.tensor([1.0, scale, scale, scale, scale]))
