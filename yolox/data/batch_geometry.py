"""Batched mosaic + random affine and mixup geometry with torch ops (images and xyxy boxes).

Same geometry as upstream YOLOX's MosaicDetection: four letterboxed tiles anchored at a mosaic centre
on a 2H x 2W canvas, a random affine about the canvas origin to an H x W output (cv2.warpAffine's
bilinear sampling, fill 114), and mixup's scaled, maybe flipped, randomly cropped second image. The
canvas is never built: each output pixel is traced back through the affine to its tile.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from .data_augment import PAD_VALUE


def affine_matrices(angle_deg: torch.Tensor, scale: torch.Tensor, shear_x_deg: torch.Tensor,
                    shear_y_deg: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """[B, 2, 3] matrices as get_affine_matrix builds them: rotation+scale about (0, 0), shear, translation."""
    angle = torch.deg2rad(angle_deg)
    alpha, beta = scale * torch.cos(angle), scale * torch.sin(angle)
    rotation = torch.stack((torch.stack((alpha, beta), -1), torch.stack((-beta, alpha), -1)), 1)  # [B, 2, 2]
    tan_x, tan_y = torch.tan(torch.deg2rad(shear_x_deg)), torch.tan(torch.deg2rad(shear_y_deg))
    row0 = rotation[:, 0] + tan_y[:, None] * rotation[:, 1]
    row1 = rotation[:, 1] + tan_x[:, None] * rotation[:, 0]
    return torch.stack((torch.cat((row0, shift_x[:, None]), 1), torch.cat((row1, shift_y[:, None]), 1)), 1)


def mosaic_offsets(tile_hw: torch.Tensor, xc: torch.Tensor, yc: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Canvas position (pad_x, pad_y) [B, 4] of each tile's top-left corner; tile_hw is [B, 4, 2] (h, w).

    Tile 0 ends at the centre from the top-left, 1 starts right of it, 2 below-left, 3 below-right.
    """
    heights, widths = tile_hw[..., 0], tile_hw[..., 1]
    pad_x = torch.stack((xc - widths[:, 0], xc, xc - widths[:, 2], xc), 1)
    pad_y = torch.stack((yc - heights[:, 0], yc - heights[:, 1], yc, yc), 1)
    return pad_x, pad_y


def pixel_centres(height: int, width: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """x [1, 1, W] and y [1, H, 1] of output pixel centres, in `like`'s device and float dtype."""
    xs = torch.arange(width, device=like.device, dtype=like.dtype).view(1, 1, width)
    ys = torch.arange(height, device=like.device, dtype=like.dtype).view(1, height, 1)
    return xs, ys


def to_grid(x: torch.Tensor, y: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Pixel-centre coordinates -> grid_sample's [-1, 1] coordinates (align_corners=False)."""
    return torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)


def inverse_2x2(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of [B, 2, 2] matrices in closed form (no solver library needed on any device)."""
    a, b, c, d = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1]
    det = (a * d - b * c)[:, None, None]
    return torch.stack((torch.stack((d, -b), -1), torch.stack((-c, a), -1)), 1) / det


def mosaic_affine_images(images: torch.Tensor, tiles: torch.Tensor, pad_x: torch.Tensor, pad_y: torch.Tensor,
                         xc: torch.Tensor, yc: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Mosaic of images[tiles] warped by `matrices`: [B, 3, H, W] float, integer-valued like cv2's uint8 output.

    images: [N, H, W, 3] uint8 letterboxed tiles; tiles: [B, 4] indices into it; pad_x, pad_y: [B, 4];
    xc, yc, matrices: [B], [B], [B, 2, 3].
    """
    batch, (height, width, channels) = tiles.shape[0], images.shape[1:]
    atlas = images[tiles].view(batch, 2, 2, height, width, channels).permute(0, 5, 1, 3, 2, 4)
    atlas = atlas.reshape(batch, channels, 2 * height, 2 * width).to(matrices.dtype)

    linear, shift = matrices[:, :, :2], matrices[:, :, 2]
    inverse = inverse_2x2(linear)
    xs, ys = pixel_centres(height, width, matrices)
    dx, dy = xs - shift[:, 0, None, None], ys - shift[:, 1, None, None]
    u = inverse[:, 0, 0, None, None] * dx + inverse[:, 0, 1, None, None] * dy  # canvas x of each output pixel
    v = inverse[:, 1, 0, None, None] * dx + inverse[:, 1, 1, None, None] * dy
    u_pixel, v_pixel = u.round(), v.round()
    right = u_pixel >= xc[:, None, None]
    below = v_pixel >= yc[:, None, None]
    quadrant = (right.long() + 2 * below.long()).view(batch, -1)
    source_x = u - pad_x.gather(1, quadrant).view_as(u)
    source_y = v - pad_y.gather(1, quadrant).view_as(v)
    inside = ((u_pixel >= 0) & (u_pixel < 2 * width) & (v_pixel >= 0) & (v_pixel < 2 * height)
              & (source_x.round() >= 0) & (source_x.round() < width)
              & (source_y.round() >= 0) & (source_y.round() < height))
    atlas_x = source_x.clamp(0, width - 1) + right * width
    atlas_y = source_y.clamp(0, height - 1) + below * height
    grid = to_grid(atlas_x, atlas_y, 2 * width, 2 * height)
    warped = F.grid_sample(atlas, grid, mode="bilinear", padding_mode="border", align_corners=False).round()
    return torch.where(inside[:, None], warped, torch.full_like(warped, PAD_VALUE))


def mosaic_boxes(labels: torch.Tensor, tiles: torch.Tensor, pad_x: torch.Tensor, pad_y: torch.Tensor,
                 canvas_hw: Tuple[int, int]) -> torch.Tensor:
    """xyxy boxes of the four tiles moved onto the canvas and clipped to it: [B, 4 * L, 4].

    labels: [N, L, 5] (x1, y1, x2, y2, class) rows of each image.
    """
    tile_boxes = labels[tiles][..., :4]  # [B, 4, L, 4]
    shift = torch.stack((pad_x, pad_y, pad_x, pad_y), -1)[:, :, None, :].to(tile_boxes.dtype)
    boxes = tile_boxes + shift
    # clamped by column with Python bounds: a limits tensor built from a list would be a blocking host copy
    xs, ys = boxes[..., 0::2].clamp(0, canvas_hw[1]), boxes[..., 1::2].clamp(0, canvas_hw[0])
    return torch.stack((xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]), -1).flatten(1, 2)


def affine_boxes(boxes: torch.Tensor, matrices: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
    """Enclosing boxes of the affinely mapped corners of xyxy boxes [B, N, 4], clipped to the output."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    corner_x = torch.stack((x1, x2, x1, x2), -1)
    corner_y = torch.stack((y1, y2, y2, y1), -1)
    m = matrices.to(boxes.dtype)[:, :, :, None, None]
    mapped_x = m[:, 0, 0] * corner_x + m[:, 0, 1] * corner_y + m[:, 0, 2]
    mapped_y = m[:, 1, 0] * corner_x + m[:, 1, 1] * corner_y + m[:, 1, 2]
    height, width = out_hw
    return torch.stack((mapped_x.amin(-1).clamp(0, width), mapped_y.amin(-1).clamp(0, height),
                        mapped_x.amax(-1).clamp(0, width), mapped_y.amax(-1).clamp(0, height)), -1)


def mixup_canvas_size(jit: torch.Tensor, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(h, w) of the letterboxed canvas resized by `jit`, truncated like int(size * jit)."""
    return torch.floor(height * jit), torch.floor(width * jit)


def mixup_images(sources: torch.Tensor, jit: torch.Tensor, flip: torch.Tensor, offset_x: torch.Tensor,
                 offset_y: torch.Tensor) -> torch.Tensor:
    """Mixup's second image: [B, 3, H, W] float, the resized (maybe flipped) canvas cropped at the offsets, 0 outside.

    sources: [B, H, W, 3] uint8 letterboxed images; jit, offsets: [B] float; flip: [B] bool.
    """
    height, width = sources.shape[1:3]
    canvas_h, canvas_w = mixup_canvas_size(jit, height, width)
    xs, ys = pixel_centres(height, width, jit)
    px = xs + offset_x[:, None, None]
    py = ys + offset_y[:, None, None]
    inside = (px < canvas_w[:, None, None]) & (py < canvas_h[:, None, None])
    px = torch.where(flip[:, None, None], canvas_w[:, None, None] - 1 - px, px)
    # cv2.resize maps an output pixel centre p to the input coordinate (p + 0.5) * in / out - 0.5
    grid_x = (2 * (px + 0.5) / canvas_w[:, None, None] - 1).expand(-1, height, -1)
    grid_y = (2 * (py + 0.5) / canvas_h[:, None, None] - 1).expand(-1, -1, width)
    picture = sources.permute(0, 3, 1, 2).to(jit.dtype)
    sampled = F.grid_sample(picture, torch.stack((grid_x, grid_y), -1), mode="bilinear",
                            padding_mode="border", align_corners=False).round()
    return torch.where(inside[:, None], sampled, torch.zeros_like(sampled))


def mixup_box_batch(boxes: torch.Tensor, jit: torch.Tensor, flip: torch.Tensor, offset_x: torch.Tensor,
                    offset_y: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
    """Mixup source boxes [B, L, 4]: scale, clip to the resized canvas, flip, shift by the crop, clip (mixup_boxes)."""
    height, width = out_hw
    canvas_h, canvas_w = mixup_canvas_size(jit, height, width)
    scaled = boxes * jit[:, None, None].to(boxes.dtype)
    xs = torch.minimum(scaled[..., 0::2].clamp(min=0), canvas_w[:, None, None].to(boxes.dtype))
    ys = torch.minimum(scaled[..., 1::2].clamp(min=0), canvas_h[:, None, None].to(boxes.dtype))
    flipped = canvas_w[:, None, None].to(boxes.dtype) - xs.flip(-1)
    xs = torch.where(flip[:, None, None], flipped, xs)
    xs = (xs - offset_x[:, None, None].to(boxes.dtype)).clamp(0, width)
    ys = (ys - offset_y[:, None, None].to(boxes.dtype)).clamp(0, height)
    return torch.stack((xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]), -1)
