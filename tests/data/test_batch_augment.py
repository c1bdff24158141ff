"""BatchAugment and its loader side: shapes, reproducibility, label rules and the trainer hook."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.data.synth import random_coco_set
from yolox.data import COCODataset, DataLoader, InfiniteSampler, YoloBatchSampler
from yolox.data.batch_augment import BatchAugment, BatchAugmentConfig
from yolox.data.data_prefetcher import DataPrefetcher
from yolox.data.datasets.read_crop import ReadCropDataset, collate_read_crop
from yolox.utils.device import DevicePolicy, build_policy

INPUT_HW = (64, 64)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    root = random_coco_set(Path(tmp_path_factory.mktemp("batch_aug")), num_images=12)
    return ReadCropDataset(COCODataset(str(root), img_size=INPUT_HW), INPUT_HW)


def batch_of(reader, mosaic=True, seed0=0, size=8):
    return collate_read_crop([reader[(mosaic, i % len(reader), seed0 + i)] for i in range(size)])


def augmenting_loader(reader, seed=7, transform=None):
    """Batches of 4 read-and-crop items with a BatchAugment as the loader's batch transform."""
    sampler = YoloBatchSampler(InfiniteSampler(len(reader), seed=0), batch_size=4, drop_last=False, seed=seed)
    return DataLoader(reader, batch_sampler=sampler, collate_fn=collate_read_crop, num_workers=0,
                      batch_transform=transform or BatchAugment(BatchAugmentConfig(max_labels=20)))


def test_reader_ships_letterboxed_uint8_and_meta(reader):
    images, labels, meta, _ = batch_of(reader)
    assert images.dtype == torch.uint8 and images.shape == (8, *INPUT_HW, 3)
    assert labels.shape[0] == 8 and labels.shape[2] == 5
    assert (meta[:, 4] <= labels.shape[1]).all() and meta[:, 0].eq(1).all()
    heights, widths = meta[:, 2], meta[:, 3]
    assert ((heights == 64) | (widths == 64)).all()  # fitted: the longer side fills the input
    for image, h, w in zip(images, heights, widths):
        assert image[h:].eq(114).all() and image[:, w:].eq(114).all()


def test_same_seeds_same_batch_and_other_seeds_differ(reader):
    augment = BatchAugment(BatchAugmentConfig(max_labels=30, vflip_prob=0.5, transpose_prob=0.5))
    first = augment(*batch_of(reader)[:3])
    again = augment(*batch_of(reader)[:3])
    other = augment(*batch_of(reader, seed0=100)[:3])
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_targets_are_valid_rows_at_the_front(reader):
    augment = BatchAugment(BatchAugmentConfig(max_labels=30))
    for seed0 in range(0, 40, 8):
        images, targets = augment(*batch_of(reader, seed0=seed0)[:3])
        assert images.shape == (8, 3, *INPUT_HW) and images.dtype == torch.float32
        assert images.min() >= 0 and images.max() <= 255 and torch.equal(images, images.round())
        real = targets.sum(-1) > 0
        # padding only after the last real row of each image
        assert torch.equal(real, torch.sort(real.int(), dim=1, descending=True, stable=True).values.bool())
        _, cx, cy, w, h = targets[real].unbind(-1)
        assert (w > 0).all() and (h > 0).all()
        assert (cx - w / 2 >= -1e-3).all() and (cx + w / 2 <= 64 + 1e-3).all()
        assert (cy - h / 2 >= -1e-3).all() and (cy + h / 2 <= 64 + 1e-3).all()


def test_no_mosaic_keeps_the_image_and_its_boxes_up_to_flips(reader):
    augment = BatchAugment(BatchAugmentConfig(hsv_prob=0.0, flip_prob=0.0))
    images, labels, meta, _ = batch_of(reader, mosaic=False)
    out, targets = augment(images, labels, meta)
    assert torch.equal(out, images.permute(0, 3, 1, 2).float())
    for row, count in enumerate(meta[:, 4].tolist()):
        x1, y1, x2, y2 = labels[row, :count, :4].unbind(-1)
        big = torch.minimum(x2 - x1, y2 - y1) > 1
        expected = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)[big]
        torch.testing.assert_close(targets[row, : len(expected), 1:], expected)


def test_prefetcher_applies_the_loader_batch_transform(reader):
    policy = build_policy("cpu")
    images, targets = DataPrefetcher(augmenting_loader(reader), policy).next()
    assert images.shape == (4, 3, *INPUT_HW) and images.dtype == torch.float32
    assert targets.shape[0] == 4 and targets.shape[2] == 5 and targets.shape[1] <= 20
    assert np.isfinite(targets.numpy()).all()


def test_targets_keep_only_rows_some_image_can_fill(reader):
    # the assignment's work grows with the label rows: neither a generous cap nor the pre-crop bound pads the batch
    roomy = BatchAugment(BatchAugmentConfig(max_labels=1000))
    capped = BatchAugment(BatchAugmentConfig(max_labels=1000 * 5))
    for seed0 in range(0, 40, 8):
        images, labels, meta = batch_of(reader, seed0=seed0)[:3]
        _, targets = roomy(images, labels, meta)
        _, reference = capped(images, labels, meta)
        kept = (targets.sum(-1) > 0).sum(1)
        assert targets.shape[1] == max(int(kept.max()), 1)
        torch.testing.assert_close(targets, reference[:, : targets.shape[1]])
        assert reference[:, targets.shape[1]:].eq(0).all()


class DeviceTraffic(TorchDispatchMode):
    """Records ops that read a host tensor (beyond a 0-d scalar) and return a tensor on the meta device, and reads
    of a meta scalar back to the host (answered with READ_BACK, since a meta tensor holds no value)."""

    READ_BACK = 3

    def __init__(self):
        super().__init__()
        self.copies = []
        self.reads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            self.reads.append(tuple(args[0].shape))
            return self.READ_BACK
        out = func(*args, **(kwargs or {}))
        from_host = any(isinstance(a, torch.Tensor) and a.device.type == "cpu" and a.dim() > 0 for a in args)
        if from_host and isinstance(out, torch.Tensor) and out.device.type == "meta":
            self.copies.append(str(func))
        return out


def test_the_batch_parameters_reach_the_device_in_one_upload(reader):
    # each small copy from pageable host memory makes the host wait for the CUDA stream; the meta device
    # stands in for the GPU here (shapes only), so any host tensor moved on its own shows up as a copy
    augment = BatchAugment(BatchAugmentConfig(max_labels=30, vflip_prob=0.5, transpose_prob=0.5))
    images, labels, meta = batch_of(reader)[:3]
    on_meta = images.to("meta"), labels.to("meta")
    uploads = []

    def upload(tensor):
        uploads.append(tensor.shape)
        return tensor.to("meta")

    with DeviceTraffic() as recorder:
        pictures, targets = augment(*on_meta, meta, upload=upload)
    assert len(uploads) == 1 and uploads[0][0] == 8
    assert recorder.copies == ["aten._to_copy.default"]
    # and one scalar back: the most rows an image kept, which sets the targets' rows
    assert recorder.reads == [()] and targets.shape[1] == DeviceTraffic.READ_BACK
    assert pictures.shape == (8, 3, *INPUT_HW) and pictures.device.type == "meta" and targets.device.type == "meta"


def test_uploaded_parameters_give_the_same_batch(reader):
    augment = BatchAugment(BatchAugmentConfig(max_labels=30, vflip_prob=0.5, transpose_prob=0.5))
    batch = batch_of(reader, seed0=16)[:3]
    plain = augment(*batch)
    through_policy = augment(*batch, upload=build_policy("cpu").upload)
    assert torch.equal(plain[0], through_policy[0]) and torch.equal(plain[1], through_policy[1])


def test_prefetcher_compiles_the_image_half_when_the_policy_says_so(reader, monkeypatch):
    compiled = []

    def fake_compile(self, fn):
        compiled.append(fn.__name__)
        return fn

    monkeypatch.setattr(DevicePolicy, "compile_function", fake_compile)
    transform = BatchAugment(BatchAugmentConfig(max_labels=20))
    for asked, expected in ((False, []), (True, ["augment_pictures"])):
        compiled.clear()
        loader = augmenting_loader(reader, transform=transform)
        images, _ = DataPrefetcher(loader, build_policy("cpu", compile_augment=asked)).next()
        assert compiled == expected and images.shape == (4, 3, *INPUT_HW)


@pytest.mark.slow
def test_compiled_image_half_matches_eager(reader):
    augment = BatchAugment(BatchAugmentConfig(max_labels=30, vflip_prob=0.5, transpose_prob=0.5))
    compiled = augment.compiled(build_policy("cpu").compile_function)
    for seed0 in (0, 24):
        batch = batch_of(reader, seed0=seed0)[:3]
        (eager_images, eager_targets), (images, targets) = augment(*batch), compiled(*batch)
        assert not compiled.pictures.fell_back  # fullgraph: a graph break would have fallen back to eager
        assert torch.equal(eager_targets, targets)
        levels = (eager_images - images).abs()
        # fused arithmetic may round a pixel that sits on .5 the other way
        assert levels.max() <= 2 and (levels > 0).float().mean() < 1e-3


def test_prefetcher_take_then_preload_gives_the_batches_next_gives(reader):
    by_next, split = (DataPrefetcher(augmenting_loader(reader, seed=3), build_policy("cpu")) for _ in range(2))
    for _ in range(3):
        expected = by_next.next()
        taken = split.take()
        assert torch.equal(expected[0], taken[0]) and torch.equal(expected[1], taken[1])
        with pytest.raises(RuntimeError, match="without a preload"):
            split.take()
        split.preload()
