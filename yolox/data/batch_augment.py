"""YOLOX's training augmentation for a whole batch with torch ops, on whatever device the batch is on.

Input: letterboxed uint8 images [B, H, W, 3] (BGR), their (x1, y1, x2, y2, class) rows [B, L, 5] and the
per-image meta rows [B, 5] (see META_COLUMNS) that ReadCropDataset ships. Output: float32 [B, 3, H, W]
images and (class, cx, cy, w, h) targets [B, N, 5], zero padded, as MosaicDetection + TrainTransform
give them. The rules are upstream YOLOX's MosaicDetection and TrainTransform; the one difference is
where the other mosaic tiles and the mixup image come from: other images of the same batch, drawn
uniformly (upstream draws them from the whole dataset; each image is then still used about five times
per epoch, and the loader decodes each image once instead of five times).

Random parameters are drawn on the CPU from a generator seeded by the batch's sample seeds, so a
seeded run gives the same batch on every device and worker count.
"""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np
import torch

from .batch_color import HSV_GAINS, jitter_hsv
from .batch_geometry import (
    affine_boxes, affine_matrices, mixup_box_batch, mixup_canvas_size, mixup_images, mosaic_affine_images,
    mosaic_boxes, mosaic_offsets,
)
from .data_augment import AugValue, aug_range
from .errors import DataError

META_COLUMNS = ("mosaic", "seed", "height", "width", "boxes")
MOSAIC, SEED, HEIGHT, WIDTH, BOXES = range(len(META_COLUMNS))


@dataclass(frozen=True)
class BatchAugmentConfig:
    """The exp's augmentation values (names as on the Exp); vflip/transpose are the crater exps' extras."""

    degrees: AugValue = 10.0
    translate: AugValue = 0.1
    mosaic_scale: AugValue = (0.1, 2)
    shear: AugValue = 2.0
    mosaic_prob: float = 1.0
    enable_mixup: bool = True
    mixup_prob: float = 1.0
    mixup_scale: AugValue = (0.5, 1.5)
    hsv_prob: float = 1.0
    flip_prob: float = 0.5
    vflip_prob: float = 0.0
    transpose_prob: float = 0.0
    max_labels: int = 120


class BatchParams:
    """Every random draw for one batch (CPU tensors), in a fixed order whatever the config."""

    def __init__(self, meta: torch.Tensor, input_hw: Tuple[int, int], config: BatchAugmentConfig):
        height, width = input_hw
        batch = meta.shape[0]
        gen = torch.Generator().manual_seed(batch_seed(meta))

        def uniform(value: AugValue, center: float = 0.0) -> torch.Tensor:
            low, high = aug_range(value, center)
            return low + (high - low) * torch.rand(batch, generator=gen, dtype=torch.float64)

        def chance(prob: float) -> torch.Tensor:
            return torch.rand(batch, generator=gen, dtype=torch.float64) < prob

        counts = meta[:, BOXES]
        self.mosaic = (meta[:, MOSAIC] > 0) & chance(config.mosaic_prob)
        self.yc = torch.floor(uniform((0.5 * height, 1.5 * height)))
        self.xc = torch.floor(uniform((0.5 * width, 1.5 * width)))
        partners = torch.randint(0, batch, (batch, 3), generator=gen)
        self.tiles = torch.cat((torch.arange(batch)[:, None], partners), 1)
        self.angle = uniform(config.degrees)
        self.scale = uniform(config.mosaic_scale, 1.0)
        if bool((self.scale <= 0).any()):
            raise DataError(f"affine scale drawn from {config.mosaic_scale!r} is <= 0: use a positive mosaic_scale")
        self.shear_x, self.shear_y = uniform(config.shear), uniform(config.shear)
        self.shift_x = uniform(config.translate) * width
        self.shift_y = uniform(config.translate) * height

        labelled = counts > 0
        tile_boxes = counts[self.tiles].sum(1)
        self.mixup = (self.mosaic & config.enable_mixup & (tile_boxes > 0) & chance(config.mixup_prob)
                      & bool(labelled.any()))
        self.jit = uniform(config.mixup_scale)
        self.mixup_flip = torch.rand(batch, generator=gen, dtype=torch.float64) > 0.5
        weights = labelled.double() if bool(labelled.any()) else torch.ones(batch, dtype=torch.float64)
        self.mixup_source = torch.multinomial(weights, batch, replacement=True, generator=gen)
        canvas_h, canvas_w = mixup_canvas_size(self.jit, height, width)
        self.offset_y = torch.floor(torch.rand(batch, generator=gen, dtype=torch.float64)
                                    * (torch.clamp(canvas_h, min=height) - height))
        self.offset_x = torch.floor(torch.rand(batch, generator=gen, dtype=torch.float64)
                                    * (torch.clamp(canvas_w, min=width) - width))

        self.hsv = chance(config.hsv_prob)
        gains = (2 * torch.rand(batch, 3, generator=gen, dtype=torch.float64) - 1) * torch.tensor(HSV_GAINS)
        self.hsv_gains = torch.trunc(gains * torch.randint(0, 2, (batch, 3), generator=gen))
        self.flip = chance(config.flip_prob)
        self.vflip = chance(config.vflip_prob)
        self.transpose = chance(config.transpose_prob) & (height == width)
        self.box_count = torch.where(self.mosaic, tile_boxes + torch.where(self.mixup, counts[self.mixup_source], 0),
                                     counts)

    def on_device(self, meta: torch.Tensor, upload: "Upload") -> "DeviceParams":
        """The parameters the device needs, plus the meta's box counts and tile sizes, in one host-to-device copy.

        One float32 block moves at once (exact: every value is an integer below 2**24 or a float32 draw), since
        each separate small copy from pageable memory would make the host wait for the stream to drain.
        """
        values = {name: getattr(self, name) for name in DEVICE_FIELDS}
        values["counts"], values["tile_hw"] = meta[:, BOXES], torch.stack((meta[:, HEIGHT], meta[:, WIDTH]), 1)
        batch = meta.shape[0]
        blocks = [value.reshape(batch, -1).to(torch.float32) for value in values.values()]
        columns = upload(torch.cat(blocks, 1)).split([block.shape[1] for block in blocks], 1)
        return DeviceParams(**{name: _restore(column, value) for (name, value), column in zip(values.items(), columns)})


Upload = Callable[[torch.Tensor], torch.Tensor]
# BatchParams fields the device-side ops read (box_count and the mosaic tile draws stay host-side)
DEVICE_FIELDS = ("mosaic", "yc", "xc", "tiles", "angle", "scale", "shear_x", "shear_y", "shift_x", "shift_y", "mixup",
                 "jit", "mixup_flip", "mixup_source", "offset_y", "offset_x", "hsv", "hsv_gains", "flip", "vflip",
                 "transpose")


def _restore(column: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A packed float32 column back in `like`'s shape and kind (bool, integer or float32: MPS has no float64)."""
    column = column.reshape(like.shape)
    if like.dtype == torch.bool:
        return column > 0.5
    return column if like.is_floating_point() else column.long()


class DeviceParams(SimpleNamespace):
    """DEVICE_FIELDS, counts and tile_hw as tensors on the batch's device, read like BatchParams."""


def batch_seed(meta: torch.Tensor) -> int:
    """One seed from the batch's sample seeds; a fresh draw of torch's generator when they are unset (-1)."""
    seeds = meta[:, SEED]
    if seeds.numel() and bool((seeds >= 0).all()):
        return int(np.random.SeedSequence(seeds.tolist()).generate_state(1)[0])
    return int(torch.randint(0, 2**62, (1,)))


def xyxy_to_cxcywh_rows(boxes: torch.Tensor) -> torch.Tensor:
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return torch.stack((boxes[..., 0] + width * 0.5, boxes[..., 1] + height * 0.5, width, height), -1)


def compact_rows(rows: torch.Tensor, keep: torch.Tensor, max_rows: int) -> torch.Tensor:
    """Kept rows of each image moved to the front in their order, the rest zero, cut to max_rows: [B, max_rows, C]."""
    order = torch.argsort((~keep).to(torch.int32), dim=1, stable=True)[:, :max_rows]
    kept = keep.gather(1, order)
    picked = rows.gather(1, order[..., None].expand(-1, -1, rows.shape[-1]))
    return torch.where(kept[..., None], picked, torch.zeros_like(picked))


class PictureDraws(NamedTuple):
    """The per-image draws the image path reads, all [B] (tiles [B, 4], hsv_gains [B, 3]) on the device."""

    mosaic: torch.Tensor
    tiles: torch.Tensor
    pad_x: torch.Tensor
    pad_y: torch.Tensor
    xc: torch.Tensor
    yc: torch.Tensor
    matrices: torch.Tensor
    mixup: torch.Tensor
    mixup_source: torch.Tensor
    jit: torch.Tensor
    mixup_flip: torch.Tensor
    offset_x: torch.Tensor
    offset_y: torch.Tensor
    jitter: torch.Tensor
    hsv_gains: torch.Tensor
    flip: torch.Tensor
    fallback: torch.Tensor
    vflip: torch.Tensor
    transpose: torch.Tensor


def augment_pictures(images: torch.Tensor, draws: PictureDraws, hsv: bool, dihedral: bool) -> torch.Tensor:
    """The image half of the batch augmentation: uint8 [B, H, W, 3] -> float32 [B, 3, H, W].

    Mosaic + affine, mixup, HSV, flip, the untouched image where no box survived, then the crater exps' vertical
    flip and quarter turn. Shapes depend on B, H and W only, so the whole function compiles to one graph.
    """
    def where(chosen: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(chosen[:, None, None, None], a, b)

    warped = mosaic_affine_images(images, draws.tiles, draws.pad_x, draws.pad_y, draws.xc, draws.yc, draws.matrices)
    second = mixup_images(images[draws.mixup_source], draws.jit, draws.mixup_flip, draws.offset_x, draws.offset_y)
    blended = where(draws.mixup, torch.floor((warped + second) / 2), warped)
    original = where(draws.mosaic, blended, images.permute(0, 3, 1, 2).to(warped.dtype))
    pictures = where(draws.jitter, jitter_hsv(original, draws.hsv_gains), original) if hsv else original
    pictures = where(draws.flip, pictures.flip(-1), pictures)
    pictures = where(draws.fallback, original, pictures)
    if not dihedral:
        return pictures
    pictures = where(draws.vflip, pictures.flip(-2), pictures)
    if pictures.shape[-1] == pictures.shape[-2]:
        pictures = where(draws.transpose, pictures.transpose(-1, -2), pictures)
    return pictures.contiguous()


PictureFn = Callable[[torch.Tensor, PictureDraws, bool, bool], torch.Tensor]


class BatchAugment:
    """Callable (images, labels, meta) -> (inputs, targets); see the module docstring.

    `pictures` runs the image half (augment_pictures, or a compiled version of it: see `compiled`).
    """

    def __init__(self, config: BatchAugmentConfig, pictures: PictureFn = augment_pictures):
        self.config = config
        self.pictures = pictures

    def __repr__(self) -> str:
        return f"BatchAugment({self.config})"

    def compiled(self, compile_fn: Callable[[PictureFn], PictureFn]) -> "BatchAugment":
        """The same augmentation with its image half passed through compile_fn (e.g. the device policy's)."""
        return BatchAugment(self.config, compile_fn(augment_pictures))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, meta: torch.Tensor,
                 upload: Optional[Upload] = None):
        """`upload` moves a small host tensor to the images' device (default: a plain copy); the prefetcher
        passes the device policy's, which pins it first so that the copy does not wait on the device."""
        meta = meta.cpu()
        height, width = images.shape[1:3]
        params = BatchParams(meta, (height, width), self.config)
        on_device = params.on_device(meta, upload or (lambda tensor: tensor.to(images.device)))
        pad_x, pad_y = mosaic_offsets(on_device.tile_hw[on_device.tiles], on_device.xc, on_device.yc)
        matrices = affine_matrices(on_device.angle, on_device.scale, on_device.shear_x, on_device.shear_y,
                                   on_device.shift_x, on_device.shift_y)
        boxes, classes, valid = self.mosaic_and_mixup_boxes(labels, on_device, pad_x, pad_y, matrices, (height, width))
        targets, jitter, flip, fallback = self.train_transform_boxes(boxes, classes, valid, on_device,
                                                                     params.box_count, width)
        targets = self.dihedral_boxes(targets, on_device, height, width)
        computed = dict(pad_x=pad_x, pad_y=pad_y, matrices=matrices, jitter=jitter, flip=flip, fallback=fallback)
        drawn = {name: getattr(on_device, name) for name in PictureDraws._fields if name not in computed}
        draws = PictureDraws(**drawn, **computed)
        most_kept = (targets[..., 3] > 0).sum(1).amax()   # queued now, read below
        pictures = self.pictures(images, draws, self.config.hsv_prob > 0, self.has_dihedral)
        # The label assignment pays for every target row, and the crop keeps far fewer boxes than the pre-crop
        # bound, so the rows are cut to the most any image kept: one read of the device, made after the picture
        # half is queued. On CUDA this runs on the prefetcher's side stream, and the read waits for that stream
        # only: this batch's augmentation, which the next step waits for anyway when the batch is handed over,
        # not the training step on the compute stream. Without a side stream the trainer has just synchronised
        # on its loss check, so only the optimizer and EMA updates are queued ahead. Doing the box half on the
        # host instead would avoid the read but put thousands of box rows per batch on the main process.
        return pictures, targets[:, :max(int(most_kept), 1)]

    @property
    def has_dihedral(self) -> bool:
        return self.config.vflip_prob > 0 or self.config.transpose_prob > 0

    def mosaic_and_mixup_boxes(self, labels: torch.Tensor, params: DeviceParams, pad_x: torch.Tensor,
                               pad_y: torch.Tensor, matrices: torch.Tensor, input_hw: Tuple[int, int]):
        """xyxy boxes after mosaic/affine/mixup (or the plain image's) before the size filter.

        Returns boxes [B, 5L, 4], classes [B, 5L] and valid [B, 5L] (slots: four tiles, then the mixup image).
        """
        height, width = input_hw
        batch, rows = labels.shape[:2]
        counts, tiles, mosaic, source = params.counts, params.tiles, params.mosaic, params.mixup_source
        real = params.xc.dtype  # the float dtype the geometry is computed in
        row_index = torch.arange(rows, device=labels.device)
        tile_boxes = affine_boxes(mosaic_boxes(labels.to(real), tiles, pad_x, pad_y, (2 * height, 2 * width)),
                                  matrices, (height, width))
        tile_valid = (row_index < counts[tiles][..., None]).flatten(1)
        mix_boxes = mixup_box_batch(labels[source][..., :4].to(real), params.jit, params.mixup_flip,
                                    params.offset_x, params.offset_y, (height, width))
        mix_valid = params.mixup[:, None] & (row_index < counts[source][:, None])

        empty = labels.new_zeros(batch, 4 * rows, 4).to(real)
        plain_boxes = torch.cat((labels[..., :4].to(real), empty), 1)
        boxes = torch.where(mosaic[:, None, None], torch.cat((tile_boxes, mix_boxes), 1), plain_boxes)
        classes = torch.where(mosaic[:, None], torch.cat((labels[tiles][..., 4].flatten(1), labels[source][..., 4]), 1),
                              torch.cat((labels[..., 4], empty[..., 0]), 1).to(labels.dtype))
        plain_valid = torch.cat((row_index[None] < counts[:, None], torch.zeros_like(tile_valid)), 1)
        valid = torch.where(mosaic[:, None], torch.cat((tile_valid, mix_valid), 1), plain_valid)
        return boxes, classes.to(real), valid

    def train_transform_boxes(self, boxes: torch.Tensor, classes: torch.Tensor, valid: torch.Tensor,
                              params: DeviceParams, box_count: torch.Tensor, width: int):
        """TrainTransform's box rules: flip, min(w, h) > 1 filter, fallback, (class, cx, cy, w, h) rows.

        Returns the targets and which images get the HSV jitter, the flip and the fallback (the untouched
        image and all its boxes with an area, where no box survived). box_count (host) bounds each image's
        kept boxes.
        """
        has_boxes = valid.any(1)
        jitter, flip = params.hsv & has_boxes, params.flip & has_boxes
        mirrored = torch.stack((width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]), -1)
        moved_boxes = xyxy_to_cxcywh_rows(torch.where(flip[:, None, None], mirrored, boxes))
        keep = valid & (torch.minimum(moved_boxes[..., 2], moved_boxes[..., 3]) > 1)

        fallback = has_boxes & ~keep.any(1)
        original_boxes = xyxy_to_cxcywh_rows(boxes)
        has_area = valid & (original_boxes[..., 2] > 0) & (original_boxes[..., 3] > 0)
        boxes = torch.where(fallback[:, None, None], original_boxes, moved_boxes)
        keep = torch.where(fallback[:, None], has_area, keep)
        rows = torch.cat((classes[..., None], boxes), -1)
        # a host-side bound (crater exps pad to 1,000 rows) that keeps the compaction small; __call__ trims further
        most_boxes = max(int(box_count.max()), 1) if box_count.numel() else 1
        targets = compact_rows(rows, keep, min(self.config.max_labels, rows.shape[1], most_boxes))
        return targets, jitter, flip, fallback

    def dihedral_boxes(self, targets: torch.Tensor, params: DeviceParams, height: int, width: int) -> torch.Tensor:
        """The crater exps' vertical flip and quarter turn (transpose, square inputs only) of the target rows."""
        if not self.has_dihedral:
            return targets
        real = targets[..., 3] > 0
        flipped_y = torch.where(real, height - targets[..., 2], targets[..., 2])
        targets = torch.where(params.vflip[:, None, None], torch.cat((targets[..., :2], flipped_y[..., None],
                                                                      targets[..., 3:]), -1), targets)
        if width == height:
            swapped = torch.stack([targets[..., column] for column in (0, 2, 1, 4, 3)], -1)
            targets = torch.where(params.transpose[:, None, None], swapped, targets)
        return targets
