"""BatchAugment's target rows: cut to the most boxes one image kept after the mosaic crop, which changes neither
the label assignment nor the loss."""
from pathlib import Path

import pytest
import torch

import yolox.data.batch_augment as batch_augment
from tests.data.synth import random_coco_set
from tests.models.test_assignment import anchor_grid
from yolox.data import COCODataset
from yolox.data.batch_augment import BatchAugment, BatchAugmentConfig, BatchParams
from yolox.data.datasets.read_crop import ReadCropDataset, collate_read_crop
from yolox.models.assignment import simota_assign
from yolox.models.losses import IOUloss
from yolox.models.yolox_loss import compute_losses

INPUT_HW = (64, 64)
# zoomed in about twice, the output shows about a sixteenth of the mosaic canvas: most boxes fall outside
ZOOMED_IN = BatchAugmentConfig(max_labels=1000, mosaic_scale=(1.9, 2.0), enable_mixup=False)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    root = random_coco_set(Path(tmp_path_factory.mktemp("batch_rows")), num_images=12)
    return ReadCropDataset(COCODataset(str(root), img_size=INPUT_HW), INPUT_HW)


def augment_keeping_untrimmed(reader, seed0, monkeypatch):
    """(targets, the same targets before the cut, the pre-crop bound per image) of one mosaic batch."""
    images, labels, meta, _ = collate_read_crop([reader[(True, i % len(reader), seed0 + i)] for i in range(8)])
    untrimmed = []

    def recording(*args):
        untrimmed.append(compact_rows(*args))
        return untrimmed[-1]

    compact_rows = batch_augment.compact_rows
    monkeypatch.setattr(batch_augment, "compact_rows", recording)
    _, targets = BatchAugment(ZOOMED_IN)(images, labels, meta)
    return targets, untrimmed[0], BatchParams(meta, INPUT_HW, ZOOMED_IN).box_count


def random_head_outputs(batch: int, num_classes: int, seed: int) -> torch.Tensor:
    """[B, A, 5 + C] train-mode outputs over the 64 px anchor grid: boxes near the anchors, random logits."""
    gen = torch.Generator().manual_seed(seed)
    x_shifts, y_shifts, strides = anchor_grid(*INPUT_HW)
    centres = torch.stack(((x_shifts[0] + 0.5) * strides[0], (y_shifts[0] + 0.5) * strides[0]), -1)
    outputs = torch.randn(batch, centres.shape[0], 5 + num_classes, generator=gen)
    outputs[..., :2] = centres + outputs[..., :2] * strides[0, :, None]
    outputs[..., 2:4] = 4 + torch.rand(batch, centres.shape[0], 2, generator=gen) * 24
    return outputs


@pytest.mark.parametrize("seed0", [0, 8, 16])
def test_targets_have_as_many_rows_as_the_most_boxes_one_image_kept(reader, seed0, monkeypatch):
    targets, untrimmed, bound = augment_keeping_untrimmed(reader, seed0, monkeypatch)
    kept = (untrimmed.sum(-1) > 0).sum(1)
    assert int(kept.sum()) < int(bound.sum()) / 2          # the crop dropped most boxes
    assert targets.shape[1] == max(int(kept.max()), 1) < untrimmed.shape[1]
    assert torch.equal(targets, untrimmed[:, : targets.shape[1]])
    assert untrimmed[:, targets.shape[1]:].eq(0).all()


def test_cut_rows_change_neither_the_assignment_nor_the_loss(reader, monkeypatch):
    targets, untrimmed, _ = augment_keeping_untrimmed(reader, 0, monkeypatch)
    assert targets.shape[1] < untrimmed.shape[1]
    outputs = random_head_outputs(targets.shape[0], num_classes=2, seed=0)
    grid = anchor_grid(*INPUT_HW)
    cut, full = simota_assign(outputs, targets, *grid), simota_assign(outputs, untrimmed, *grid)
    for name in ("fg_mask", "matched_gt_inds", "matched_classes", "matched_ious", "num_gt"):
        assert torch.equal(getattr(cut, name), getattr(full, name)), name
    assert torch.equal(cut.dynamic_ks, full.dynamic_ks[:, : targets.shape[1]])
    assert cut.fg_mask.any()
    losses = [compute_losses(outputs, labels, *grid, None, num_classes=2, use_l1=False, iou_loss=IOUloss())
              for labels in (targets, untrimmed)]
    for cut_term, full_term in zip(*losses):
        assert torch.equal(cut_term, full_term)
