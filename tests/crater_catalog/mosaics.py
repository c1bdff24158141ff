"""The generated mosaics the crater-catalogue tests run on, and a small one rendered in memory."""
from typing import Optional

import numpy as np

from yolox.synthetic.mosaic import DISC_VALUE, MosaicConfig, iter_blocks, place_mosaic_craters, render_block, \
    write_mosaic

__all__ = ["DISC_VALUE", "MosaicConfig", "place_mosaic_craters", "render_block", "render_mosaic", "write_mosaic"]


def render_mosaic(cfg: MosaicConfig, craters: Optional[np.ndarray] = None) -> np.ndarray:
    """The whole mosaic in memory (small mosaics only)."""
    craters = place_mosaic_craters(cfg) if craters is None else craters
    image = np.zeros((cfg.height, cfg.width), np.uint8)
    for x0, y0, w, h in iter_blocks(cfg):
        image[y0:y0 + h, x0:x0 + w] = render_block(cfg, craters, x0, y0, w, h)
    return image
