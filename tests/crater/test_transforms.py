"""yolox.crater.transforms, the no-mosaic training path of the crater exp: after every flip and quarter turn
and the letterbox, each label box still sits on its crater's pixels, and the label padding stays zero."""
import itertools

import cv2
import numpy as np
import pytest

from yolox.crater.transforms import DihedralTransform, ScaleJitterTransform
from yolox.data.data_augment import TrainTransform

CRATERS = [(12, 10, 5), (40, 30, 8), (20, 36, 4)]  # (cx, cy, radius) in a 64 x 48 (w x h) image


def crater_image():
    image = np.zeros((48, 64, 3), np.uint8)
    for cx, cy, radius in CRATERS:
        cv2.circle(image, (cx, cy), radius, (255, 255, 255), -1)
    boxes = np.array([[cx - radius, cy - radius, cx + radius + 1, cy + radius + 1, 0] for cx, cy, radius in CRATERS],
                     np.float32)
    return image, boxes


@pytest.mark.parametrize("hflip,vflip,turn", list(itertools.product([0.0, 1.0], repeat=3)))
def test_boxes_cover_the_crater_pixels_after_every_flip_and_turn(hflip, vflip, turn):
    transform = DihedralTransform(TrainTransform(max_labels=6, flip_prob=hflip, hsv_prob=0.0),
                                  vflip_prob=vflip, transpose_prob=turn)
    image, boxes = crater_image()
    out, labels = transform(image.copy(), boxes.copy(), (96, 96))       # letterbox ratio 1.5
    grey = out[0]
    valid = labels[labels[:, 3] > 0]
    assert len(valid) == len(CRATERS) and not labels[len(CRATERS):].any()
    crater_pixels = grey > 160    # above the letterbox padding (114)
    covered = np.zeros_like(crater_pixels)
    for _, cx, cy, w, h in valid:
        x1, y1, x2, y2 = (int(round(v)) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        inside = crater_pixels[y1:y2, x1:x2]
        assert inside.mean() > 0.45, (cx, cy, w, h)   # a disk fills pi/4 of its box (less when rasterised small)
        ys, xs = np.nonzero(inside)
        assert abs(xs.mean() + x1 - cx) < 1.0 and abs(ys.mean() + y1 - cy) < 1.0
        covered[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = True   # bilinear resize blurs one pixel
    assert not (crater_pixels & ~covered).any()                          # no crater outside every box


def test_scale_jitter_moves_boxes_with_the_pixels():
    transform = ScaleJitterTransform(TrainTransform(max_labels=6, flip_prob=0.0, hsv_prob=0.0),
                                     scales=(0.6, 0.6), translate=0.0)
    image, boxes = crater_image()
    out, labels = transform(image, boxes, (64, 64))
    crater_pixels = out[0] > 160
    valid = labels[labels[:, 3] > 0]
    assert len(valid) == len(CRATERS)
    for (_, cx, cy, w, h), (_, _, radius) in zip(valid, CRATERS):
        assert w == pytest.approx(0.6 * (2 * radius + 1), abs=0.01)
        x1, y1 = int(round(cx - w / 2)), int(round(cy - h / 2))
        assert crater_pixels[y1:int(round(y1 + h)), x1:int(round(x1 + w))].mean() > 0.4
