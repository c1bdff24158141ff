"""A stand-in detector for the disc mosaics: every dark connected blob is a crater with score 0.9."""
import cv2
import numpy as np
import torch
from torch import nn

from yolox.data.data_augment import PAD_VALUE
from tests.crater_catalog.mosaics import DISC_VALUE

# between the discs and the letterbox grey of the canvas padding (the background is brighter still)
THRESHOLD = (PAD_VALUE + DISC_VALUE) / 2


class DiscFinder(nn.Module):
    """YOLOX-style decoded output [B, N, 6] (cx, cy, w, h, obj, cls) of the blobs below THRESHOLD."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = []
        for image in images[:, 0].cpu().numpy():
            count, _, stats, _ = cv2.connectedComponentsWithStats((image < THRESHOLD).astype(np.uint8), 8)
            x, y, w, h = (stats[1:, i].astype(np.float32) for i in range(4))
            rows.append(np.stack([x + w / 2, y + h / 2, w, h, np.full_like(x, 0.9), np.ones_like(x)], 1))
        width = max(1, max(len(r) for r in rows))
        out = np.zeros((len(rows), width, 6), np.float32)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return torch.from_numpy(out)
